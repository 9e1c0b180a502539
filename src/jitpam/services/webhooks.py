"""Webhook endpoints of an organization (jitpam\\Role Management manages them)."""

from __future__ import annotations

from typing import Protocol
from urllib.parse import urlsplit
from uuid import UUID, uuid4

from jitpam.domain.audit import Actor, AuditEvent
from jitpam.domain.errors import InvalidInput, NotFound
from jitpam.domain.notifications import (
    Channel,
    EventType,
    OutboxMessage,
    WebhookEndpoint,
    WebhookFormat,
)
from jitpam.domain.operations import AuditOperation
from jitpam.domain.timeutil import iso
from jitpam.services.authorization import authorize
from jitpam.services.context import Caller, ServiceContext
from jitpam.services.inputs import parse_enum
from jitpam.services.ports import UnitOfWork
from jitpam.services.use_case import use_case

MANAGE = AuditOperation.SET_ORGANIZATION_CONFIG


class UrlCheck(Protocol):
    def check(self, url: str) -> None:
        """Raises InvalidInput for a URL jitpam must not call (loopback, private, not http(s))."""
        ...


def add_webhook(
    ctx: ServiceContext,
    *,
    caller: Caller,
    url: str,
    events: list[str],
    format: str = "json",
    urls: UrlCheck,
    secret: str,
) -> WebhookEndpoint:
    """Add an endpoint for some event types; ``secret`` signs its deliveries (shown once)."""
    op = AuditOperation.NEW_WEBHOOK
    # The URL's host is looked up before the transaction, never while it holds the write lock
    # (a name server may take seconds); the verdict is given below, in its turn among the rules.
    refusal: Exception | None = None
    if len(url) <= 2048:
        try:
            urls.check(url)
        except (InvalidInput, ValueError) as exc:
            refusal = exc
    with use_case(ctx, caller=caller, operation=op, target=url_origin(url)) as uow:
        at = ctx.clock.now()
        actor, _ = authorize(uow, caller, MANAGE, at)
        if not events:
            raise InvalidInput("name at least one event type")
        kinds = frozenset(parse_enum(EventType, e, "event type") for e in events)
        if len(url) > 2048:
            raise InvalidInput("the webhook URL is longer than 2048 characters")
        if refusal is not None:
            raise refusal
        endpoint = WebhookEndpoint(
            id=uuid4(),
            org_id=caller.org_id,
            url=url,
            events=kinds,
            format=parse_enum(WebhookFormat, format, "format"),
            secret=secret,
            created_at=at,
        )
        uow.webhooks.add(endpoint)
        uow.record(
            AuditEvent(
                org_id=caller.org_id,
                actor=Actor.of(actor),
                operation=op,
                target=str(endpoint.id),
                at=at,
                details={
                    "url": url_origin(url),
                    "events": sorted(k.value for k in kinds),
                    "format": endpoint.format.value,
                },
            )
        )
        uow.commit()
        return endpoint


def list_webhooks(ctx: ServiceContext, *, caller: Caller) -> list[WebhookEndpoint]:
    with use_case(
        ctx, caller=caller, operation=AuditOperation.GET_WEBHOOK, target="webhooks"
    ) as uow:
        authorize(uow, caller, MANAGE, ctx.clock.now())
        return uow.webhooks.in_org(caller.org_id)


def _endpoint(uow: UnitOfWork, caller: Caller, endpoint_id: UUID) -> WebhookEndpoint:
    found = uow.webhooks.get(endpoint_id)
    if found is None or found.org_id != caller.org_id:
        raise NotFound(f"no webhook {endpoint_id} in this organization")
    return found


def remove_webhook(ctx: ServiceContext, *, caller: Caller, endpoint_id: UUID) -> WebhookEndpoint:
    op = AuditOperation.REMOVE_WEBHOOK
    with use_case(ctx, caller=caller, operation=op, target=str(endpoint_id)) as uow:
        at = ctx.clock.now()
        actor, _ = authorize(uow, caller, MANAGE, at)
        found = _endpoint(uow, caller, endpoint_id)
        uow.webhooks.remove(found.id)
        uow.record(
            AuditEvent(
                org_id=caller.org_id,
                actor=Actor.of(actor),
                operation=op,
                target=str(found.id),
                at=at,
                details={"url": url_origin(found.url)},
            )
        )
        uow.commit()
        return found


def test_webhook(ctx: ServiceContext, *, caller: Caller, endpoint_id: UUID) -> OutboxMessage:
    """Queue a test delivery to the endpoint; the worker sends it like any other."""
    op = AuditOperation.TEST_WEBHOOK
    with use_case(ctx, caller=caller, operation=op, target=str(endpoint_id)) as uow:
        at = ctx.clock.now()
        actor, _ = authorize(uow, caller, MANAGE, at)
        found = _endpoint(uow, caller, endpoint_id)
        message_id = uuid4()
        payload = (
            {"text": f"jitpam test message from {actor.upn}"}
            if found.format is WebhookFormat.SLACK
            else {"type": "webhook.test", "timestamp": iso(at), "data": {"by": actor.upn}}
        )
        message = OutboxMessage(
            id=message_id,
            org_id=caller.org_id,
            channel=Channel.WEBHOOK,
            event=EventType.WEBHOOK_TEST,
            idempotency_key=f"webhook.test:{message_id}",
            payload=payload,
            created_at=at,
            next_attempt_at=at,
            destination=found.id,
        )
        uow.outbox.add(message)
        uow.record(
            AuditEvent(
                org_id=caller.org_id,
                actor=Actor.of(actor),
                operation=op,
                target=str(found.id),
                at=at,
            )
        )
        uow.commit()
        return message


def url_origin(url: str) -> str:
    """Scheme and host only: a webhook URL's path can itself be a credential (Slack's are)."""
    parts = urlsplit(url)
    return (
        f"{parts.scheme}://{parts.hostname}" if parts.scheme and parts.hostname else "(not a URL)"
    )
