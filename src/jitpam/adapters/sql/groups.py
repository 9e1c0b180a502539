"""Groups and their members."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from sqlalchemy import (
    Select,
    Table,
    bindparam,
    delete,
    func,
    or_,
    select,
)
from sqlalchemy.orm import Session

from jitpam.adapters.sql.memo import GROUPS, MEMBERSHIP, Change, Memo
from jitpam.adapters.sql.models import (
    AssignmentRow,
    GroupMemberRow,
    GroupRow,
    OrganizationRow,
    PolicyEligibleRow,
    PolicyRow,
    UserRow,
)
from jitpam.adapters.sql.prepared import Prepared
from jitpam.adapters.sql.queries import (
    after_key,
    chunks,
    encode_cursor,
    labels,
    named_from_memory,
    page_by_key,
)
from jitpam.domain.directory import Group, PrincipalKind, Source
from jitpam.domain.scim import Filter
from jitpam.services.ports import (
    GroupSummary,
    Page,
    Stamped,
)

_GROUPS = cast(Table, GroupRow.__table__)
_GET_GROUP = Prepared(
    select(
        _GROUPS.c.id,
        _GROUPS.c.org_id,
        _GROUPS.c.name,
        _GROUPS.c.email,
        _GROUPS.c.description,
        _GROUPS.c.external_id,
        _GROUPS.c.source,
    ).where(_GROUPS.c.id == bindparam("id"))
)
_GROUP_NAME = Prepared(
    select(_GROUPS.c.name).where(
        _GROUPS.c.org_id == bindparam("org"), _GROUPS.c.id == bindparam("id")
    )
)
_MEMBERS = Prepared(
    select(GroupMemberRow.user_id).where(GroupMemberRow.group_id == bindparam("group"))
)
_IS_MEMBER = select(GroupMemberRow.user_id).where(
    GroupMemberRow.group_id == bindparam("group"), GroupMemberRow.user_id == bindparam("user")
)
_MEMBER = Prepared(_IS_MEMBER)
_MEMBER_LOCKED = Prepared(_IS_MEMBER.with_for_update(read=True))


class SqlGroups:
    def __init__(self, session: Session) -> None:
        self.s = session
        # An approver group is read for the vote and again for the notices: once per
        # transaction, forgotten when this repository changes it or its members.
        self._memo = Memo.of(session)

    def _group(self, row: GroupRow | Any) -> Group:
        members = _MEMBERS.scalars(self.s, group=row.id)
        return Group(
            row.id,
            row.org_id,
            row.name,
            row.email,
            row.description,
            frozenset(members),
            row.external_id,
            Source(row.source),
        )

    def add(self, group: Group, *, at: datetime) -> None:
        self.s.add(
            GroupRow(
                id=group.id,
                org_id=group.org_id,
                name=group.name,
                name_key=group.name.casefold(),
                email=group.email,
                email_key=group.email.casefold(),
                description=group.description,
                created_at=at,
                external_id=group.external_id,
                source=group.source.value,
            )
        )
        self.s.flush()

    def save(self, group: Group, *, at: datetime) -> None:
        self._memo.changed(Change.GROUP, group.id)
        row = self.s.get_one(GroupRow, group.id)
        row.name = group.name
        row.name_key = group.name.casefold()
        row.email = group.email
        row.email_key = group.email.casefold()
        row.description = group.description
        row.external_id = group.external_id
        row.source = group.source.value
        row.modified_at = at
        self.s.flush()

    def scim_page(
        self, org_id: UUID, *, where: Filter | None, offset: int, limit: int
    ) -> tuple[int, list[Stamped[Group]]]:
        stmt: Select[Any] = select(GroupRow).where(GroupRow.org_id == org_id)
        if where is not None:
            stmt = stmt.where(_matching(where))
        total = self.s.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        if not limit:
            return int(total), []
        rows = self.s.scalars(stmt.order_by(GroupRow.name_key).offset(offset).limit(limit))
        return int(total), [Stamped(self._group(r), r.created_at, r.modified_at) for r in rows]

    def get(self, group_id: UUID) -> Group | None:
        if (known := self._memo.get(GROUPS, group_id)) is not None:
            return known
        row = _GET_GROUP.first(self.s, id=group_id)
        if row is None:
            return None
        group = self._group(row)
        self._memo.put(GROUPS, group_id, group)
        return group

    def find(self, org_id: UUID, name_or_email: str) -> Group | None:
        key = name_or_email.strip().casefold()
        row = self.s.scalars(
            select(GroupRow).where(
                GroupRow.org_id == org_id, or_(GroupRow.name_key == key, GroupRow.email_key == key)
            )
        ).first()
        return self._group(row) if row else None

    def remove(self, group_id: UUID) -> None:
        self._memo.changed(Change.GROUP_REMOVED, group_id)
        self.s.execute(delete(GroupMemberRow).where(GroupMemberRow.group_id == group_id))
        self.s.execute(
            delete(PolicyEligibleRow).where(
                PolicyEligibleRow.principal_kind == PrincipalKind.GROUP.value,
                PolicyEligibleRow.principal_id == group_id,
            )
        )
        self.s.execute(
            delete(AssignmentRow).where(
                AssignmentRow.principal_kind == PrincipalKind.GROUP.value,
                AssignmentRow.principal_id == group_id,
            )
        )
        self.s.execute(delete(GroupRow).where(GroupRow.id == group_id))

    def add_member(self, group_id: UUID, user_id: UUID, *, added_by: UUID | None) -> bool:
        self._memo.changed(Change.GROUP, group_id)
        row = self.s.get(GroupMemberRow, (group_id, user_id))
        if row is not None:
            if row.added_by == added_by:
                return False
            row.added_by = added_by  # added again by someone else: theirs now
            self.s.flush()
            return True
        self.s.add(GroupMemberRow(group_id=group_id, user_id=user_id, added_by=added_by))
        self.s.flush()
        return True

    def member_paths(
        self, group_id: UUID, user_ids: Iterable[UUID]
    ) -> dict[UUID, list[tuple[UUID | None, ...]]]:
        found: dict[UUID, list[tuple[UUID | None, ...]]] = {i: [] for i in user_ids}
        for chunk in chunks(found):
            rows = self.s.execute(
                select(GroupMemberRow.user_id, GroupMemberRow.added_by).where(
                    GroupMemberRow.group_id == group_id, GroupMemberRow.user_id.in_(chunk)
                )
            )
            for user_id, added_by in rows:
                found[user_id].append((added_by,))  # no nested groups: one link per path
        return found

    def is_member(self, group_id: UUID, user_id: UUID, *, lock: bool = False) -> bool:
        known = self._memo.get(MEMBERSHIP, (group_id, user_id))
        if known is not None and (known[1] or not lock):
            return known[0]
        found = (_MEMBER_LOCKED if lock else _MEMBER).first(self.s, group=group_id, user=user_id)
        self._memo.put(MEMBERSHIP, (group_id, user_id), (found is not None, lock))
        return found is not None

    def remove_member(self, group_id: UUID, user_id: UUID) -> bool:
        self._memo.changed(Change.GROUP, group_id)
        result = self.s.execute(
            delete(GroupMemberRow).where(
                GroupMemberRow.group_id == group_id, GroupMemberRow.user_id == user_id
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def in_org(
        self, org_id: UUID, *, cursor: str | None = None, limit: int | None = None
    ) -> Page[Group]:
        stmt = select(GroupRow).where(GroupRow.org_id == org_id)
        rows, nxt = page_by_key(self.s, stmt, GroupRow.name_key, cursor=cursor, limit=limit)
        return Page([self._group(r) for r in rows], nxt)

    def summaries(
        self, org_id: UUID, *, cursor: str | None, limit: int, members: int
    ) -> Page[GroupSummary]:
        stmt = select(GroupRow.id, GroupRow.name, GroupRow.email, GroupRow.name_key).where(
            GroupRow.org_id == org_id
        )
        after = after_key(cursor)
        if after is not None:
            stmt = stmt.where(GroupRow.name_key > after)
        rows = self.s.execute(stmt.order_by(GroupRow.name_key).limit(limit + 1)).all()
        nxt = None
        if len(rows) > limit:
            rows = rows[:limit]
            nxt = encode_cursor(rows[-1].name_key)
        ids = [r.id for r in rows]
        counts: dict[UUID, int] = {}
        firsts: dict[UUID, list[str]] = {}
        if ids:
            counted = self.s.execute(
                select(GroupMemberRow.group_id, func.count())
                .where(GroupMemberRow.group_id.in_(ids))
                .group_by(GroupMemberRow.group_id)
            )
            counts = {g: int(n) for g, n in counted}
        if ids and members > 0:
            ranked = (
                select(
                    GroupMemberRow.group_id,
                    UserRow.upn,
                    func.row_number()
                    .over(partition_by=GroupMemberRow.group_id, order_by=UserRow.upn)
                    .label("n"),
                )
                .join(UserRow, UserRow.id == GroupMemberRow.user_id)
                .where(GroupMemberRow.group_id.in_(ids))
                .subquery()
            )
            firsts_rows = self.s.execute(
                select(ranked.c.group_id, ranked.c.upn)
                .where(ranked.c.n <= members)
                .order_by(ranked.c.group_id, ranked.c.upn)
            )
            for gid, upn in firsts_rows:
                firsts.setdefault(gid, []).append(upn)
        return Page(
            [
                GroupSummary(r.name, r.email, counts.get(r.id, 0), firsts.get(r.id, []))
                for r in rows
            ],
            nxt,
        )

    def names(self, org_id: UUID, ids: Iterable[UUID]) -> dict[UUID, str]:
        out, unread = named_from_memory(self._memo, GROUPS, org_id, ids, lambda g: g.name)
        out.update(labels(self.s, _GROUPS, "name", org_id, unread, _GROUP_NAME))
        return out

    def _approving(self, group_id: UUID) -> str | None:
        """How the group makes its members approvers, or None."""
        policy = self.s.scalar(
            select(PolicyRow.id).where(PolicyRow.approver_group_id == group_id).limit(1)
        )
        if policy is not None:
            return f"it is the approver group of the policy {policy}"
        org = self.s.scalar(
            select(OrganizationRow.id)
            .where(OrganizationRow.default_approver_group_id == group_id)
            .limit(1)
        )
        return None if org is None else "it is the default approver group of access control"

    def approves(self, group_id: UUID) -> bool:
        return self._approving(group_id) is not None

    def in_use(self, group_id: UUID) -> str | None:
        if (approving := self._approving(group_id)) is not None:
            return approving
        eligible = self.s.scalar(
            select(PolicyEligibleRow.policy_id).where(
                PolicyEligibleRow.principal_kind == PrincipalKind.GROUP.value,
                PolicyEligibleRow.principal_id == group_id,
            )
        )
        if eligible is not None:
            return f"it is an eligible requester of the policy {eligible}"
        assigned = self.s.scalar(
            select(AssignmentRow.target).where(
                AssignmentRow.principal_kind == PrincipalKind.GROUP.value,
                AssignmentRow.principal_id == group_id,
            )
        )
        if assigned is not None:
            return f"it holds '{assigned}': remove that assignment first"
        return None


def _matching(where: Filter) -> Any:
    """The condition of a SCIM filter on groups."""
    if where.attribute == "id":
        try:
            return GroupRow.id == UUID(where.value)
        except ValueError:
            return GroupRow.id.is_(None)  # no group has that id
    if where.attribute == "displayname":
        return GroupRow.name_key == where.value.casefold()
    return GroupRow.external_id == where.value
