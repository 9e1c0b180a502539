"""Customer Lockbox notices: the outbox rows a lockbox step writes in its own transaction.

Each event is told to both organizations, each in messages of its own (``lockbox_audience``):
the customer's side goes to its approvers (the enabled people holding
``jitpam\\Customer Lockbox Access Approver``: directly, through a role group such as
``jitpam\\Global Administrator``, or through a group) and to the customer's webhooks; the
operator's side goes to the engineer who filed the request and to the operator's webhooks. The
operator's tooling learns when access is granted and ends as it learns it for its own requests,
but what reaches the operator names no person of the customer: who decided or revoked reads
"customer", as in the operator's audit chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from string import Template
from typing import Any
from uuid import UUID, uuid4

from jitpam.domain.directory import PrincipalKind, User
from jitpam.domain.lockbox import PENDING_HOURS, REQUESTED_ACCESS, LockboxRequest
from jitpam.domain.notifications import (
    LOCKBOX_EVENTS,
    Channel,
    EventType,
    OutboxMessage,
    WebhookEndpoint,
    WebhookFormat,
    lockbox_audience,
)
from jitpam.domain.policy import PolicyType
from jitpam.domain.requests import RequestStatus
from jitpam.domain.timeutil import iso
from jitpam.services.context import ServiceContext
from jitpam.services.directory import role_holders
from jitpam.services.notifications import email_message, slack_escape
from jitpam.services.ports import UnitOfWork

APPROVER_ROLE = "jitpam\\Customer Lockbox Access Approver"
CUSTOMER_SIDE = "customer"  # how the operator's side names whoever acted at the customer

_DATA = "$customer's $service data"
LOCKBOX_HEADLINES = {
    EventType.LOCKBOX_CREATED: (
        f"Customer Lockbox: $requester ($operator) asks to reach {_DATA} for $hours h "
        "(case $case); decide by $deadline"
    ),
    EventType.LOCKBOX_AUTO_APPROVED: (
        f"Customer Lockbox, approved automatically: $requester ($operator) may reach {_DATA} "
        "until $until (case $case)"
    ),
    EventType.LOCKBOX_APPROVED: (
        f"Customer Lockbox, approved: $requester ($operator) may reach {_DATA} until $until "
        "(case $case)"
    ),
    EventType.LOCKBOX_DENIED: (
        f"Customer Lockbox, denied: $requester's ($operator) request for {_DATA} (case $case)"
    ),
    EventType.LOCKBOX_CANCELLED: (
        f"Customer Lockbox, withdrawn: $requester ($operator) no longer asks for {_DATA} "
        "(case $case)"
    ),
    EventType.LOCKBOX_REVOKED: (
        f"Customer Lockbox, revoked: $requester's ($operator) access to {_DATA} (case $case)"
    ),
    EventType.LOCKBOX_EXPIRED: (
        f"Customer Lockbox, expired without a decision: $requester's ($operator) request for "
        f"{_DATA} (case $case)"
    ),
}


def lockbox_link(ctx: ServiceContext, request_id: UUID) -> str:
    """The lockbox request's page; each side's web page shows it as that side may see it."""
    return f"{ctx.public_url.rstrip('/')}/lockbox/{request_id}"


def lockbox_approvers(uow: UnitOfWork, org_id: UUID, *, at: datetime) -> tuple[str, ...]:
    """The addresses of the organization's people who may decide its lockbox requests at
    ``at``: holders of the approver role directly, through a role group or a group, standing or
    just in time, enabled people only (as ``LockboxRequest.decision_refusal`` asks)."""
    people: dict[UUID, User] = {}
    for member in role_holders(uow, org_id, PolicyType.ROLE, APPROVER_ROLE, at=at).items:
        found: list[User | None] = []
        if member.principal_kind is PrincipalKind.USER:
            found.append(uow.users.get_by_upn(member.name))
        else:
            group = uow.groups.find(org_id, member.name)
            if group is not None:
                found += (uow.users.get(i) for i in sorted(group.member_ids))
        for user in found:
            if user is not None and user.org_id == org_id and user.can_approve:
                people[user.id] = user
    return tuple(sorted({u.email for u in people.values()}))


@dataclass(frozen=True)
class _Side:
    """One organization's view of a lockbox request, for its messages."""

    org_id: UUID
    customer: bool  # the customer's side (names its own people) or the operator's

    def name(self, uow: UnitOfWork, request: LockboxRequest, user_id: UUID | None) -> str | None:
        if user_id is None:
            return None
        if not self.customer and user_id != request.requester_id:
            return CUSTOMER_SIDE
        user = uow.users.get(user_id)
        return user.upn if user is not None else str(user_id)


def _decided_by(uow: UnitOfWork, side: _Side, request: LockboxRequest) -> str | None:
    if request.decided_by is None:
        return "automatic" if request.status is RequestStatus.APPROVED else None
    return side.name(uow, request, request.decided_by)


def _facts(request: LockboxRequest, *, customer: str, operator: str) -> dict[str, str]:
    return {
        "requester": request.requester_upn,
        "operator": operator,
        "customer": customer,
        "service": request.service,
        "case": request.case_reference,
        "hours": str(request.duration_hours),
        "deadline": iso(request.pending_until),
        "until": iso(request.end) if request.end else "-",
    }


def _details(
    uow: UnitOfWork,
    side: _Side,
    request: LockboxRequest,
    *,
    customer: str,
    operator: str,
    at: datetime,
) -> str:
    status = request.status_at(at)
    lines = [
        f"Lockbox request: {request.id}",
        f"Requested access: {REQUESTED_ACCESS}",
        f"Customer: {customer}",
        f"Operator: {operator}",
        f"Engineer: {request.requester_upn}",
        f"Service: {request.service}",
        f"Support case: {request.case_reference}",
        "Reason (as the engineer wrote it):",
        *(f"    {line}" for line in request.reason.splitlines() or [""]),
        f"Duration: {request.duration_hours} h",
        f"Status: {status.value}",
    ]
    if status is RequestStatus.PENDING:
        lines.append(
            f"Decide by: {iso(request.pending_until)} (filed {iso(request.created_at)}; "
            f"undecided after {PENDING_HOURS} hours, it expires)"
        )
    if request.decided_at is not None and status is not RequestStatus.EXPIRED:
        by = (
            "automatically (the customer does not require approval)"
            if request.decided_by is None
            else f"by {side.name(uow, request, request.decided_by)}"
        )
        lines.append(f"Decision: {iso(request.decided_at)} {by}: {request.decision_comment or '-'}")
    if request.start is not None and request.end is not None:
        lines.append(f"Window: {iso(request.start)} to {iso(request.end)}")
    if request.revoked_at is not None:
        lines.append(
            f"Revoked: {iso(request.revoked_at)} by {side.name(uow, request, request.revoked_by)}"
            f": {request.revocation_comment or '-'}"
        )
    return "\n".join(lines)


def queue_lockbox_event(
    ctx: ServiceContext,
    uow: UnitOfWork,
    *,
    event: EventType,
    request: LockboxRequest,
    at: datetime,
    key: str | None = None,
) -> int:
    """Queue the emails and webhook deliveries of a lockbox ``event``, in this transaction, on
    each side; returns how many were new. ``key`` makes the notice unique (by default one per
    event and request), so a repeated sweep queues nothing twice."""
    if event not in LOCKBOX_EVENTS:
        raise AssertionError(event)
    customer_org, operator_org = (
        uow.orgs.get(request.customer_org_id),
        uow.orgs.get(request.operator_org_id),
    )
    customer = customer_org.name if customer_org else str(request.customer_org_id)
    operator = operator_org.name if operator_org else str(request.operator_org_id)
    engineer = uow.users.get(request.requester_id)
    who = lockbox_audience(
        event,
        engineer=engineer.email if engineer is not None else request.requester_upn,
        approvers=lockbox_approvers(uow, request.customer_org_id, at=at),
    )
    facts = _facts(request, customer=customer, operator=operator)
    headline = Template(LOCKBOX_HEADLINES[event]).safe_substitute(facts)
    link = lockbox_link(ctx, request.id)
    base_key = key or f"{event.value}:{request.id}"
    queued = 0
    for side, recipients, organization in (
        (_Side(request.customer_org_id, customer=True), who.customer, customer),
        (_Side(request.operator_org_id, customer=False), who.operator, operator),
    ):
        side_key = f"{base_key}:{'customer' if side.customer else 'operator'}"
        if recipients:
            details = _details(uow, side, request, customer=customer, operator=operator, at=at)
            queued += uow.outbox.add(
                email_message(
                    org_id=side.org_id,
                    event=event,
                    key=f"{side_key}:email",
                    at=at,
                    to=tuple(dict.fromkeys(recipients)),
                    cc=(),
                    headline=headline,
                    details=details,
                    link=link,
                    organization=organization,
                )
            )
        for endpoint in uow.webhooks.in_org(side.org_id):
            if not endpoint.wants(event):
                continue
            body = _webhook_body(
                uow,
                endpoint,
                side,
                event,
                request,
                headline=headline,
                link=link,
                at=at,
                names=(customer, operator),
            )
            queued += uow.outbox.add(
                OutboxMessage(
                    id=uuid4(),
                    org_id=side.org_id,
                    channel=Channel.WEBHOOK,
                    event=event,
                    idempotency_key=f"{side_key}:webhook:{endpoint.id}",
                    created_at=at,
                    next_attempt_at=at,
                    destination=endpoint.id,
                    payload=body,
                )
            )
    return queued


def _webhook_body(
    uow: UnitOfWork,
    endpoint: WebhookEndpoint,
    side: _Side,
    event: EventType,
    request: LockboxRequest,
    *,
    headline: str,
    link: str,
    at: datetime,
    names: tuple[str, str],
) -> dict[str, Any]:
    if endpoint.format is WebhookFormat.SLACK:
        return {"text": f"{slack_escape(headline)} <{link}|Open the lockbox request>"}
    customer, operator = names
    return {
        "type": event.value,
        "timestamp": iso(at),
        "data": {
            "request_id": str(request.id),
            "organization_id": str(side.org_id),
            "requested_access": REQUESTED_ACCESS,
            "customer": customer,
            "operator": operator,
            "requester": request.requester_upn,
            "service": request.service,
            "case_reference": request.case_reference,
            "reason": request.reason,
            "duration_hours": request.duration_hours,
            "status": request.status_at(at).value,
            "pending_until": iso(request.pending_until),
            "valid_from": iso(request.start) if request.start else None,
            "valid_until": iso(request.end) if request.end else None,
            "decided_by": _decided_by(uow, side, request),
            "comment": request.decision_comment or None,
            "revoked_at": iso(request.revoked_at) if request.revoked_at else None,
            "revoked_by": side.name(uow, request, request.revoked_by),
            "link": link,
        },
    }
