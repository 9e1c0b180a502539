"""The notification outbox: messages queued with a change, claimed and delivered later."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import cast
from uuid import UUID

from sqlalchemy import (
    Table,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from jitpam.adapters.sql.models import (
    OutboxRow,
)
from jitpam.adapters.sql.prepared import Prepared
from jitpam.adapters.sql.queries import (
    chunks,
    encode_cursor,
    time_and_id,
)
from jitpam.domain.notifications import (
    Channel,
    DeliveryState,
    EventType,
    OutboxMessage,
)
from jitpam.domain.timeutil import canonical_json, iso
from jitpam.services.ports import Page


def _message(row: OutboxRow) -> OutboxMessage:
    return OutboxMessage(
        id=row.id,
        org_id=row.org_id,
        channel=Channel(row.channel),
        event=EventType(row.event),
        idempotency_key=row.idempotency_key,
        payload=json.loads(row.payload),
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        destination=row.destination,
        state=DeliveryState(row.state),
        attempts=row.attempts,
        last_error=row.last_error,
        delivered_at=row.delivered_at,
    )


_OUTBOX = cast(Table, OutboxRow.__table__)
# A message whose key is taken already (queued before, or by someone else at the same moment)
# is not queued again: the database says which, in the insert itself.
_QUEUE = Prepared(
    insert(_OUTBOX),
    sqlite=sqlite_insert(_OUTBOX).on_conflict_do_nothing(index_elements=["idempotency_key"]),
    postgresql=pg_insert(_OUTBOX).on_conflict_do_nothing(index_elements=["idempotency_key"]),
)


class SqlOutbox:
    def __init__(self, session: Session) -> None:
        self.s = session

    def taken(self, keys: Sequence[str]) -> frozenset[str]:
        found: set[str] = set()
        for chunk in chunks(keys):
            found.update(
                self.s.scalars(
                    select(OutboxRow.idempotency_key).where(OutboxRow.idempotency_key.in_(chunk))
                )
            )
        return frozenset(found)

    def add(self, message: OutboxMessage) -> bool:
        queued = _QUEUE.execute(
            self.s,
            id=message.id,
            org_id=message.org_id,
            channel=message.channel.value,
            event=message.event.value,
            idempotency_key=message.idempotency_key,
            payload=canonical_json(message.payload).decode(),
            destination=message.destination,
            state=message.state.value,
            attempts=message.attempts,
            next_attempt_at=message.next_attempt_at,
            claimed_until=None,
            last_error=None,
            created_at=message.created_at,
            delivered_at=None,
        )
        return queued == 1

    def claim(
        self, *, at: datetime, lease_until: datetime, limit: int, channels: frozenset[Channel]
    ) -> list[OutboxMessage]:
        due = (
            select(OutboxRow)
            .where(
                OutboxRow.channel.in_([c.value for c in channels]),
                OutboxRow.state == DeliveryState.PENDING.value,
                OutboxRow.next_attempt_at <= at,
                or_(OutboxRow.claimed_until.is_(None), OutboxRow.claimed_until < at),
            )
            .order_by(OutboxRow.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = self.s.scalars(due).all()
        for row in rows:
            row.claimed_until = lease_until
            row.attempts += 1
        self.s.flush()
        return [_message(r) for r in rows]

    def save(self, message: OutboxMessage, *, lease_until: datetime | None = None) -> bool:
        stmt = update(OutboxRow).where(OutboxRow.id == message.id)
        if lease_until is not None:
            stmt = stmt.where(OutboxRow.claimed_until == lease_until)
        result = self.s.execute(
            stmt.values(
                state=message.state.value,
                attempts=message.attempts,
                next_attempt_at=message.next_attempt_at,
                last_error=message.last_error,
                delivered_at=message.delivered_at,
                claimed_until=None,
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def get(self, message_id: UUID) -> OutboxMessage | None:
        row = self.s.get(OutboxRow, message_id)
        return _message(row) if row else None

    def listing(
        self, org_id: UUID, *, state: DeliveryState | None, cursor: str | None, limit: int
    ) -> Page[OutboxMessage]:
        stmt = select(OutboxRow).where(OutboxRow.org_id == org_id)
        if state is not None:
            stmt = stmt.where(OutboxRow.state == state.value)
        if cursor is not None:
            stmt = stmt.where(tuple_(OutboxRow.created_at, OutboxRow.id) < time_and_id(cursor))
        rows = list(
            self.s.scalars(
                stmt.order_by(OutboxRow.created_at.desc(), OutboxRow.id.desc()).limit(limit + 1)
            )
        )
        nxt = None
        if len(rows) > limit:
            rows = rows[:limit]
            nxt = encode_cursor(iso(rows[-1].created_at), str(rows[-1].id))
        return Page([_message(r) for r in rows], nxt)
