"""Webhook endpoints."""

from __future__ import annotations

import json
from typing import Any, cast
from uuid import UUID

from sqlalchemy import (
    Table,
    bindparam,
    delete,
    select,
)
from sqlalchemy.orm import Session

from jitpam.adapters.sql.models import (
    WebhookRow,
)
from jitpam.adapters.sql.prepared import Prepared
from jitpam.domain.notifications import (
    EventType,
    WebhookEndpoint,
    WebhookFormat,
)


def _endpoint(row: WebhookRow | Any) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=row.id,
        org_id=row.org_id,
        url=row.url,
        events=frozenset(EventType(e) for e in json.loads(row.events)),
        format=WebhookFormat(row.format),
        secret=row.secret,
        created_at=row.created_at,
    )


_WEBHOOKS = cast(Table, WebhookRow.__table__)
_WEBHOOKS_OF = Prepared(
    select(*_WEBHOOKS.c)
    .where(_WEBHOOKS.c.org_id == bindparam("org"))
    .order_by(_WEBHOOKS.c.created_at)
)


class SqlWebhooks:
    def __init__(self, session: Session) -> None:
        self.s = session

    def add(self, endpoint: WebhookEndpoint) -> None:
        self.s.add(
            WebhookRow(
                id=endpoint.id,
                org_id=endpoint.org_id,
                url=endpoint.url,
                events=json.dumps(sorted(e.value for e in endpoint.events)),
                format=endpoint.format.value,
                secret=endpoint.secret,
                created_at=endpoint.created_at,
            )
        )
        self.s.flush()

    def get(self, endpoint_id: UUID) -> WebhookEndpoint | None:
        row = self.s.get(WebhookRow, endpoint_id)
        return _endpoint(row) if row else None

    def remove(self, endpoint_id: UUID) -> None:
        self.s.execute(delete(WebhookRow).where(WebhookRow.id == endpoint_id))

    def in_org(self, org_id: UUID) -> list[WebhookEndpoint]:
        return [_endpoint(r) for r in _WEBHOOKS_OF.all(self.s, org=org_id)]
