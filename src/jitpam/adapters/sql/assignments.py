"""Standing assignments of catalog entries to users and groups."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import cast
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    bindparam,
    delete,
    or_,
    select,
    tuple_,
)
from sqlalchemy.orm import Session

from jitpam.adapters.sql.catalog import SqlCatalog
from jitpam.adapters.sql.models import (
    AssignmentRow,
    AuthorizationRow,
    GroupRow,
    RequestRow,
    UserRow,
)
from jitpam.adapters.sql.prepared import Prepared
from jitpam.adapters.sql.queries import (
    decode_cursor,
    encode_cursor,
    moment_and_id,
)
from jitpam.domain.directory import Assignment, PrincipalKind
from jitpam.domain.errors import InvalidInput
from jitpam.domain.policy import PolicyType
from jitpam.domain.timeutil import iso
from jitpam.services.ports import (
    Page,
    RoleMember,
)


def _assignment(r: AssignmentRow) -> Assignment:
    return Assignment(
        r.id, r.org_id, PrincipalKind(r.principal_kind), r.principal_id, r.target_kind, r.target
    )


_ASSIGNMENTS = cast(Table, AssignmentRow.__table__)
_ASSIGNED_TO = Prepared(
    select(_ASSIGNMENTS.c.principal_kind, _ASSIGNMENTS.c.target_kind, _ASSIGNMENTS.c.target).where(
        _ASSIGNMENTS.c.principal_id == bindparam("principal"),
        _ASSIGNMENTS.c.org_id == bindparam("org"),
    )
)


class SqlAssignments:
    def __init__(self, session: Session) -> None:
        self.s = session

    def _where(self, a: Assignment) -> ColumnElement[bool]:
        return and_(
            AssignmentRow.org_id == a.org_id,
            AssignmentRow.principal_kind == a.principal_kind.value,
            AssignmentRow.principal_id == a.principal_id,
            AssignmentRow.target_kind == a.target_kind,
            AssignmentRow.target_key == a.target.casefold(),
        )

    def add(self, assignment: Assignment, *, at: datetime) -> bool:
        if self.s.scalar(select(AssignmentRow.id).where(self._where(assignment))) is not None:
            return False
        self.s.add(
            AssignmentRow(
                id=assignment.id,
                org_id=assignment.org_id,
                principal_kind=assignment.principal_kind.value,
                principal_id=assignment.principal_id,
                target_kind=assignment.target_kind,
                target=assignment.target,
                target_key=assignment.target.casefold(),
                created_at=at,
            )
        )
        self.s.flush()
        return True

    def remove(self, assignment: Assignment) -> bool:
        result = self.s.execute(delete(AssignmentRow).where(self._where(assignment)))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def standing_roles(
        self, org_id: UUID, user_id: UUID, group_ids: frozenset[UUID]
    ) -> frozenset[str]:
        # By the indexed principal id, one look-up per principal (the user and each of their
        # groups: ids are unique across both), the kind checked here: an OR of the two kinds
        # made SQLite read the organization's every row.
        held = [
            (kind, target)
            for principal, expected in ((user_id, "user"), *((g, "group") for g in group_ids))
            for who, kind, target in _ASSIGNED_TO.all(self.s, principal=principal, org=org_id)
            if who == expected
        ]
        roles = {t for k, t in held if k == "role"}
        groups = {t for k, t in held if k == "role_group"}
        if groups:
            mapping = SqlCatalog(self.s).role_group_roles(org_id, only=groups)
            for g in groups:
                roles |= mapping.get(g, frozenset())
        return frozenset(roles)

    def of_principal(
        self, org_id: UUID, kind: PrincipalKind, principal_id: UUID
    ) -> list[Assignment]:
        rows = self.s.scalars(
            select(AssignmentRow).where(
                AssignmentRow.org_id == org_id,
                AssignmentRow.principal_kind == kind.value,
                AssignmentRow.principal_id == principal_id,
            )
        )
        return [_assignment(r) for r in rows]

    def of_target(self, org_id: UUID, target_kind: str, target: str) -> list[Assignment]:
        rows = self.s.scalars(
            select(AssignmentRow).where(
                AssignmentRow.org_id == org_id,
                AssignmentRow.target_kind == target_kind,
                AssignmentRow.target_key == target.casefold(),
            )
        )
        return [_assignment(r) for r in rows]

    def holders(
        self,
        org_id: UUID,
        targets: Sequence[tuple[PolicyType, str]],
        *,
        at: datetime,
        cursor: str | None,
        limit: int | None,
    ) -> Page[RoleMember]:
        # The listing is a sequence of parts, each read by an index in its own order: for every
        # target its standing assignments (ix_assignments_target), then its active grants
        # (ix_authorizations_target). A cursor names the part and the place in it.
        parts = [(kind, target, part) for kind, target in targets for part in ("standing", "jit")]
        start, position = 0, None
        if cursor:
            kind_, key, part_, moment, last = decode_cursor(cursor, 5)
            names = [(k.value, t.casefold(), p) for k, t, p in parts]
            if (kind_, key, part_) not in names:
                raise InvalidInput("the page cursor is not valid")
            start, position = names.index((kind_, key, part_)), moment_and_id(moment, last)
        found: list[tuple[RoleMember, str]] = []
        for kind, target, part in parts[start:]:
            room = None if limit is None else limit + 1 - len(found)
            if room == 0:
                break
            read = self._standing if part == "standing" else self._jit
            found += read(org_id, kind, target, at, position, room)
            position = None
        nxt = None
        if limit is not None and len(found) > limit:
            found = found[:limit]
            nxt = found[-1][1]
        return Page([m for m, _ in found], nxt)

    def _standing(
        self,
        org_id: UUID,
        kind: PolicyType,
        target: str,
        at: datetime,
        after: tuple[datetime, UUID] | None,
        limit: int | None,
    ) -> list[tuple[RoleMember, str]]:
        del at
        a = AssignmentRow
        stmt = (
            select(a.id, a.created_at, a.principal_kind, a.principal_id, UserRow.upn, GroupRow.name)
            .outerjoin(UserRow, and_(a.principal_kind == "user", UserRow.id == a.principal_id))
            .outerjoin(GroupRow, and_(a.principal_kind == "group", GroupRow.id == a.principal_id))
            .where(
                a.org_id == org_id, a.target_kind == kind.value, a.target_key == target.casefold()
            )
        )
        if after is not None:
            stmt = stmt.where(tuple_(a.created_at, a.id) > after)
        rows = self.s.execute(stmt.order_by(a.created_at, a.id).limit(limit))
        return [
            (
                RoleMember(PrincipalKind(pk), upn or group or str(pid), target, False),
                encode_cursor(kind.value, target.casefold(), "standing", iso(created), str(i)),
            )
            for i, created, pk, pid, upn, group in rows
        ]

    def _jit(
        self,
        org_id: UUID,
        kind: PolicyType,
        target: str,
        at: datetime,
        after: tuple[datetime, UUID] | None,
        limit: int | None,
    ) -> list[tuple[RoleMember, str]]:
        z = AuthorizationRow
        stmt = (
            select(z.id, z.end_at, RequestRow.requester_upn)
            .join(RequestRow, RequestRow.id == z.request_id)
            .where(
                z.org_id == org_id,
                z.type == kind.value,
                z.target == target,
                z.end_at > at,
                z.start_at <= at,
                or_(z.revoked_at.is_(None), z.revoked_at > at),
                RequestRow.status == "approved",
            )
        )
        if after is not None:
            stmt = stmt.where(tuple_(z.end_at, z.id) > after)
        rows = self.s.execute(stmt.order_by(z.end_at, z.id).limit(limit))
        return [
            (
                RoleMember(PrincipalKind.USER, upn, target, True, end, i),
                encode_cursor(kind.value, target.casefold(), "jit", iso(end), str(i)),
            )
            for i, end, upn in rows
        ]
