"""Notifications: which events tell whom what, and the outbox messages that carry them.

Who gets what (the seeds, plus their reviewers' asks): a new request goes to the approver group's
members with the requester in CC; a decision (approved, auto-approved, denied) goes to the
requester with the group in CC; an expiry without decision to the requester and the group; a
revocation and a grant about to end to the requester; a system account's exempt use to the
organization's default approver group.

Customer Lockbox notices go to two organizations, never in one message: the customer's approvers
get the customer's copy and the operator's engineer the operator's, so the operator never learns
who at the customer holds the approver role or decided (see ``lockbox_audience``).
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

BACKOFF_BASE = timedelta(seconds=10)
BACKOFF_CAP = timedelta(hours=1)


class EventType(StrEnum):
    REQUEST_CREATED = "request.created"
    REQUEST_APPROVED = "request.approved"
    REQUEST_AUTO_APPROVED = "request.auto_approved"
    REQUEST_DENIED = "request.denied"
    REQUEST_EXPIRED = "request.expired"
    AUTHORIZATION_REVOKED = "authorization.revoked"
    AUTHORIZATION_EXPIRING = "authorization.expiring"
    SYSTEM_ACCOUNT_EXEMPTED = "system_account.exempted"
    CONNECTOR_FAILING = "connector.failing"
    WEBHOOK_TEST = "webhook.test"
    LOCKBOX_CREATED = "lockbox.created"
    LOCKBOX_AUTO_APPROVED = "lockbox.auto_approved"
    LOCKBOX_APPROVED = "lockbox.approved"
    LOCKBOX_DENIED = "lockbox.denied"
    LOCKBOX_CANCELLED = "lockbox.cancelled"
    LOCKBOX_REVOKED = "lockbox.revoked"
    LOCKBOX_EXPIRED = "lockbox.expired"


LOCKBOX_EVENTS = frozenset(e for e in EventType if e.value.startswith("lockbox."))


class Channel(StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


@dataclass(frozen=True)
class Audience:
    """Who an event's message is for: ``to`` and ``cc`` are email addresses."""

    to: tuple[str, ...]
    cc: tuple[str, ...] = ()


def audience(event: EventType, *, requester: str, group: tuple[str, ...]) -> Audience:
    """The recipients of ``event`` given the requester's and the approver group's addresses."""
    match event:
        case EventType.REQUEST_CREATED:
            return Audience(group, (requester,))
        case (
            EventType.REQUEST_APPROVED | EventType.REQUEST_AUTO_APPROVED | EventType.REQUEST_DENIED
        ):
            return Audience((requester,), group)
        case EventType.REQUEST_EXPIRED:
            return Audience((requester, *group))
        case EventType.AUTHORIZATION_REVOKED | EventType.AUTHORIZATION_EXPIRING:
            return Audience((requester,))
        case EventType.SYSTEM_ACCOUNT_EXEMPTED | EventType.CONNECTOR_FAILING:
            return Audience(group)
        case EventType.WEBHOOK_TEST:
            return Audience(())
    raise AssertionError(event)  # lockbox events: lockbox_audience


@dataclass(frozen=True)
class LockboxAudience:
    """Who a lockbox event's messages are for, one message per side: ``customer`` the customer's
    approvers' addresses, ``operator`` the engineer's (empty: that side gets no email)."""

    customer: tuple[str, ...]
    operator: tuple[str, ...]


def lockbox_audience(
    event: EventType, *, engineer: str, approvers: tuple[str, ...]
) -> LockboxAudience:
    """The recipients of a lockbox ``event``: a new request asks the customer's approvers (the
    engineer gets a receipt); an automatic approval tells the approvers it was filed and
    approved; a decision goes to the engineer with the approvers in copy (a copy of their own);
    a cancelled request tells the approvers it needs no decision any more; a revocation and an
    expiry go to both."""
    if event not in LOCKBOX_EVENTS:
        raise AssertionError(event)
    if event is EventType.LOCKBOX_CANCELLED:
        return LockboxAudience(approvers, ())
    return LockboxAudience(approvers, (engineer,))


@dataclass
class OutboxMessage:
    """One delivery to do: written with the change that causes it, delivered after commit."""

    id: UUID
    org_id: UUID
    channel: Channel
    event: EventType
    idempotency_key: str  # unique: the same notice is never queued twice
    payload: dict[str, Any]
    created_at: datetime
    next_attempt_at: datetime
    destination: UUID | None = None  # the webhook endpoint, for webhook messages
    state: DeliveryState = DeliveryState.PENDING
    attempts: int = 0
    last_error: str | None = None
    delivered_at: datetime | None = None

    def delivered(self, *, at: datetime) -> None:
        """Sent. A note the channel left (recipients it refused) stays in ``last_error``."""
        self.state = DeliveryState.DELIVERED
        self.delivered_at = at

    def failed(self, *, error: str, at: datetime, max_attempts: int) -> None:
        """Count a failed attempt: retry later with exponential backoff, or give up (dead)."""
        self.last_error = error[:500]
        if self.attempts >= max_attempts:  # 0: give up at once (nothing to retry against)
            self.state = DeliveryState.DEAD
            return
        delay = min(BACKOFF_BASE * (2 ** max(self.attempts - 1, 0)), BACKOFF_CAP)
        self.next_attempt_at = at + delay

    def retry(self, *, at: datetime) -> None:
        """Put a dead or pending message back in line now (an operator's decision)."""
        self.state = DeliveryState.PENDING
        self.attempts = 0
        self.next_attempt_at = at


class WebhookFormat(StrEnum):
    JSON = "json"
    SLACK = "slack"


@dataclass(frozen=True)
class WebhookEndpoint:
    id: UUID
    org_id: UUID
    url: str
    events: frozenset[EventType]
    format: WebhookFormat
    secret: str
    created_at: datetime

    def wants(self, event: EventType) -> bool:
        return event in self.events


WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks marker, not a secret


def new_webhook_secret() -> str:
    """A signing secret in the Standard Webhooks form: ``whsec_`` + base64 of 24 random bytes."""
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()
