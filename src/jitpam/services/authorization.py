"""How use cases authorize their callers.

jitpam's own operations are tasks of the built-in ``jitpam`` scope, named after the operations
they guard; a caller may run one when the same ``decide`` that protects every other task allows
it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from jitpam.domain.check import Decision, Reason, decide
from jitpam.domain.directory import User
from jitpam.domain.errors import NotPermitted
from jitpam.domain.names import QualifiedName
from jitpam.domain.operations import AuditOperation
from jitpam.services.context import Caller
from jitpam.services.facts import gather_facts, user_facts
from jitpam.services.ports import UnitOfWork

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
    Reason.LOCKBOX_APPROVED: "allowed by an approved lockbox request of the customer",
    Reason.LOCKBOX_REQUEST_REQUIRED: "the engineer holds no approved, unexpired lockbox request "
    "for this customer and service: file one first",
    Reason.RESOURCE_NOT_COVERED: "the application's active data access authorization for the "
    "scope does not cover this resource",
}


def jitpam_task(operation: AuditOperation) -> str:
    """The built-in task that guards ``operation``: ``jitpam\\<operation>``."""
    return str(QualifiedName("jitpam", operation.value))


def caller_user(uow: UnitOfWork, caller: Caller) -> User:
    """The calling user, enabled and of the caller's organization; raises NotPermitted."""
    user = uow.users.get(caller.user_id)
    if user is None or user.org_id != caller.org_id:
        raise NotPermitted("the caller is not a user of this organization")
    if not user.enabled:
        raise NotPermitted(f"{user.upn} is disabled")
    return user


def may(uow: UnitOfWork, *, user: User, operation: AuditOperation, at: datetime) -> Decision:
    """Whether ``user`` may run the jitpam task named ``operation`` (without raising)."""
    return may_each(uow, user=user, operations=(operation,), at=at)[0]


def may_each(
    uow: UnitOfWork, *, user: User, operations: Sequence[AuditOperation], at: datetime
) -> list[Decision]:
    """``may`` for several operations at one instant, reading the user's side once."""
    control = uow.orgs.control(user.org_id)
    known = user_facts(uow, user, control, at) if user.org_id == control.org_id else None
    return [
        decide(
            gather_facts(uow, user=user, task=jitpam_task(op), control=control, at=at, known=known),
            at,
        )
        for op in operations
    ]


def authorize(
    uow: UnitOfWork,
    caller: Caller,
    operation: AuditOperation,
    at: datetime,
    *,
    hold_grant: bool = True,
) -> tuple[User, Decision]:
    """Return the calling user when they may run ``jitpam\\<operation>``; raises NotPermitted.

    A use case that changes something holds the grant that allows it until it commits
    (``hold_grant``). One that only reads decides from its transaction's snapshot instead: it
    sees a revocation committed before it began, and one committed later does not wait for it
    (a long read, such as verifying the audit chain, must not hold a revocation back)."""
    user = caller_user(uow, caller)
    decision = may(uow, user=user, operation=operation, at=at)
    if hold_grant and decision.allowed and decision.authorization_id is not None:
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
