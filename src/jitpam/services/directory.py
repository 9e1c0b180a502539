"""Users, groups and standing role assignments, and who holds a role (standing or just in time)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from jitpam.domain.audit import Actor, AuditEvent
from jitpam.domain.directory import (
    Assignment,
    Group,
    PrincipalKind,
    Source,
    User,
    UserKind,
    check_text,
    guest_upn,
    home_address,
    managed_elsewhere,
    normalize_upn,
    upn_domain,
)
from jitpam.domain.errors import (
    AlreadyExists,
    ApproverGroupNotSynced,
    InvalidInput,
    ManagedElsewhere,
    NotFound,
)
from jitpam.domain.names import QualifiedName, resolve_name, split_name
from jitpam.domain.notifications import EventType
from jitpam.domain.operations import REQUESTER, AuditOperation
from jitpam.domain.policy import PolicyType
from jitpam.domain.separation import Stewardship
from jitpam.services.authorization import authorize, caller_user, grant_details
from jitpam.services.context import Caller, ServiceContext
from jitpam.services.inputs import parse_enum
from jitpam.services.jitpam_guards import keep_role_guards
from jitpam.services.notifications import queue_request_event
from jitpam.services.ports import GroupSummary, Page, RoleMember, UnitOfWork
from jitpam.services.separation import set_up_account
from jitpam.services.use_case import use_case

REVOKED_ON_DISABLE = "the user was disabled"


def find_user(uow: UnitOfWork, org_id: UUID, upn: str) -> User:
    """The user a typed name means in the organization (see ``lookup_user``); raises
    InvalidInput for a name that is not a UPN, NotFound for one that names nobody there."""
    user = lookup_user(uow, org_id, normalize_upn(upn), typed=False)
    if user is None:
        raise NotFound(f"no user named {upn!r} in this organization")
    return user


def refuse_hand_edit(what: str, managed: User | Group, *, only_disabling: bool = False) -> None:
    """Raises ManagedElsewhere when SCIM manages ``managed`` and the edit is anything but
    disabling a user (which always works)."""
    why = None if only_disabling else managed_elsewhere(what, managed.source)
    if why is not None:
        raise ManagedElsewhere(why)


def lookup_user(uow: UnitOfWork, org_id: UUID, upn: str, *, typed: bool = True) -> User | None:
    """The user of the organization a name means, or None: the user stored under that name,
    else the guest whose own address it is (stored in Entra's form under one of the
    organization's domains). A ``typed`` name is normalized first (one that is not a UPN names
    nobody); otherwise it is ``normalize_upn``'s already. Every place a user is named inside an
    organization resolves the name here."""
    if typed:
        try:
            upn = normalize_upn(upn)
        except InvalidInput:
            return None
    user = uow.users.get_by_upn(upn)
    if user is not None and user.org_id == org_id:
        return user
    if "@" not in upn or home_address(upn) is not None:
        return None
    for domain in uow.orgs.domains(org_id):
        try:
            name = guest_upn(upn, domain)
        except InvalidInput:  # too long to be anyone's name here
            continue
        guest = uow.users.get_by_upn(name)
        if guest is not None and guest.org_id == org_id:
            return guest
    return None


def _stored_name(uow: UnitOfWork, by: User, upn: str, kind: UserKind) -> tuple[str, str]:
    """The name a new user is stored under and their default email; raises InvalidInput or
    AlreadyExists. A guest named by their own address is stored in Entra's form under the
    domain of whoever creates them (one of the organization's), that address kept as email."""
    name = normalize_upn(upn)
    owned = uow.orgs.domains(by.org_id)
    home = home_address(name)
    if kind is not UserKind.GUEST and home is not None:
        raise InvalidInput(f"{name} is a guest's name (#EXT#): only a guest is named so")
    if kind is UserKind.GUEST and owned:
        if home is not None:
            _own_domain(name, owned)
        home = home or name
        refuse_guest_clash(uow, owned, home)
        if name == home:
            mine = upn_domain(by.upn)
            name = guest_upn(home, mine if mine in owned else owned[0])
    _own_domain(name, owned)
    return name, home or name


def refuse_guest_clash(
    uow: UnitOfWork, owned: list[str], home: str, *, current: UUID | None = None
) -> None:
    """The guest rules every way of naming a guest applies (Add-User, SCIM): a guest's own
    address ``home`` is outside the organization's domains ``owned`` (InvalidInput), and no
    other guest has it, whichever of those domains names them (AlreadyExists; ``current``: the
    guest being renamed, who may keep theirs)."""
    if upn_domain(home) in owned:
        raise InvalidInput(f"{home} is in this organization's domain: create a person, not a guest")
    for domain in owned:  # one guest per address, whichever domain names them
        other = uow.users.get_by_upn(guest_upn(home, domain))
        if other is not None and other.id != current:
            raise AlreadyExists(f"the guest {home} already exists")


def _own_domain(name: str, owned: list[str]) -> None:
    if upn_domain(name) not in owned:
        # Said the same way whether another organization owns the domain or nobody does.
        raise InvalidInput(
            f"{upn_domain(name)} is not a domain of this organization (domains: {', '.join(owned)})"
        )


def find_group(uow: UnitOfWork, org_id: UUID, name: str) -> Group:
    group = uow.groups.find(org_id, check_text(name, field_name="group name"))
    if group is None:
        raise NotFound(f"no group named {name!r} in this organization")
    return group


def find_approver_group(uow: UnitOfWork, org_id: UUID, name: str) -> Group:
    """A group about to be made an approver group (a policy's, or the default one). A group the
    identity provider manages must be opted in to SCIM first (``jitpam config set
    --scim-approver-group``): otherwise memberships SCIM set without that consent would make
    approvers. Raises NotFound or ApproverGroupNotSynced."""
    group = find_group(uow, org_id, name)
    if group.source is Source.SCIM and (
        group.id not in uow.orgs.control(org_id).synced_approver_group_ids
    ):
        raise ApproverGroupNotSynced(
            f"group {group.name!r} is managed by the identity provider (SCIM): opt it in as an "
            f"approver group first (jitpam config set --scim-approver-group {group.name!r})"
        )
    return group


def resolve_target(uow: UnitOfWork, org_id: UUID, kind: PolicyType, typed: str) -> QualifiedName:
    """The catalog task, role, role group or data scope a typed name means (bare names when
    unambiguous)."""
    _, bare = split_name(typed)
    return resolve_name(typed, uow.catalog.names(org_id, kind, bare), kind=_WHAT[kind])


_WHAT = {
    PolicyType.TASK: "task",
    PolicyType.ROLE: "role",
    PolicyType.ROLE_GROUP: "role group",
    PolicyType.DATA_ACCESS: "data scope",
}


def add_user(
    ctx: ServiceContext,
    *,
    caller: Caller,
    upn: str,
    display_name: str,
    email: str | None = None,
    kind: UserKind = UserKind.PERSON,
) -> User:
    """New-User. UPNs are unique across the installation; raises AlreadyExists or InvalidInput.
    A guest (``kind`` GUEST) named by their own address outside the organization's domains is
    stored under Entra's form of it (``gus_fabrikam.com#EXT#@contoso.com``; the returned user
    carries it), with that address as email."""
    with use_case(ctx, caller=caller, operation=AuditOperation.NEW_USER, target=upn) as uow:
        at = ctx.clock.now()
        actor, how = authorize(uow, caller, AuditOperation.NEW_USER, at)
        sort = parse_enum(UserKind, kind, "kind")
        name, default_mail = _stored_name(uow, actor, upn, sort)
        mail = normalize_upn(email) if email else default_mail
        if uow.users.get_by_upn(name) is not None:
            raise AlreadyExists(f"a user named {name} already exists")
        user = User(
            uuid4(),
            caller.org_id,
            name,
            check_text(display_name, field_name="display name"),
            mail,
            sort,
        )
        uow.users.add(user, at=at)
        set_up_account(uow, account=user, by=actor, how=Stewardship.CREATED, at=at)
        uow.record(
            AuditEvent(
                org_id=caller.org_id,
                actor=Actor.of(actor),
                operation=AuditOperation.NEW_USER,
                target=name,
                at=at,
                details={"kind": user.kind.value, **grant_details(how)},
            )
        )
        uow.commit()
        return user


def set_user(
    ctx: ServiceContext,
    *,
    caller: Caller,
    upn: str,
    display_name: str | None = None,
    email: str | None = None,
    enabled: bool | None = None,
) -> User:
    """Set-User. Disabling a user revokes their active grants and cancels their pending requests,
    in the same transaction, each audited. A user SCIM manages may only be disabled here (the
    identity provider sees it at its next sync), and enabled again once disabled here; anything
    else is changed there. A user disabled here stays disabled until enabled here: SCIM does not
    enable them."""
    with use_case(ctx, caller=caller, operation=AuditOperation.SET_USER, target=upn) as uow:
        at = ctx.clock.now()
        actor, how = authorize(uow, caller, AuditOperation.SET_USER, at)
        user = find_user(uow, caller.org_id, upn)
        refuse_hand_edit(
            user.upn,
            user,
            only_disabling=display_name is None
            and email is None
            and (enabled is not True or user.disabled_by_hand),
        )
        changes: dict[str, Any] = {}
        if display_name is not None:
            changes["display_name"] = check_text(display_name, field_name="display name")
        if email is not None:
            changes["email"] = normalize_upn(email)
        if enabled is not None:
            changes["enabled"] = enabled
        updated = replace(user, **changes)
        if enabled is not None:
            updated = replace(updated, disabled_by_hand=not enabled)
        uow.users.save(updated, at=at)
        details = {**changes, **grant_details(how)}
        cascade: list[AuditEvent] = []
        if user.enabled and enabled is False:
            details["tokens_revoked"] = uow.credentials.revoke_all_tokens(user.id, at=at)
            cascade = revoke_on_disable(ctx, uow, caller=caller, actor=actor, user=user, at=at)
        uow.record(
            AuditEvent(
                org_id=caller.org_id,
                actor=Actor.of(actor),
                operation=AuditOperation.SET_USER,
                target=user.upn,
                at=at,
                details=details,
            )
        )
        uow.record_all(cascade)
        uow.commit()
        return updated


def revoke_on_disable(
    ctx: ServiceContext, uow: UnitOfWork, *, caller: Caller, actor: User, user: User, at: datetime
) -> list[AuditEvent]:
    events = []
    for request in uow.requests.active_for_user(caller.org_id, user.id, at):
        request.revoke(by=actor.id, comment=REVOKED_ON_DISABLE, at=at)
        uow.requests.save(request)
        queue_request_event(
            ctx,
            uow,
            event=EventType.AUTHORIZATION_REVOKED,
            request=request,
            at=at,
            extra={"Revoked by": actor.upn, "Comment": REVOKED_ON_DISABLE},
        )
        events.append(
            AuditEvent(
                org_id=caller.org_id,
                actor=Actor.of(actor),
                operation=AuditOperation.REVOKE_AUTHORIZATION,
                target=str(request.id),
                at=at,
                details={"cause": REVOKED_ON_DISABLE, REQUESTER: user.upn},
            )
        )
    for request in uow.requests.pending_for_user(caller.org_id, user.id, at):
        request.withdraw(at=at)
        uow.requests.save(request)
        events.append(
            AuditEvent(
                org_id=caller.org_id,
                actor=Actor.of(actor),
                operation=AuditOperation.CANCEL_REQUEST,
                target=str(request.id),
                at=at,
                details={"cause": REVOKED_ON_DISABLE, REQUESTER: user.upn},
            )
        )
    return events


def list_users(
    ctx: ServiceContext, *, caller: Caller, cursor: str | None = None, limit: int | None = None
) -> Page[User]:
    """Users by UPN, one page of ``limit`` after ``cursor`` (without ``limit``, all of
    them); raises InvalidInput for a cursor the listing did not make."""
    with ctx.reader() as uow:
        caller_user(uow, caller)
        return uow.users.in_org(caller.org_id, cursor=cursor, limit=limit)


def get_user(ctx: ServiceContext, *, caller: Caller, upn: str | None) -> User:
    """A user of the caller's organization by UPN (None: the caller); raises NotFound."""
    with ctx.reader() as uow:
        me = caller_user(uow, caller)
        return me if upn is None else find_user(uow, caller.org_id, upn)


@dataclass(frozen=True)
class GroupView:
    """A group with its members' UPNs (``names``), read in the transaction that returned it."""

    group: Group
    names: Mapping[UUID, str]


@dataclass(frozen=True)
class MembershipChange:
    """What Add-/Remove-GroupMember did (``changed`` is False when there was nothing to do) and
    the group as it left it."""

    changed: bool
    group: GroupView


def add_group(
    ctx: ServiceContext,
    *,
    caller: Caller,
    name: str,
    email: str | None = None,
    description: str = "",
    members: Sequence[str] = (),
) -> GroupView:
    """New-Group: approver groups are ordinary groups. ``members`` (UPNs) join it in the same
    transaction, each an Add-GroupMember of its own in the audit log (so the caller needs that
    right too); an unknown one leaves no group behind."""
    with use_case(ctx, caller=caller, operation=AuditOperation.NEW_GROUP, target=name) as uow:
        at = ctx.clock.now()
        actor, how = authorize(uow, caller, AuditOperation.NEW_GROUP, at)
        clean = check_text(name, field_name="group name")
        mail = normalize_upn(email) if email else ""
        if uow.groups.find(caller.org_id, clean) or (mail and uow.groups.find(caller.org_id, mail)):
            raise AlreadyExists(f"a group named {clean!r} already exists")
        group = Group(
            uuid4(),
            caller.org_id,
            clean,
            mail or clean.casefold(),
            check_text(description, field_name="description", required=False),
        )
        uow.groups.add(group, at=at)
        uow.record(
            AuditEvent(
                org_id=caller.org_id,
                actor=Actor.of(actor),
                operation=AuditOperation.NEW_GROUP,
                target=clean,
                at=at,
                details={"email": group.email, **grant_details(how)},
            )
        )
        names: dict[UUID, str] = {}
        if members:
            _, joining = authorize(uow, caller, AuditOperation.ADD_GROUP_MEMBER, at)
            for upn in members:
                user = find_user(uow, caller.org_id, upn)
                changed = uow.groups.add_member(group.id, user.id, added_by=actor.id)
                names[user.id] = user.upn
                uow.record(
                    AuditEvent(
                        org_id=caller.org_id,
                        actor=Actor.of(actor),
                        operation=AuditOperation.ADD_GROUP_MEMBER,
                        target=clean,
                        at=at,
                        details={"member": user.upn, "changed": changed, **grant_details(joining)},
                    )
                )
            group = replace(group, member_ids=frozenset(names))
        uow.commit()
        return GroupView(group, names)


def remove_group(ctx: ServiceContext, *, caller: Caller, name: str) -> None:
    """Remove-Group; refused while a policy or access control names it as approver group."""
    with use_case(ctx, caller=caller, operation=AuditOperation.REMOVE_GROUP, target=name) as uow:
        at = ctx.clock.now()
        actor, how = authorize(uow, caller, AuditOperation.REMOVE_GROUP, at)
        group = find_group(uow, caller.org_id, name)
        refuse_hand_edit(f"group {group.name!r}", group)
        use = uow.groups.in_use(group.id)
        if use is not None:
            raise InvalidInput(f"group {group.name!r} cannot be removed: {use}")
        uow.groups.remove(group.id)
        uow.record(
            AuditEvent(
                org_id=caller.org_id,
                actor=Actor.of(actor),
                operation=AuditOperation.REMOVE_GROUP,
                target=group.name,
                at=at,
                details=grant_details(how),
            )
        )
        uow.commit()


def change_membership(
    ctx: ServiceContext, *, caller: Caller, group: str, upn: str, add: bool
) -> MembershipChange:
    """Add-GroupMember / Remove-GroupMember; ``changed`` is False when nothing changed. Adding a
    member someone else added re-confirms the membership: it counts as the caller's from then on."""
    op = AuditOperation.ADD_GROUP_MEMBER if add else AuditOperation.REMOVE_GROUP_MEMBER
    with use_case(ctx, caller=caller, operation=op, target=group) as uow:
        at = ctx.clock.now()
        actor, how = authorize(uow, caller, op, at)
        found = find_group(uow, caller.org_id, group)
        refuse_hand_edit(f"the membership of group {found.name!r}", found)
        user = find_user(uow, caller.org_id, upn)
        if add:
            # Joining a group that holds a guarded jitpam role is a standing assignment too.
            for held in uow.assignments.of_principal(caller.org_id, PrincipalKind.GROUP, found.id):
                keep_role_guards(
                    uow, user=actor, kind=PolicyType(held.target_kind), target=held.target
                )
            # Who added a membership is kept: a requester's votes through members they added
            # do not count (separation of duties); added again by someone else, it is theirs.
            changed = uow.groups.add_member(found.id, user.id, added_by=actor.id)
        else:
            changed = uow.groups.remove_member(found.id, user.id)
        uow.record(
            AuditEvent(
                org_id=caller.org_id,
                actor=Actor.of(actor),
                operation=op,
                target=found.name,
                at=at,
                details={"member": user.upn, "changed": changed, **grant_details(how)},
            )
        )
        members = found.member_ids | {user.id} if add else found.member_ids - {user.id}
        after = replace(found, member_ids=members)
        view = GroupView(after, names_in(uow, caller.org_id, users=members))
        uow.commit()
        return MembershipChange(changed, view)


def get_group(ctx: ServiceContext, *, caller: Caller, name: str) -> GroupView:
    """A group by name or email, with its members' names; raises NotFound."""
    with ctx.reader() as uow:
        caller_user(uow, caller)
        found = find_group(uow, caller.org_id, name)
        return GroupView(found, names_in(uow, caller.org_id, users=found.member_ids))


def list_groups(
    ctx: ServiceContext, *, caller: Caller, cursor: str | None = None, limit: int | None = None
) -> Page[GroupView]:
    """Groups by name, with their members' names, one page of ``limit`` after ``cursor``
    (without ``limit``, all of them); raises InvalidInput for a cursor the listing did not
    make."""
    with ctx.reader() as uow:
        caller_user(uow, caller)
        found = uow.groups.in_org(caller.org_id, cursor=cursor, limit=limit)
        members = {m for g in found.items for m in g.member_ids}
        names = names_in(uow, caller.org_id, users=members)
        return Page([GroupView(g, names) for g in found.items], found.next_cursor)


def _principal(
    uow: UnitOfWork, org_id: UUID, *, user: str | None, group: str | None
) -> tuple[PrincipalKind, UUID, str]:
    if (user is None) == (group is None):
        raise InvalidInput("name exactly one of a user or a group")
    if user is not None:
        found = find_user(uow, org_id, user)
        return PrincipalKind.USER, found.id, found.upn
    g = find_group(uow, org_id, group or "")
    return PrincipalKind.GROUP, g.id, g.name


def change_assignment(
    ctx: ServiceContext,
    *,
    caller: Caller,
    role: str | None = None,
    role_group: str | None = None,
    user: str | None = None,
    group: str | None = None,
    add: bool,
) -> Assignment:
    """New-/Remove-ManagementRoleAssignment of a role or a role group to a user or a group."""
    op = AuditOperation.NEW_ROLE_ASSIGNMENT if add else AuditOperation.REMOVE_ROLE_ASSIGNMENT
    typed = role or role_group or ""
    with use_case(ctx, caller=caller, operation=op, target=typed) as uow:
        at = ctx.clock.now()
        actor, how = authorize(uow, caller, op, at)
        if (role is None) == (role_group is None):
            raise InvalidInput("name exactly one of a role or a role group")
        kind = PolicyType.ROLE if role is not None else PolicyType.ROLE_GROUP
        target = resolve_target(uow, caller.org_id, kind, typed)
        if add:
            keep_role_guards(uow, user=actor, kind=kind, target=str(target))
        p_kind, p_id, p_name = _principal(uow, caller.org_id, user=user, group=group)
        assignment = Assignment(uuid4(), caller.org_id, p_kind, p_id, kind.value, str(target))
        if add and not uow.assignments.add(assignment, at=at):
            raise AlreadyExists(f"{p_name} already holds {kind.label} '{target}'")
        if not add and not uow.assignments.remove(assignment):
            raise NotFound(f"{p_name} holds no standing assignment of {kind.label} '{target}'")
        uow.record(
            AuditEvent(
                org_id=caller.org_id,
                actor=Actor.of(actor),
                operation=op,
                target=str(target),
                at=at,
                details={p_kind.value: p_name, "type": kind.value, **grant_details(how)},
            )
        )
        uow.commit()
        return assignment


def role_members(
    ctx: ServiceContext, *, caller: Caller, role: str, role_group: bool = False
) -> list[RoleMember]:
    """Who holds a role (or role group): standing assignments and just-in-time grants, as of now."""
    return role_members_page(ctx, caller=caller, role=role, role_group=role_group)[1].items


def role_members_page(
    ctx: ServiceContext,
    *,
    caller: Caller,
    role: str,
    role_group: bool = False,
    cursor: str | None = None,
    limit: int | None = None,
) -> tuple[str, Page[RoleMember]]:
    """The role's (or role group's) full name and one page of its holders as of now: standing
    assignments of the role, then its just-in-time grants, then the same for each role group
    that holds it. ``limit`` None reads them all."""
    at = ctx.clock.now()
    with ctx.reader() as uow:
        caller_user(uow, caller)
        kind = PolicyType.ROLE_GROUP if role_group else PolicyType.ROLE
        target = str(resolve_target(uow, caller.org_id, kind, role))
        page = role_holders(uow, caller.org_id, kind, target, at=at, cursor=cursor, limit=limit)
        return target, page


def role_holders(
    uow: UnitOfWork,
    org_id: UUID,
    kind: PolicyType,
    target: str,
    *,
    at: datetime,
    cursor: str | None = None,
    limit: int | None = None,
) -> Page[RoleMember]:
    """One page of who holds the role (or role group) ``target`` (its full name) at ``at``, in
    the caller's transaction: its standing assignments and just-in-time grants, then the same
    for each role group that holds it. Groups are listed as groups."""
    holders: list[tuple[PolicyType, str]] = [(kind, target)]
    if kind is PolicyType.ROLE:
        groups = uow.catalog.role_group_roles(org_id)
        holders += [
            (PolicyType.ROLE_GROUP, g) for g, roles in sorted(groups.items()) if target in roles
        ]
    return uow.assignments.holders(org_id, holders, at=at, cursor=cursor, limit=limit)


def group_summaries(
    ctx: ServiceContext, *, caller: Caller, cursor: str | None, limit: int, members: int = 0
) -> Page[GroupSummary]:
    """One page of groups by name, with their sizes and first ``members`` members."""
    with ctx.reader() as uow:
        caller_user(uow, caller)
        return uow.groups.summaries(caller.org_id, cursor=cursor, limit=limit, members=members)


def names_in(
    uow: UnitOfWork,
    org_id: UUID,
    *,
    users: Iterable[UUID] = (),
    groups: Iterable[UUID] = (),
) -> dict[UUID, str]:
    """Display names read in the caller's own transaction: ``users`` by UPN, ``groups`` by name,
    those of the organization only (those the transaction read already cost no query). A use
    case that answers with names reads them here, before its commit, so that once the change is
    committed nothing is left to fail."""
    out = uow.groups.names(org_id, groups)
    out.update(uow.users.upns(org_id, users))
    return out
