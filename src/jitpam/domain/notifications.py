"""Notifications: which events tell whom what, and the outbox messages that carry them.

Who gets what (the seeds, plus their reviewers' asks): a new request goes to the approver group's
members with the requester in CC; a decision (approved, auto-approved, denied) goes to the
requester with the group in CC; an expiry without decision to the requester and the group; a
revocation and a grant about to end to the requester; a system account's exempt use to the
organization's default approver group.
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
    WEBHOOK_TEST = "webhook.test"


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
        case EventType.SYSTEM_ACCOUNT_EXEMPTED:
            return Audience(group)
        case EventType.WEBHOOK_TEST:
            return Audience(())
    raise AssertionError(event)


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
