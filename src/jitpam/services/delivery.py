"""The worker's jobs: deliver the outbox after commit, and the sweeps (expiry bookkeeping and
warnings). Each delivery runs outside any transaction, so a slow channel holds no lock that a
decision needs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol
from uuid import UUID

from jitpam.domain.audit import Actor, AuditEvent
from jitpam.domain.errors import InvalidInput, JitpamError, NotFound
from jitpam.domain.notifications import Channel, DeliveryState, OutboxMessage, WebhookEndpoint
from jitpam.domain.operations import AuditOperation
from jitpam.services import lockbox
from jitpam.services.authorization import authorize
from jitpam.services.context import Caller, ServiceContext
from jitpam.services.ports import Page
from jitpam.services.requests import SWEEP_BATCH, settle_requests, warn_expiring
from jitpam.services.use_case import use_case

# Settlement batches one sweep writes at most per organization.
SETTLE_BATCHES = 20


class DeliveryFailed(Exception):
    """The channel did not take the message; the worker retries later."""


class Sender(Protocol):
    def send(self, message: OutboxMessage, endpoint: WebhookEndpoint | None) -> None:
        """Deliver one message; raises DeliveryFailed (or any error) when it did not go out."""
        ...


@dataclass(frozen=True)
class DeliveryPolicy:
    max_attempts: int = 24  # with backoff capped at an hour: about a day of retries
    lease: timedelta = timedelta(minutes=2)  # longer than one send may take
    batch: int = 50


def deliver_due(
    ctx: ServiceContext,
    *,
    senders: Mapping[Channel, Sender],
    policy: DeliveryPolicy = DeliveryPolicy(),
    stopping: Callable[[], bool] = lambda: False,
) -> int:
    """Deliver up to ``policy.batch`` due messages, one claim at a time, so each lease covers
    one send; returns how many were delivered. Channels without a sender are left waiting
    (their attempts are not used up)."""
    channels = frozenset(senders)
    delivered = 0
    for _ in range(policy.batch):
        if stopping() or not channels:
            break
        with ctx.uow() as uow:
            at = ctx.clock.now()
            lease_until = at + policy.lease
            claimed = uow.outbox.claim(at=at, lease_until=lease_until, limit=1, channels=channels)
            endpoint = (
                uow.webhooks.get(claimed[0].destination)
                if claimed and claimed[0].destination
                else None
            )
            uow.commit()
        if not claimed:
            break
        message = claimed[0]
        try:
            if message.channel is Channel.WEBHOOK and endpoint is None:
                message.failed(
                    error="the webhook endpoint was removed", at=ctx.clock.now(), max_attempts=0
                )
            else:
                senders[message.channel].send(message, endpoint)
                message.delivered(at=ctx.clock.now())
        except Exception as exc:  # a channel's failure is the channel's, never the worker's
            message.failed(
                error=f"{type(exc).__name__}: {exc}",
                at=ctx.clock.now(),
                max_attempts=policy.max_attempts,
            )
        with ctx.uow() as uow:
            kept = uow.outbox.save(message, lease_until=lease_until)
            uow.commit()
        # A lease that ran out means another worker owns the message now: its result stands.
        delivered += int(kept and message.state is DeliveryState.DELIVERED)
    return delivered


def run_sweeps(ctx: ServiceContext, *, warning: timedelta) -> int:
    """For every organization: write down expiries and completions, queue expiry warnings.
    Returns how many requests were settled and warnings queued."""
    with ctx.reader() as uow:
        orgs = [o.id for o in uow.orgs.all()]
    done = 0
    for org_id in orgs:
        # Another worker may settle the same request at the same moment: its win is ours too.
        with contextlib.suppress(JitpamError):
            # A batch per transaction, so writers wait for one batch at most; a backlog (a
            # worker that was down) is worked off over a few sweeps.
            for _ in range(SETTLE_BATCHES):
                settled = settle_requests(ctx, org_id=org_id)
                done += settled
                if settled < SWEEP_BATCH:
                    break
        with contextlib.suppress(JitpamError):
            done += warn_expiring(ctx, org_id=org_id, within=warning)
    with contextlib.suppress(JitpamError):  # Customer Lockbox requests, installation-wide
        for _ in range(SETTLE_BATCHES):
            settled = lockbox.settle_requests(ctx)
            done += settled
            if settled < lockbox.SETTLE_BATCH:
                break
    return done


def list_outbox(
    ctx: ServiceContext,
    *,
    caller: Caller,
    state: DeliveryState | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> Page[OutboxMessage]:
    """The organization's notifications, newest first, one page of ``limit`` after
    ``cursor`` (jitpam\\Role Management); raises InvalidInput for a cursor the listing did
    not make."""
    with use_case(ctx, caller=caller, operation=AuditOperation.GET_OUTBOX, target="outbox") as uow:
        authorize(uow, caller, AuditOperation.SET_ORGANIZATION_CONFIG, ctx.clock.now())
        return uow.outbox.listing(caller.org_id, state=state, cursor=cursor, limit=limit)


def retry_message(ctx: ServiceContext, *, caller: Caller, message_id: object) -> OutboxMessage:
    """Put a dead (or waiting) message back in line now; audited."""
    op = AuditOperation.RETRY_OUTBOX_MESSAGE
    with use_case(ctx, caller=caller, operation=op, target=str(message_id)) as uow:
        at = ctx.clock.now()
        actor, _ = authorize(uow, caller, AuditOperation.SET_ORGANIZATION_CONFIG, at)
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
            AuditEvent(
                org_id=caller.org_id,
                actor=Actor.of(actor),
                operation=op,
                target=str(mid),
                at=at,
                details={"channel": message.channel.value, "event": message.event.value},
            )
        )
        uow.commit()
        return message
