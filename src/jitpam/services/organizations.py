"""Organizations, their catalogs and access control (Enable-/Disable-ElevatedAccessControl)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import Any
from uuid import UUID, uuid4

from jitpam.catalogs import BUILTIN, SHIPPED, shipped_catalog
from jitpam.domain.audit import JITPAM, Actor, AuditEvent
from jitpam.domain.catalog import Catalog, parse_catalog
from jitpam.domain.control import (
    AccessControl,
    check_max_policies,
    check_pending_hours,
    check_ticket_pattern,
)
from jitpam.domain.directory import (
    Assignment,
    Organization,
    PrincipalKind,
    User,
    UserKind,
    check_domain,
    check_org_name,
    check_text,
    normalize_upn,
    upn_domain,
)
from jitpam.domain.errors import AlreadyExists, InvalidInput, NotFound
from jitpam.domain.lockbox import check_max_hours
from jitpam.domain.names import QualifiedName, resolve_name, split_name
from jitpam.domain.operations import AuditOperation
from jitpam.domain.policy import PolicyType
from jitpam.services.authorization import authorize, caller_user, grant_details
from jitpam.services.context import KEEP, Caller, Keep, ServiceContext
from jitpam.services.directory import find_approver_group, find_group, find_user, names_in
from jitpam.services.inputs import parse_enum
from jitpam.services.jitpam_guards import keep_all_guards
from jitpam.services.lockbox import operator_event
from jitpam.services.ports import Page, UnitOfWork
from jitpam.services.separation import exempt_accounts, refuse_designations
from jitpam.services.use_case import use_case

GLOBAL_ADMINISTRATOR = "jitpam\\Global Administrator"


@cache
def _shipped(name: str) -> Catalog:
    """A catalog shipped with jitpam, parsed once per process (its text is part of the installed
    package and never changes while it runs; the result is only read). Raises KeyError for a
    name jitpam does not ship."""
    return parse_catalog(shipped_catalog(name), source=f"{name}.toml", allow_builtin=True)


def create_organization(
    ctx: ServiceContext,
    *,
    name: str,
    admin_upn: str,
    admin_display_name: str,
    admin_email: str | None = None,
    catalogs: tuple[str, ...] = (),
) -> tuple[Organization, User]:
    """Create an organization with its first administrator (holding jitpam\\Global Administrator).

    An installation-level operation for whoever runs the server (``jitpam init``). ``catalogs``
    names shipped catalogs to install besides the built-in one (e.g. ``("exchange",)``).
    Raises InvalidInput or AlreadyExists.
    """
    name = check_org_name(name)
    upn = normalize_upn(admin_upn)
    display = check_text(admin_display_name, field_name="display name")
    unknown = [c for c in catalogs if c not in SHIPPED or c == BUILTIN]
    if unknown:
        raise InvalidInput(f"no shipped catalog named {unknown[0]!r}")
    at = ctx.clock.now()
    with ctx.uow() as uow:
        if uow.orgs.get_by_name(name) is not None:
            raise AlreadyExists(f"an organization named {name!r} already exists")
        if uow.orgs.domain_owner(upn_domain(upn)) is not None:
            raise AlreadyExists(f"the domain {upn_domain(upn)} belongs to another organization")
        org = Organization(uuid4(), name)
        uow.orgs.add(org, AccessControl(org_id=org.id), at=at)
        uow.orgs.add_domain(org.id, upn_domain(upn))
        uow.record(
            AuditEvent(
                org_id=org.id,
                at=at,
                actor=JITPAM,
                operation=AuditOperation.NEW_ORGANIZATION,
                target=name,
            )
        )
        for catalog_name in (BUILTIN, *catalogs):
            try:
                catalog = _shipped(catalog_name)
            except KeyError:
                raise InvalidInput(f"no shipped catalog named {catalog_name!r}") from None
            uow.catalog.store(org.id, catalog)
            uow.record(
                AuditEvent(
                    org_id=org.id,
                    at=at,
                    actor=JITPAM,
                    operation=AuditOperation.IMPORT_TASK_CATALOG,
                    target=catalog.scope,
                    details=catalog_summary(catalog),
                )
            )
        operator = uow.lockbox.operator()
        if operator is not None:  # every chain says who the installation's operator is
            uow.record(
                operator_event(org.id, uow.orgs.get(operator.org_id), since=operator.since, at=at)
            )
        admin = User(
            uuid4(), org.id, upn, display, (admin_email or upn).strip().lower(), UserKind.PERSON
        )
        uow.users.add(admin, at=at)
        uow.assignments.add(
            Assignment(
                uuid4(), org.id, PrincipalKind.USER, admin.id, "role_group", GLOBAL_ADMINISTRATOR
            ),
            at=at,
        )
        uow.record(
            AuditEvent(
                org_id=org.id,
                at=at,
                actor=JITPAM,
                operation=AuditOperation.NEW_USER,
                target=upn,
                details={"kind": "person"},
            )
        )
        uow.record(
            AuditEvent(
                org_id=org.id,
                at=at,
                actor=JITPAM,
                operation=AuditOperation.NEW_ROLE_ASSIGNMENT,
                target=GLOBAL_ADMINISTRATOR,
                details={"user": upn},
            )
        )
        uow.commit()
    return org, admin


def find_organization(ctx: ServiceContext, *, name: str) -> Organization:
    with ctx.reader() as uow:
        org = uow.orgs.get_by_name(name.strip())
        if org is None:
            raise NotFound(f"no organization named {name!r}")
        return org


def catalog_summary(catalog: Catalog) -> dict[str, int]:
    return {
        "tasks": len(catalog.tasks),
        "roles": len(catalog.roles),
        "role_groups": len(catalog.role_groups),
    }


def import_catalog(ctx: ServiceContext, *, caller: Caller, text: str, source: str) -> Catalog:
    """Import (add or update) a workload's catalog from TOML text; raises CatalogInvalid."""
    with use_case(
        ctx, caller=caller, operation=AuditOperation.IMPORT_TASK_CATALOG, target=source
    ) as uow:
        at = ctx.clock.now()
        actor, how = authorize(uow, caller, AuditOperation.IMPORT_TASK_CATALOG, at)
        catalog = parse_catalog(text, source=source)
        uow.catalog.store(caller.org_id, catalog)
        uow.record(
            AuditEvent(
                org_id=caller.org_id,
                actor=Actor.of(actor),
                operation=AuditOperation.IMPORT_TASK_CATALOG,
                target=catalog.scope,
                at=at,
                details={**catalog_summary(catalog), "source": source, **grant_details(how)},
            )
        )
        uow.commit()
        return catalog


@dataclass(frozen=True)
class ControlView:
    """Access control settings with the names of what they name by id (the default approver
    group, the system accounts), read in the transaction that returned them."""

    control: AccessControl
    names: Mapping[UUID, str]


def _view(uow: UnitOfWork, control: AccessControl) -> ControlView:
    """``control`` with its names, read in ``uow``'s transaction: a use case reads them before
    it commits, so that nothing is left to fail once the change is made."""
    group = control.default_approver_group_id
    names = names_in(
        uow,
        control.org_id,
        users=control.system_account_ids,
        groups=(() if group is None else (group,)) + tuple(control.synced_approver_group_ids),
    )
    return ControlView(control, names)


def get_access_control(ctx: ServiceContext, *, caller: Caller) -> ControlView:
    """The organization's access control settings; any user of the organization may read them."""
    with ctx.reader() as uow:
        caller_user(uow, caller)
        return _view(uow, uow.orgs.control(caller.org_id))


def access_control_settings(ctx: ServiceContext, *, caller: Caller) -> ControlView:
    """The settings as shown to whoever may change them (Enable-ElevatedAccessControl); raises
    NotPermitted for anyone else, and the refusal is audited."""
    op = AuditOperation.ENABLE_ACCESS_CONTROL
    with use_case(ctx, caller=caller, operation=op, target="access control") as uow:
        authorize(uow, caller, op, ctx.clock.now())
        return _view(uow, uow.orgs.control(caller.org_id))


def _user_ids(uow: UnitOfWork, org_id: UUID, upns: list[str]) -> frozenset[UUID]:
    ids = set()
    for upn in upns:
        ids.add(find_user(uow, org_id, upn).id)
    return frozenset(ids)


def enable_access_control(
    ctx: ServiceContext,
    *,
    caller: Caller,
    admin_group: str,
    system_accounts: list[str] | None = None,
) -> ControlView:
    """Enable-ElevatedAccessControl: turn control on with a default approver group (which must
    exist) and optional system accounts (replacing the previous list). The caller becomes who
    last set the default approver group, and the designator of the accounts they add (and of
    listed ones whose exemption no longer counts). Raises NotFound, NotPermitted, or
    SeparationOfDuties when the caller would make themself or an account they steer exempt."""
    op = AuditOperation.ENABLE_ACCESS_CONTROL
    with use_case(ctx, caller=caller, operation=op, target=admin_group) as uow:
        at = ctx.clock.now()
        actor, how = authorize(uow, caller, op, at)
        control = uow.orgs.control(caller.org_id, for_update=True)
        group_id = find_approver_group(uow, caller.org_id, admin_group).id
        accounts = _user_ids(uow, caller.org_id, system_accounts or [])
        # Listed again, an account whose exemption stopped counting is designated anew.
        lapsed = (accounts & control.system_account_ids) - exempt_accounts(uow, control)
        adding = accounts - control.system_account_ids
        keep_all_guards(uow, user=actor, adding=adding, at=at)
        refuse_designations(
            uow, org_id=caller.org_id, designator_id=actor.id, adding=adding | lapsed
        )
        designators = {
            a: actor.id if a in adding | lapsed else control.system_account_designators.get(a)
            for a in accounts
        }
        updated = replace(
            control,
            enabled=True,
            default_approver_group_id=group_id,
            default_approver_group_set_by=actor.id,
            system_account_ids=accounts,
            system_account_designators=designators,
        )
        uow.orgs.save_control(updated)
        uow.record(
            AuditEvent(
                org_id=caller.org_id,
                actor=Actor.of(actor),
                operation=op,
                target=admin_group,
                at=at,
                details={
                    "admin_group": str(group_id),
                    "system_accounts": sorted(normalize_upn(u) for u in system_accounts or []),
                    "was_enabled": control.enabled,
                    **grant_details(how),
                },
            )
        )
        view = _view(uow, updated)
        uow.commit()
        return view


def disable_access_control(ctx: ServiceContext, *, caller: Caller) -> ControlView:
    """Disable-ElevatedAccessControl: turn control off. Policies, groups and requests are kept."""
    op = AuditOperation.DISABLE_ACCESS_CONTROL
    with use_case(ctx, caller=caller, operation=op, target="access control") as uow:
        at = ctx.clock.now()
        actor, how = authorize(uow, caller, op, at)
        control = uow.orgs.control(caller.org_id, for_update=True)
        updated = replace(control, enabled=False)
        uow.orgs.save_control(updated)
        uow.record(
            AuditEvent(
                org_id=caller.org_id,
                actor=Actor.of(actor),
                operation=op,
                target="access control",
                at=at,
                details={"was_enabled": control.enabled, **grant_details(how)},
            )
        )
        view = _view(uow, updated)
        uow.commit()
        return view


def set_organization_config(
    ctx: ServiceContext,
    *,
    caller: Caller,
    ticket_pattern: str | Keep | None = KEEP,
    max_policies: int | Keep | None = KEEP,
    pending_hours: int | Keep = KEEP,
    lockbox_approval_required: bool | Keep = KEEP,
    lockbox_max_hours: int | Keep = KEEP,
    scim_approver_groups: Sequence[str] | Keep = KEEP,
) -> ControlView:
    """Change the ticket pattern, the policy limit (None = unlimited), the pending deadline, the
    Customer Lockbox settings (whether the organization's approvers must approve every data
    access request of the operator's engineers, and the longest access it allows, 1 to 4), or
    the approver groups whose memberships SCIM may set (``scim_approver_groups``, group names:
    the whole set; empty: none)."""
    op = AuditOperation.SET_ORGANIZATION_CONFIG
    with use_case(ctx, caller=caller, operation=op, target="organization") as uow:
        at = ctx.clock.now()
        actor, how = authorize(uow, caller, op, at)
        control = uow.orgs.control(caller.org_id, for_update=True)
        changes: dict[str, Any] = {}
        if ticket_pattern is not KEEP:
            changes["ticket_pattern"] = check_ticket_pattern(ticket_pattern)
        if max_policies is not KEEP:
            changes["max_policies"] = check_max_policies(max_policies)
        if pending_hours is not KEEP:
            changes["pending_hours"] = check_pending_hours(pending_hours)
        if lockbox_approval_required is not KEEP:
            if not isinstance(lockbox_approval_required, bool):
                raise InvalidInput("whether lockbox requests need approval must be true or false")
            changes["lockbox_approval_required"] = lockbox_approval_required
        if lockbox_max_hours is not KEEP:
            changes["lockbox_max_hours"] = check_max_hours(lockbox_max_hours)
        audited = dict(changes)
        if scim_approver_groups is not KEEP:
            found = [find_group(uow, caller.org_id, n) for n in scim_approver_groups]
            changes["synced_approver_group_ids"] = frozenset(g.id for g in found)
            audited["scim_approver_groups"] = sorted({g.name for g in found})
        updated = replace(control, **changes)
        uow.orgs.save_control(updated)
        uow.record(
            AuditEvent(
                org_id=caller.org_id,
                actor=Actor.of(actor),
                operation=op,
                target="organization",
                at=at,
                details={**audited, **grant_details(how)},
            )
        )
        view = _view(uow, updated)
        uow.commit()
        return view


def catalog_entries(
    ctx: ServiceContext, *, caller: Caller, kind: PolicyType
) -> list[QualifiedName]:
    """Every task, role or role group of the organization's catalog, sorted by name."""
    with ctx.reader() as uow:
        caller_user(uow, caller)
        return uow.catalog.entries(caller.org_id, parse_enum(PolicyType, kind, "kind"))


def role_tasks(ctx: ServiceContext, *, caller: Caller, role: str) -> list[str]:
    """The tasks a role holds (``Scope\\Name`` or an unambiguous bare role name)."""
    with ctx.reader() as uow:
        caller_user(uow, caller)
        _, bare = split_name(role)
        name = resolve_name(
            role, uow.catalog.names(caller.org_id, PolicyType.ROLE, bare), kind="role"
        )
        return uow.catalog.tasks_of_role(caller.org_id, str(name))


def catalog_page(
    ctx: ServiceContext,
    *,
    caller: Caller,
    kind: PolicyType,
    role: str | None = None,
    cursor: str | None = None,
    limit: int,
) -> tuple[str | None, Page[QualifiedName]]:
    """One page of the organization's tasks, roles or role groups by name; with ``role`` (a
    ``Scope\\Name`` or an unambiguous bare role name), the tasks that role holds. Returns the
    role's full name (or None) and the page."""
    with ctx.reader() as uow:
        caller_user(uow, caller)
        kind = parse_enum(PolicyType, kind, "kind")
        if role is None:
            return None, uow.catalog.page(caller.org_id, kind, cursor=cursor, limit=limit)
        if kind is not PolicyType.TASK:
            raise InvalidInput("a role holds tasks: list them with kind task")
        _, bare = split_name(role)
        name = resolve_name(
            role, uow.catalog.names(caller.org_id, PolicyType.ROLE, bare), kind="role"
        )
        page = uow.catalog.role_tasks_page(caller.org_id, str(name), cursor=cursor, limit=limit)
        return str(name), page


def catalog_lookup(
    ctx: ServiceContext, *, caller: Caller, kind: PolicyType, text: str, limit: int
) -> list[QualifiedName]:
    """At most ``limit`` catalog names starting with ``text`` (a ``Scope\\Name`` or a bare
    name), for suggestions while typing."""
    with ctx.reader() as uow:
        caller_user(uow, caller)
        return uow.catalog.lookup(
            caller.org_id, parse_enum(PolicyType, kind, "kind"), text[:260], limit
        )


def refresh_builtin_catalog(ctx: ServiceContext) -> int:
    """Bring every organization's built-in ``jitpam`` catalog up to this version's (new
    operations get their tasks and roles); audited where something changed. Returns how many
    organizations changed."""
    catalog = _shipped(BUILTIN)
    changed = 0
    with ctx.uow() as uow:
        at = ctx.clock.now()
        for org in uow.orgs.all():
            count = uow.catalog.store(org.id, catalog)
            if count:
                changed += 1
                uow.record(
                    AuditEvent(
                        org_id=org.id,
                        at=at,
                        actor=JITPAM,
                        operation=AuditOperation.IMPORT_TASK_CATALOG,
                        target=catalog.scope,
                        details={**catalog_summary(catalog), "changed": count, "source": "upgrade"},
                    )
                )
        uow.commit()
    return changed


def add_domain(ctx: ServiceContext, *, org_name: str, domain: str) -> list[str]:
    """Give an organization another email domain for its user names (installation-level, for
    whoever runs the server). A domain belongs to one organization. Returns its domains."""
    clean = check_domain(domain)
    with ctx.uow() as uow:
        org = uow.orgs.get_by_name(org_name.strip())
        if org is None:
            raise NotFound(f"no organization named {org_name!r}")
        owner = uow.orgs.domain_owner(clean)
        if owner is not None and owner != org.id:
            raise AlreadyExists(f"the domain {clean} belongs to another organization")
        if owner is None:
            uow.orgs.add_domain(org.id, clean)
            uow.record(
                AuditEvent(
                    org_id=org.id,
                    at=ctx.clock.now(),
                    actor=JITPAM,
                    operation=AuditOperation.ADD_ORGANIZATION_DOMAIN,
                    target=clean,
                )
            )
        domains = uow.orgs.domains(org.id)
        uow.commit()
        return domains


def add_system_accounts(ctx: ServiceContext, *, org_name: str, upns: list[str]) -> AccessControl:
    """Make accounts system accounts as the installation (for whoever runs the server, like the
    demo's set-up): designated by nobody in the organization, so no administrator's hand is in
    their exemption. Audited as ``Add-SystemAccount`` by jitpam. Raises NotFound."""
    with ctx.uow() as uow:
        org = uow.orgs.get_by_name(org_name.strip())
        if org is None:
            raise NotFound(f"no organization named {org_name!r}")
        at = ctx.clock.now()
        control = uow.orgs.control(org.id, for_update=True)
        adding = _user_ids(uow, org.id, upns) - control.system_account_ids
        updated = replace(
            control,
            system_account_ids=control.system_account_ids | adding,
            system_account_designators={
                **control.system_account_designators,
                **dict.fromkeys(adding),
            },
        )
        uow.orgs.save_control(updated)
        uow.record_all(
            AuditEvent(
                org_id=org.id,
                at=at,
                actor=JITPAM,
                operation=AuditOperation.ADD_SYSTEM_ACCOUNT,
                target=upn,
            )
            for upn in sorted(uow.users.upns(org.id, adding).values())
        )
        uow.commit()
        return updated
