"""The audit log: the hash chain's head per organization, appended records, searches."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import cast
from uuid import UUID

from sqlalchemy import (
    Table,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from jitpam.adapters.sql.db import is_duplicate, is_race
from jitpam.adapters.sql.memo import AUDIT_HEADS, Memo
from jitpam.adapters.sql.models import (
    AuditHeadRow,
    AuditRow,
)
from jitpam.adapters.sql.prepared import Prepared
from jitpam.adapters.sql.queries import (
    decode_cursor,
    encode_cursor,
)
from jitpam.domain.audit import AuditEvent, AuditRecord, Outcome, chain
from jitpam.domain.errors import AuditUnavailable, ConcurrentChange, InvalidInput
from jitpam.domain.timeutil import canonical_json
from jitpam.services.ports import (
    AuditFilter,
    Page,
)


def _record(row: AuditRow) -> AuditRecord:
    """The stored record; a row too damaged to decode comes back marked ``damaged``."""
    damaged = None
    try:
        details = json.loads(row.details)
        if not isinstance(details, dict):
            raise ValueError("details are not an object")
        outcome = Outcome(row.outcome)
    except ValueError as exc:
        damaged = f"{type(exc).__name__}: {exc}"
        details, outcome = {"unreadable": row.details}, Outcome.REFUSED
    return AuditRecord(
        org_id=row.org_id,
        seq=row.seq,
        at=row.at,
        actor_id=row.actor_id,
        actor_name=row.actor_name,
        operation=row.operation,
        target=row.target,
        outcome=outcome,
        details=details,
        prev_hash=row.prev_hash,
        hash=row.hash,
        damaged=damaged,
    )


# The audit chain's statements run in every use case and every group of checks.
_HEADS = cast(Table, AuditHeadRow.__table__)
_READ_HEAD = select(_HEADS.c.seq, _HEADS.c.head_hash).where(_HEADS.c.org_id == bindparam("org"))
_GET_HEAD = Prepared(_READ_HEAD)
_LOCK_HEAD = Prepared(_READ_HEAD.with_for_update())
_MOVE_HEAD = Prepared(
    update(_HEADS)
    .where(_HEADS.c.org_id == bindparam("org"))
    .values(seq=bindparam("new_seq"), head_hash=bindparam("new_hash"))
)
_ADD_RECORDS = Prepared(insert(cast(Table, AuditRow.__table__)))


class SqlAudit:
    def __init__(self, session: Session) -> None:
        self.s = session
        self._memo = Memo.of(session)

    def append(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        out: list[AuditRecord] = []
        try:
            # Heads in one order (a change recorded in two chains, such as a lockbox step, must
            # not wait for a change holding them the other way round).
            for org_id in sorted({e.org_id for e in events}):
                seq, prev = self.head(org_id, lock=True)
                rows = []
                for event in (e for e in events if e.org_id == org_id):
                    rec = chain(event, prev_seq=seq, prev_hash=prev)
                    rows.append(
                        {
                            "org_id": rec.org_id,
                            "seq": rec.seq,
                            "at": rec.at,
                            "actor_id": rec.actor_id,
                            "actor_name": rec.actor_name,
                            "operation": rec.operation,
                            "target": rec.target,
                            "outcome": rec.outcome.value,
                            "details": canonical_json(rec.details).decode(),
                            "prev_hash": rec.prev_hash,
                            "hash": rec.hash,
                        }
                    )
                    seq, prev = rec.seq, rec.hash
                    out.append(rec)
                _ADD_RECORDS.execute_many(self.s, rows)  # one call for all of them
                _MOVE_HEAD.execute(self.s, org=org_id, new_seq=seq, new_hash=prev)
                self._memo.put(AUDIT_HEADS, org_id, (seq, prev))
        except DBAPIError as exc:
            if is_duplicate(exc.orig) or is_race(exc.orig):
                # Another transaction joined the chain first (its head was not held): the
                # change is refused as any lost race is, not reported as a broken audit log.
                raise ConcurrentChange(
                    "another change was recorded at the same time; nothing was changed, try again"
                ) from exc
            raise AuditUnavailable(
                "the audit log could not be written, so nothing was changed"
            ) from exc
        return out

    def head(self, org_id: UUID, *, lock: bool = False) -> tuple[int, str]:
        if lock and (held := self._memo.get(AUDIT_HEADS, org_id)) is not None:
            return held
        found = (_LOCK_HEAD if lock else _GET_HEAD).first(self.s, org=org_id)
        if found is None:
            raise AuditUnavailable(f"no audit chain for organization {org_id}")
        seq, head_hash = found
        if lock:
            self._memo.put(AUDIT_HEADS, org_id, (int(seq), str(head_hash)))
        return int(seq), str(head_hash)

    def changes(self, org_id: UUID, *, after: int, ignore: frozenset[str]) -> list[AuditRecord]:
        rows = self.s.scalars(
            select(AuditRow)
            .where(
                AuditRow.org_id == org_id,
                AuditRow.seq > after,
                AuditRow.outcome == Outcome.SUCCESS.value,
                AuditRow.operation.not_in(sorted(ignore)),
            )
            .order_by(AuditRow.seq)
        ).all()
        return [_record(r) for r in rows]

    def records(self, org_id: UUID, *, after: int = 0) -> Iterator[AuditRecord]:
        last = after
        while True:
            rows = self.s.scalars(
                select(AuditRow)
                .where(AuditRow.org_id == org_id, AuditRow.seq > last)
                .order_by(AuditRow.seq)
                .limit(1000)
            ).all()
            if not rows:
                return
            for row in rows:
                yield _record(row)
            last = rows[-1].seq

    def search(
        self, org_id: UUID, flt: AuditFilter, *, cursor: str | None, limit: int
    ) -> Page[AuditRecord]:
        stmt = select(AuditRow).where(AuditRow.org_id == org_id)
        if flt.since is not None:
            stmt = stmt.where(AuditRow.at >= flt.since)
        if flt.until is not None:
            stmt = stmt.where(AuditRow.at < flt.until)
        if flt.actor:
            stmt = stmt.where(
                or_(AuditRow.actor_name == flt.actor.lower(), AuditRow.actor_id == flt.actor)
            )
        if flt.operation:
            stmt = stmt.where(func.lower(AuditRow.operation) == flt.operation.lower())
        if flt.target:
            stmt = stmt.where(AuditRow.target == flt.target)
        if flt.outcome is not None:
            stmt = stmt.where(AuditRow.outcome == flt.outcome.value)
        if cursor:
            (seq,) = decode_cursor(cursor, 1)
            if not (seq.isascii() and seq.isdigit() and len(seq) <= 18):
                raise InvalidInput("the page cursor is not valid")
            stmt = stmt.where(AuditRow.seq < int(seq))
        rows = self.s.scalars(stmt.order_by(AuditRow.seq.desc()).limit(limit + 1)).all()
        items = [_record(r) for r in rows[:limit]]
        nxt = encode_cursor(str(items[-1].seq)) if len(rows) > limit else None
        return Page(items, nxt)
