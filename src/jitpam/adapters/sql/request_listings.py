"""Lists of access requests: pages, counts, the grants held and ending, those to settle."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Select,
    SQLColumnExpression,
    Table,
    and_,
    false,
    func,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.orm import Session

from jitpam.adapters.sql.models import (
    AccountStewardRow,
    AuthorizationRow,
    GroupMemberRow,
    OrganizationRow,
    PolicyRow,
    RequestRow,
    ReviewRow,
    UserRow,
)
from jitpam.adapters.sql.queries import (
    contains,
    encode_cursor,
    time_and_id,
)
from jitpam.domain.connectors import BoundKind, HeldGrant
from jitpam.domain.policy import PolicyType
from jitpam.domain.requests import (
    AccessRequest,
    RequestStatus,
)
from jitpam.domain.timeutil import iso
from jitpam.services.ports import (
    SEARCH_WINDOW,
    Page,
    RequestFilter,
    Reviewer,
)

_Position = tuple[datetime, UUID]  # a request's place in a listing: (created_at, id)

# The end of a request's grant, looked up row by row as a listing reads requests in order: as a
# join, PostgreSQL could choose to read every authorization first.
_GRANT_END = (
    select(AuthorizationRow.end_at)
    .where(AuthorizationRow.request_id == RequestRow.id)
    .correlate(RequestRow)
    .scalar_subquery()
)


def _reviewed_by(reviewer: Reviewer) -> ColumnElement[bool]:
    """The request's policy (outer-joined) is one the reviewer's groups review."""
    reviewed: list[ColumnElement[bool]] = []
    if reviewer.groups:
        reviewed.append(PolicyRow.approver_group_id.in_(reviewer.groups))
    if reviewer.default_group is not None and reviewer.default_group in reviewer.groups:
        reviewed.append(and_(PolicyRow.id.is_not(None), PolicyRow.approver_group_id.is_(None)))
    return or_(false(), *reviewed)


def _search_clauses(
    flt: RequestFilter, target: SQLColumnExpression[str], requester_upn: SQLColumnExpression[str]
) -> list[ColumnElement[bool]]:
    clauses = []
    if flt.target_contains:
        clauses.append(contains(target, flt.target_contains))
    if flt.search:
        clauses.append(or_(contains(target, flt.search), contains(requester_upn, flt.search)))
    return clauses


def _steering(session: Session, voter: UUID) -> frozenset[UUID]:
    """Everyone who steers ``voter``'s account, directly or through accounts they steer."""
    found: set[UUID] = set()
    frontier = {voter}
    while frontier:
        stewards = session.scalars(
            select(AccountStewardRow.steward_id)
            .where(AccountStewardRow.user_id.in_(sorted(frontier)))
            .distinct()
        )
        frontier = set(stewards) - found - {voter}
        found |= frontier
    return frozenset(found)


def _steers_subject(voter: UUID) -> ColumnElement[bool]:
    """The SQL twin of ``review_refusal``'s ``steers_subject``: the request is a data access
    request whose application account ``voter`` created or set a credential of, directly or
    through accounts they steer (services/separation.py's ``steers``). The accounts the voter
    steers are walked by a recursive query, so no list of them is read however many accounts
    the voter set up; requests without an application never match."""
    stewards = cast(Table, AccountStewardRow.__table__)
    step = stewards.alias("steered_step")
    steered = (
        select(stewards.c.user_id.label("id"))
        .where(stewards.c.steward_id == voter)
        .cte("steered", recursive=True)
    )
    # UNION, not UNION ALL: an account reached twice, or a cycle, is walked once.
    steered = steered.union(select(step.c.user_id).join(steered, step.c.steward_id == steered.c.id))
    return and_(
        RequestRow.subject_id.is_not(None),
        select(steered.c.id).where(steered.c.id == RequestRow.subject_id).exists(),
    )


def _requester_has_a_hand(voter: UUID, steering: frozenset[UUID]) -> ColumnElement[bool]:
    """The SQL twin of domain/separation.py's ``hand_in_vote`` for one voter, self-approval
    aside, for the pages' counts only (a vote itself is judged by the domain rule): the
    request's requester is one of ``steering`` (who steer the voter, ``_steering``), added the
    voter's membership of the approver group, or last set the policy's approval setup. (The
    last two are judged for the requester's own hand only, not through accounts they steer: a
    count may then include a request whose vote the rule would refuse.)"""
    policy = cast(Table, PolicyRow.__table__).alias("sod_policy")
    org = cast(Table, OrganizationRow.__table__).alias("sod_org")
    requester = RequestRow.requester_id
    governing = select(policy.c.id).join(org, org.c.id == policy.c.org_id)
    governing = governing.where(policy.c.id == RequestRow.policy_id)
    chose = governing.where(
        or_(
            policy.c.approver_group_set_by == requester,
            policy.c.approval_type_set_by == requester,
            policy.c.approvals_required_set_by == requester,
            and_(
                policy.c.approver_group_id.is_(None),
                org.c.default_approver_group_set_by == requester,
            ),
        )
    )
    placed = governing.join(
        GroupMemberRow,
        and_(
            GroupMemberRow.user_id == voter,
            GroupMemberRow.group_id
            == func.coalesce(policy.c.approver_group_id, org.c.default_approver_group_id),
        ),
    ).where(GroupMemberRow.added_by == requester)
    steers = requester.in_(steering) if steering else false()
    return or_(steers, chose.exists(), placed.exists())


class RequestListings:
    """The reading of many requests at once, for ``SqlRequests`` (which assembles the rows into
    requests): kept apart from the one request's reads and writes it inherits them beside."""

    s: Session
    # SqlRequests's: the rows read, made into whole requests (their reviews and grants too)
    _assemble: Callable[[Sequence[RequestRow | Any]], list[AccessRequest]]

    def _listing(
        self, org_id: UUID, flt: RequestFilter, *columns: SQLColumnExpression[Any]
    ) -> Select[Any]:
        """``columns`` of the requests ``flt`` selects, its status and search aside."""
        stmt = select(*columns).select_from(RequestRow).where(RequestRow.org_id == org_id)
        if flt.requester_id is not None:
            stmt = stmt.where(RequestRow.requester_id == flt.requester_id)
        if flt.subject_id is not None:
            stmt = stmt.where(RequestRow.subject_id == flt.subject_id)
        if flt.types is not None:
            kinds = sorted(t.value for t in flt.types)
            stmt = stmt.where(RequestRow.type.in_(kinds) if kinds else false())
        if flt.reviewer is not None:
            stmt = stmt.outerjoin(PolicyRow, PolicyRow.id == RequestRow.policy_id)
            visible = [_reviewed_by(flt.reviewer)]
            if flt.or_requester_id is not None:
                visible.append(RequestRow.requester_id == flt.or_requester_id)
            stmt = stmt.where(or_(*visible))
        if flt.awaiting_vote_of is not None:
            voted = select(ReviewRow.request_id).where(
                ReviewRow.request_id == RequestRow.id,
                ReviewRow.approver_id == flt.awaiting_vote_of,
            )
            stmt = stmt.where(
                RequestRow.requester_id != flt.awaiting_vote_of,
                # the application of a data access request votes on none of its own
                or_(RequestRow.subject_id.is_(None), RequestRow.subject_id != flt.awaiting_vote_of),
                ~voted.exists(),
                ~_steers_subject(flt.awaiting_vote_of),
                ~_requester_has_a_hand(
                    flt.awaiting_vote_of, _steering(self.s, flt.awaiting_vote_of)
                ),
            )
        return stmt

    @staticmethod
    def _streams(status: RequestStatus | None, at: datetime) -> list[ColumnElement[bool]]:
        """The status filter as the SQL twin of AccessRequest.status_at (lists agree with what a
        request says), split by stored status so that each part reads one run of the
        (org, status, created) index in order; the parts are merged by creation time."""
        pending, approved = RequestRow.status == "pending", RequestRow.status == "approved"
        match status:
            case None:
                return [true()]
            case RequestStatus.PENDING:
                return [and_(pending, RequestRow.pending_until > at)]
            case RequestStatus.EXPIRED:
                return [
                    RequestRow.status == "expired",
                    and_(pending, RequestRow.pending_until <= at),
                ]
            case RequestStatus.APPROVED:
                return [and_(approved, at < _GRANT_END)]
            case RequestStatus.COMPLETED:
                return [
                    RequestRow.status == "completed",
                    and_(approved, at >= _GRANT_END),
                ]
            case _:
                return [RequestRow.status == status.value]

    def page(
        self, org_id: UUID, flt: RequestFilter, *, at: datetime, cursor: str | None, limit: int
    ) -> Page[AccessRequest]:
        position = time_and_id(cursor) if cursor else None
        newest_first = not flt.oldest_first
        found: list[_Position] = []
        # How far each part was read completely (None: to its end). The page may not go beyond
        # the part that got least far, or it would skip rows that part has not read yet.
        frontier: _Position | None = None
        for stream in self._streams(flt.status, at):
            # A later part is read no further than the earlier ones got: its rows beyond that
            # could not be on this page anyway (the stored status first, the rare part after).
            rows, reached = self._positions(org_id, flt, stream, position, frontier, limit)
            found.extend(rows)
            if reached is not None and (
                frontier is None or (reached > frontier if newest_first else reached < frontier)
            ):
                frontier = reached
        found.sort(reverse=newest_first)
        if frontier is not None:
            found = [p for p in found if (p >= frontier if newest_first else p <= frontier)]
        nxt = frontier
        if len(found) > limit:
            found, nxt = found[:limit], found[limit - 1]
        cursor_out = encode_cursor(iso(nxt[0]), str(nxt[1])) if nxt is not None else None
        return Page(self._by_ids([p[1] for p in found]), cursor_out)

    def _positions(
        self,
        org_id: UUID,
        flt: RequestFilter,
        stream: ColumnElement[bool],
        position: _Position | None,
        bound: _Position | None,
        limit: int,
    ) -> tuple[list[_Position], _Position | None]:
        """Up to ``limit + 1`` (created, id) positions of one status part after ``position`` and
        up to ``bound``, and how far the part was read completely (None: to its end, or to
        ``bound``)."""
        key = tuple_(RequestRow.created_at, RequestRow.id)
        order: tuple[SQLColumnExpression[Any], ...] = (
            (RequestRow.created_at, RequestRow.id)
            if flt.oldest_first
            else (RequestRow.created_at.desc(), RequestRow.id.desc())
        )
        plain = replace(flt, search=None, target_contains=None)
        stmt = self._listing(org_id, plain, RequestRow.created_at, RequestRow.id).where(stream)
        if position is not None:
            stmt = stmt.where(key > position if flt.oldest_first else key < position)
        if bound is not None:
            stmt = stmt.where(key <= bound if flt.oldest_first else key >= bound)
        stmt = stmt.order_by(*order)
        if not (flt.search or flt.target_contains):
            rows = [(r[0], r[1]) for r in self.s.execute(stmt.limit(limit + 1))]
            return rows, (rows[-1] if len(rows) > limit else None)
        # A search reads the newest SEARCH_WINDOW candidates at most and matches among them.
        window = (
            stmt.add_columns(RequestRow.target, RequestRow.requester_upn)
            .limit(SEARCH_WINDOW)
            .subquery()
        )
        matches = select(window.c.created_at, window.c.id).where(
            *_search_clauses(flt, window.c.target, window.c.requester_upn)
        )
        if flt.oldest_first:
            matches = matches.order_by(window.c.created_at, window.c.id)
        else:
            matches = matches.order_by(window.c.created_at.desc(), window.c.id.desc())
        rows = [(r[0], r[1]) for r in self.s.execute(matches.limit(limit + 1))]
        if len(rows) > limit:
            return rows, rows[-1]
        edge = self.s.execute(stmt.offset(SEARCH_WINDOW - 1).limit(1)).first()
        return rows, ((edge[0], edge[1]) if edge is not None else None)

    def _by_ids(self, ids: Sequence[UUID]) -> list[AccessRequest]:
        """The requests with these ids, in this order."""
        if not ids:
            return []
        rows = {r.id: r for r in self.s.scalars(select(RequestRow).where(RequestRow.id.in_(ids)))}
        return self._assemble([rows[i] for i in ids if i in rows])

    def count(self, org_id: UUID, flt: RequestFilter, *, at: datetime, limit: int) -> int:
        if flt.search or flt.target_contains:
            raise ValueError("requests are counted without a search")
        total = 0
        for stream in self._streams(flt.status, at):
            some = self._listing(org_id, flt, RequestRow.id).where(stream).limit(limit).subquery()
            total += self.s.scalar(select(func.count()).select_from(some)) or 0
        return min(total, limit)

    def _by_auth(
        self, org_id: UUID, at: datetime, *conds: ColumnElement[bool]
    ) -> list[AccessRequest]:
        stmt = (
            select(RequestRow)
            .join(AuthorizationRow, AuthorizationRow.request_id == RequestRow.id)
            .where(
                RequestRow.org_id == org_id,
                RequestRow.status == "approved",
                AuthorizationRow.end_at > at,
                *conds,
            )
            .order_by(AuthorizationRow.end_at)
        )
        return self._assemble(self.s.scalars(stmt).all())

    def active_for_user(self, org_id: UUID, user_id: UUID, at: datetime) -> list[AccessRequest]:
        # The grants the user holds: an application's data access, not its installer's.
        return self._by_auth(org_id, at, AuthorizationRow.user_id == user_id)

    def pending_for_user(self, org_id: UUID, user_id: UUID, at: datetime) -> list[AccessRequest]:
        stmt = select(RequestRow).where(
            RequestRow.org_id == org_id,
            or_(RequestRow.requester_id == user_id, RequestRow.subject_id == user_id),
            RequestRow.status == "pending",
            RequestRow.pending_until > at,
        )
        return self._assemble(self.s.scalars(stmt).all())

    def jit_holders(
        self, org_id: UUID, type: PolicyType, target: str, at: datetime
    ) -> list[AccessRequest]:
        return self._by_auth(org_id, at, RequestRow.type == type.value, RequestRow.target == target)

    def role_grants(self, org_id: UUID, at: datetime) -> list[HeldGrant]:
        a = AuthorizationRow
        stmt = (
            select(UserRow.upn, a.type, a.target)
            .join(UserRow, UserRow.id == a.user_id)
            .where(
                a.org_id == org_id,
                a.type.in_([PolicyType.ROLE.value, PolicyType.ROLE_GROUP.value]),
                a.end_at > at,
                a.start_at <= at,
                or_(a.revoked_at.is_(None), a.revoked_at > at),
                UserRow.enabled,
            )
        )
        return [
            HeldGrant(upn, BoundKind(kind), target) for upn, kind, target in self.s.execute(stmt)
        ]

    def granted(
        self,
        org_id: UUID,
        user_id: UUID | None,
        *,
        active_at: datetime | None,
        cursor: str | None,
        limit: int,
    ) -> Page[AccessRequest]:
        a = AuthorizationRow
        # History reads (org, start) newest first; active grants read (org, end) from now on,
        # which holds only the grants not over yet, however long the history.
        moment = a.start_at if active_at is None else a.end_at
        stmt = select(a.request_id, moment, a.id).where(a.org_id == org_id)
        if user_id is not None:
            stmt = stmt.where(a.user_id == user_id)
        if active_at is not None:
            stmt = stmt.where(
                a.end_at > active_at, or_(a.revoked_at.is_(None), a.revoked_at > active_at)
            )
        if cursor:
            position = time_and_id(cursor)
            key = tuple_(moment, a.id)
            stmt = stmt.where(key < position if active_at is None else key > position)
        if active_at is None:
            stmt = stmt.order_by(moment.desc(), a.id.desc())
        else:
            stmt = stmt.order_by(moment, a.id)
        rows = self.s.execute(stmt.limit(limit + 1)).all()
        nxt = None
        if len(rows) > limit:
            rows = rows[:limit]
            nxt = encode_cursor(iso(rows[-1][1]), str(rows[-1][2]))
        return Page(self._by_ids([r[0] for r in rows]), nxt)

    def ending(self, org_id: UUID, after: datetime, until: datetime) -> list[tuple[UUID, UUID]]:
        a = AuthorizationRow
        stmt = (
            select(a.request_id, a.id)
            .where(
                a.org_id == org_id,
                a.end_at > after,
                a.end_at <= until,
                or_(a.revoked_at.is_(None), a.revoked_at > after),
            )
            .order_by(a.end_at, a.id)
        )
        return [(r, i) for r, i in self.s.execute(stmt)]

    def to_settle(
        self, org_id: UUID, at: datetime, limit: int, *, lock: bool = True
    ) -> list[AccessRequest]:
        # One query per stored status, each reading its run of the (org, status, created) index.
        lapsed = select(RequestRow).where(
            RequestRow.org_id == org_id,
            RequestRow.status == "pending",
            RequestRow.pending_until <= at,
        )
        ended = (
            select(RequestRow)
            .join(AuthorizationRow, AuthorizationRow.request_id == RequestRow.id)
            .where(
                RequestRow.org_id == org_id,
                RequestRow.status == "approved",
                AuthorizationRow.end_at <= at,
            )
        )
        rows: list[RequestRow] = []
        for stmt in (lapsed, ended):
            if len(rows) < limit:
                stmt = stmt.limit(limit - len(rows))
                if lock:
                    stmt = stmt.with_for_update(skip_locked=True, of=RequestRow)
                rows.extend(self.s.scalars(stmt).all())
        return self._assemble(rows)
