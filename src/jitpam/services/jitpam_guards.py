"""Guards on guards: nobody lifts a policy on jitpam's own operations alone.

A policy on a ``jitpam\\...`` task, role or role group would be worth little if the person it
restrains could change it, assign the role it makes just in time, or make themself exempt from
it. Only a system account (the break-glass path) may do those.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from jitpam.domain.catalog import BUILTIN_SCOPE
from jitpam.domain.directory import User
from jitpam.domain.errors import NotPermitted
from jitpam.domain.names import QualifiedName
from jitpam.domain.policy import Policy, PolicyType
from jitpam.services.ports import UnitOfWork
from jitpam.services.separation import is_exempt


def _jitpam_guards(uow: UnitOfWork, org_id: UUID) -> list[Policy]:
    return uow.policies.matching(org_id, scope=BUILTIN_SCOPE)


def _break_glass(uow: UnitOfWork, user: User) -> bool:
    return is_exempt(uow, uow.orgs.control(user.org_id), user.id)


def keep_guard(uow: UnitOfWork, *, user: User, policy: Policy, action: str, at: datetime) -> None:
    """Nobody lifts a guard on jitpam's own operations alone.

    A policy on a ``jitpam\\...`` task, role or role group can be changed or removed only by a
    system account (the break-glass path): an approval to run the guarded operation once must not
    become the power to drop the guard for good. Raises NotPermitted.
    """
    del at
    if policy.target.scope.casefold() != BUILTIN_SCOPE or _break_glass(uow, user):
        return
    raise NotPermitted(
        f"{policy.describe()} guards one of jitpam's own operations: only a system account can "
        f"{action} it"
    )


def keep_all_guards(uow: UnitOfWork, *, user: User, adding: frozenset[UUID], at: datetime) -> None:
    """System accounts pass every guard. Nobody makes themself one, and while any policy guards a
    jitpam operation only a system account adds new ones. Raises NotPermitted."""
    del at
    if not adding or _break_glass(uow, user):
        return
    if user.id in adding:
        raise NotPermitted("nobody can make themself a system account")
    guards = _jitpam_guards(uow, user.org_id)
    if guards:
        raise NotPermitted(
            f"{guards[0].describe()} guards one of jitpam's own operations: only a system account "
            "can add system accounts"
        )


def role_guard(
    uow: UnitOfWork, org_id: UUID, kind: PolicyType, target: str
) -> tuple[Policy, str] | None:
    """The policy that makes a jitpam role just in time (directly or inside a role group), with
    the role it names, or None: a standing assignment of it would undo that policy."""
    if QualifiedName.parse(target).scope.casefold() != BUILTIN_SCOPE:
        return None
    covered: list[tuple[PolicyType, str]] = [(kind, target)]
    if kind is PolicyType.ROLE_GROUP:
        roles = uow.catalog.role_group_roles(org_id, only=[target]).get(target, frozenset())
        covered += [(PolicyType.ROLE, r) for r in sorted(roles)]
    for k, t in covered:
        policy = uow.policies.for_target(org_id, k, QualifiedName.parse(t))
        if policy is not None:
            return policy, t
    return None


def keep_role_guards(uow: UnitOfWork, *, user: User, kind: PolicyType, target: str) -> None:
    """A standing assignment of a jitpam role that a policy makes just-in-time (directly or inside
    a role group) would undo the policy: only a system account may make one. Raises NotPermitted."""
    name = QualifiedName.parse(target)
    if name.scope.casefold() != BUILTIN_SCOPE or _break_glass(uow, user):
        return
    guard = role_guard(uow, user.org_id, kind, target)
    if guard is not None:
        policy, t = guard
        raise NotPermitted(
            f"{policy.describe()} makes '{t}' just in time: request it instead; only a "
            "system account can assign it standing"
        )
