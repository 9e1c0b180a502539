"""Queueing notifications: the outbox rows a use case writes in its own transaction.

Nothing here sends anything: the worker (``services.delivery``) delivers after commit, so a slow
or failing channel never delays or changes a decision.
"""

from __future__ import annotations

import hashlib
import html
from datetime import datetime
from functools import cache
from importlib import resources
from string import Template
from typing import Any
from uuid import UUID, uuid4

from jitpam.domain.notifications import (
    Channel,
    EventType,
    OutboxMessage,
    WebhookEndpoint,
    WebhookFormat,
    audience,
)
from jitpam.domain.requests import AccessRequest
from jitpam.domain.timeutil import iso
from jitpam.services.context import ServiceContext
from jitpam.services.ports import UnitOfWork

HEADLINES = {
    EventType.REQUEST_CREATED: "$requester asks for $kind '$target' for $hours h",
    EventType.REQUEST_APPROVED: "Approved: $requester may use $kind '$target' until $until",
    EventType.REQUEST_AUTO_APPROVED: (
        "Approved automatically: $requester may use $kind '$target' until $until"
    ),
    EventType.REQUEST_DENIED: "Denied: $requester's request for $kind '$target'",
    EventType.REQUEST_EXPIRED: (
        "Expired without a decision: $requester's request for $kind '$target'"
    ),
    EventType.AUTHORIZATION_REVOKED: "Revoked: $requester's access to $kind '$target'",
    EventType.AUTHORIZATION_EXPIRING: "Ending at $until: $requester's access to $kind '$target'",
    EventType.SYSTEM_ACCOUNT_EXEMPTED: (
        "System account $requester used '$target', exempt from control"
    ),
    EventType.CONNECTOR_FAILING: "Connector $target has failed $failures times in a row",
}


@cache  # package files: read once
def _template(name: str) -> Template:
    return Template(resources.files("jitpam.templates").joinpath(name).read_text(encoding="utf-8"))


def request_link(ctx: ServiceContext, request_id: UUID) -> str:
    return f"{ctx.public_url.rstrip('/')}/requests/{request_id}"


def _facts(request: AccessRequest) -> dict[str, str]:
    auth = request.authorization
    return {
        "requester": request.requester_upn,
        "kind": request.type.label,
        "target": str(request.target),
        "hours": str(request.duration_hours),
        "until": iso(auth.end) if auth else "-",
    }


def _details(request: AccessRequest, extra: dict[str, str]) -> str:
    lines = [
        f"Request: {request.id}",
        f"Requester: {request.requester_upn}",
        f"{request.type.label}: {request.target}",
        "Reason (as the requester wrote it):",
        *(f"    {line}" for line in request.reason.splitlines() or [""]),
        f"Duration: {request.duration_hours} h",
        f"Pending until: {iso(request.pending_until)}",
    ]
    if request.authorization is not None:
        lines.append(
            f"Window: {iso(request.authorization.start)} to {iso(request.authorization.end)}"
        )
    for review in request.reviews:
        lines.append(
            f"Review: {review.decision.value} at {iso(review.at)}: {review.comment or '-'}"
        )
    lines += [f"{k}: {v}" for k, v in extra.items()]
    return "\n".join(lines)


def _group_emails(uow: UnitOfWork, group_id: UUID | None) -> tuple[str, ...]:
    group = uow.groups.get(group_id) if group_id is not None else None
    if group is None:
        return ()
    users = (uow.users.get(m) for m in sorted(group.member_ids))
    return tuple(sorted(u.email for u in users if u is not None and u.enabled))


def _approver_group(uow: UnitOfWork, request: AccessRequest) -> UUID | None:
    policy = uow.policies.get(request.policy_id)
    if policy is not None and policy.approver_group_id is not None:
        return policy.approver_group_id
    return uow.orgs.control(request.org_id).default_approver_group_id


def queue_request_event(
    ctx: ServiceContext,
    uow: UnitOfWork,
    *,
    event: EventType,
    request: AccessRequest,
    at: datetime,
    extra: dict[str, str] | None = None,
    key: str | None = None,
) -> int:
    """Queue the email and the webhook deliveries for ``event`` on ``request``, in this
    transaction; returns how many were new. ``key`` makes the notice unique (by default one per
    event and request), so a repeated sweep queues nothing twice."""
    queued = 0
    extra = extra or {}
    org = uow.orgs.get(request.org_id)
    requester = uow.users.get(request.requester_id)
    group_id = (
        uow.orgs.control(request.org_id).default_approver_group_id
        if event is EventType.SYSTEM_ACCOUNT_EXEMPTED
        else _approver_group(uow, request)
    )
    who = audience(
        event,
        requester=requester.email if requester else request.requester_upn,
        group=_group_emails(uow, group_id),
    )
    facts = _facts(request)
    headline = Template(HEADLINES[event]).safe_substitute(facts)
    details = _details(request, extra)
    link = request_link(ctx, request.id)
    organization = org.name if org else ""
    base_key = key or f"{event.value}:{request.id}"
    recipients = tuple(dict.fromkeys(who.to))
    copies = tuple(c for c in dict.fromkeys(who.cc) if c not in recipients)
    if recipients:
        queued += uow.outbox.add(
            email_message(
                org_id=request.org_id,
                event=event,
                key=f"{base_key}:email",
                at=at,
                to=recipients,
                cc=copies,
                headline=headline,
                details=details,
                link=link,
                organization=organization,
            )
        )
    for endpoint in uow.webhooks.in_org(request.org_id):
        if endpoint.wants(event):
            queued += uow.outbox.add(
                OutboxMessage(
                    id=uuid4(),
                    org_id=request.org_id,
                    channel=Channel.WEBHOOK,
                    event=event,
                    idempotency_key=f"{base_key}:webhook:{endpoint.id}",
                    created_at=at,
                    next_attempt_at=at,
                    destination=endpoint.id,
                    payload=webhook_body(
                        endpoint, event, request, headline=headline, link=link, at=at, extra=extra
                    ),
                )
            )
    return queued


def webhook_body(
    endpoint: WebhookEndpoint,
    event: EventType,
    request: AccessRequest,
    *,
    headline: str,
    link: str,
    at: datetime,
    extra: dict[str, str],
) -> dict[str, Any]:
    if endpoint.format is WebhookFormat.SLACK:
        return {"text": f"{slack_escape(headline)} <{link}|Open the request>"}
    auth = request.authorization
    return {
        "type": event.value,
        "timestamp": iso(at),
        "data": {
            "request_id": str(request.id),
            "organization_id": str(request.org_id),
            "requester": request.requester_upn,
            "type": request.type.value,
            "target": str(request.target),
            "reason": request.reason,
            "duration_hours": request.duration_hours,
            "status": request.status_at(at).value,
            "authorization_id": str(auth.id) if auth else None,
            "valid_until": iso(auth.end) if auth else None,
            "link": link,
            **extra,
        },
    }


def queue_exempt_use(
    ctx: ServiceContext, uow: UnitOfWork, *, org_id: UUID, user: str, task: str, at: datetime
) -> int:
    """Tell the default approver group that a system account used a task exempt from control,
    once per account, task and day (the seeds ask that such use be reviewed regularly)."""
    event = EventType.SYSTEM_ACCOUNT_EXEMPTED
    day = hashlib.sha256(f"{org_id}|{user}|{task}|{at.date().isoformat()}".encode()).hexdigest()
    return queue_organization_notice(
        ctx,
        uow,
        org_id=org_id,
        event=event,
        at=at,
        key=f"{event.value}:{day}",
        headline=Template(HEADLINES[event]).safe_substitute(requester=user, target=task),
        details=f"System account: {user}\nTask: {task}\nFirst use today: {iso(at)}",
        page="/audit",
        page_title="Audit log",
        data={"user": user, "task": task},
    )


def queue_organization_notice(
    ctx: ServiceContext,
    uow: UnitOfWork,
    *,
    org_id: UUID,
    event: EventType,
    at: datetime,
    key: str,
    headline: str,
    details: str,
    page: str,
    page_title: str,
    data: dict[str, Any],
) -> int:
    """Tell the organization's default approver group (email) and the webhooks that want it
    about ``event``, once per ``key``; returns how many messages were new."""
    org = uow.orgs.get(org_id)
    group = _group_emails(uow, uow.orgs.control(org_id).default_approver_group_id)
    who = audience(event, requester="", group=group)
    link = f"{ctx.public_url.rstrip('/')}{page}"
    queued = 0
    for endpoint in uow.webhooks.in_org(org_id):
        if not endpoint.wants(event):
            continue
        body: dict[str, Any] = (
            {"text": f"{slack_escape(headline)} <{link}|{page_title}>"}
            if endpoint.format is WebhookFormat.SLACK
            else {
                "type": event.value,
                "timestamp": iso(at),
                "data": {"organization_id": str(org_id), **data, "link": link},
            }
        )
        queued += uow.outbox.add(
            OutboxMessage(
                id=uuid4(),
                org_id=org_id,
                channel=Channel.WEBHOOK,
                event=event,
                idempotency_key=f"{key}:webhook:{endpoint.id}",
                created_at=at,
                next_attempt_at=at,
                destination=endpoint.id,
                payload=body,
            )
        )
    if not who.to:
        return queued
    queued += uow.outbox.add(
        email_message(
            org_id=org_id,
            event=event,
            key=f"{key}:email",
            at=at,
            to=who.to,
            cc=(),
            headline=headline,
            details=details,
            link=link,
            organization=org.name if org else "",
        )
    )
    return queued


def slack_escape(text: str) -> str:
    """Slack's mrkdwn reads <, > and & as markup: escape them in anything users named."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def email_message(
    *,
    org_id: UUID,
    event: EventType,
    key: str,
    at: datetime,
    to: tuple[str, ...],
    cc: tuple[str, ...],
    headline: str,
    details: str,
    link: str,
    organization: str,
) -> OutboxMessage:
    """An email message for the outbox: plain text and HTML from the templates, and a Message-ID
    that stays the same on every retry."""
    text = _template("email.txt").substitute(
        headline=headline, details=details, link=link, organization=organization
    )
    page = _template("email.html").substitute(
        headline=html.escape(headline),
        details=html.escape(details),
        link=html.escape(link, quote=True),
        organization=html.escape(organization),
    )
    message_id = uuid4()
    return OutboxMessage(
        id=message_id,
        org_id=org_id,
        channel=Channel.EMAIL,
        event=event,
        idempotency_key=key,
        created_at=at,
        next_attempt_at=at,
        payload={
            "to": list(to),
            "cc": list(cc),
            "subject": f"[jitpam] {headline}",
            "text": text,
            "html": page,
            "message_id": f"<{message_id}@jitpam>",
        },
    )
