"""The worker's jobs: deliver the outbox after commit, and the sweeps (expiry bookkeeping and
warnings). Each delivery runs outside any transaction, so a slow channel holds no lock that a
decision needs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol
from uuid import UUID

from jitpam.domain.errors import InvalidInput, NotFound
from jitpam.domain.notifications import Channel, DeliveryState, OutboxMessage, WebhookEndpoint
from jitpam.services.context import Caller, ServiceContext
from jitpam.services.guard import authorize, event, use_case
from jitpam.services.requests import settle_requests, warn_expiring


class DeliveryFailed(Exception):
    """The channel did not take the message; the worker retries later."""


class Sender(Protocol):
    def send(self, message: OutboxMessage, endpoint: WebhookEndpoint | None) -> None:
        """Deliver one message; raises DeliveryFailed (or any error) when it did not go out."""
        ...


@dataclass(frozen=True)
class DeliveryPolicy:
    max_attempts: int = 8
    lease: timedelta = timedelta(minutes=2)  # longer than one batch takes to send
    batch: int = 10


def deliver_due(
    ctx: ServiceContext,
    *,
    senders: Mapping[Channel, Sender],
    policy: DeliveryPolicy = DeliveryPolicy(),
) -> int:
    """Claim due messages, send each, record the outcome; returns how many were delivered."""
    with ctx.uow() as uow:
        at = ctx.clock.now()
        claimed = uow.outbox.claim(at=at, lease_until=at + policy.lease, limit=policy.batch)
        endpoints = {
            m.id: uow.webhooks.get(m.destination) if m.destination else None for m in claimed
        }
        uow.commit()
    delivered = 0
    for message in claimed:
        sender = senders.get(message.channel)
        endpoint = endpoints[message.id]
        try:
            if sender is None:
                raise DeliveryFailed(f"no {message.channel.value} channel is configured")
            if message.channel is Channel.WEBHOOK and endpoint is None:
                raise DeliveryFailed("the webhook endpoint was removed")
            sender.send(message, endpoint)
        except Exception as exc:  # any failure of a channel is the channel's, never the worker's
            message.failed(
                error=f"{type(exc).__name__}: {exc}",
                at=ctx.clock.now(),
                max_attempts=policy.max_attempts,
            )
        else:
            message.delivered(at=ctx.clock.now())
            delivered += 1
        with ctx.uow() as uow:
            uow.outbox.save(message)
            uow.commit()
    return delivered


def run_sweeps(ctx: ServiceContext, *, warning: timedelta) -> int:
    """For every organization: write down expiries and completions, queue expiry warnings.
    Returns how many requests were settled and warnings queued."""
    with ctx.uow() as uow:
        orgs = [o.id for o in uow.orgs.all()]
    done = 0
    for org_id in orgs:
        done += settle_requests(ctx, org_id=org_id)
        done += warn_expiring(ctx, org_id=org_id, within=warning)
    return done


def list_outbox(
    ctx: ServiceContext,
    *,
    caller: Caller,
    state: DeliveryState | None = None,
    after: str | None = None,
    limit: int = 100,
) -> list[OutboxMessage]:
    """The organization's notifications, newest first (jitpam\\Role Management)."""
    with use_case(ctx, caller=caller, operation="Get-Outbox", target="outbox") as uow:
        authorize(uow, caller, "Set-OrganizationConfig", ctx.clock.now())
        return uow.outbox.listing(caller.org_id, state=state, after=after, limit=limit)


def retry_message(ctx: ServiceContext, *, caller: Caller, message_id: object) -> OutboxMessage:
    """Put a dead (or waiting) message back in line now; audited."""
    op = "Retry-OutboxMessage"
    with use_case(ctx, caller=caller, operation=op, target=str(message_id)) as uow:
        at = ctx.clock.now()
        actor, _ = authorize(uow, caller, "Set-OrganizationConfig", at)
        try:
            mid = message_id if isinstance(message_id, UUID) else UUID(str(message_id))
        except ValueError:
            raise InvalidInput("a message id is a UUID") from None
        message = uow.outbox.get(mid)
        if message is None or message.org_id != caller.org_id:
            raise NotFound(f"no message {message_id} in this organization")
        if message.state is DeliveryState.DELIVERED:
            raise InvalidInput(f"message {mid} was delivered already")
        message.retry(at=at)
        uow.outbox.save(message)
        uow.record(
            event(
                caller=caller,
                actor=actor,
                operation=op,
                target=str(mid),
                at=at,
                details={"channel": message.channel.value, "event": message.event.value},
            )
        )
        uow.commit()
        return message
