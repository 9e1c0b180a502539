"""Users and their account stewards."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast
from uuid import UUID

from sqlalchemy import (
    Row,
    Select,
    Table,
    bindparam,
    func,
    select,
)
from sqlalchemy.orm import Session

from jitpam.adapters.sql.memo import GROUPS_OF_USER, USERS, Change, Memo
from jitpam.adapters.sql.models import (
    AccountStewardRow,
    GroupMemberRow,
    UserRow,
)
from jitpam.adapters.sql.prepared import Prepared
from jitpam.adapters.sql.queries import (
    chunks,
    labels,
    named_from_memory,
    page_by_key,
)
from jitpam.domain.directory import Source, User, UserKind, fold_upn
from jitpam.domain.scim import Filter
from jitpam.domain.separation import Stewardship
from jitpam.services.ports import Page, Stamped


def _user(row: UserRow | Row[Any]) -> User:
    """A user from its ORM row or a Core row of the same columns."""
    return User(
        id=row.id,
        org_id=row.org_id,
        upn=row.upn,
        display_name=row.display_name,
        email=row.email,
        kind=UserKind(row.kind),
        enabled=row.enabled,
        external_id=row.external_id,
        source=Source(row.source),
        scim_deleted=row.scim_deleted,
        disabled_by_hand=row.disabled_by_hand,
    )


_USERS = cast(Table, UserRow.__table__)
# Reading a user is on every call's path (the caller), checks included.
_READ_USER = select(
    _USERS.c.id,
    _USERS.c.org_id,
    _USERS.c.upn,
    _USERS.c.display_name,
    _USERS.c.email,
    _USERS.c.kind,
    _USERS.c.enabled,
    _USERS.c.external_id,
    _USERS.c.source,
    _USERS.c.scim_deleted,
    _USERS.c.disabled_by_hand,
).where(_USERS.c.id == bindparam("id"))
_GET_USER = Prepared(_READ_USER)
_UPN = Prepared(
    select(_USERS.c.upn).where(_USERS.c.org_id == bindparam("org"), _USERS.c.id == bindparam("id"))
)
_LOCK_USER = Prepared(_READ_USER.with_for_update())
_GROUPS_OF = Prepared(
    select(GroupMemberRow.group_id).where(GroupMemberRow.user_id == bindparam("user"))
)


# Users SCIM sees: people and guests it has not deleted (service and application accounts are
# jitpam's own).
_SCIM_VISIBLE = (
    UserRow.kind.in_((UserKind.PERSON.value, UserKind.GUEST.value)),
    UserRow.scim_deleted.is_(False),
)


class SqlUsers:
    def __init__(self, session: Session) -> None:
        self.s = session
        # A use case meets the same people more than once (caller, requester, approvers).
        self._memo = Memo.of(session)

    def add(self, user: User, *, at: datetime) -> None:
        self.s.add(
            UserRow(
                id=user.id,
                org_id=user.org_id,
                upn=user.upn,
                display_name=user.display_name,
                email=user.email,
                kind=user.kind.value,
                enabled=user.enabled,
                created_at=at,
                external_id=user.external_id,
                source=user.source.value,
                scim_deleted=user.scim_deleted,
                disabled_by_hand=user.disabled_by_hand,
            )
        )
        self.s.flush()

    def get(self, user_id: UUID, *, for_update: bool = False) -> User | None:
        if not for_update and (known := self._memo.get(USERS, user_id)) is not None:
            return known
        found = (_LOCK_USER if for_update else _GET_USER).first(self.s, id=user_id)
        if found is None:
            return None
        user = _user(found)
        self._memo.put(USERS, user_id, user)
        return user

    def get_by_upn(self, upn: str) -> User | None:
        row = self.s.scalars(select(UserRow).where(UserRow.upn == fold_upn(upn))).first()
        return _user(row) if row else None

    def save(self, user: User, *, at: datetime | None = None) -> None:
        self._memo.changed(Change.USER, user.id)
        row = self.s.get_one(UserRow, user.id)
        row.upn = user.upn
        row.display_name = user.display_name
        row.email = user.email
        row.enabled = user.enabled
        row.external_id = user.external_id
        row.source = user.source.value
        row.scim_deleted = user.scim_deleted
        row.disabled_by_hand = user.disabled_by_hand
        if at is not None:
            row.modified_at = at
        self.s.flush()

    def scim_page(
        self, org_id: UUID, *, where: Filter | None, offset: int, limit: int
    ) -> tuple[int, list[Stamped[User]]]:
        stmt: Select[Any] = select(UserRow).where(UserRow.org_id == org_id, *_SCIM_VISIBLE)
        if where is not None:
            stmt = stmt.where(_matching(where))
        total = self.s.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        if not limit:
            return int(total), []
        rows = self.s.scalars(stmt.order_by(UserRow.upn).offset(offset).limit(limit))
        return int(total), [Stamped(_user(r), r.created_at, r.modified_at) for r in rows]

    def in_org(
        self, org_id: UUID, *, cursor: str | None = None, limit: int | None = None
    ) -> Page[User]:
        stmt = select(UserRow).where(UserRow.org_id == org_id)
        rows, nxt = page_by_key(self.s, stmt, UserRow.upn, cursor=cursor, limit=limit)
        return Page([_user(r) for r in rows], nxt)

    def group_ids(self, user_id: UUID) -> frozenset[UUID]:
        if (known := self._memo.get(GROUPS_OF_USER, user_id)) is not None:
            return known
        found = frozenset(_GROUPS_OF.scalars(self.s, user=user_id))
        self._memo.put(GROUPS_OF_USER, user_id, found)
        return found

    def every_upn(self, org_id: UUID) -> list[str]:
        return list(self.s.scalars(select(UserRow.upn).where(UserRow.org_id == org_id)))

    def upns(self, org_id: UUID, ids: Iterable[UUID]) -> dict[UUID, str]:
        # Those the transaction has read already (the caller, the approvers of a vote) are
        # named from memory.
        out, unread = named_from_memory(self._memo, USERS, org_id, ids, lambda u: u.upn)
        out.update(labels(self.s, _USERS, "upn", org_id, unread, _UPN))
        return out

    def scim_visible(self, org_id: UUID, ids: Iterable[UUID]) -> frozenset[UUID]:
        out: set[UUID] = set()
        for chunk in chunks(set(ids)):
            out.update(
                self.s.scalars(
                    select(UserRow.id).where(
                        UserRow.id.in_(chunk), UserRow.org_id == org_id, *_SCIM_VISIBLE
                    )
                )
            )
        return frozenset(out)

    def add_steward(self, user: User, steward_id: UUID, how: Stewardship, *, at: datetime) -> None:
        key = (user.id, steward_id, how.value)
        if self.s.get(AccountStewardRow, key) is None:  # the first time is the one kept
            self.s.add(
                AccountStewardRow(
                    org_id=user.org_id, user_id=user.id, steward_id=steward_id, how=how.value, at=at
                )
            )
            self.s.flush()

    def stewards(self, user_ids: Iterable[UUID]) -> dict[UUID, frozenset[UUID]]:
        found: dict[UUID, set[UUID]] = {i: set() for i in user_ids}
        for chunk in chunks(found):
            rows = self.s.execute(
                select(AccountStewardRow.user_id, AccountStewardRow.steward_id).where(
                    AccountStewardRow.user_id.in_(chunk)
                )
            )
            for user_id, steward_id in rows:
                found[user_id].add(steward_id)
        return {i: frozenset(s) for i, s in found.items()}

    def steered_by(self, steward_ids: frozenset[UUID]) -> frozenset[UUID]:
        found: set[UUID] = set()
        for chunk in chunks(steward_ids):
            found.update(
                self.s.scalars(
                    select(AccountStewardRow.user_id)
                    .where(AccountStewardRow.steward_id.in_(chunk))
                    .distinct()
                )
            )
        return frozenset(found)


def _matching(where: Filter) -> Any:
    """The condition of a SCIM filter on users (user names are stored folded: ``fold_upn``)."""
    if where.attribute == "id":
        try:
            return UserRow.id == UUID(where.value)
        except ValueError:
            return UserRow.id.is_(None)  # no user has that id
    if where.attribute == "username":
        return UserRow.upn == fold_upn(where.value)
    if where.attribute == "displayname":
        return func.lower(UserRow.display_name) == where.value.lower()
    return UserRow.external_id == where.value
