"""The identity provider's changes through SCIM: each an audited use case of its own.

The caller is an application account holding ``jitpam\\Directory Sync`` (the task
``jitpam\\Sync-Directory``). Each change is recorded as the directory operation it is (New-User,
Set-User, New-Group, Set-Group, Remove-Group, Add-GroupMember, Remove-GroupMember) with
``via: scim`` and ``set_up_by``: who set up the sync account (its stewards), whom separation of
duties holds responsible for what it does. What SCIM creates is marked as managed by the
identity provider (``Source.SCIM``): hand edits of it are refused, except disabling. SCIM changes
only the users it created: a user made in jitpam is never taken over (an administrator could hand
one over explicitly; jitpam has no such command yet).

Memberships SCIM adds are added by the sync account, so that a requester who steers that account
has a hand in the votes of the approvers it placed. Memberships of an approver group (a policy's,
or the organization's default) arrive only for the groups the organization opted in
(``AccessControl.synced_approver_group_ids``); otherwise the whole change is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from jitpam.domain.audit import Actor, AuditEvent
from jitpam.domain.catalog import BUILTIN_SCOPE
from jitpam.domain.check import Decision
from jitpam.domain.directory import (
    Group,
    PrincipalKind,
    Source,
    User,
    UserKind,
    check_text,
    home_address,
    normalize_upn,
    upn_domain,
)
from jitpam.domain.errors import (
    AlreadyExists,
    ApproverGroupNotSynced,
    InvalidInput,
    NotFound,
    NotPermitted,
)
from jitpam.domain.names import QualifiedName
from jitpam.domain.operations import AuditOperation
from jitpam.domain.policy import PolicyType
from jitpam.domain.scim import (
    Filter,
    GroupFields,
    Operation,
    ScimInvalid,
    UserFields,
    patch_group,
    patch_user,
)
from jitpam.domain.separation import Stewardship
from jitpam.services.authorization import authorize, grant_details
from jitpam.services.context import Caller, ServiceContext
from jitpam.services.directory import refuse_guest_clash, revoke_on_disable
from jitpam.services.jitpam_guards import keep_role_guards
from jitpam.services.ports import Stamped, UnitOfWork
from jitpam.services.separation import set_up_account
from jitpam.services.use_case import use_case

SCIM_KINDS = (UserKind.PERSON, UserKind.GUEST)
NOT_SYNC = (
    "SCIM is for an application account holding jitpam\\Directory Sync; {upn} is a {kind} account"
)


def _sync_account(uow: UnitOfWork, caller: Caller, at: datetime) -> tuple[User, Decision]:
    """The calling sync account: an application account that may run Sync-Directory."""
    actor, how = authorize(uow, caller, AuditOperation.SYNC_DIRECTORY, at)
    if actor.kind is not UserKind.APPLICATION:
        raise NotPermitted(NOT_SYNC.format(upn=actor.upn, kind=actor.kind.value))
    return actor, how


def _details(uow: UnitOfWork, actor: User, how: Decision, **more: Any) -> dict[str, Any]:
    stewards = uow.users.stewards([actor.id])[actor.id]
    return {
        "via": "scim",
        "set_up_by": sorted(uow.users.upns(actor.org_id, stewards).values()),
        **more,
        **grant_details(how),
    }


def _record(
    uow: UnitOfWork, actor: User, op: AuditOperation, target: str, at: datetime, details: Any
) -> None:
    uow.record(
        AuditEvent(
            org_id=actor.org_id,
            actor=Actor.of(actor),
            operation=op,
            target=target,
            at=at,
            details=details,
        )
    )


def _id(text: str, what: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise NotFound(f"no {what} with id {text!r}") from None


def _user(uow: UnitOfWork, org_id: UUID, user_id: str) -> User:
    """A user SCIM sees (a person or guest of the organization it did not delete)."""
    user = uow.users.get(_id(user_id, "user"))
    if user is None or user.org_id != org_id or user.kind not in SCIM_KINDS or user.scim_deleted:
        raise NotFound(f"no user with id {user_id!r}")
    return user


def _scim_user(uow: UnitOfWork, org_id: UUID, user_id: str) -> User:
    """A user SCIM may change: one it created. A user made in jitpam is never taken over by
    SCIM (renaming one would hand their account to whoever signs in with the new name)."""
    user = _user(uow, org_id, user_id)
    if user.source is not Source.SCIM:
        raise ScimInvalid(
            f"{user.upn} was made in jitpam, not by the identity provider: SCIM does not change "
            "it; nothing was changed",
            "mutability",
        )
    return user


def _group(uow: UnitOfWork, org_id: UUID, group_id: str) -> Group:
    group = uow.groups.get(_id(group_id, "group"))
    if group is None or group.org_id != org_id:
        raise NotFound(f"no group with id {group_id!r}")
    return group


def _stamped_user(uow: UnitOfWork, org_id: UUID, user_id: UUID) -> Stamped[User]:
    _, found = uow.users.scim_page(org_id, where=Filter("id", str(user_id)), offset=0, limit=1)
    if not found:
        raise NotFound(f"no user with id {user_id}")
    return found[0]


def _stamped_group(uow: UnitOfWork, org_id: UUID, group_id: UUID) -> Stamped[Group]:
    _, found = uow.groups.scim_page(org_id, where=Filter("id", str(group_id)), offset=0, limit=1)
    if not found:
        raise NotFound(f"no group with id {group_id}")
    return found[0]


# ------------------------------------------------------------------------------ reading


def list_users(
    ctx: ServiceContext, *, caller: Caller, where: Filter | None, offset: int, limit: int
) -> tuple[int, list[Stamped[User]]]:
    with ctx.reader() as uow:
        _sync_account(uow, caller, ctx.clock.now())
        return uow.users.scim_page(caller.org_id, where=where, offset=offset, limit=limit)


def get_user(ctx: ServiceContext, *, caller: Caller, user_id: str) -> Stamped[User]:
    with ctx.reader() as uow:
        _sync_account(uow, caller, ctx.clock.now())
        return _stamped_user(uow, caller.org_id, _user(uow, caller.org_id, user_id).id)


def list_groups(
    ctx: ServiceContext, *, caller: Caller, where: Filter | None, offset: int, limit: int
) -> tuple[int, list[Stamped[Group]]]:
    with ctx.reader() as uow:
        _sync_account(uow, caller, ctx.clock.now())
        return uow.groups.scim_page(caller.org_id, where=where, offset=offset, limit=limit)


def get_group(ctx: ServiceContext, *, caller: Caller, group_id: str) -> Stamped[Group]:
    with ctx.reader() as uow:
        _sync_account(uow, caller, ctx.clock.now())
        return _stamped_group(uow, caller.org_id, _group(uow, caller.org_id, group_id).id)


# ------------------------------------------------------------------------------ users


def _user_name(uow: UnitOfWork, org_id: UUID, typed: str, *, current: User | None) -> str:
    """The UPN SCIM gives a user: email-style, in a domain the organization owns, not taken by
    another user (AlreadyExists: 409 uniqueness); a guest's in Entra's form
    (``gus_fabrikam.com#EXT#@contoso.com``), and only a guest's."""
    name = normalize_upn(typed)
    if current is not None and (home_address(name) is None) != (current.kind is not UserKind.GUEST):
        raise InvalidInput(
            f"{name}: a guest's user name is in Entra's guest form (#EXT#), and only a guest's"
        )
    if uow.orgs.domain_owner(upn_domain(name)) != org_id:
        raise InvalidInput(
            f"{upn_domain(name)} is not a domain of this organization "
            f"(domains: {', '.join(uow.orgs.domains(org_id))})"
        )
    taken = uow.users.get_by_upn(name)
    if taken is not None and (current is None or taken.id != current.id):
        if taken.source is not Source.SCIM:
            raise AlreadyExists(
                f"a user named {name} already exists, made in jitpam: SCIM does not take over "
                "a user it did not create"
            )
        raise AlreadyExists(f"a user named {name} already exists")
    home = home_address(name)
    if home is not None:
        refuse_guest_clash(
            uow, uow.orgs.domains(org_id), home, current=current.id if current else None
        )
    return name


def create_user(ctx: ServiceContext, *, caller: Caller, fields: UserFields) -> Stamped[User]:
    """New-User through SCIM: a person the identity provider manages, created by the sync
    account (which steers it, as whoever creates an account does)."""
    op = AuditOperation.NEW_USER
    with use_case(ctx, caller=caller, operation=op, target=fields.user_name) as uow:
        at = ctx.clock.now()
        actor, how = _sync_account(uow, caller, at)
        name = _user_name(uow, caller.org_id, fields.user_name, current=None)
        home = home_address(name)  # Entra's guests: their own address is their email
        _refuse_taken_user_id(uow, caller.org_id, _external_id(fields.external_id))
        user = User(
            uuid4(),
            caller.org_id,
            name,
            check_text(fields.display_name, field_name="displayName"),
            normalize_upn(fields.email) if fields.email else home or name,
            UserKind.GUEST if home is not None else UserKind.PERSON,
            enabled=fields.active,
            external_id=_external_id(fields.external_id),
            source=Source.SCIM,
        )
        uow.users.add(user, at=at)
        set_up_account(uow, account=user, by=actor, how=Stewardship.CREATED, at=at)
        details = _details(
            uow,
            actor,
            how,
            kind=user.kind.value,
            enabled=user.enabled,
            external_id=user.external_id,
        )
        _record(uow, actor, op, name, at, details)
        stamped = _stamped_user(uow, caller.org_id, user.id)
        uow.commit()
        return stamped


def _external_id(value: str | None) -> str | None:
    if not value:
        return None
    return check_text(value, field_name="externalId", required=False) or None


def _refuse_taken_user_id(uow: UnitOfWork, org_id: UUID, external_id: str | None) -> None:
    """Raises AlreadyExists (409 uniqueness) when another user has ``external_id``."""
    if external_id is not None:
        total, _ = uow.users.scim_page(
            org_id, where=Filter("externalid", external_id), offset=0, limit=0
        )
        if total:
            raise AlreadyExists(f"a user with externalId {external_id!r} already exists")


def _refuse_taken_group_id(uow: UnitOfWork, org_id: UUID, external_id: str | None) -> None:
    """Raises AlreadyExists (409 uniqueness) when another group has ``external_id``."""
    if external_id is not None:
        total, _ = uow.groups.scim_page(
            org_id, where=Filter("externalid", external_id), offset=0, limit=0
        )
        if total:
            raise AlreadyExists(f"a group with externalId {external_id!r} already exists")


def _fields_of(user: User) -> UserFields:
    return UserFields(user.upn, user.display_name, user.email, user.enabled, user.external_id)


def _change_user(
    ctx: ServiceContext,
    uow: UnitOfWork,
    *,
    caller: Caller,
    actor: User,
    how: Decision,
    user: User,
    wanted: UserFields,
    at: datetime,
    delete: bool = False,
) -> None:
    """Set-User through SCIM of a user SCIM created: the user as ``wanted`` says; disabling
    revokes as Set-User does. A new user name or email is where a first OIDC sign-in is linked
    by: the sync account steers the user from then on (separation of duties), and the user's
    OIDC links are dropped, so that the old identity does not keep the account."""
    changes: dict[str, Any] = {}
    name = _user_name(uow, caller.org_id, wanted.user_name, current=user)
    if name != user.upn:
        changes["upn"] = name
    display = check_text(wanted.display_name, field_name="displayName")
    if display != user.display_name:
        changes["display_name"] = display
    email = normalize_upn(wanted.email) if wanted.email else home_address(name) or name
    if email != user.email:
        changes["email"] = email
    if wanted.active != user.enabled:
        if wanted.active and user.disabled_by_hand:
            raise ScimInvalid(
                f"{user.upn} was disabled by an administrator in jitpam: an administrator must "
                "enable them again (jitpam user enable); nothing was changed",
                "mutability",
            )
        changes["enabled"] = wanted.active
    external = None if delete else _external_id(wanted.external_id)
    if external != user.external_id:
        _refuse_taken_user_id(uow, caller.org_id, external)
        changes["external_id"] = external
    if delete:
        changes["scim_deleted"] = True  # its externalId freed: the provider may create it anew
    updated = replace(user, **changes)
    uow.users.save(updated, at=at)
    details = _details(uow, actor, how, **changes)
    if "upn" in changes or "email" in changes:
        set_up_account(uow, account=updated, by=actor, how=Stewardship.SCIM_SIGN_IN, at=at)
        details["oidc_links_dropped"] = uow.credentials.unlink_oidc(user.id)
    cascade: list[AuditEvent] = []
    if user.enabled and not updated.enabled:
        details["tokens_revoked"] = uow.credentials.revoke_all_tokens(user.id, at=at)
        cascade = revoke_on_disable(ctx, uow, caller=caller, actor=actor, user=user, at=at)
    _record(uow, actor, AuditOperation.SET_USER, updated.upn, at, details)
    uow.record_all(cascade)


def replace_user(
    ctx: ServiceContext, *, caller: Caller, user_id: str, fields: UserFields
) -> Stamped[User]:
    """PUT: the user as the body says."""
    return _update_user(ctx, caller, user_id, lambda _user: fields)


def modify_user(
    ctx: ServiceContext, *, caller: Caller, user_id: str, operations: Sequence[Operation]
) -> Stamped[User]:
    """PATCH: the operations, in order, all or none."""
    return _update_user(ctx, caller, user_id, lambda user: patch_user(_fields_of(user), operations))


def _update_user(
    ctx: ServiceContext, caller: Caller, user_id: str, wanted: Callable[[User], UserFields]
) -> Stamped[User]:
    """PUT or PATCH of a user: ``wanted`` says what it becomes, from what it is."""
    with use_case(ctx, caller=caller, operation=AuditOperation.SET_USER, target=user_id) as uow:
        at = ctx.clock.now()
        actor, how = _sync_account(uow, caller, at)
        user = _scim_user(uow, caller.org_id, user_id)
        _change_user(
            ctx, uow, caller=caller, actor=actor, how=how, user=user, wanted=wanted(user), at=at
        )
        stamped = _stamped_user(uow, caller.org_id, user.id)
        uow.commit()
        return stamped


def delete_user(ctx: ServiceContext, *, caller: Caller, user_id: str) -> None:
    """DELETE: the user is disabled (grants revoked, pending requests cancelled, tokens
    revoked) and hidden from SCIM; jitpam keeps the record for the audit log."""
    with use_case(ctx, caller=caller, operation=AuditOperation.SET_USER, target=user_id) as uow:
        at = ctx.clock.now()
        actor, how = _sync_account(uow, caller, at)
        user = _scim_user(uow, caller.org_id, user_id)
        wanted = replace(_fields_of(user), active=False)
        _change_user(
            ctx,
            uow,
            caller=caller,
            actor=actor,
            how=how,
            user=user,
            wanted=wanted,
            at=at,
            delete=True,
        )
        _leave_groups(uow, actor=actor, how=how, user=user, at=at)
        uow.commit()


def _leave_groups(uow: UnitOfWork, *, actor: User, how: Decision, user: User, at: datetime) -> None:
    """A user SCIM deleted leaves every group (each a Remove-GroupMember): SCIM no longer sees
    them, so it could never take them out later."""
    groups = [g for g in map(uow.groups.get, sorted(uow.users.group_ids(user.id))) if g]
    for group in sorted(groups, key=lambda g: g.name):
        changed = uow.groups.remove_member(group.id, user.id)
        details = _details(uow, actor, how, member=user.upn, changed=changed, scim_deleted=True)
        _record(uow, actor, AuditOperation.REMOVE_GROUP_MEMBER, group.name, at, details)


# ------------------------------------------------------------------------------ groups


def _group_name(uow: UnitOfWork, org_id: UUID, typed: str, *, current: Group | None) -> str:
    name = check_text(typed, field_name="displayName")
    taken = uow.groups.find(org_id, name)
    if taken is not None and (current is None or taken.id != current.id):
        if taken.source is not Source.SCIM:
            raise AlreadyExists(
                f"a group named {name!r} already exists, made in jitpam: SCIM does not take over "
                "a group it did not create"
            )
        raise AlreadyExists(f"a group named {name!r} already exists")
    return name


def _scim_group(uow: UnitOfWork, group: Group) -> None:
    """Raises unless SCIM may change ``group``: one it created, or an approver group the
    organization opted in (the explicit hand-over, recorded as ``took_over``). A group made in
    jitpam is never taken over otherwise: ApproverGroupNotSynced for an approver group,
    ScimInvalid (``mutability``) for any other."""
    if group.source is Source.SCIM:
        return
    _refuse_unsynced_approvers(uow, group)
    if not uow.groups.approves(group.id):
        raise ScimInvalid(
            f"group {group.name!r} was made in jitpam, not by the identity provider: SCIM does "
            "not change it; nothing was changed",
            "mutability",
        )


def _refuse_jitpam_roles(uow: UnitOfWork, group: Group) -> None:
    """Raises ScimInvalid (``mutability``) when ``group`` holds a jitpam role or role group:
    an identity provider does not hand out jitpam's own administration."""
    for held in uow.assignments.of_principal(group.org_id, PrincipalKind.GROUP, group.id):
        if QualifiedName.parse(held.target).scope.casefold() == BUILTIN_SCOPE:
            raise ScimInvalid(
                f"group {group.name!r} holds {held.target}: SCIM does not set the members of a "
                "group holding a jitpam role; nothing was changed",
                "mutability",
            )


def _visible_members(uow: UnitOfWork, group: Group) -> frozenset[UUID]:
    """The members of ``group`` SCIM sees (people and guests it did not delete); SCIM leaves
    the others (service and application accounts, users it deleted) as they are."""
    return uow.users.scim_visible(group.org_id, group.member_ids)


def _members(uow: UnitOfWork, org_id: UUID, ids: Sequence[str]) -> dict[UUID, User]:
    """The users SCIM names as members, by id; raises ScimInvalid for an id that names none."""
    out: dict[UUID, User] = {}
    for text in ids:
        try:
            user = _user(uow, org_id, text)
        except NotFound:
            raise ScimInvalid(f"member {text!r} is no user of this organization") from None
        out[user.id] = user
    return out


def _refuse_unsynced_approvers(uow: UnitOfWork, group: Group) -> None:
    """Raises ApproverGroupNotSynced when ``group`` makes its members approvers and the
    organization did not opt it in to SCIM."""
    if not uow.groups.approves(group.id):
        return
    # An approver group: the opt-in is read locked, so an opt-out made meanwhile waits for
    # this change (or lands first, and this change is refused).
    if group.id not in uow.orgs.control(group.org_id, for_update=True).synced_approver_group_ids:
        raise ApproverGroupNotSynced(
            f"group {group.name!r} is an approver group, and the organization has not let SCIM "
            "set its members (jitpam config set --scim-approver-group NAME); nothing was changed"
        )


def _set_members(
    uow: UnitOfWork,
    *,
    actor: User,
    how: Decision,
    group: Group,
    wanted: dict[UUID, User],
    at: datetime,
) -> None:
    """Add and remove members so that the members SCIM sees are ``wanted`` (the others stay),
    each change audited; added by the sync account (separation of duties)."""
    joining = [u for i, u in wanted.items() if i not in group.member_ids]
    leaving = sorted(_visible_members(uow, group) - set(wanted))
    if not joining and not leaving:
        return
    _refuse_unsynced_approvers(uow, group)
    _refuse_jitpam_roles(uow, group)
    if joining:
        # Joining a group that holds a guarded jitpam role is a standing assignment too.
        for held in uow.assignments.of_principal(group.org_id, PrincipalKind.GROUP, group.id):
            keep_role_guards(uow, user=actor, kind=PolicyType(held.target_kind), target=held.target)
    names = uow.users.upns(group.org_id, leaving)
    for user in sorted(joining, key=lambda u: u.upn):
        changed = uow.groups.add_member(group.id, user.id, added_by=actor.id)
        details = _details(uow, actor, how, member=user.upn, changed=changed)
        _record(uow, actor, AuditOperation.ADD_GROUP_MEMBER, group.name, at, details)
    for user_id in leaving:
        changed = uow.groups.remove_member(group.id, user_id)
        member = names.get(user_id, str(user_id))
        details = _details(uow, actor, how, member=member, changed=changed)
        _record(uow, actor, AuditOperation.REMOVE_GROUP_MEMBER, group.name, at, details)


def create_group(ctx: ServiceContext, *, caller: Caller, fields: GroupFields) -> Stamped[Group]:
    """New-Group through SCIM, with its members (each an Add-GroupMember)."""
    op = AuditOperation.NEW_GROUP
    with use_case(ctx, caller=caller, operation=op, target=fields.display_name) as uow:
        at = ctx.clock.now()
        actor, how = _sync_account(uow, caller, at)
        name = _group_name(uow, caller.org_id, fields.display_name, current=None)
        _refuse_taken_group_id(uow, caller.org_id, _external_id(fields.external_id))
        group = Group(
            uuid4(),
            caller.org_id,
            name,
            name.casefold(),
            external_id=_external_id(fields.external_id),
            source=Source.SCIM,
        )
        uow.groups.add(group, at=at)
        _record(uow, actor, op, name, at, _details(uow, actor, how, external_id=group.external_id))
        members = _members(uow, caller.org_id, fields.members)
        _set_members(uow, actor=actor, how=how, group=group, wanted=members, at=at)
        stamped = _stamped_group(uow, caller.org_id, group.id)
        uow.commit()
        return stamped


def _change_group(
    uow: UnitOfWork,
    *,
    actor: User,
    how: Decision,
    group: Group,
    wanted: GroupFields,
    at: datetime,
) -> None:
    _scim_group(uow, group)
    members = _members(uow, group.org_id, wanted.members)
    changes: dict[str, Any] = {}
    name = _group_name(uow, group.org_id, wanted.display_name, current=group)
    if name != group.name:
        changes["name"] = name
        if group.email == group.name.casefold():  # a group without an address of its own
            changes["email"] = name.casefold()
    external = _external_id(wanted.external_id)
    if external != group.external_id:
        _refuse_taken_group_id(uow, group.org_id, external)
        changes["external_id"] = external
    took_over = group.source is not Source.SCIM
    if changes or took_over:
        updated = replace(group, **changes, source=Source.SCIM)
        uow.groups.save(updated, at=at)
        details = _details(uow, actor, how, **changes)
        if took_over:
            details["took_over"] = True
        _record(uow, actor, AuditOperation.SET_GROUP, group.name, at, details)
        group = updated
    _set_members(uow, actor=actor, how=how, group=group, wanted=members, at=at)


def replace_group(
    ctx: ServiceContext, *, caller: Caller, group_id: str, fields: GroupFields
) -> Stamped[Group]:
    """PUT: the group and its members as the body says."""
    return _update_group(ctx, caller, group_id, lambda _uow, _group: fields)


def modify_group(
    ctx: ServiceContext, *, caller: Caller, group_id: str, operations: Sequence[Operation]
) -> Stamped[Group]:
    """PATCH: the operations, in order, all or none."""

    def wanted(uow: UnitOfWork, group: Group) -> GroupFields:
        seen = _visible_members(uow, group)
        current = GroupFields(group.name, group.external_id, tuple(sorted(str(m) for m in seen)))
        return patch_group(current, operations)

    return _update_group(ctx, caller, group_id, wanted)


def _update_group(
    ctx: ServiceContext,
    caller: Caller,
    group_id: str,
    wanted: Callable[[UnitOfWork, Group], GroupFields],
) -> Stamped[Group]:
    """PUT or PATCH of a group: ``wanted`` says what it becomes, from what it is."""
    with use_case(ctx, caller=caller, operation=AuditOperation.SET_GROUP, target=group_id) as uow:
        at = ctx.clock.now()
        actor, how = _sync_account(uow, caller, at)
        group = _group(uow, caller.org_id, group_id)
        _change_group(uow, actor=actor, how=how, group=group, wanted=wanted(uow, group), at=at)
        stamped = _stamped_group(uow, caller.org_id, group.id)
        uow.commit()
        return stamped


def delete_group(ctx: ServiceContext, *, caller: Caller, group_id: str) -> None:
    """Remove-Group through SCIM; refused while a policy or access control names it (as
    Remove-Group is), and for an approver group not opted in that still has members."""
    op = AuditOperation.REMOVE_GROUP
    with use_case(ctx, caller=caller, operation=op, target=group_id) as uow:
        at = ctx.clock.now()
        actor, how = _sync_account(uow, caller, at)
        group = _group(uow, caller.org_id, group_id)
        _scim_group(uow, group)
        use = uow.groups.in_use(group.id)
        if use is not None:
            raise InvalidInput(f"group {group.name!r} cannot be removed: {use}")
        uow.groups.remove(group.id)
        details = _details(uow, actor, how, members=len(group.member_ids))
        _record(uow, actor, op, group.name, at, details)
        uow.commit()
