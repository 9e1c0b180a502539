"""The access decision: may this user run this task now?

One pure function, ``decide``, used by the service layer, by jitpam's own authorization of its
callers, and (later) by the in-memory decision index. It sees only ``CheckFacts``: plain data
gathered by whoever asks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import NamedTuple
from uuid import UUID

from jitpam.domain.policy import PolicyType


class Reason(StrEnum):
    """Stable reason codes (documented in docs/reference.md); never rename one."""

    UNKNOWN_USER = "unknown_user"
    USER_DISABLED = "user_disabled"
    UNKNOWN_TASK = "unknown_task"
    TASK_NOT_HELD = "task_not_held"
    AUTHORIZATION_REQUIRED = "authorization_required"
    CONTROL_DISABLED = "control_disabled"
    SYSTEM_ACCOUNT = "system_account"
    AUTHORIZED = "authorized"
    NOT_PROTECTED = "not_protected"
    # Customer Lockbox checks (an operator's engineer and a customer's service)
    LOCKBOX_APPROVED = "lockbox_approved"
    LOCKBOX_REQUEST_REQUIRED = "lockbox_request_required"
    # Data access checks (an application's scope on a resource)
    RESOURCE_NOT_COVERED = "resource_not_covered"


ALLOWING = frozenset(
    {
        Reason.CONTROL_DISABLED,
        Reason.SYSTEM_ACCOUNT,
        Reason.AUTHORIZED,
        Reason.NOT_PROTECTED,
        Reason.LOCKBOX_APPROVED,
    }
)


class Decision(NamedTuple):  # a tuple: made on every check, it costs half a frozen dataclass
    allowed: bool
    reason: Reason
    authorization_id: UUID | None = None

    @property
    def exempt(self) -> bool:
        return self.reason is Reason.SYSTEM_ACCOUNT


@dataclass(frozen=True)
class Grant:
    """One authorization of the user, reduced to what the decision needs."""

    authorization_id: UUID
    type: PolicyType
    target: str  # canonical "Scope\Name"
    start: datetime
    end: datetime
    revoked_at: datetime | None = None

    def active(self, at: datetime) -> bool:
        if self.revoked_at is not None and self.revoked_at <= at:
            return False
        return self.start <= at < self.end

    @cached_property
    def authorizes(self) -> Decision:
        """The decision this grant makes for its task while active (made once per grant)."""
        return Decision(True, Reason.AUTHORIZED, self.authorization_id)


@dataclass(frozen=True)
class CheckFacts:
    """Everything ``decide`` reads, for one (user, task) pair.

    Role and role-group names are canonical ``Scope\\Name`` strings. ``standing_roles`` is every
    role the user holds without approval (directly, through a role group, through a group).
    ``role_group_roles`` maps a role group to its roles, for role-group grants.
    """

    task: str
    user_exists: bool
    user_enabled: bool
    task_exists: bool
    task_roles: frozenset[str]
    standing_roles: frozenset[str]
    grants: tuple[Grant, ...] = ()
    role_group_roles: Mapping[str, frozenset[str]] = field(default_factory=dict)
    control_enabled: bool = False
    system_account: bool = False
    task_policy: bool = False


_ROLE, _ROLE_GROUP = PolicyType.ROLE, PolicyType.ROLE_GROUP  # see _TASK below


def jit_roles(facts: CheckFacts, at: datetime) -> dict[str, UUID]:
    """Roles the user holds just in time at ``at``, each with the authorization that grants it."""
    held: dict[str, UUID] = {}
    for grant in facts.grants:
        if not grant.active(at):
            continue
        if grant.type is _ROLE:
            held.setdefault(grant.target, grant.authorization_id)
        elif grant.type is _ROLE_GROUP:
            for role in facts.role_group_roles.get(grant.target, frozenset()):
                held.setdefault(role, grant.authorization_id)
    return held


def holds_task(facts: CheckFacts, at: datetime) -> bool:
    """Whether the user holds the task through RBAC at ``at`` (standing or just in time)."""
    if not (facts.user_exists and facts.user_enabled and facts.task_exists):
        return False
    return not facts.task_roles.isdisjoint(facts.standing_roles) or any(
        role in facts.task_roles for role in jit_roles(facts, at)
    )


# Decisions that name no authorization are values, made once. Enum members are read from module
# names here: in Python 3.11 reading ``PolicyType.TASK`` costs as much as the rest of a decision.
_TASK = PolicyType.TASK
_UNKNOWN_USER = Decision(False, Reason.UNKNOWN_USER)
_USER_DISABLED = Decision(False, Reason.USER_DISABLED)
_UNKNOWN_TASK = Decision(False, Reason.UNKNOWN_TASK)
_TASK_NOT_HELD = Decision(False, Reason.TASK_NOT_HELD)
_AUTHORIZATION_REQUIRED = Decision(False, Reason.AUTHORIZATION_REQUIRED)
_CONTROL_DISABLED = Decision(True, Reason.CONTROL_DISABLED)
_SYSTEM_ACCOUNT = Decision(True, Reason.SYSTEM_ACCOUNT)
_NOT_PROTECTED = Decision(True, Reason.NOT_PROTECTED)


def _allowed(plain: Decision, via: UUID | None) -> Decision:
    return plain if via is None else Decision(True, plain.reason, via)


def decide(facts: CheckFacts, at: datetime) -> Decision:
    """Decide in the documented order; anything not shown to be allowed is denied.

    RBAC first (standing or just-in-time role; a disabled user holds nothing) -> control disabled:
    allowed -> system account: allowed, exempt -> a task policy covers the task: allowed only with
    an active authorization -> otherwise allowed by RBAC.
    """
    if not facts.user_exists:
        return _UNKNOWN_USER
    if not facts.user_enabled:
        return _USER_DISABLED
    if not facts.task_exists:
        return _UNKNOWN_TASK
    via_role: UUID | None = None
    if facts.task_roles.isdisjoint(facts.standing_roles):
        jit = jit_roles(facts, at)
        holding = sorted(role for role in facts.task_roles if role in jit)
        if not holding:
            return _TASK_NOT_HELD
        via_role = jit[holding[0]]
    if not facts.control_enabled:
        return _allowed(_CONTROL_DISABLED, via_role)
    if facts.system_account:
        return _allowed(_SYSTEM_ACCOUNT, via_role)
    if facts.task_policy:
        task = facts.task
        for grant in facts.grants:
            if grant.type is _TASK and grant.target == task and grant.active(at):
                return grant.authorizes
        return _AUTHORIZATION_REQUIRED
    return _allowed(_NOT_PROTECTED, via_role)
