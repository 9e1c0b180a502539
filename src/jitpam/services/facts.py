"""What ``decide`` needs about a user and a task, read in the current transaction.

The check API reads the same facts from the decision index (kept exact by the audit chain);
these are read afresh, for jitpam's own authorization of its callers and for the rules that
ask what a user holds (a request for a task needs a role with it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from jitpam.domain.check import CheckFacts, Grant, jit_roles
from jitpam.domain.control import AccessControl
from jitpam.domain.directory import User
from jitpam.domain.names import QualifiedName, resolve_name, split_name
from jitpam.domain.policy import PolicyType
from jitpam.services.ports import UnitOfWork
from jitpam.services.separation import is_exempt


def resolve_task(uow: UnitOfWork, org_id: UUID, typed: str) -> QualifiedName:
    """The catalog task a typed name means; raises NotFound or AmbiguousName."""
    _, bare = split_name(typed)
    return resolve_name(typed, uow.catalog.names(org_id, PolicyType.TASK, bare), kind="task")


@dataclass(frozen=True)
class UserFacts:
    """The user's side of the facts, the same for every task at one instant."""

    groups: frozenset[UUID]
    standing_roles: frozenset[str]
    grants: tuple[Grant, ...]
    role_group_roles: dict[str, frozenset[str]]


def user_facts(uow: UnitOfWork, user: User, control: AccessControl, at: datetime) -> UserFacts:
    """The groups, standing roles and grants of ``user`` at ``at`` (and, for grants of role
    groups, the roles those hold)."""
    groups = uow.users.group_ids(user.id)
    grants = uow.requests.grants(control.org_id, user.id, at)
    return UserFacts(
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
    known: UserFacts | None = None,
) -> CheckFacts:
    """Everything ``decide`` needs about (user, task), read in the current transaction
    (``known``: the user's side, read already for another task at the same instant)."""
    task_exists = uow.catalog.task_exists(control.org_id, task)
    if user is None or user.org_id != control.org_id:
        return CheckFacts(task, False, False, task_exists, frozenset(), frozenset())
    mine = known if known is not None else user_facts(uow, user, control, at)
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
    mine = user_facts(uow, user, control, at)
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
