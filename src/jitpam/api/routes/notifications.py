"""Webhook endpoints and the notification outbox."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import Field

from jitpam.api import views
from jitpam.api.deps import AsCaller
from jitpam.api.inputs import Body
from jitpam.domain.notifications import (
    DeliveryState,
    OutboxMessage,
    WebhookEndpoint,
    new_webhook_secret,
)
from jitpam.domain.timeutil import iso
from jitpam.services import delivery, webhooks
from jitpam.services.context import Caller, ServiceContext

router = APIRouter(tags=["notifications"])


class NewWebhook(Body):
    url: str = Field(max_length=2048)
    events: list[str] = Field(min_length=1, max_length=20)
    format: str = Field(default="json", max_length=16)


def webhook(w: WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": str(w.id),
        "url": w.url,
        "events": sorted(e.value for e in w.events),
        "format": w.format.value,
        "created_at": iso(w.created_at),
    }


def message(m: OutboxMessage) -> dict[str, Any]:
    return {
        "id": str(m.id),
        "channel": m.channel.value,
        "event": m.event.value,
        "state": m.state.value,
        "attempts": m.attempts,
        "next_attempt_at": iso(m.next_attempt_at),
        "last_error": m.last_error,
        "created_at": iso(m.created_at),
        "delivered_at": views.when(m.delivered_at),
        "destination": str(m.destination) if m.destination else None,
        "recipients": m.payload.get("to", []) if m.channel.value == "email" else [],
    }


@router.get("/webhooks", summary="Webhook endpoints of the organization")
async def list_webhooks(calls: AsCaller) -> dict[str, Any]:
    return await calls.run(
        lambda ctx, caller: views.page(
            [webhook(w) for w in webhooks.list_webhooks(ctx, caller=caller)]
        )
    )


@router.post(
    "/webhooks",
    status_code=201,
    summary="Add a webhook endpoint (its signing secret is shown once)",
)
async def add_webhook(body: NewWebhook, calls: AsCaller) -> dict[str, Any]:
    urls = calls.runtime.urls

    def work(ctx: ServiceContext, caller: Caller) -> dict[str, Any]:
        secret = new_webhook_secret()
        w = webhooks.add_webhook(
            ctx,
            caller=caller,
            url=body.url,
            events=body.events,
            format=body.format,
            urls=urls,
            secret=secret,
        )
        return {**webhook(w), "secret": secret}

    # Not queued with the writes: the URL's host is looked up (DNS) first, which may be slow.
    return await calls.run(work)


@router.delete("/webhooks/{webhook_id}", summary="Remove a webhook endpoint")
async def remove_webhook(webhook_id: UUID, calls: AsCaller) -> dict[str, Any]:
    return await calls.run(
        lambda ctx, caller: webhook(
            webhooks.remove_webhook(ctx, caller=caller, endpoint_id=webhook_id)
        ),
        writes=True,
    )


@router.post("/webhooks/{webhook_id}/test", status_code=202, summary="Queue a test delivery")
async def test_webhook(webhook_id: UUID, calls: AsCaller) -> dict[str, Any]:
    return await calls.run(
        lambda ctx, caller: message(
            webhooks.test_webhook(ctx, caller=caller, endpoint_id=webhook_id)
        ),
        writes=True,
    )


@router.get("/outbox", summary="Notifications queued, delivered or dead, newest first")
async def list_outbox(
    calls: AsCaller,
    state: DeliveryState | None = None,
    cursor: str | None = Query(default=None, max_length=500),
    limit: int = Query(default=100, ge=1, le=500),
) -> dict[str, Any]:
    def work(ctx: ServiceContext, caller: Caller) -> dict[str, Any]:
        found = delivery.list_outbox(ctx, caller=caller, state=state, cursor=cursor, limit=limit)
        return views.page([message(m) for m in found.items], found.next_cursor)

    return await calls.run(work)


@router.post("/outbox/{message_id}/retry", summary="Put a message back in line now")
async def retry(message_id: UUID, calls: AsCaller) -> dict[str, Any]:
    return await calls.run(
        lambda ctx, caller: message(
            delivery.retry_message(ctx, caller=caller, message_id=message_id)
        ),
        writes=True,
    )
