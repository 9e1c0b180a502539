"""Customer Lockbox: the operator's engineers ask a customer before touching its data.

One organization of an installation is the operator (designated by whoever runs the server).
Its engineers, holding ``jitpam\\Lockbox Requester``, file a lockbox request against a customer
organization for one service; the customer's setting decides whether its approvers
(``jitpam\\Customer Lockbox Access Approver``) must approve or the request is approved
automatically. Either way nothing is allowed without a filed request, a request not decided in
12 hours expires, and access lasts the approved duration, at most 4 hours (the customer may lower
that cap) or until the customer revokes it.

As for access requests, the stored status is the last one written and ``status_at`` derives the
effective one from the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID, uuid4

from jitpam.domain.directory import User, check_text
from jitpam.domain.errors import (
    AuthorizationNotActive,
    InvalidInput,
    JitpamError,
    NotAnApprover,
    NotPermitted,
    RequestNotPending,
)
from jitpam.domain.requests import RequestStatus, check_comment, check_reason
from jitpam.domain.timeutil import hours, require_utc

PENDING_HOURS = 12  # a request not decided by then expires
MAX_ACCESS_HOURS = 4  # no customer can allow longer
MAX_CASE_REFERENCE = 64

# The services a lockbox request may name besides the scopes of the customer's own catalog.
SERVICES = ("Exchange", "SharePoint", "Teams", "EOP")

REQUESTED_ACCESS = "Customer Lockbox"  # what M365's RequestedAccess calls such a request


class ApprovalDecision:
    """The decisions ``Set-AccessToCustomerDataRequest -ApprovalDecision`` takes."""

    APPROVE = "Approve"
    DENY = "Deny"
    CANCEL = "Cancel"
    ALL = (APPROVE, DENY, CANCEL)


def parse_decision(text: str) -> str:
    for decision in ApprovalDecision.ALL:
        if isinstance(text, str) and text.strip().casefold() == decision.casefold():
            return decision
    raise InvalidInput(f"the approval decision must be one of {', '.join(ApprovalDecision.ALL)}")


@dataclass(frozen=True)
class LockboxSettings:
    """A customer's lockbox settings: whether its approvers must approve every data access
    request (off: approved automatically, still filed, audited and notified), and the longest
    access it allows."""

    approval_required: bool = False
    max_hours: int = MAX_ACCESS_HOURS


def check_max_hours(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput("the lockbox access cap must be a whole number of hours")
    if not 1 <= value <= MAX_ACCESS_HOURS:
        raise InvalidInput(f"the lockbox access cap must be from 1 to {MAX_ACCESS_HOURS} hours")
    return value


def check_duration(value: object) -> int:
    """A lockbox request's hours: a whole number from 1 to 4 (the customer's cap is checked when
    the request is filed against it)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput("the duration must be a whole number of hours")
    if not 1 <= value <= MAX_ACCESS_HOURS:
        raise InvalidInput(f"the duration must be from 1 to {MAX_ACCESS_HOURS} hours")
    return value


def service_name(text: str, *, catalog_scopes: tuple[str, ...] = ()) -> str:
    """The service as the lockbox names it (``Exchange``, ``SharePoint``, ``Teams``, ``EOP`` or a
    scope of the customer's catalog), in its own spelling whatever the case given."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("a service is required")
    wanted = text.strip().casefold()
    for known in (*SERVICES, *catalog_scopes):
        if known.casefold() == wanted:
            return known
    raise InvalidInput(
        f"no service named {text.strip()!r}: choose {', '.join(SERVICES)} "
        "or a workload scope of the customer's catalog"
    )


def check_case_reference(text: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("a support case reference is required")
    return check_text(text, field_name="the support case reference", limit=MAX_CASE_REFERENCE)


@dataclass
class LockboxRequest:
    """One engineer's request to reach one service of one customer's data."""

    id: UUID
    customer_org_id: UUID
    operator_org_id: UUID
    requester_id: UUID
    requester_upn: str
    service: str
    reason: str
    case_reference: str
    duration_hours: int
    created_at: datetime
    pending_until: datetime
    status: RequestStatus = RequestStatus.PENDING
    decided_at: datetime | None = None
    decided_by: UUID | None = None  # None once decided: automatically, by the customer's setting
    decision_comment: str = ""
    start: datetime | None = None
    end: datetime | None = None
    revoked_at: datetime | None = None
    revoked_by: UUID | None = None
    revocation_comment: str | None = None

    @classmethod
    def file(
        cls,
        *,
        customer_org_id: UUID,
        operator_org_id: UUID,
        requester: User,
        service: str,
        reason: str,
        case_reference: str,
        duration_hours: int,
        settings: LockboxSettings,
        at: datetime,
    ) -> LockboxRequest:
        at = require_utc(at)
        if customer_org_id == operator_org_id:
            raise InvalidInput("the operator files lockbox requests against its customers only")
        if requester.org_id != operator_org_id:
            raise NotPermitted("only the operator's users file lockbox requests")
        if isinstance(duration_hours, bool) or not isinstance(duration_hours, int):
            raise InvalidInput("the duration must be a whole number of hours")
        if not 1 <= duration_hours <= settings.max_hours:
            raise InvalidInput(
                f"the duration must be from 1 to {settings.max_hours} hours "
                "(the customer's cap for lockbox access)"
            )
        return cls(
            id=uuid4(),
            customer_org_id=customer_org_id,
            operator_org_id=operator_org_id,
            requester_id=requester.id,
            requester_upn=requester.upn,
            service=service,
            reason=check_reason(reason),
            case_reference=check_case_reference(case_reference),
            duration_hours=duration_hours,
            created_at=at,
            pending_until=at + hours(PENDING_HOURS),
        )

    def describe(self) -> str:
        return f"lockbox request {self.id} ({self.service}, case {self.case_reference})"

    def status_at(self, at: datetime) -> RequestStatus:
        if self.status is RequestStatus.PENDING and at >= self.pending_until:
            return RequestStatus.EXPIRED
        if self.status is RequestStatus.APPROVED and self.end is not None and at >= self.end:
            return RequestStatus.COMPLETED
        return self.status

    def allows(self, *, user_id: UUID, service: str, at: datetime) -> bool:
        """Whether this request lets ``user_id`` reach ``service`` of the customer at ``at``."""
        return (
            user_id == self.requester_id
            and service.casefold() == self.service.casefold()
            and self.status_at(at) is RequestStatus.APPROVED
            and self.start is not None
            and self.start <= at
            and (self.revoked_at is None or at < self.revoked_at)
        )

    def _require_pending(self, at: datetime) -> None:
        current = self.status_at(at)
        if current is not RequestStatus.PENDING:
            raise RequestNotPending(f"{self.describe()} is {current.value}, not pending")

    def _grant(
        self, *, by: UUID | None, comment: str, at: datetime, max_hours: int = MAX_ACCESS_HOURS
    ) -> None:
        self.status = RequestStatus.APPROVED
        self.decided_at = self.start = at
        self.end = at + hours(min(self.duration_hours, max_hours, MAX_ACCESS_HOURS))
        self.decided_by = by
        self.decision_comment = comment

    def approve_automatically(self, *, at: datetime) -> None:
        """Approved by the customer's setting (approval not required)."""
        at = require_utc(at)
        self._require_pending(at)
        self._grant(by=None, comment="", at=at)

    def decision_refusal(
        self, *, approver: User, holds_approver_role: bool, at: datetime
    ) -> JitpamError | None:
        """Why ``approver`` may not approve or deny this request now, or None when they may."""
        if approver.org_id != self.customer_org_id:
            return NotAnApprover("only the customer's approvers decide its lockbox requests")
        current = self.status_at(at)
        if current is not RequestStatus.PENDING:
            return RequestNotPending(f"{self.describe()} is {current.value}, not pending")
        if not approver.can_approve:
            return NotAnApprover(
                f"{approver.upn} is a disabled or {approver.kind.value} account; "
                "only the customer's people decide lockbox requests"
            )
        if not holds_approver_role:
            return NotAnApprover(
                f"{approver.upn} does not hold jitpam\\Customer Lockbox Access Approver"
            )
        return None

    def decide(
        self,
        *,
        approver: User,
        holds_approver_role: bool,
        decision: str,
        comment: str | None,
        at: datetime,
        max_hours: int = MAX_ACCESS_HOURS,
    ) -> RequestStatus:
        """The customer's approver approves or denies; returns the new status. Access lasts the
        requested duration, but no longer than the customer's cap when it approves
        (``max_hours``: the customer may have lowered it since the request was filed)."""
        at = require_utc(at)
        decision = parse_decision(decision)
        if decision == ApprovalDecision.CANCEL:
            raise InvalidInput("the customer approves or denies; the engineer cancels")
        refusal = self.decision_refusal(
            approver=approver, holds_approver_role=holds_approver_role, at=at
        )
        if refusal is not None:
            raise refusal
        text = check_comment(comment)
        if decision == ApprovalDecision.APPROVE:
            self._grant(by=approver.id, comment=text, at=at, max_hours=max_hours)
        else:
            self.status = RequestStatus.DENIED
            self.decided_at, self.decided_by, self.decision_comment = at, approver.id, text
        return self.status

    def cancel(self, *, by: UUID, comment: str | None, at: datetime) -> None:
        """The engineer withdraws a pending request."""
        at = require_utc(at)
        if by != self.requester_id:
            raise NotPermitted("only the engineer who filed a lockbox request can cancel it")
        self._require_pending(at)
        self.status = RequestStatus.CANCELLED
        self.decided_at, self.decided_by = at, by
        self.decision_comment = check_comment(comment)

    def revoke(self, *, by: UUID, comment: str | None, at: datetime) -> None:
        """End approved access at once (the customer, or the engineer ending it early)."""
        at = require_utc(at)
        current = self.status_at(at)
        if current is not RequestStatus.APPROVED:
            raise AuthorizationNotActive(f"{self.describe()} is {current.value}; nothing to revoke")
        self.status = RequestStatus.REVOKED
        self.revoked_at, self.revoked_by = at, by
        self.revocation_comment = check_comment(comment)

    def settle(self, *, at: datetime) -> RequestStatus | None:
        """Write down a status the clock has decided (expired, completed); None if unchanged."""
        current = self.status_at(at)
        if current is self.status:
            return None
        self.status = current
        if current is RequestStatus.EXPIRED:
            self.decided_at = self.pending_until
        return current
