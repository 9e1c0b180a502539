"""Ports of notification delivery: the outbox and the webhook endpoints."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol
from uuid import UUID

from jitpam.domain.notifications import Channel, DeliveryState, OutboxMessage, WebhookEndpoint
from jitpam.services.ports.common import Page


class OutboxRepository(Protocol):
    def add(self, message: OutboxMessage) -> bool:
        """Queue a message; False (and nothing queued) when its idempotency key is taken."""
        ...

    def taken(self, keys: Sequence[str]) -> frozenset[str]:
        """Which of these idempotency keys a queued message has."""
        ...

    def claim(
        self, *, at: datetime, lease_until: datetime, limit: int, channels: frozenset[Channel]
    ) -> list[OutboxMessage]:
        """Take up to ``limit`` due messages for delivery until ``lease_until``: another worker
        skips them (FOR UPDATE SKIP LOCKED on PostgreSQL); a crashed worker's lease runs out.
        Counts the attempt."""
        ...

    def save(self, message: OutboxMessage, *, lease_until: datetime | None = None) -> bool:
        """Write the outcome of a delivery attempt and release the lease. With ``lease_until``,
        only while that lease is still this worker's: False (nothing written) when it ran out
        and another worker took the message over."""
        ...

    def get(self, message_id: UUID) -> OutboxMessage | None: ...
    def listing(
        self, org_id: UUID, *, state: DeliveryState | None, cursor: str | None, limit: int
    ) -> Page[OutboxMessage]:
        """Newest first, one page of ``limit`` after ``cursor``; raises InvalidInput for a
        cursor this adapter did not make."""
        ...


class WebhookRepository(Protocol):
    def add(self, endpoint: WebhookEndpoint) -> None: ...
    def get(self, endpoint_id: UUID) -> WebhookEndpoint | None: ...
    def remove(self, endpoint_id: UUID) -> None: ...
    def in_org(self, org_id: UUID) -> list[WebhookEndpoint]: ...
