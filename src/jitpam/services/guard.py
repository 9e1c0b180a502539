"""How use cases authorize their callers and audit what they refuse.

jitpam's own operations are tasks of the built-in ``jitpam`` scope; a caller may run one when the
same ``decide`` that protects every other task allows it. A refused attempt is audited in a
transaction of its own, since the refused change itself was rolled back.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar
from uuid import UUID

from jitpam.domain.audit import AuditEvent, Outcome
from jitpam.domain.catalog import BUILTIN_SCOPE
from jitpam.domain.check import CheckFacts, Decision, Grant, Reason, decide, jit_roles
from jitpam.domain.control import AccessControl
from jitpam.domain.directory import User
from jitpam.domain.errors import AuditUnavailable, InvalidInput, JitpamError, NotPermitted
from jitpam.domain.names import QualifiedName, resolve_name, split_name
from jitpam.domain.policy import Policy, PolicyType
from jitpam.services.context import Caller, ServiceContext
from jitpam.services.ports import UnitOfWork
from jitpam.services.separation import is_exempt

E = TypeVar("E", bound=Enum)

REASON_TEXT = {
    Reason.UNKNOWN_USER: "the user does not exist in this organization",
    Reason.USER_DISABLED: "the user is disabled",
    Reason.UNKNOWN_TASK: "the task is not in the organization's catalog",
    Reason.TASK_NOT_HELD: "no role held by the user contains the task",
    Reason.AUTHORIZATION_REQUIRED: "an approval policy covers the task and the user holds no "
    "active authorization for it: request access first",
    Reason.CONTROL_DISABLED: "access control is disabled; allowed by role",
    Reason.SYSTEM_ACCOUNT: "system account, exempt from access control",
    Reason.AUTHORIZED: "allowed by an active authorization",
    Reason.NOT_PROTECTED: "allowed by role; no policy covers the task",
}


def jitpam_task(name: str) -> str:
    return str(QualifiedName("jitpam", name))


def resolve_task(uow: UnitOfWork, org_id: UUID, typed: str) -> QualifiedName:
    """The catalog task a typed name means; raises NotFound or AmbiguousName."""
    _, bare = split_name(typed)
    return resolve_name(typed, uow.catalog.names(org_id, PolicyType.TASK, bare), kind="task")


@dataclass(frozen=True)
class _UserFacts:
    groups: frozenset[UUID]
    standing_roles: frozenset[str]
    grants: tuple[Grant, ...]
    role_group_roles: dict[str, frozenset[str]]


def _user_facts(uow: UnitOfWork, user: User, control: AccessControl, at: datetime) -> _UserFacts:
    groups = uow.users.group_ids(user.id)
    grants = uow.requests.grants(control.org_id, user.id, at)
    return _UserFacts(
        groups,
        uow.assignments.standing_roles(control.org_id, user.id, groups),
        grants,
        uow.catalog.role_group_roles(
            control.org_id, only=[g.target for g in grants if g.type is PolicyType.ROLE_GROUP]
        )
        if any(g.type is PolicyType.ROLE_GROUP for g in grants)
        else {},
    )


def gather_facts(
    uow: UnitOfWork,
    *,
    user: User | None,
    task: str,
    control: AccessControl,
    at: datetime,
    known: _UserFacts | None = None,
) -> CheckFacts:
    """Everything ``decide`` needs about (user, task), read in the current transaction
    (``known``: the user's side, read already for another task at the same instant)."""
    task_exists = uow.catalog.task_exists(control.org_id, task)
    if user is None or user.org_id != control.org_id:
        return CheckFacts(task, False, False, task_exists, frozenset(), frozenset())
    mine = known if known is not None else _user_facts(uow, user, control, at)
    return CheckFacts(
        task=task,
        user_exists=True,
        user_enabled=user.enabled,
        task_exists=task_exists,
        task_roles=uow.catalog.roles_holding(control.org_id, task) if task_exists else frozenset(),
        standing_roles=mine.standing_roles,
        grants=mine.grants,
        role_group_roles=mine.role_group_roles,
        control_enabled=control.enabled,
        system_account=is_exempt(uow, control, user.id),
        task_policy=(
            task_exists
            and uow.policies.for_target(control.org_id, PolicyType.TASK, QualifiedName.parse(task))
            is not None
        ),
    )


def roles_held(
    uow: UnitOfWork, *, user: User, control: AccessControl, at: datetime
) -> frozenset[str]:
    """Every role ``user`` holds at ``at``: standing, and just in time through active grants of
    roles and role groups (none for a disabled user)."""
    if not user.enabled or user.org_id != control.org_id:
        return frozenset()
    mine = _user_facts(uow, user, control, at)
    facts = CheckFacts(
        task="",
        user_exists=True,
        user_enabled=True,
        task_exists=False,
        task_roles=frozenset(),
        standing_roles=mine.standing_roles,
        grants=mine.grants,
        role_group_roles=mine.role_group_roles,
    )
    return mine.standing_roles | frozenset(jit_roles(facts, at))


def may(uow: UnitOfWork, *, user: User, operation: str, at: datetime) -> Decision:
    """Whether ``user`` may run the jitpam task named ``operation`` (without raising)."""
    return may_each(uow, user=user, operations=(operation,), at=at)[0]


def may_each(
    uow: UnitOfWork, *, user: User, operations: Sequence[str], at: datetime
) -> list[Decision]:
    """``may`` for several operations at one instant, reading the user's side once."""
    control = uow.orgs.control(user.org_id)
    known = _user_facts(uow, user, control, at) if user.org_id == control.org_id else None
    return [
        decide(
            gather_facts(uow, user=user, task=jitpam_task(op), control=control, at=at, known=known),
            at,
        )
        for op in operations
    ]


def caller_user(uow: UnitOfWork, caller: Caller) -> User:
    user = uow.users.get(caller.user_id)
    if user is None or user.org_id != caller.org_id:
        raise NotPermitted("the caller is not a user of this organization")
    if not user.enabled:
        raise NotPermitted(f"{user.upn} is disabled")
    return user


def authorize(
    uow: UnitOfWork, caller: Caller, operation: str, at: datetime
) -> tuple[User, Decision]:
    """Return the calling user when they may run ``jitpam\\<operation>``; raises NotPermitted."""
    user = caller_user(uow, caller)
    decision = may(uow, user=user, operation=operation, at=at)
    if decision.allowed and decision.authorization_id is not None:
        # Allowed by a grant: hold it until commit, so a revocation either lands first (and we
        # refuse) or waits for this use case to finish.
        grant = uow.requests.lock_grant(decision.authorization_id)
        if grant is None or not grant.active(at):
            decision = Decision(False, Reason.AUTHORIZATION_REQUIRED)
    if not decision.allowed:
        raise NotPermitted(
            f"{user.upn} may not run '{jitpam_task(operation)}': {REASON_TEXT[decision.reason]}"
        )
    return user, decision


def grant_details(decision: Decision) -> dict[str, Any]:
    """How the caller was allowed, for the audit record."""
    details: dict[str, Any] = {"allowed_by": decision.reason.value}
    if decision.authorization_id is not None:
        details["authorization_id"] = str(decision.authorization_id)
    return details


def event(
    *,
    caller: Caller,
    actor: User | None,
    operation: str,
    target: str,
    at: datetime,
    details: dict[str, Any] | None = None,
    outcome: Outcome = Outcome.SUCCESS,
) -> AuditEvent:
    return AuditEvent(
        org_id=caller.org_id,
        at=at,
        actor_id=str(caller.user_id),
        actor_name=actor.upn if actor else "",
        operation=operation,
        target=target,
        outcome=outcome,
        details=details or {},
    )


@contextmanager
def use_case(
    ctx: ServiceContext, *, caller: Caller, operation: str, target: str
) -> Iterator[UnitOfWork]:
    """Open the use case's transaction; if it refuses with a JitpamError, audit the refusal."""
    try:
        with ctx.uow() as uow:
            yield uow
    except AuditUnavailable:
        raise
    except JitpamError as err:
        record_refusal(ctx, caller=caller, operation=operation, target=target, error=err)
        raise


def record_refusal(
    ctx: ServiceContext, *, caller: Caller, operation: str, target: str, error: JitpamError
) -> None:
    with ctx.uow() as uow:
        if uow.orgs.get(caller.org_id) is None:
            return  # nowhere to record it: the organization does not exist
        uow.record(
            refusal(
                uow,
                caller=caller,
                operation=operation,
                target=target,
                at=ctx.clock.now(),
                error=error,
            )
        )
        uow.commit()


def refusal(
    uow: UnitOfWork,
    *,
    caller: Caller,
    operation: str,
    target: str,
    at: datetime,
    error: JitpamError,
) -> AuditEvent:
    """The audit record of a refused attempt."""
    actor = uow.users.get(caller.user_id)
    return event(
        caller=caller,
        actor=actor if actor and actor.org_id == caller.org_id else None,
        operation=operation,
        target=target,
        at=at,
        details={"error": error.code, "message": error.message},
        outcome=Outcome.REFUSED,
    )


def parse_enum(kind: type[E], value: object, field: str) -> E:
    """``value`` as a member of ``kind``; raises InvalidInput listing the accepted values."""
    if isinstance(value, kind):
        return value
    try:
        return kind(value)
    except ValueError:
        accepted = ", ".join(str(m.value) for m in kind)
        raise InvalidInput(f"{field} must be one of: {accepted}") from None


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


def keep_role_guards(uow: UnitOfWork, *, user: User, kind: PolicyType, target: str) -> None:
    """A standing assignment of a jitpam role that a policy makes just-in-time (directly or inside
    a role group) would undo the policy: only a system account may make one. Raises NotPermitted."""
    name = QualifiedName.parse(target)
    if name.scope.casefold() != BUILTIN_SCOPE or _break_glass(uow, user):
        return
    covered: list[tuple[PolicyType, str]] = [(kind, target)]
    if kind is PolicyType.ROLE_GROUP:
        roles = uow.catalog.role_group_roles(user.org_id, only=[target]).get(target, frozenset())
        covered += [(PolicyType.ROLE, r) for r in sorted(roles)]
    for k, t in covered:
        policy = uow.policies.for_target(user.org_id, k, QualifiedName.parse(t))
        if policy is not None:
            raise NotPermitted(
                f"{policy.describe()} makes '{t}' just in time: request it instead; only a "
                "system account can assign it standing"
            )
