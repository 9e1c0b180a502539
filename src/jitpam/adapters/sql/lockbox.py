"""Customer Lockbox: the lockbox requests, and which organization is the installation's operator.

A request is saved by compare-and-set on the version this transaction read, as access requests
are: a request that moved since it was read is a lost race, not overwritten.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    delete,
    false,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Session

from jitpam.adapters.sql.memo import LOCKBOX_VERSIONS, Memo
from jitpam.adapters.sql.models import InstallationOperatorRow, LockboxRequestRow
from jitpam.adapters.sql.queries import encode_cursor, time_and_id
from jitpam.domain.errors import RequestNotPending
from jitpam.domain.lockbox import LockboxRequest
from jitpam.domain.requests import RequestStatus
from jitpam.domain.timeutil import iso
from jitpam.services.ports import LockboxFilter, Operator, Page

_REQUESTS = cast(Table, LockboxRequestRow.__table__)
_OPERATOR = cast(Table, InstallationOperatorRow.__table__)
_OPERATOR_KEY = 1  # the one row's key (a check constraint allows no other)

_PENDING = RequestStatus.PENDING.value
_APPROVED = RequestStatus.APPROVED.value


def _request(row: Any) -> LockboxRequest:
    return LockboxRequest(
        id=row.id,
        customer_org_id=row.customer_org_id,
        operator_org_id=row.operator_org_id,
        requester_id=row.requester_id,
        requester_upn=row.requester_upn,
        service=row.service,
        reason=row.reason,
        case_reference=row.case_reference,
        duration_hours=row.duration_hours,
        created_at=row.created_at,
        pending_until=row.pending_until,
        status=RequestStatus(row.status),
        decided_at=row.decided_at,
        decided_by=row.decided_by,
        decision_comment=row.decision_comment,
        start=row.start_at,
        end=row.end_at,
        revoked_at=row.revoked_at,
        revoked_by=row.revoked_by,
        revocation_comment=row.revocation_comment,
    )


def _changing(request: LockboxRequest) -> dict[str, Any]:
    """The columns a decision, a cancellation, a revocation or the sweeper change."""
    return {
        "status": request.status.value,
        "decided_at": request.decided_at,
        "decided_by": request.decided_by,
        "decision_comment": request.decision_comment,
        "start_at": request.start,
        "end_at": request.end,
        "revoked_at": request.revoked_at,
        "revoked_by": request.revoked_by,
        "revocation_comment": request.revocation_comment,
    }


def _status_at(status: RequestStatus, at: datetime) -> ColumnElement[bool]:
    """The request's status at ``at`` is ``status`` (the SQL twin of ``status_at``)."""
    c = _REQUESTS.c
    if status is RequestStatus.PENDING:
        return and_(c.status == _PENDING, c.pending_until > at)
    if status is RequestStatus.EXPIRED:
        return or_(c.status == status.value, and_(c.status == _PENDING, c.pending_until <= at))
    if status is RequestStatus.APPROVED:
        return and_(c.status == _APPROVED, or_(c.end_at.is_(None), c.end_at > at))
    if status is RequestStatus.COMPLETED:
        return or_(c.status == status.value, and_(c.status == _APPROVED, c.end_at <= at))
    return c.status == status.value


class SqlLockbox:
    def __init__(self, session: Session) -> None:
        self.s = session
        self._memo = Memo.of(session)

    def operator(self) -> Operator | None:
        row = self.s.execute(
            select(_OPERATOR.c.org_id, _OPERATOR.c.since).where(_OPERATOR.c.id == _OPERATOR_KEY)
        ).first()
        return Operator(row.org_id, row.since) if row is not None else None

    def set_operator(self, org_id: UUID | None, *, at: datetime) -> None:
        self.s.flush()
        self.s.execute(delete(_OPERATOR))
        if org_id is not None:
            self.s.execute(insert(_OPERATOR).values(id=_OPERATOR_KEY, org_id=org_id, since=at))

    def add(self, request: LockboxRequest) -> None:
        self.s.flush()  # the organizations and users it names go first
        self.s.execute(
            insert(_REQUESTS).values(
                id=request.id,
                customer_org_id=request.customer_org_id,
                operator_org_id=request.operator_org_id,
                requester_id=request.requester_id,
                requester_upn=request.requester_upn,
                service=request.service,
                reason=request.reason,
                case_reference=request.case_reference,
                duration_hours=request.duration_hours,
                created_at=request.created_at,
                pending_until=request.pending_until,
                version=1,
                **_changing(request),
            )
        )
        self._memo.put(LOCKBOX_VERSIONS, request.id, 1)

    def _read(self, rows: Any) -> list[LockboxRequest]:
        out = []
        for row in rows:
            self._memo.put(LOCKBOX_VERSIONS, row.id, row.version)
            out.append(_request(row))
        return out

    def get(self, request_id: UUID, *, for_update: bool = False) -> LockboxRequest | None:
        stmt = select(_REQUESTS).where(_REQUESTS.c.id == request_id)
        if for_update:
            stmt = stmt.with_for_update()
        found = self._read(self.s.execute(stmt))
        return found[0] if found else None

    def save(self, request: LockboxRequest) -> None:
        version = self._memo.get(LOCKBOX_VERSIONS, request.id)
        if version is None:
            raise LookupError(f"{request.describe()} was not read in this transaction")
        self.s.flush()
        result = self.s.execute(
            update(_REQUESTS)
            .where(_REQUESTS.c.id == request.id, _REQUESTS.c.version == version)
            .values(version=version + 1, **_changing(request))
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise RequestNotPending(
                f"{request.describe()} was changed by someone else at the same time"
            )
        self._memo.put(LOCKBOX_VERSIONS, request.id, version + 1)

    def page(
        self, flt: LockboxFilter, *, at: datetime, cursor: str | None, limit: int
    ) -> Page[LockboxRequest]:
        c = _REQUESTS.c
        if flt.customer_org_id is None and flt.operator_org_id is None:
            raise ValueError("a lockbox listing is of a customer or of the operator")
        position = time_and_id(cursor) if cursor else None
        stmt = select(_REQUESTS)
        if flt.customer_org_id is not None:
            stmt = stmt.where(c.customer_org_id == flt.customer_org_id)
        if flt.operator_org_id is not None:
            stmt = stmt.where(c.operator_org_id == flt.operator_org_id)
        if flt.requester_id is not None:
            stmt = stmt.where(c.requester_id == flt.requester_id)
        if flt.statuses is not None:
            ordered = sorted(flt.statuses, key=lambda s: s.value)
            stmt = stmt.where(or_(false(), *(_status_at(s, at) for s in ordered)))
        if flt.created_after is not None:
            stmt = stmt.where(c.created_at > flt.created_after)
        if flt.request_id is not None:
            stmt = stmt.where(c.id == flt.request_id)
        if position is not None:
            stmt = stmt.where(tuple_(c.created_at, c.id) < position)
        stmt = stmt.order_by(c.created_at.desc(), c.id.desc()).limit(limit + 1)
        found = self._read(self.s.execute(stmt))
        if len(found) <= limit:
            return Page(found, None)
        found = found[:limit]
        last = found[-1]
        return Page(found, encode_cursor(iso(last.created_at), str(last.id)))

    def approved(self, customer_org_id: UUID, user_id: UUID) -> list[LockboxRequest]:
        c = _REQUESTS.c
        stmt = (
            select(_REQUESTS)
            .where(
                c.customer_org_id == customer_org_id,
                c.requester_id == user_id,
                c.status == _APPROVED,
            )
            .order_by(c.created_at, c.id)
        )
        return self._read(self.s.execute(stmt))

    def due(self, at: datetime, *, limit: int) -> list[LockboxRequest]:
        # One query per stored status, each reading its run of its (status, moment) index; the
        # two merged by the moment each became due.
        c = _REQUESTS.c
        # Rows another sweeper holds are left to it (PostgreSQL; SQLite has one writer), so
        # two sweepers never fail each other's batch at the compare-and-set.
        lapsed = (
            select(_REQUESTS)
            .where(c.status == _PENDING, c.pending_until <= at)
            .order_by(c.pending_until, c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        ended = (
            select(_REQUESTS)
            .where(c.status == _APPROVED, c.end_at <= at)
            .order_by(c.end_at, c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        found = self._read(self.s.execute(lapsed)) + self._read(self.s.execute(ended))
        found.sort(key=_due_since)
        return found[:limit]


def _due_since(request: LockboxRequest) -> tuple[datetime, UUID]:
    """When the clock overtook the request's stored status (its deadline, or its end)."""
    moment = request.end if request.status is RequestStatus.APPROVED else request.pending_until
    assert moment is not None
    return moment, request.id
