"""Access requests and the authorizations their approval creates.

The stored status is the last one written; ``status_at`` derives the effective one from the clock,
so a pending request past its deadline *is* expired and an approved one past its window *is*
completed, whether or not a sweeper has run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from uuid import UUID, uuid4

from jitpam.domain.directory import User, check_text
from jitpam.domain.errors import (
    AlreadyVoted,
    AuthorizationNotActive,
    InvalidInput,
    JitpamError,
    NotAnApprover,
    NotPermitted,
    RequestNotPending,
    SelfApprovalNotAllowed,
    SeparationOfDuties,
)
from jitpam.domain.names import QualifiedName
from jitpam.domain.policy import PolicyType
from jitpam.domain.separation import Hand, vote_refusal
from jitpam.domain.timeutil import canonical_json, hours, iso, require_utc

SELF_APPROVAL_MESSAGE = "Requestor and approver are the same. Self-approval is not allowed."
MAX_REASON = 4096
MAX_COMMENT = 4096


class RequestStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    REVOKED = "revoked"
    COMPLETED = "completed"

    @property
    def is_terminal(self) -> bool:
        return self not in (RequestStatus.PENDING, RequestStatus.APPROVED)


class ReviewDecision(StrEnum):
    APPROVE = "approve"
    DENY = "deny"


@dataclass(frozen=True)
class Review:
    approver_id: UUID
    decision: ReviewDecision
    comment: str
    at: datetime


@dataclass
class Authorization:
    """The time-bound right an approval creates: active from ``start`` to ``end`` or revocation."""

    id: UUID
    org_id: UUID
    request_id: UUID
    user_id: UUID
    type: PolicyType
    target: QualifiedName
    start: datetime
    end: datetime
    revoked_at: datetime | None = None
    revoked_by: UUID | None = None
    revocation_comment: str | None = None

    def is_active(self, at: datetime) -> bool:
        if self.revoked_at is not None and self.revoked_at <= at:
            return False
        return self.start <= at < self.end


RESOURCE_KINDS = ("group", "mailbox", "user", "site")
MAX_RESOURCES = 100


def check_resources(values: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The data a data access request covers, each ``kind:name`` (``group:Sales``,
    ``mailbox:ceo@contoso.com``, ``user:…``, ``site:…``), kinds and mail names in lower case; at
    least one, each once."""
    if isinstance(values, str) or not values:
        raise InvalidInput(
            "name the data the request covers, e.g. group:Sales or mailbox:ceo@contoso.com"
        )
    if len(values) > MAX_RESOURCES:
        raise InvalidInput(f"a request covers at most {MAX_RESOURCES} resources")
    out: list[str] = []
    for value in values:
        if not isinstance(value, str) or ":" not in value:
            raise InvalidInput(f"{value!r} is not kind:name (kinds: {', '.join(RESOURCE_KINDS)})")
        kind, _, name = value.partition(":")
        kind, name = kind.strip().lower(), name.strip()
        if kind not in RESOURCE_KINDS or not name:
            raise InvalidInput(f"{value!r} is not kind:name (kinds: {', '.join(RESOURCE_KINDS)})")
        name = check_text(name, field_name="the resource", limit=256)
        if kind in ("mailbox", "user"):
            name = name.lower()
        out.append(f"{kind}:{name}")
    return tuple(dict.fromkeys(out))


def check_reason(reason: str) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("a reason is required")
    return check_text(reason, field_name="the reason", limit=MAX_REASON)


def check_comment(comment: str | None) -> str:
    if comment is not None and not isinstance(comment, str):
        raise InvalidInput("the comment must be text")
    return check_text(comment or "", field_name="the comment", required=False, limit=MAX_COMMENT)


@dataclass
class AccessRequest:
    id: UUID
    org_id: UUID
    requester_id: UUID
    requester_upn: str
    policy_id: UUID
    type: PolicyType
    target: QualifiedName
    reason: str
    duration_hours: int
    approvals_required: int
    created_at: datetime
    pending_until: datetime
    status: RequestStatus = RequestStatus.PENDING
    decided_at: datetime | None = None
    reviews: list[Review] = field(default_factory=list)
    authorization: Authorization | None = None
    key_id: str = ""
    signature: str = ""
    # A data access request is filed by a person (the requester of record, RequestorUPN) for an
    # application account (the subject, who receives the grant), for the data ``resources`` name
    # (``group:Sales``, ``mailbox:ceo@contoso.com``). Other requests are their requester's own.
    subject_id: UUID | None = None
    subject_upn: str | None = None
    resources: tuple[str, ...] = ()

    @property
    def grantee_id(self) -> UUID:
        """Who the authorization is for: the application of a data access request, otherwise
        the requester."""
        return self.subject_id if self.subject_id is not None else self.requester_id

    @property
    def grantee_upn(self) -> str:
        return self.subject_upn if self.subject_upn is not None else self.requester_upn

    @classmethod
    def open(
        cls,
        *,
        org_id: UUID,
        requester: User,
        policy_id: UUID,
        type: PolicyType,
        target: QualifiedName,
        reason: str,
        duration_hours: int,
        approvals_required: int,
        at: datetime,
        pending_hours: int,
        subject: User | None = None,
        resources: tuple[str, ...] = (),
    ) -> AccessRequest:
        at = require_utc(at)
        if (type is PolicyType.DATA_ACCESS) != (subject is not None):
            raise InvalidInput("a data access request is filed for an application, and only it")
        if subject is not None and (subject.org_id != org_id or subject.id == requester.id):
            raise InvalidInput("the application must be another account of the organization")
        return cls(
            id=uuid4(),
            org_id=org_id,
            requester_id=requester.id,
            requester_upn=requester.upn,
            policy_id=policy_id,
            type=type,
            target=target,
            reason=check_reason(reason),
            duration_hours=duration_hours,
            approvals_required=approvals_required,
            created_at=at,
            pending_until=at + hours(pending_hours),
            subject_id=subject.id if subject is not None else None,
            subject_upn=subject.upn if subject is not None else None,
            resources=check_resources(resources) if subject is not None else (),
        )

    def describe(self) -> str:
        return f"request {self.id} ({self.type.label} '{self.target}')"

    def status_at(self, at: datetime) -> RequestStatus:
        if self.status is RequestStatus.PENDING and at >= self.pending_until:
            return RequestStatus.EXPIRED
        if (
            self.status is RequestStatus.APPROVED
            and self.authorization is not None
            and at >= self.authorization.end
        ):
            return RequestStatus.COMPLETED
        return self.status

    def signing_payload(self) -> bytes:
        """What the server signs: the request's content and the requester's identity (and, for
        a data access request, the application and the data it covers)."""
        subject = (
            {}
            if self.subject_id is None
            else {
                "subject_id": str(self.subject_id),
                "subject_upn": self.subject_upn,
                "resources": list(self.resources),
            }
        )
        return canonical_json(
            {
                **subject,
                "id": str(self.id),
                "org_id": str(self.org_id),
                "requester_id": str(self.requester_id),
                "requester_upn": self.requester_upn,
                "policy_id": str(self.policy_id),
                "type": self.type.value,
                "target": str(self.target),
                "reason": self.reason,
                "duration_hours": self.duration_hours,
                "approvals_required": self.approvals_required,
                "created_at": iso(self.created_at),
                "pending_until": iso(self.pending_until),
            }
        )

    def _require_pending(self, at: datetime) -> None:
        current = self.status_at(at)
        if current is not RequestStatus.PENDING:
            raise RequestNotPending(f"{self.describe()} is {current.value}, not pending")

    def _grant(self, at: datetime) -> Authorization:
        self.status = RequestStatus.APPROVED
        self.decided_at = at
        self.authorization = Authorization(
            id=uuid4(),
            org_id=self.org_id,
            request_id=self.id,
            user_id=self.grantee_id,
            type=self.type,
            target=self.target,
            start=at,
            end=at + hours(self.duration_hours),
        )
        return self.authorization

    def approve_automatically(self, *, at: datetime) -> Authorization:
        at = require_utc(at)
        self._require_pending(at)
        return self._grant(at)

    def review(
        self,
        *,
        approver: User,
        in_approver_group: bool,
        decision: ReviewDecision,
        comment: str | None,
        at: datetime,
        current_approvers: frozenset[UUID] | None = None,
        hand: Hand | None = None,
        steers_subject: bool = False,
    ) -> RequestStatus:
        """Count one approver's vote; returns the status after it.

        Raises SelfApprovalNotAllowed, RequestNotPending, NotAnApprover, SeparationOfDuties or
        AlreadyVoted. One deny decides; ``approvals_required`` distinct approvals approve. When
        ``current_approvers`` is given, earlier approvals count only if their approver is still
        one of them (someone removed from the approver group since their vote, or in whose vote
        the requester has come to have a hand, no longer counts). ``hand``: how the requester has
        a hand in this approver's vote (domain/separation.py), None when they have none.
        """
        at = require_utc(at)
        refusal = self.review_refusal(
            approver=approver,
            in_approver_group=in_approver_group,
            at=at,
            hand=hand,
            steers_subject=steers_subject,
        )
        if refusal is not None:
            raise refusal
        self.reviews.append(Review(approver.id, decision, check_comment(comment), at))
        if decision is ReviewDecision.DENY:
            self.status = RequestStatus.DENIED
            self.decided_at = at
        elif self.approvals_by(current_approvers) >= self.approvals_required:
            self._grant(at)
        return self.status

    def review_refusal(
        self,
        *,
        approver: User,
        in_approver_group: bool,
        at: datetime,
        hand: Hand | None = None,
        steers_subject: bool = False,
    ) -> JitpamError | None:
        """Why ``approver`` may not review this request now, or None when they may (``hand``: how
        the requester has a hand in this approver's vote, from domain/separation.py;
        ``steers_subject``: the approver created the application account of a data access
        request or set one of its credentials)."""
        if approver.id in (self.requester_id, self.subject_id):
            return SelfApprovalNotAllowed(SELF_APPROVAL_MESSAGE)
        current = self.status_at(at)
        if current is not RequestStatus.PENDING:
            return RequestNotPending(f"{self.describe()} is {current.value}, not pending")
        if not approver.enabled:
            return NotAnApprover(f"{approver.upn} is disabled and cannot review requests")
        if not approver.can_approve:
            return NotAnApprover(
                f"{approver.upn} is a {approver.kind.value} account; only people review requests"
            )
        if not in_approver_group:
            return NotAnApprover(
                f"{approver.upn} is not a member of the approver group of {self.describe()}"
            )
        if hand is Hand.SELF:
            return SelfApprovalNotAllowed(SELF_APPROVAL_MESSAGE)
        if hand is not None:
            return vote_refusal(
                hand=hand,
                requester=self.requester_upn,
                voter=approver.upn,
                describe=self.describe(),
            )
        if steers_subject:
            return SeparationOfDuties(
                f"{approver.upn} cannot vote on {self.describe()}: they created the application "
                f"account {self.subject_upn} or set one of its credentials (separation of duties)"
            )
        if any(r.approver_id == approver.id for r in self.reviews):
            return AlreadyVoted(f"{approver.upn} has already reviewed {self.describe()}")
        return None

    def approvals_by(self, approvers: frozenset[UUID] | None) -> int:
        """Approvals from ``approvers`` (all approvals when None)."""
        return sum(
            1
            for r in self.reviews
            if r.decision is ReviewDecision.APPROVE
            and (approvers is None or r.approver_id in approvers)
        )

    @property
    def approvals(self) -> int:
        return sum(1 for r in self.reviews if r.decision is ReviewDecision.APPROVE)

    def cancel(self, *, by: UUID, at: datetime) -> None:
        """Withdraw a pending request; only its requester may (the service checks who ``by`` is)."""
        at = require_utc(at)
        if by != self.requester_id:
            raise NotPermitted("only the requester can cancel a request")
        self.withdraw(at=at)

    def withdraw(self, *, at: datetime) -> None:
        """Cancel without a requester's word: their account was disabled."""
        at = require_utc(at)
        self._require_pending(at)
        self.status = RequestStatus.CANCELLED
        self.decided_at = at

    def revoke(self, *, by: UUID, comment: str | None, at: datetime) -> Authorization:
        """End an active authorization at once. Raises AuthorizationNotActive otherwise."""
        at = require_utc(at)
        current = self.status_at(at)
        if current is not RequestStatus.APPROVED or self.authorization is None:
            raise AuthorizationNotActive(f"{self.describe()} is {current.value}; nothing to revoke")
        self.status = RequestStatus.REVOKED
        self.authorization.revoked_at = at
        self.authorization.revoked_by = by
        self.authorization.revocation_comment = check_comment(comment)
        return self.authorization

    def settle(self, *, at: datetime) -> RequestStatus | None:
        """Write down a status the clock has already decided (expired, completed).

        Returns the new status, or None when nothing changed. Bookkeeping only: every rule reads
        ``status_at``, so nothing depends on this being called.
        """
        current = self.status_at(at)
        if current is self.status:
            return None
        self.status = current
        if current is RequestStatus.EXPIRED:
            self.decided_at = self.pending_until
        return current
