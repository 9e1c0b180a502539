"""What jitpam applied through each connector, and each connector's state between passes."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from jitpam.adapters.sql.models import ConnectorMembershipRow, ConnectorStateRow
from jitpam.domain.connectors import (
    Applied,
    Change,
    ConnectorState,
    FailedChange,
    Membership,
    Origin,
    Recorded,
)
from jitpam.domain.timeutil import iso


def _failing(text: str) -> tuple[FailedChange, ...]:
    return tuple(
        FailedChange(
            change=Change(f["change"]),
            membership=Membership(f["target"], f["member"]),
            upn=f.get("upn"),
            error=f["error"],
            since=datetime.fromisoformat(f["since"]),
        )
        for f in json.loads(text)
    )


def _failing_json(failing: tuple[FailedChange, ...]) -> str:
    return json.dumps(
        [
            {
                "change": f.change.value,
                "target": f.membership.target,
                "member": f.membership.member,
                "upn": f.upn,
                "error": f.error,
                "since": iso(f.since),
            }
            for f in failing
        ]
    )


def _state(row: ConnectorStateRow) -> ConnectorState:
    return ConnectorState(
        org_id=row.org_id,
        name=row.connector,
        lease_until=row.lease_until,
        lease_owner=row.lease_owner,
        wanted_digest=row.wanted_digest,
        config_digest=row.config_digest,
        last_run_at=row.last_run_at,
        last_success_at=row.last_success_at,
        failures=row.failures,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        alerted_at=row.alerted_at,
        failing=_failing(row.failing),
        drift=tuple(Membership(t, m) for t, m in json.loads(row.drift)),
    )


def _recorded(r: ConnectorMembershipRow) -> Recorded:
    return Recorded(
        Applied(Membership(r.target, r.member), Origin(r.origin)),
        r.upn,
        r.recorded_at,
        Change(r.pending) if r.pending else None,
    )


class SqlConnectors:
    def __init__(self, session: Session) -> None:
        self.s = session

    def records(self, org_id: UUID, connector: str) -> list[Recorded]:
        rows = self.s.scalars(
            select(ConnectorMembershipRow)
            .where(
                ConnectorMembershipRow.org_id == org_id,
                ConnectorMembershipRow.connector == connector,
            )
            .order_by(ConnectorMembershipRow.target, ConnectorMembershipRow.member)
        )
        return [_recorded(r) for r in rows]

    def records_on(self, org_id: UUID, targets: Iterable[str]) -> list[tuple[str, Recorded]]:
        r = ConnectorMembershipRow
        rows = self.s.scalars(
            select(r)
            .where(r.org_id == org_id, r.target.in_(sorted(set(targets))))
            .order_by(r.connector, r.target, r.member)
        )
        return [(row.connector, _recorded(row)) for row in rows]

    def put(self, org_id: UUID, connector: str, record: Recorded) -> None:
        m = record.applied.membership
        row = self.s.get(ConnectorMembershipRow, (org_id, connector, m.target, m.member))
        if row is None:
            row = ConnectorMembershipRow(
                org_id=org_id, connector=connector, target=m.target, member=m.member
            )
            self.s.add(row)
        row.origin = record.applied.origin.value
        row.upn = record.upn
        row.recorded_at = record.at
        row.pending = record.pending.value if record.pending else None
        self.s.flush()

    def drop(self, org_id: UUID, connector: str, membership: Membership) -> None:
        self.s.execute(
            delete(ConnectorMembershipRow).where(
                ConnectorMembershipRow.org_id == org_id,
                ConnectorMembershipRow.connector == connector,
                ConnectorMembershipRow.target == membership.target,
                ConnectorMembershipRow.member == membership.member,
            )
        )

    def state(self, org_id: UUID, connector: str, *, for_update: bool = False) -> ConnectorState:
        stmt = select(ConnectorStateRow).where(
            ConnectorStateRow.org_id == org_id, ConnectorStateRow.connector == connector
        )
        if for_update:
            stmt = stmt.with_for_update()
        row = self.s.scalars(stmt.execution_options(populate_existing=True)).first()
        return _state(row) if row is not None else ConnectorState(org_id, connector)

    def states(self, org_id: UUID) -> list[ConnectorState]:
        rows = self.s.scalars(
            select(ConnectorStateRow)
            .where(ConnectorStateRow.org_id == org_id)
            .order_by(ConnectorStateRow.connector)
        )
        found = {r.connector: _state(r) for r in rows}
        for name in self.counts(org_id):
            found.setdefault(name, ConnectorState(org_id, name))
        return [found[n] for n in sorted(found)]

    def save_state(self, state: ConnectorState) -> None:
        row = self.s.get(ConnectorStateRow, (state.org_id, state.name))
        if row is None:
            row = ConnectorStateRow(org_id=state.org_id, connector=state.name)
            self.s.add(row)
        values: dict[str, Any] = {
            "lease_until": state.lease_until,
            "lease_owner": state.lease_owner,
            "wanted_digest": state.wanted_digest,
            "config_digest": state.config_digest,
            "last_run_at": state.last_run_at,
            "last_success_at": state.last_success_at,
            "failures": state.failures,
            "next_attempt_at": state.next_attempt_at,
            "last_error": state.last_error,
            "alerted_at": state.alerted_at,
            "failing": _failing_json(state.failing),
            "drift": json.dumps([[m.target, m.member] for m in state.drift]),
        }
        for key, value in values.items():
            setattr(row, key, value)
        self.s.flush()

    def holding(self) -> dict[UUID, frozenset[str]]:
        r = ConnectorMembershipRow
        out: dict[UUID, set[str]] = {}
        rows = self.s.execute(
            select(r.org_id, r.connector).where(r.origin == Origin.ADDED.value).distinct()
        )
        for org_id, connector in rows:
            out.setdefault(org_id, set()).add(connector)
        return {org: frozenset(names) for org, names in out.items()}

    def counts(self, org_id: UUID) -> dict[str, dict[str, int]]:
        r = ConnectorMembershipRow
        out: dict[str, dict[str, int]] = {}
        rows = self.s.execute(
            select(r.connector, r.origin, func.count())
            .where(r.org_id == org_id)
            .group_by(r.connector, r.origin)
        )
        for connector, origin, n in rows:
            out.setdefault(connector, {})[origin] = n
        return out
