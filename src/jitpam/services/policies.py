"""Approval policies: New-, Set-, Remove-, Get-ElevatedAccessApprovalPolicy."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID, uuid4

from jitpam.domain.audit import Actor, AuditEvent
from jitpam.domain.errors import DuplicatePolicy, NotFound, PolicyLimitReached
from jitpam.domain.operations import AuditOperation
from jitpam.domain.policy import (
    ApprovalType,
    Policy,
    PolicyType,
    check_approvals_required,
    check_max_duration,
)
from jitpam.services.authorization import authorize, caller_user, grant_details
from jitpam.services.context import KEEP, Caller, Keep, ServiceContext
from jitpam.services.directory import (
    find_approver_group,
    find_group,
    find_user,
    names_in,
    resolve_target,
)
from jitpam.services.inputs import parse_enum
from jitpam.services.jitpam_guards import keep_guard
from jitpam.services.ports import Page, UnitOfWork
from jitpam.services.use_case import use_case


def _eligible(
    uow: UnitOfWork, org_id: UUID, users: list[str], groups: list[str]
) -> tuple[frozenset[UUID], frozenset[UUID]]:
    return (
        frozenset(find_user(uow, org_id, u).id for u in users),
        frozenset(find_group(uow, org_id, g).id for g in groups),
    )


@dataclass(frozen=True)
class PolicyView:
    """A policy with the names of what it names by id (its approver group, its eligible users
    and groups), read in the transaction that returned it."""

    policy: Policy
    names: Mapping[UUID, str]


def _views(uow: UnitOfWork, org_id: UUID, found: Iterable[Policy]) -> list[PolicyView]:
    """The policies with their names, read in ``uow``'s transaction (a use case that changes
    one: before it commits, so that nothing is left to fail once the change is made)."""
    found = list(found)
    users: set[UUID] = set()
    groups: set[UUID] = set()
    for p in found:
        users |= p.eligible_user_ids
        groups |= p.eligible_group_ids
        if p.approver_group_id is not None:
            groups.add(p.approver_group_id)
    names = names_in(uow, org_id, users=users, groups=groups)
    return [PolicyView(p, names) for p in found]


def policy_details(policy: Policy) -> dict[str, Any]:
    return {
        "type": policy.type.value,
        "target": str(policy.target),
        "approval_type": policy.approval_type.value,
        "approver_group": str(policy.approver_group_id) if policy.approver_group_id else None,
        "approvals_required": policy.approvals_required,
        "max_duration_hours": policy.max_duration_hours,
        "require_ticket": policy.require_ticket,
        "eligible_users": sorted(str(u) for u in policy.eligible_user_ids),
        "eligible_groups": sorted(str(g) for g in policy.eligible_group_ids),
    }


def new_policy(
    ctx: ServiceContext,
    *,
    caller: Caller,
    type: PolicyType,
    target: str,
    approval_type: ApprovalType,
    approver_group: str | None = None,
    approvals_required: int = 1,
    max_duration_hours: int | None = None,
    require_ticket: bool = False,
    eligible_users: list[str] | None = None,
    eligible_groups: list[str] | None = None,
) -> PolicyView:
    """New-ElevatedAccessApprovalPolicy. One policy per (type, target): a second is refused,
    naming the first (DuplicatePolicy); the organization's limit, when set, is enforced."""
    op = AuditOperation.NEW_POLICY
    with use_case(ctx, caller=caller, operation=op, target=target) as uow:
        at = ctx.clock.now()
        actor, how = authorize(uow, caller, op, at)
        kind = parse_enum(PolicyType, type, "type")
        name = resolve_target(uow, caller.org_id, kind, target)
        control = uow.orgs.control(caller.org_id, for_update=True)  # serializes the limit count
        existing = uow.policies.for_target(caller.org_id, kind, name)
        if existing is not None:
            raise DuplicatePolicy(f"{existing.describe()} already has a policy: {existing.id}")
        if (
            control.max_policies is not None
            and uow.policies.count(caller.org_id) >= control.max_policies
        ):
            raise PolicyLimitReached(
                f"the organization allows at most {control.max_policies} policies"
            )
        users, groups = _eligible(uow, caller.org_id, eligible_users or [], eligible_groups or [])
        policy = Policy(
            id=uuid4(),
            org_id=caller.org_id,
            type=kind,
            target=name,
            approval_type=parse_enum(ApprovalType, approval_type, "approval type"),
            approver_group_id=find_approver_group(uow, caller.org_id, approver_group).id
            if approver_group
            else None,
            created_at=at,
            approvals_required=check_approvals_required(approvals_required),
            max_duration_hours=check_max_duration(max_duration_hours),
            require_ticket=bool(require_ticket),
            eligible_user_ids=users,
            eligible_group_ids=groups,
            approver_group_set_by=actor.id,
            approval_type_set_by=actor.id,
            approvals_required_set_by=actor.id,
            eligible_set_by=actor.id,
        )
        uow.policies.add(policy)
        uow.record(
            AuditEvent(
                org_id=caller.org_id,
                actor=Actor.of(actor),
                operation=op,
                target=str(policy.id),
                at=at,
                details={**policy_details(policy), **grant_details(how)},
            )
        )
        (view,) = _views(uow, caller.org_id, [policy])
        uow.commit()
        return view


def set_policy(
    ctx: ServiceContext,
    *,
    caller: Caller,
    policy_id: UUID,
    approval_type: ApprovalType | None = None,
    approver_group: str | Keep | None = KEEP,
    approvals_required: int | None = None,
    max_duration_hours: int | Keep | None = KEEP,
    require_ticket: bool | None = None,
    eligible_users: list[str] | None = None,
    eligible_groups: list[str] | None = None,
) -> PolicyView:
    """Set-ElevatedAccessApprovalPolicy. Pending requests keep the approval count they were made
    under, so lowering it does not approve anyone's request early. Naming the approval type, the
    approver group, the approvals required or the eligible requesters (even unchanged) makes the
    caller who last set it:
    that is how another administrator re-confirms a setting (separation of duties)."""
    op = AuditOperation.SET_POLICY
    with use_case(ctx, caller=caller, operation=op, target=str(policy_id)) as uow:
        at = ctx.clock.now()
        actor, how = authorize(uow, caller, op, at)
        policy = _get(uow, caller.org_id, policy_id)
        keep_guard(uow, user=actor, policy=policy, action="change", at=at)
        changes: dict[str, Any] = {}
        if approval_type is not None:
            changes["approval_type"] = parse_enum(ApprovalType, approval_type, "approval type")
            changes["approval_type_set_by"] = actor.id
        if approver_group is not KEEP:
            changes["approver_group_id"] = (
                find_approver_group(uow, caller.org_id, approver_group).id
                if approver_group
                else None
            )
            changes["approver_group_set_by"] = actor.id
        if approvals_required is not None:
            changes["approvals_required"] = check_approvals_required(approvals_required)
            changes["approvals_required_set_by"] = actor.id
        if max_duration_hours is not KEEP:
            changes["max_duration_hours"] = check_max_duration(max_duration_hours)
        if require_ticket is not None:
            changes["require_ticket"] = bool(require_ticket)
        if eligible_users is not None or eligible_groups is not None:
            users, groups = _eligible(
                uow, caller.org_id, eligible_users or [], eligible_groups or []
            )
            if eligible_users is not None:
                changes["eligible_user_ids"] = users
            if eligible_groups is not None:
                changes["eligible_group_ids"] = groups
            changes["eligible_set_by"] = actor.id
        updated = replace(policy, **changes)
        uow.policies.save(updated)
        uow.record(
            AuditEvent(
                org_id=caller.org_id,
                actor=Actor.of(actor),
                operation=op,
                target=str(policy.id),
                at=at,
                details={
                    **policy_details(updated),
                    "before": policy_details(policy),
                    **grant_details(how),
                },
            )
        )
        (view,) = _views(uow, caller.org_id, [updated])
        uow.commit()
        return view


def remove_policy(ctx: ServiceContext, *, caller: Caller, policy_id: UUID) -> PolicyView:
    """Remove-ElevatedAccessApprovalPolicy -Identity <id>. Existing grants stay until they end."""
    op = AuditOperation.REMOVE_POLICY
    with use_case(ctx, caller=caller, operation=op, target=str(policy_id)) as uow:
        at = ctx.clock.now()
        actor, how = authorize(uow, caller, op, at)
        policy = _get(uow, caller.org_id, policy_id)
        keep_guard(uow, user=actor, policy=policy, action="remove", at=at)
        uow.policies.remove(policy.id)
        uow.record(
            AuditEvent(
                org_id=caller.org_id,
                actor=Actor.of(actor),
                operation=op,
                target=str(policy.id),
                at=at,
                details={**policy_details(policy), **grant_details(how)},
            )
        )
        (view,) = _views(uow, caller.org_id, [policy])
        uow.commit()
        return view


def _get(uow: UnitOfWork, org_id: UUID, policy_id: UUID) -> Policy:
    policy = uow.policies.get(policy_id)
    if policy is None or policy.org_id != org_id:
        raise NotFound(f"no policy {policy_id} in this organization")
    return policy


def list_policies(
    ctx: ServiceContext,
    *,
    caller: Caller,
    type: PolicyType | None = None,
    approval_type: ApprovalType | None = None,
    after: tuple[str, str] | None = None,
    limit: int | None = None,
) -> list[Policy]:
    """Get-ElevatedAccessApprovalPolicy: every user may list them (they decide what to request).
    Sorted by (type, target key); ``after`` and ``limit`` give one page."""
    with ctx.reader() as uow:
        caller_user(uow, caller)
        return uow.policies.matching(
            caller.org_id,
            type=parse_enum(PolicyType, type, "type") if type is not None else None,
            approval_type=(
                parse_enum(ApprovalType, approval_type, "approval type")
                if approval_type is not None
                else None
            ),
            after=after,
            limit=limit,
        )


def policy_page(
    ctx: ServiceContext,
    *,
    caller: Caller,
    type: PolicyType | None = None,
    approval_type: ApprovalType | None = None,
    search: str | None = None,
    cursor: str | None = None,
    limit: int,
) -> Page[PolicyView]:
    """One keyset page of policies by (type, target), filtered; ``search`` is a substring of the
    target, any case (a page may then hold fewer than ``limit`` and still go on: SEARCH_WINDOW)."""
    with ctx.reader() as uow:
        caller_user(uow, caller)
        page = uow.policies.page(
            caller.org_id,
            type=parse_enum(PolicyType, type, "type") if type is not None else None,
            approval_type=(
                parse_enum(ApprovalType, approval_type, "approval type")
                if approval_type is not None
                else None
            ),
            search=search.strip()[:260] if search and search.strip() else None,
            cursor=cursor,
            limit=limit,
        )
        return Page(_views(uow, caller.org_id, page.items), page.next_cursor)


def get_policy(ctx: ServiceContext, *, caller: Caller, policy_id: UUID) -> PolicyView:
    with ctx.reader() as uow:
        caller_user(uow, caller)
        return _views(uow, caller.org_id, [_get(uow, caller.org_id, policy_id)])[0]
