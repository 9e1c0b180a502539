"""SQLAlchemy implementations of the services' repository ports."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar, cast
from uuid import UUID, uuid4

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    SQLColumnExpression,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    false,
    func,
    insert,
    or_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from jitpam.adapters.sql.db import fold
from jitpam.adapters.sql.models import (
    AccountStewardRow,
    ApiTokenRow,
    AssignmentRow,
    AuditHeadRow,
    AuditRow,
    AuthorizationRow,
    CatalogEntryRow,
    CatalogLinkRow,
    GroupMemberRow,
    GroupRow,
    OidcLinkRow,
    OrganizationDomainRow,
    OrganizationRow,
    OutboxRow,
    PasswordRow,
    PolicyEligibleRow,
    PolicyRow,
    RequestRow,
    ReviewRow,
    SystemAccountRow,
    UserRow,
    WebhookRow,
)
from jitpam.adapters.sql.prepared import PerTransaction, Prepared
from jitpam.domain.audit import GENESIS_HASH, AuditEvent, AuditRecord, Outcome, chain
from jitpam.domain.catalog import Catalog
from jitpam.domain.check import Grant
from jitpam.domain.control import AccessControl
from jitpam.domain.directory import Assignment, Group, Organization, PrincipalKind, User, UserKind
from jitpam.domain.errors import AlreadyVoted, AuditUnavailable, InvalidInput, RequestNotPending
from jitpam.domain.names import SEPARATOR, QualifiedName
from jitpam.domain.notifications import (
    Channel,
    DeliveryState,
    EventType,
    OutboxMessage,
    WebhookEndpoint,
    WebhookFormat,
)
from jitpam.domain.policy import ApprovalType, Policy, PolicyType
from jitpam.domain.requests import (
    AccessRequest,
    Authorization,
    RequestStatus,
    Review,
    ReviewDecision,
)
from jitpam.domain.separation import Stewardship
from jitpam.domain.text import unstorable
from jitpam.domain.timeutil import canonical_json, iso
from jitpam.domain.tokens import ApiToken
from jitpam.services.ports import (
    SEARCH_WINDOW,
    AuditFilter,
    GroupSummary,
    Page,
    RequestFilter,
    Reviewer,
    RoleMember,
)


def _encode_cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode()


def _contains(column: SQLColumnExpression[str], text: str) -> ColumnElement[bool]:
    """``column`` contains ``text``, any case, with LIKE's wildcards taken literally."""
    needle = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return fold(column).like(f"%{needle}%", escape="\\")


def _decode_cursor(cursor: str, n: int) -> list[str]:
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError):
        raise InvalidInput("the page cursor is not valid") from None
    if (
        not isinstance(parts, list)
        or len(parts) != n
        or not all(isinstance(p, str) and unstorable(p) is None for p in parts)
    ):
        raise InvalidInput("the page cursor is not valid")
    return parts


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput("the page cursor is not valid") from None
    if moment.tzinfo is None:
        raise InvalidInput("the page cursor is not valid")
    return moment


def _time_and_id(cursor: str) -> tuple[datetime, UUID]:
    """A (time, id) keyset cursor, checked: a mangled one is invalid input, not a server error."""
    created, key = _decode_cursor(cursor, 2)
    return _moment_and_id(created, key)


def _moment_and_id(moment: str, key: str) -> tuple[datetime, UUID]:
    try:
        return _parse_time(moment), UUID(key)
    except ValueError:
        raise InvalidInput("the page cursor is not valid") from None


def _after(cursor: str | None) -> str | None:
    """The key a one-part keyset cursor points after."""
    return _decode_cursor(cursor, 1)[0] if cursor else None


_CHUNK = 900  # ids per IN list, well under every driver's limit on bound parameters


K = TypeVar("K", UUID, str)


def _chunks(ids: Iterable[K]) -> Iterator[list[K]]:
    wanted = sorted(set(ids))
    for i in range(0, len(wanted), _CHUNK):
        yield wanted[i : i + _CHUNK]


_FEW_LABELS = 4  # up to this many ids, each is looked up by its key (no IN list to build)


_Named = TypeVar("_Named", User, Group)


def _named_from_memory(
    known: PerTransaction[UUID, _Named],
    org_id: UUID,
    ids: Iterable[UUID],
    label: Callable[[_Named], str],
) -> tuple[dict[UUID, str], list[UUID]]:
    """The labels of those of ``ids`` this transaction has read already (of ``org_id``), and
    the ids it has not read."""
    out: dict[UUID, str] = {}
    unread: list[UUID] = []
    for i in ids:
        if (found := known.get(i)) is None:
            unread.append(i)
        elif found.org_id == org_id:
            out[i] = label(found)
    return out, unread


def _labels(
    session: Session,
    table: Any,
    column: str,
    org_id: UUID,
    ids: Iterable[UUID],
    one: Prepared | None = None,
) -> dict[UUID, str]:
    """``column`` of the organization's rows of ``table`` with these ids, by id (``one``: the
    label of one row, by ``org`` and ``id``)."""
    out: dict[UUID, str] = {}
    wanted = list(ids)
    if one is not None and len(wanted) <= _FEW_LABELS:
        for i in wanted:
            if (found := one.first(session, org=org_id, id=i)) is not None:
                out[i] = found[0]
        return out
    for chunk in _chunks(wanted):
        rows = session.execute(
            select(table.c.id, table.c[column]).where(
                table.c.org_id == org_id, table.c.id.in_(chunk)
            )
        )
        out.update((i, label) for i, label in rows.tuples())
    return out


_ORGS = cast(Table, OrganizationRow.__table__)
_READ_ORG = select(
    _ORGS.c.id,
    _ORGS.c.name,
    _ORGS.c.control_enabled,
    _ORGS.c.default_approver_group_id,
    _ORGS.c.ticket_pattern,
    _ORGS.c.max_policies,
    _ORGS.c.pending_hours,
    _ORGS.c.default_approver_group_set_by,
).where(_ORGS.c.id == bindparam("id"))
_GET_ORG = Prepared(_READ_ORG)
_LOCK_ORG = Prepared(_READ_ORG.with_for_update())
_SYSTEM_ACCOUNTS = Prepared(
    select(SystemAccountRow.user_id, SystemAccountRow.designated_by).where(
        SystemAccountRow.org_id == bindparam("org")
    )
)


class SqlOrganizations:
    def __init__(self, session: Session) -> None:
        self.s = session
        # An organization's settings are read by most use cases, often more than once: read
        # once per transaction (this one writes them through save_control, which forgets them).
        self._controls: PerTransaction[UUID, AccessControl] = PerTransaction(
            session, "orgs.control"
        )
        self._rows: PerTransaction[UUID, Any] = PerTransaction(session, "orgs.row")

    def _row(self, org_id: UUID, *, for_update: bool = False) -> Any:
        if not for_update and (known := self._rows.get(org_id)) is not None:
            return known
        row = (_LOCK_ORG if for_update else _GET_ORG).first(self.s, id=org_id)
        if row is not None:
            self._rows.put(org_id, row)
        return row

    def add(self, org: Organization, control: AccessControl, *, at: datetime) -> None:
        self.s.add(OrganizationRow(id=org.id, name=org.name, created_at=at))
        self.s.flush()  # rows are flushed in the order of their foreign keys only when told
        self.s.add(AuditHeadRow(org_id=org.id, seq=0, head_hash=GENESIS_HASH))
        self.s.flush()
        self.save_control(control)

    def get(self, org_id: UUID) -> Organization | None:
        row = self._row(org_id)
        return Organization(row.id, row.name) if row else None

    def domain_owner(self, domain: str) -> UUID | None:
        row = self.s.get(OrganizationDomainRow, domain.lower())
        return row.org_id if row else None

    def add_domain(self, org_id: UUID, domain: str) -> None:
        self.s.add(OrganizationDomainRow(domain=domain.lower(), org_id=org_id))
        self.s.flush()

    def domains(self, org_id: UUID) -> list[str]:
        return list(
            self.s.scalars(
                select(OrganizationDomainRow.domain)
                .where(OrganizationDomainRow.org_id == org_id)
                .order_by(OrganizationDomainRow.domain)
            )
        )

    def all(self) -> list[Organization]:
        rows = self.s.scalars(select(OrganizationRow).order_by(OrganizationRow.name))
        return [Organization(r.id, r.name) for r in rows]

    def get_by_name(self, name: str) -> Organization | None:
        row = self.s.scalars(select(OrganizationRow).where(OrganizationRow.name == name)).first()
        return Organization(row.id, row.name) if row else None

    def control(self, org_id: UUID, *, for_update: bool = False) -> AccessControl:
        if not for_update and (known := self._controls.get(org_id)) is not None:
            return known
        row = self._row(org_id, for_update=for_update)
        if row is None:
            raise LookupError(f"no organization {org_id}")
        accounts: dict[UUID, UUID | None] = dict(_SYSTEM_ACCOUNTS.all(self.s, org=org_id))
        control = AccessControl(
            org_id=row.id,
            enabled=row.control_enabled,
            default_approver_group_id=row.default_approver_group_id,
            system_account_ids=frozenset(accounts),
            ticket_pattern=row.ticket_pattern,
            max_policies=row.max_policies,
            pending_hours=row.pending_hours,
            default_approver_group_set_by=row.default_approver_group_set_by,
            system_account_designators=accounts,
        )
        self._controls.put(org_id, control)
        return control

    def save_control(self, control: AccessControl) -> None:
        self._controls.forget(control.org_id)
        self._rows.forget(control.org_id)
        row = self.s.get_one(OrganizationRow, control.org_id)
        row.control_enabled = control.enabled
        row.default_approver_group_id = control.default_approver_group_id
        row.ticket_pattern = control.ticket_pattern
        row.max_policies = control.max_policies
        row.pending_hours = control.pending_hours
        row.default_approver_group_set_by = control.default_approver_group_set_by
        self.s.execute(delete(SystemAccountRow).where(SystemAccountRow.org_id == control.org_id))
        for user_id in sorted(control.system_account_ids):
            self.s.add(
                SystemAccountRow(
                    org_id=control.org_id,
                    user_id=user_id,
                    designated_by=control.system_account_designators.get(user_id),
                )
            )
        self.s.flush()


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
).where(_USERS.c.id == bindparam("id"))
_GET_USER = Prepared(_READ_USER)
_UPN = Prepared(
    select(_USERS.c.upn).where(_USERS.c.org_id == bindparam("org"), _USERS.c.id == bindparam("id"))
)
_LOCK_USER = Prepared(_READ_USER.with_for_update())
GROUPS_OF = "users.group_ids"  # read by SqlUsers, forgotten by SqlGroups on a change
_GROUPS_OF = Prepared(
    select(GroupMemberRow.group_id).where(GroupMemberRow.user_id == bindparam("user"))
)


class SqlUsers:
    def __init__(self, session: Session) -> None:
        self.s = session
        # A use case meets the same people more than once (caller, requester, approvers).
        self._known: PerTransaction[UUID, User] = PerTransaction(session, "users")
        self._groups: PerTransaction[UUID, frozenset[UUID]] = PerTransaction(session, GROUPS_OF)

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
            )
        )
        self.s.flush()

    def get(self, user_id: UUID, *, for_update: bool = False) -> User | None:
        if not for_update and (known := self._known.get(user_id)) is not None:
            return known
        found = (_LOCK_USER if for_update else _GET_USER).first(self.s, id=user_id)
        if found is None:
            return None
        user = _user(found)
        self._known.put(user_id, user)
        return user

    def get_by_upn(self, upn: str) -> User | None:
        row = self.s.scalars(select(UserRow).where(UserRow.upn == upn.lower())).first()
        return _user(row) if row else None

    def save(self, user: User) -> None:
        self._known.forget(user.id)
        row = self.s.get_one(UserRow, user.id)
        row.display_name = user.display_name
        row.email = user.email
        row.enabled = user.enabled
        self.s.flush()

    def in_org(
        self, org_id: UUID, *, after: str | None = None, limit: int | None = None
    ) -> list[User]:
        stmt = select(UserRow).where(UserRow.org_id == org_id)
        if after is not None:
            stmt = stmt.where(UserRow.upn > after)
        rows = self.s.scalars(stmt.order_by(UserRow.upn).limit(limit))
        return [_user(r) for r in rows]

    def group_ids(self, user_id: UUID) -> frozenset[UUID]:
        if (known := self._groups.get(user_id)) is not None:
            return known
        found = frozenset(_GROUPS_OF.scalars(self.s, user=user_id))
        self._groups.put(user_id, found)
        return found

    def upns(self, org_id: UUID, ids: Iterable[UUID]) -> dict[UUID, str]:
        # Those the transaction has read already (the caller, the approvers of a vote) are
        # named from memory.
        out, unread = _named_from_memory(self._known, org_id, ids, lambda u: u.upn)
        out.update(_labels(self.s, _USERS, "upn", org_id, unread, _UPN))
        return out

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
        for chunk in _chunks(found):
            rows = self.s.execute(
                select(AccountStewardRow.user_id, AccountStewardRow.steward_id).where(
                    AccountStewardRow.user_id.in_(chunk)
                )
            )
            for user_id, steward_id in rows.tuples():
                found[user_id].add(steward_id)
        return {i: frozenset(s) for i, s in found.items()}

    def steered_by(self, steward_ids: frozenset[UUID]) -> frozenset[UUID]:
        found: set[UUID] = set()
        for chunk in _chunks(steward_ids):
            found.update(
                self.s.scalars(
                    select(AccountStewardRow.user_id)
                    .where(AccountStewardRow.steward_id.in_(chunk))
                    .distinct()
                )
            )
        return frozenset(found)


_GROUPS = cast(Table, GroupRow.__table__)
_GET_GROUP = Prepared(
    select(
        _GROUPS.c.id, _GROUPS.c.org_id, _GROUPS.c.name, _GROUPS.c.email, _GROUPS.c.description
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


POLICIES = "policies"  # read by SqlPolicies, forgotten by SqlGroups when a group goes


class SqlGroups:
    def __init__(self, session: Session) -> None:
        self.s = session
        # An approver group is read for the vote and again for the notices: once per
        # transaction, forgotten when this repository changes it or its members.
        self._known: PerTransaction[UUID, Group] = PerTransaction(session, "groups")
        # (group, user) -> (a member, read under a lock that holds to the transaction's end)
        self._membership: PerTransaction[tuple[UUID, UUID], tuple[bool, bool]] = PerTransaction(
            session, "groups.members"
        )
        self._groups_of: PerTransaction[UUID, frozenset[UUID]] = PerTransaction(session, GROUPS_OF)

    def _changed(self, group_id: UUID) -> None:
        self._known.forget(group_id)
        self._membership.clear()
        self._groups_of.clear()

    def _group(self, row: GroupRow | Any) -> Group:
        members = _MEMBERS.scalars(self.s, group=row.id)
        return Group(row.id, row.org_id, row.name, row.email, row.description, frozenset(members))

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
            )
        )
        self.s.flush()

    def get(self, group_id: UUID) -> Group | None:
        if (known := self._known.get(group_id)) is not None:
            return known
        row = _GET_GROUP.first(self.s, id=group_id)
        if row is None:
            return None
        group = self._group(row)
        self._known.put(group_id, group)
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
        self._changed(group_id)
        PerTransaction[UUID, Policy](self.s, POLICIES).clear()  # their eligible groups change
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
        self._changed(group_id)
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
        for chunk in _chunks(found):
            rows = self.s.execute(
                select(GroupMemberRow.user_id, GroupMemberRow.added_by).where(
                    GroupMemberRow.group_id == group_id, GroupMemberRow.user_id.in_(chunk)
                )
            )
            for user_id, added_by in rows.tuples():
                found[user_id].append((added_by,))  # no nested groups: one link per path
        return found

    def is_member(self, group_id: UUID, user_id: UUID, *, lock: bool = False) -> bool:
        known = self._membership.get((group_id, user_id))
        if known is not None and (known[1] or not lock):
            return known[0]
        found = (_MEMBER_LOCKED if lock else _MEMBER).first(self.s, group=group_id, user=user_id)
        self._membership.put((group_id, user_id), (found is not None, lock))
        return found is not None

    def remove_member(self, group_id: UUID, user_id: UUID) -> bool:
        self._changed(group_id)
        result = self.s.execute(
            delete(GroupMemberRow).where(
                GroupMemberRow.group_id == group_id, GroupMemberRow.user_id == user_id
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def in_org(
        self, org_id: UUID, *, after: str | None = None, limit: int | None = None
    ) -> list[Group]:
        stmt = select(GroupRow).where(GroupRow.org_id == org_id)
        if after is not None:
            stmt = stmt.where(GroupRow.name_key > after)
        rows = self.s.scalars(stmt.order_by(GroupRow.name_key).limit(limit))
        return [self._group(r) for r in rows]

    def summaries(
        self, org_id: UUID, *, cursor: str | None, limit: int, members: int
    ) -> Page[GroupSummary]:
        stmt = select(GroupRow.id, GroupRow.name, GroupRow.email, GroupRow.name_key).where(
            GroupRow.org_id == org_id
        )
        after = _after(cursor)
        if after is not None:
            stmt = stmt.where(GroupRow.name_key > after)
        rows = self.s.execute(stmt.order_by(GroupRow.name_key).limit(limit + 1)).all()
        nxt = None
        if len(rows) > limit:
            rows = rows[:limit]
            nxt = _encode_cursor(rows[-1].name_key)
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
        out, unread = _named_from_memory(self._known, org_id, ids, lambda g: g.name)
        out.update(_labels(self.s, _GROUPS, "name", org_id, unread, _GROUP_NAME))
        return out

    def in_use(self, group_id: UUID) -> str | None:
        policy = self.s.scalars(
            select(PolicyRow).where(PolicyRow.approver_group_id == group_id)
        ).first()
        if policy is not None:
            return f"it is the approver group of the policy {policy.id}"
        org = self.s.scalars(
            select(OrganizationRow).where(OrganizationRow.default_approver_group_id == group_id)
        ).first()
        if org is not None:
            return "it is the default approver group of access control"
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


_KIND = {PolicyType.TASK: "task", PolicyType.ROLE: "role", PolicyType.ROLE_GROUP: "role_group"}


_FEW_TASKS = 5_000  # up to this many tasks, a role's tasks are read and sorted


def _qualified(row: CatalogEntryRow) -> str:
    return str(QualifiedName(row.scope, row.name))


_ENTRIES = cast(Table, CatalogEntryRow.__table__)
_ROLE = _ENTRIES.alias("role")
_NAMES = Prepared(
    select(_ENTRIES.c.scope, _ENTRIES.c.name).where(
        _ENTRIES.c.org_id == bindparam("org"),
        _ENTRIES.c.kind == bindparam("kind"),
        _ENTRIES.c.name_key == bindparam("name_key"),
    )
)
_TASK_EXISTS = Prepared(
    select(_ENTRIES.c.id).where(
        _ENTRIES.c.org_id == bindparam("org"),
        _ENTRIES.c.kind == "task",
        _ENTRIES.c.key == bindparam("key"),
    )
)
_ROLES_HOLDING = Prepared(
    select(_ROLE.c.scope, _ROLE.c.name)
    .select_from(_ENTRIES)
    .join(CatalogLinkRow, CatalogLinkRow.child_id == _ENTRIES.c.id)
    .join(_ROLE, _ROLE.c.id == CatalogLinkRow.parent_id)
    .where(
        _ENTRIES.c.org_id == bindparam("org"),
        _ENTRIES.c.kind == "task",
        _ENTRIES.c.key == bindparam("key"),
        _ROLE.c.kind == "role",
    )
)

_ROLE_GROUP = Prepared(
    select(_ENTRIES.c.id).where(
        _ENTRIES.c.org_id == bindparam("org"),
        _ENTRIES.c.kind == "role_group",
        _ENTRIES.c.key == bindparam("key"),
    )
)
# The role group first, then its links by its id (see role_group_roles).
_ROLES_OF_GROUP = Prepared(
    select(_ROLE.c.scope, _ROLE.c.name)
    .select_from(CatalogLinkRow)
    .join(_ROLE, _ROLE.c.id == CatalogLinkRow.child_id)
    .where(CatalogLinkRow.parent_id == bindparam("id"))
)


class SqlCatalog:
    def __init__(self, session: Session) -> None:
        self.s = session
        self.changed = 0

    def _entry(self, org_id: UUID, kind: str, name: QualifiedName, description: str) -> UUID:
        """Add or update one entry; counts it in ``self.changed`` when it was new or different."""
        row = self.s.scalars(
            select(CatalogEntryRow).where(
                CatalogEntryRow.org_id == org_id,
                CatalogEntryRow.kind == kind,
                CatalogEntryRow.key == name.key,
            )
        ).first()
        if row is None:
            row = CatalogEntryRow(
                id=uuid4(),
                org_id=org_id,
                kind=kind,
                scope=name.scope,
                name=name.name,
                key=name.key,
                name_key=name.name.casefold(),
                description=description,
            )
            self.s.add(row)
            self.changed += 1
        elif row.description != description:
            row.description = description
            self.changed += 1
        self.s.flush()
        return row.id

    def _link(self, parent: UUID, children: Sequence[UUID]) -> None:
        before = set(
            self.s.scalars(
                select(CatalogLinkRow.child_id).where(CatalogLinkRow.parent_id == parent)
            )
        )
        if before == set(children):
            return
        self.changed += 1
        self.s.execute(delete(CatalogLinkRow).where(CatalogLinkRow.parent_id == parent))
        for child in children:
            self.s.add(CatalogLinkRow(parent_id=parent, child_id=child))
        self.s.flush()

    def store(self, org_id: UUID, catalog: Catalog) -> int:
        self.changed = 0
        ids: dict[str, UUID] = {}
        for task, desc in catalog.tasks.items():
            ids["task:" + task.key] = self._entry(org_id, "task", task, desc)
        for role in catalog.roles:
            rid = self._entry(org_id, "role", role.name, role.description)
            ids["role:" + role.name.key] = rid
            self._link(rid, [ids["task:" + t.key] for t in role.tasks])
        for group in catalog.role_groups:
            gid = self._entry(org_id, "role_group", group.name, group.description)
            self._link(gid, [ids["role:" + r.key] for r in group.roles])
        return self.changed

    def names(self, org_id: UUID, kind: PolicyType, bare_name: str) -> list[QualifiedName]:
        rows = _NAMES.all(
            self.s, org=org_id, kind=_KIND[kind], name_key=bare_name.strip().casefold()
        )
        return [QualifiedName(r.scope, r.name) for r in rows]

    def task_exists(self, org_id: UUID, task: str) -> bool:
        return _TASK_EXISTS.first(self.s, org=org_id, key=task.casefold()) is not None

    def tasks_held(
        self, org_id: UUID, roles: frozenset[str], tasks: Sequence[str]
    ) -> frozenset[str]:
        if not roles or not tasks:
            return frozenset()
        e = CatalogEntryRow

        def ids(kind: str, names: Iterable[str]) -> dict[UUID, str]:
            keys = {n.casefold() for n in names}
            found = self.s.execute(
                select(e.id, e.key).where(e.org_id == org_id, e.kind == kind, e.key.in_(keys))
            )
            return dict(found.tuples().all())

        # Entries by their keys, then the links between them by id: joined in one statement,
        # PostgreSQL read every link of a role that holds 100,000 tasks.
        task_ids, role_ids = ids("task", tasks), ids("role", roles)
        if not task_ids or not role_ids:
            return frozenset()
        held = self.s.scalars(
            select(CatalogLinkRow.child_id).where(
                CatalogLinkRow.parent_id.in_(list(role_ids)),
                CatalogLinkRow.child_id.in_(list(task_ids)),
            )
        )
        return frozenset(task_ids[i] for i in held)

    def roles_holding(self, org_id: UUID, task: str) -> frozenset[str]:
        rows = _ROLES_HOLDING.all(self.s, org=org_id, key=task.casefold())
        return frozenset(str(QualifiedName(s, n)) for s, n in rows)

    def role_group_roles(
        self, org_id: UUID, only: Iterable[str] | None = None
    ) -> dict[str, frozenset[str]]:
        if only is not None:  # a user's few: each by its key
            out: dict[str, frozenset[str]] = {}
            for name in only:
                group = _ROLE_GROUP.first(self.s, org=org_id, key=name.casefold())
                rows = _ROLES_OF_GROUP.all(self.s, id=group.id) if group is not None else ()
                if rows:
                    out[name] = frozenset(str(QualifiedName(s, n)) for s, n in rows)
            return out
        # The role groups first, then their links by id: in one join, PostgreSQL judged the
        # links per parent by the average (a role holding 100,000 tasks) and read them all.
        which = select(CatalogEntryRow.id, CatalogEntryRow.scope, CatalogEntryRow.name).where(
            CatalogEntryRow.org_id == org_id, CatalogEntryRow.kind == "role_group"
        )
        groups = {
            gid: str(QualifiedName(scope, name)) for gid, scope, name in self.s.execute(which)
        }
        if not groups:
            return {}
        role = CatalogEntryRow.__table__.alias("role")
        stmt = (
            select(CatalogLinkRow.parent_id, role.c.scope, role.c.name)
            .join(role, role.c.id == CatalogLinkRow.child_id)
            .where(CatalogLinkRow.parent_id.in_(list(groups)))
        )
        found: dict[str, set[str]] = {}
        for parent, rs, rn in self.s.execute(stmt):
            found.setdefault(groups[parent], set()).add(str(QualifiedName(rs, rn)))
        return {k: frozenset(v) for k, v in found.items()}

    def tasks_of_role(self, org_id: UUID, role: str) -> list[str]:
        parent = CatalogEntryRow.__table__.alias("parent")
        stmt = (
            select(CatalogEntryRow)
            .join(CatalogLinkRow, CatalogLinkRow.child_id == CatalogEntryRow.id)
            .join(parent, parent.c.id == CatalogLinkRow.parent_id)
            .where(
                parent.c.org_id == org_id, parent.c.kind == "role", parent.c.key == role.casefold()
            )
        )
        return sorted(_qualified(r) for r in self.s.scalars(stmt))

    def entries(self, org_id: UUID, kind: PolicyType) -> list[QualifiedName]:
        rows = self.s.scalars(
            select(CatalogEntryRow)
            .where(CatalogEntryRow.org_id == org_id, CatalogEntryRow.kind == _KIND[kind])
            .order_by(CatalogEntryRow.key)
        )
        return [QualifiedName(r.scope, r.name) for r in rows]

    @staticmethod
    def _names_page(rows: Sequence[Row[tuple[str, str, str]]], limit: int) -> Page[QualifiedName]:
        nxt = _encode_cursor(rows[limit - 1][2]) if len(rows) > limit else None
        return Page([QualifiedName(scope, name) for scope, name, _ in rows[:limit]], nxt)

    def page(
        self, org_id: UUID, kind: PolicyType, *, cursor: str | None, limit: int
    ) -> Page[QualifiedName]:
        e = CatalogEntryRow
        # Reads the unique (org_id, kind, key) index in its order, from the cursor on.
        stmt = select(e.scope, e.name, e.key).where(e.org_id == org_id, e.kind == _KIND[kind])
        after = _after(cursor)
        if after is not None:
            stmt = stmt.where(e.key > after)
        return self._names_page(self.s.execute(stmt.order_by(e.key).limit(limit + 1)).all(), limit)

    def role_tasks_page(
        self, org_id: UUID, role: str, *, cursor: str | None, limit: int
    ) -> Page[QualifiedName]:
        e = CatalogEntryRow
        role_id = self.s.scalar(
            select(e.id).where(e.org_id == org_id, e.kind == "role", e.key == role.casefold())
        )
        if role_id is None:
            return Page([], None)
        after = _after(cursor)
        # A role holding few tasks: read its links and sort them. A role holding many: read the
        # catalog's tasks in name order and keep the role's, which finds a page after a bounded
        # number of look-ups as long as the role holds a fair share of the tasks.
        linked = select(CatalogLinkRow.child_id).where(CatalogLinkRow.parent_id == role_id)
        few = self.s.scalar(select(func.count()).select_from(linked.limit(_FEW_TASKS).subquery()))
        stmt = select(e.scope, e.name, e.key).where(e.org_id == org_id, e.kind == "task")
        if after is not None:
            stmt = stmt.where(e.key > after)
        if (few or 0) < _FEW_TASKS:
            stmt = stmt.where(e.id.in_(list(self.s.scalars(linked))))
        else:
            stmt = stmt.where(
                exists().where(CatalogLinkRow.parent_id == role_id, CatalogLinkRow.child_id == e.id)
            )
        return self._names_page(self.s.execute(stmt.order_by(e.key).limit(limit + 1)).all(), limit)

    def lookup(self, org_id: UUID, kind: PolicyType, text: str, limit: int) -> list[QualifiedName]:
        e = CatalogEntryRow
        typed = text.strip().casefold()
        by_key = self.s.execute(
            select(e.scope, e.name, e.key)
            .where(e.org_id == org_id, e.kind == _KIND[kind], e.key >= typed)
            .order_by(e.key)
            .limit(limit)
        ).all()
        found = [QualifiedName(s, n) for s, n, k in by_key if k.startswith(typed)]
        if SEPARATOR not in typed and len(found) < limit:
            by_name = self.s.execute(
                select(e.scope, e.name)
                .where(e.name_key >= typed, e.org_id == org_id, e.kind == _KIND[kind])
                .order_by(e.name_key)
                .limit(limit)
            ).all()
            seen = set(found)
            for s_, n in by_name:
                q = QualifiedName(s_, n)
                if n.casefold().startswith(typed) and q not in seen:
                    found.append(q)
                    seen.add(q)
        if not found:  # nothing starts so: the entries that follow, in name order
            found = [QualifiedName(s, n) for s, n, _ in by_key]
        return found[:limit]


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
            kind_, key, part_, moment, last = _decode_cursor(cursor, 5)
            names = [(k.value, t.casefold(), p) for k, t, p in parts]
            if (kind_, key, part_) not in names:
                raise InvalidInput("the page cursor is not valid")
            start, position = names.index((kind_, key, part_)), _moment_and_id(moment, last)
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
                _encode_cursor(kind.value, target.casefold(), "standing", iso(created), str(i)),
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
                _encode_cursor(kind.value, target.casefold(), "jit", iso(end), str(i)),
            )
            for i, end, upn in rows
        ]


_POLICIES = cast(Table, PolicyRow.__table__)
_POLICY_COLUMNS = select(*_POLICIES.c)
_GET_POLICY = Prepared(_POLICY_COLUMNS.where(_POLICIES.c.id == bindparam("id")))
_POLICY_FOR = Prepared(
    _POLICY_COLUMNS.where(
        _POLICIES.c.org_id == bindparam("org"),
        _POLICIES.c.type == bindparam("type"),
        _POLICIES.c.target_key == bindparam("key"),
    )
)
_ELIGIBLE = Prepared(
    select(PolicyEligibleRow.principal_kind, PolicyEligibleRow.principal_id).where(
        PolicyEligibleRow.policy_id == bindparam("policy")
    )
)


class SqlPolicies:
    def __init__(self, session: Session) -> None:
        self.s = session
        # A use case reads its policy a few times (rules, approvers, notices): once per
        # transaction, forgotten when this repository changes it.
        self._known: PerTransaction[UUID, Policy] = PerTransaction(session, POLICIES)
        self._for: PerTransaction[tuple[UUID, str, str], UUID | None] = PerTransaction(
            session, "policies.for"
        )

    def _policy(self, row: PolicyRow | Any) -> Policy:
        eligible = _ELIGIBLE.all(self.s, policy=row.id)
        policy = self._build(row, [(k, i) for k, i in eligible])
        self._known.put(policy.id, policy)
        return policy

    def _policies(self, rows: Sequence[PolicyRow]) -> list[Policy]:
        """Policies with their eligible requesters, read in one query for them all."""
        eligible: dict[UUID, list[tuple[str, UUID]]] = {r.id: [] for r in rows}
        for chunk in _chunks(eligible):
            found = self.s.execute(
                select(
                    PolicyEligibleRow.policy_id,
                    PolicyEligibleRow.principal_kind,
                    PolicyEligibleRow.principal_id,
                ).where(PolicyEligibleRow.policy_id.in_(chunk))
            )
            for policy_id, k, i in found:
                eligible[policy_id].append((k, i))
        return [self._build(r, eligible[r.id]) for r in rows]

    @staticmethod
    def _build(row: PolicyRow | Any, eligible: list[tuple[str, UUID]]) -> Policy:
        return Policy(
            id=row.id,
            org_id=row.org_id,
            type=PolicyType(row.type),
            target=QualifiedName.parse(row.target),
            approval_type=ApprovalType(row.approval_type),
            approver_group_id=row.approver_group_id,
            created_at=row.created_at,
            approvals_required=row.approvals_required,
            max_duration_hours=row.max_duration_hours,
            require_ticket=row.require_ticket,
            eligible_user_ids=frozenset(i for k, i in eligible if k == "user"),
            eligible_group_ids=frozenset(i for k, i in eligible if k == "group"),
            approver_group_set_by=row.approver_group_set_by,
            approval_type_set_by=row.approval_type_set_by,
            approvals_required_set_by=row.approvals_required_set_by,
            eligible_set_by=row.eligible_set_by,
        )

    def _write_eligible(self, policy: Policy) -> None:
        self.s.execute(delete(PolicyEligibleRow).where(PolicyEligibleRow.policy_id == policy.id))
        for uid in sorted(policy.eligible_user_ids):
            self.s.add(
                PolicyEligibleRow(policy_id=policy.id, principal_kind="user", principal_id=uid)
            )
        for gid in sorted(policy.eligible_group_ids):
            self.s.add(
                PolicyEligibleRow(policy_id=policy.id, principal_kind="group", principal_id=gid)
            )

    def add(self, policy: Policy) -> None:
        self._known.forget(policy.id)
        self.s.add(
            PolicyRow(
                id=policy.id,
                org_id=policy.org_id,
                type=policy.type.value,
                target=str(policy.target),
                target_key=policy.target.key,
                approval_type=policy.approval_type.value,
                approver_group_id=policy.approver_group_id,
                approvals_required=policy.approvals_required,
                max_duration_hours=policy.max_duration_hours,
                require_ticket=policy.require_ticket,
                created_at=policy.created_at,
                approver_group_set_by=policy.approver_group_set_by,
                approval_type_set_by=policy.approval_type_set_by,
                approvals_required_set_by=policy.approvals_required_set_by,
                eligible_set_by=policy.eligible_set_by,
            )
        )
        self.s.flush()
        self._write_eligible(policy)
        self.s.flush()

    def get(self, policy_id: UUID) -> Policy | None:
        if (known := self._known.get(policy_id)) is not None:
            return known
        row = _GET_POLICY.first(self.s, id=policy_id)
        return self._policy(row) if row else None

    def for_target(self, org_id: UUID, type: PolicyType, target: QualifiedName) -> Policy | None:
        key = (org_id, type.value, target.key)
        known = self._for.get(key)
        if known is not None and (policy := self._known.get(known)) is not None:
            return policy
        row = _POLICY_FOR.first(self.s, org=org_id, type=type.value, key=target.key)
        if row is None:
            return None
        self._for.put(key, row.id)
        return self._policy(row)

    def save(self, policy: Policy) -> None:
        self._known.forget(policy.id)
        row = self.s.get_one(PolicyRow, policy.id)
        row.approval_type = policy.approval_type.value
        row.approver_group_id = policy.approver_group_id
        row.approvals_required = policy.approvals_required
        row.max_duration_hours = policy.max_duration_hours
        row.require_ticket = policy.require_ticket
        row.approver_group_set_by = policy.approver_group_set_by
        row.approval_type_set_by = policy.approval_type_set_by
        row.approvals_required_set_by = policy.approvals_required_set_by
        row.eligible_set_by = policy.eligible_set_by
        self._write_eligible(policy)
        self.s.flush()

    def remove(self, policy_id: UUID) -> None:
        self._known.forget(policy_id)
        self.s.execute(delete(PolicyEligibleRow).where(PolicyEligibleRow.policy_id == policy_id))
        self.s.execute(delete(PolicyRow).where(PolicyRow.id == policy_id))

    def count(self, org_id: UUID) -> int:
        return int(
            self.s.scalar(
                select(func.count()).select_from(PolicyRow).where(PolicyRow.org_id == org_id)
            )
            or 0
        )

    def matching(
        self,
        org_id: UUID,
        *,
        type: PolicyType | None = None,
        approval_type: ApprovalType | None = None,
        after: tuple[str, str] | None = None,
        limit: int | None = None,
        scope: str | None = None,
    ) -> list[Policy]:
        stmt = select(PolicyRow).where(PolicyRow.org_id == org_id)
        if scope is not None:
            # Keys are casefolded "scope\name": a range of the (org, type, key) index; "]" is
            # the character after the backslash.
            folded = scope.casefold()
            stmt = stmt.where(
                PolicyRow.target_key >= f"{folded}\\", PolicyRow.target_key < f"{folded}]"
            )
        if type is not None:
            stmt = stmt.where(PolicyRow.type == type.value)
        if approval_type is not None:
            stmt = stmt.where(PolicyRow.approval_type == approval_type.value)
        if after is not None:
            stmt = stmt.where(tuple_(PolicyRow.type, PolicyRow.target_key) > after)
        stmt = stmt.order_by(PolicyRow.type, PolicyRow.target_key).limit(limit)
        return self._policies(self.s.scalars(stmt).all())

    def page(
        self,
        org_id: UUID,
        *,
        type: PolicyType | None,
        approval_type: ApprovalType | None,
        search: str | None,
        cursor: str | None,
        limit: int,
    ) -> Page[Policy]:
        p = PolicyRow
        # Reads the unique (org_id, type, target_key) index in its order, from the cursor on.
        stmt = select(p.type, p.target_key, p.id, p.target).where(p.org_id == org_id)
        if type is not None:
            stmt = stmt.where(p.type == type.value)
        if approval_type is not None:
            stmt = stmt.where(p.approval_type == approval_type.value)
        if cursor:
            kind, key = _decode_cursor(cursor, 2)
            stmt = stmt.where(tuple_(p.type, p.target_key) > (kind, key))
        stmt = stmt.order_by(p.type, p.target_key)
        nxt = None
        if not search:
            rows = self.s.execute(stmt.limit(limit + 1)).all()
            if len(rows) > limit:
                rows = rows[:limit]
                nxt = _encode_cursor(rows[-1][0], rows[-1][1])
        else:
            # A substring cannot use an index: look at SEARCH_WINDOW policies at most (in order,
            # under the other filters) and say where the look stopped.
            window = stmt.limit(SEARCH_WINDOW).subquery()
            matches = (
                select(window.c.type, window.c.target_key, window.c.id)
                .where(_contains(window.c.target, search))
                .order_by(window.c.type, window.c.target_key)
            )
            rows = self.s.execute(matches.limit(limit + 1)).all()
            if len(rows) > limit:
                rows = rows[:limit]
                nxt = _encode_cursor(rows[-1][0], rows[-1][1])
            else:
                edge = self.s.execute(stmt.offset(SEARCH_WINDOW - 1).limit(1)).first()
                nxt = _encode_cursor(edge[0], edge[1]) if edge is not None else None
        ids = [r[2] for r in rows]
        by_id = {r.id: r for r in self.s.scalars(select(PolicyRow).where(PolicyRow.id.in_(ids)))}
        return Page(self._policies([by_id[i] for i in ids if i in by_id]), nxt)


_REQUESTS = cast(Table, RequestRow.__table__)
_REVIEWS = cast(Table, ReviewRow.__table__)
_AUTHORIZATIONS = cast(Table, AuthorizationRow.__table__)
# A request's own statements (new request, review, revocation): one row each, by its keys.
_ADD_REQUEST = Prepared(insert(_REQUESTS))
_READ_REQUEST = select(*_REQUESTS.c).where(_REQUESTS.c.id == bindparam("id"))
_GET_REQUEST = Prepared(_READ_REQUEST)
_LOCK_REQUEST = Prepared(_READ_REQUEST.with_for_update())
_REVIEWS_OF = Prepared(
    select(*_REVIEWS.c).where(_REVIEWS.c.request_id == bindparam("id")).order_by(_REVIEWS.c.at)
)
_AUTHORIZATION_OF = Prepared(
    select(*_AUTHORIZATIONS.c).where(_AUTHORIZATIONS.c.request_id == bindparam("id"))
)
_ADD_REVIEW = Prepared(insert(_REVIEWS))
_ADD_AUTHORIZATION = Prepared(insert(_AUTHORIZATIONS))
_REVOKE_AUTHORIZATION = Prepared(
    update(_AUTHORIZATIONS)
    .where(_AUTHORIZATIONS.c.id == bindparam("id"))
    .values(
        revoked_at=bindparam("revoked_at"),
        revoked_by=bindparam("revoked_by"),
        revocation_comment=bindparam("revocation_comment"),
    )
)
_MOVE_REQUEST = Prepared(
    update(_REQUESTS)
    .where(_REQUESTS.c.id == bindparam("id"), _REQUESTS.c.version == bindparam("version"))
    .values(
        status=bindparam("status"),
        decided_at=bindparam("decided_at"),
        version=bindparam("new_version"),
    )
)
_OPEN_FOR = Prepared(
    select(*_REQUESTS.c)
    .outerjoin(_AUTHORIZATIONS, _AUTHORIZATIONS.c.request_id == _REQUESTS.c.id)
    .where(
        _REQUESTS.c.org_id == bindparam("org"),
        _REQUESTS.c.requester_id == bindparam("requester"),
        _REQUESTS.c.type == bindparam("type"),
        _REQUESTS.c.target == bindparam("target"),
        or_(
            and_(_REQUESTS.c.status == "pending", _REQUESTS.c.pending_until > bindparam("at")),
            and_(_REQUESTS.c.status == "approved", _AUTHORIZATIONS.c.end_at > bindparam("at")),
        ),
    )
)
_GRANTS = Prepared(
    select(
        _AUTHORIZATIONS.c.id,
        _AUTHORIZATIONS.c.type,
        _AUTHORIZATIONS.c.target,
        _AUTHORIZATIONS.c.start_at,
        _AUTHORIZATIONS.c.end_at,
        _AUTHORIZATIONS.c.revoked_at,
    )
    .where(
        _AUTHORIZATIONS.c.org_id == bindparam("org"),
        _AUTHORIZATIONS.c.user_id == bindparam("user"),
        _AUTHORIZATIONS.c.end_at > bindparam("at"),
        or_(
            _AUTHORIZATIONS.c.revoked_at.is_(None),
            _AUTHORIZATIONS.c.revoked_at > bindparam("at"),
        ),
    )
    # decide() names the first grant holding a role: the one that lasts longest (id ties).
    .order_by(_AUTHORIZATIONS.c.end_at.desc(), _AUTHORIZATIONS.c.id)
)


def _authorization(a: Any) -> Authorization:
    return Authorization(
        id=a.id,
        org_id=a.org_id,
        request_id=a.request_id,
        user_id=a.user_id,
        type=PolicyType(a.type),
        target=QualifiedName.parse(a.target),
        start=a.start_at,
        end=a.end_at,
        revoked_at=a.revoked_at,
        revoked_by=a.revoked_by,
        revocation_comment=a.revocation_comment,
    )


# What a loaded request held in the database: its version (compared and set when it is saved),
# how many reviews were stored, and its authorization's revocation as stored (None: no grant).
_Loaded = tuple[int, int, tuple[Any, ...] | None]


def _revocation(auth: Authorization | None) -> tuple[Any, ...] | None:
    return None if auth is None else (auth.revoked_at, auth.revoked_by, auth.revocation_comment)


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
        clauses.append(_contains(target, flt.target_contains))
    if flt.search:
        clauses.append(or_(_contains(target, flt.search), _contains(requester_upn, flt.search)))
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


class SqlRequests:
    def __init__(self, session: Session) -> None:
        self.s = session
        self._loaded: dict[UUID, _Loaded] = {}

    def _assemble(self, rows: Sequence[RequestRow | Any]) -> list[AccessRequest]:
        if not rows:
            return []
        reviews: dict[UUID, list[Any]] = {}
        auths: dict[UUID, Any] = {}
        if len(rows) == 1:  # one request (its page, a review): by its key
            rid = rows[0].id
            reviews[rid] = _REVIEWS_OF.all(self.s, id=rid)
            if (a := _AUTHORIZATION_OF.first(self.s, id=rid)) is not None:
                auths[rid] = a
        else:
            ids = [r.id for r in rows]
            for rv in self.s.execute(
                select(*_REVIEWS.c).where(_REVIEWS.c.request_id.in_(ids)).order_by(_REVIEWS.c.at)
            ):
                reviews.setdefault(rv.request_id, []).append(rv)
            found = self.s.execute(
                select(*_AUTHORIZATIONS.c).where(_AUTHORIZATIONS.c.request_id.in_(ids))
            )
            auths = {a.request_id: a for a in found}
        out = []
        for row in rows:
            a = auths.get(row.id)
            auth = _authorization(a) if a is not None else None
            req = AccessRequest(
                id=row.id,
                org_id=row.org_id,
                requester_id=row.requester_id,
                requester_upn=row.requester_upn,
                policy_id=row.policy_id,
                type=PolicyType(row.type),
                target=QualifiedName.parse(row.target),
                reason=row.reason,
                duration_hours=row.duration_hours,
                approvals_required=row.approvals_required,
                created_at=row.created_at,
                pending_until=row.pending_until,
                status=RequestStatus(row.status),
                decided_at=row.decided_at,
                reviews=[
                    Review(rv.approver_id, ReviewDecision(rv.decision), rv.comment, rv.at)
                    for rv in reviews.get(row.id, ())
                ],
                authorization=auth,
                key_id=row.key_id,
                signature=row.signature,
            )
            self._loaded[row.id] = (row.version, len(req.reviews), _revocation(auth))
            out.append(req)
        return out

    def add(self, request: AccessRequest) -> None:
        _ADD_REQUEST.execute(
            self.s,
            id=request.id,
            org_id=request.org_id,
            requester_id=request.requester_id,
            requester_upn=request.requester_upn,
            policy_id=request.policy_id,
            type=request.type.value,
            target=str(request.target),
            reason=request.reason,
            duration_hours=request.duration_hours,
            approvals_required=request.approvals_required,
            created_at=request.created_at,
            pending_until=request.pending_until,
            status=request.status.value,
            decided_at=request.decided_at,
            key_id=request.key_id,
            signature=request.signature,
            version=1,
        )
        self._store_reviews_and_grant(request, (1, 0, None))

    def get(self, request_id: UUID, *, for_update: bool = False) -> AccessRequest | None:
        row = (_LOCK_REQUEST if for_update else _GET_REQUEST).first(self.s, id=request_id)
        return self._assemble([row])[0] if row is not None else None

    def save(self, request: AccessRequest) -> None:
        loaded = self._loaded[request.id]
        version = loaded[0]
        # Compare-and-set on the version: a row that moved since it was read is a lost race.
        moved = _MOVE_REQUEST.execute(
            self.s,
            id=request.id,
            version=version,
            status=request.status.value,
            decided_at=request.decided_at,
            new_version=version + 1,
        )
        if moved != 1:
            raise RequestNotPending(
                f"{request.describe()} was changed by someone else at the same time"
            )
        self._store_reviews_and_grant(request, (version + 1, *loaded[1:]))

    def _store_reviews_and_grant(self, request: AccessRequest, loaded: _Loaded) -> None:
        version, stored_reviews, stored_revocation = loaded
        try:
            _ADD_REVIEW.execute_many(
                self.s,
                [
                    {
                        "request_id": request.id,
                        "approver_id": review.approver_id,
                        "decision": review.decision.value,
                        "comment": review.comment,
                        "at": review.at,
                    }
                    for review in request.reviews[stored_reviews:]
                ],
            )
        except IntegrityError:
            raise AlreadyVoted(
                f"a review of {request.describe()} by this approver already exists"
            ) from None
        auth = request.authorization
        revocation = _revocation(auth)
        if auth is not None and stored_revocation is None:
            _ADD_AUTHORIZATION.execute(
                self.s,
                id=auth.id,
                org_id=auth.org_id,
                request_id=auth.request_id,
                user_id=auth.user_id,
                type=auth.type.value,
                target=str(auth.target),
                start_at=auth.start,
                end_at=auth.end,
                revoked_at=auth.revoked_at,
                revoked_by=auth.revoked_by,
                revocation_comment=auth.revocation_comment,
            )
        elif auth is not None and revocation != stored_revocation:
            _REVOKE_AUTHORIZATION.execute(
                self.s,
                id=auth.id,
                revoked_at=auth.revoked_at,
                revoked_by=auth.revoked_by,
                revocation_comment=auth.revocation_comment,
            )
        self._loaded[request.id] = (version, len(request.reviews), revocation)

    def open_for(
        self, org_id: UUID, requester_id: UUID, type: PolicyType, target: str, at: datetime
    ) -> AccessRequest | None:
        row = _OPEN_FOR.first(
            self.s, org=org_id, requester=requester_id, type=type.value, target=target, at=at
        )
        return self._assemble([row])[0] if row is not None else None

    def _listing(
        self, org_id: UUID, flt: RequestFilter, *columns: SQLColumnExpression[Any]
    ) -> Select[Any]:
        """``columns`` of the requests ``flt`` selects, its status and search aside."""
        stmt = select(*columns).select_from(RequestRow).where(RequestRow.org_id == org_id)
        if flt.requester_id is not None:
            stmt = stmt.where(RequestRow.requester_id == flt.requester_id)
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
                ~voted.exists(),
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
        position = _time_and_id(cursor) if cursor else None
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
        cursor_out = _encode_cursor(iso(nxt[0]), str(nxt[1])) if nxt is not None else None
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

    def grants(self, org_id: UUID, user_id: UUID, at: datetime) -> tuple[Grant, ...]:
        rows = _GRANTS.all(self.s, org=org_id, user=user_id, at=at)
        return tuple(
            Grant(r.id, PolicyType(r.type), r.target, r.start_at, r.end_at, r.revoked_at)
            for r in rows
        )

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
        return self._by_auth(org_id, at, RequestRow.requester_id == user_id)

    def pending_for_user(self, org_id: UUID, user_id: UUID, at: datetime) -> list[AccessRequest]:
        stmt = select(RequestRow).where(
            RequestRow.org_id == org_id,
            RequestRow.requester_id == user_id,
            RequestRow.status == "pending",
            RequestRow.pending_until > at,
        )
        return self._assemble(self.s.scalars(stmt).all())

    def jit_holders(
        self, org_id: UUID, type: PolicyType, target: str, at: datetime
    ) -> list[AccessRequest]:
        return self._by_auth(org_id, at, RequestRow.type == type.value, RequestRow.target == target)

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
            position = _time_and_id(cursor)
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
            nxt = _encode_cursor(iso(rows[-1][1]), str(rows[-1][2]))
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
        return [(r, i) for r, i in self.s.execute(stmt).tuples()]

    def lock_grant(self, authorization_id: UUID) -> Grant | None:
        row = self.s.scalars(
            select(AuthorizationRow)
            .where(AuthorizationRow.id == authorization_id)
            .with_for_update(read=True)
            .execution_options(populate_existing=True)
        ).first()
        if row is None:
            return None
        return Grant(
            row.id, PolicyType(row.type), row.target, row.start_at, row.end_at, row.revoked_at
        )

    def id_for_authorization(self, authorization_id: UUID) -> UUID | None:
        return self.s.scalar(
            select(AuthorizationRow.request_id).where(AuthorizationRow.id == authorization_id)
        )

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
        # Heads this transaction has locked, as they stand: no one else can move them until it
        # ends, so the lock taken before deciding serves the append too.
        self._held: dict[UUID, tuple[int, str]] = {}
        self._held_in: object | None = None

    def _heads_held(self) -> dict[UUID, tuple[int, str]]:
        transaction = self.s.get_transaction()
        if transaction is None or transaction is not self._held_in:
            self._held_in, self._held = transaction, {}
        return self._held

    def append(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        out: list[AuditRecord] = []
        try:
            for org_id in dict.fromkeys(e.org_id for e in events):
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
                self._heads_held()[org_id] = (seq, prev)
        except DBAPIError as exc:
            raise AuditUnavailable(
                "the audit log could not be written, so nothing was changed"
            ) from exc
        return out

    def head(self, org_id: UUID, *, lock: bool = False) -> tuple[int, str]:
        if lock and (held := self._heads_held().get(org_id)) is not None:
            return held
        found = (_LOCK_HEAD if lock else _GET_HEAD).first(self.s, org=org_id)
        if found is None:
            raise AuditUnavailable(f"no audit chain for organization {org_id}")
        seq, head_hash = found
        if lock:
            self._heads_held()[org_id] = (int(seq), str(head_hash))
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

    def records(self, org_id: UUID) -> Iterator[AuditRecord]:
        last = 0
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
            (seq,) = _decode_cursor(cursor, 1)
            if not seq.isdigit():
                raise InvalidInput("the page cursor is not valid")
            stmt = stmt.where(AuditRow.seq < int(seq))
        rows = self.s.scalars(stmt.order_by(AuditRow.seq.desc()).limit(limit + 1)).all()
        items = [_record(r) for r in rows[:limit]]
        nxt = _encode_cursor(str(items[-1].seq)) if len(rows) > limit else None
        return Page(items, nxt)


def _token(row: ApiTokenRow | Row[Any]) -> ApiToken:
    """A token from its ORM row or a Core row of the same columns."""
    return ApiToken(
        id=row.id,
        org_id=row.org_id,
        user_id=row.user_id,
        name=row.name,
        digest=row.digest,
        created_at=row.created_at,
        expires_at=row.expires_at,
        created_by=row.created_by,
        revoked_at=row.revoked_at,
    )


# Prebuilt: every API call with a bearer token reads it.
_TOKEN_BY_DIGEST = Prepared(
    select(cast(Table, ApiTokenRow.__table__)).where(
        ApiTokenRow.__table__.c.digest == bindparam("digest")
    )
)


class SqlCredentials:
    def __init__(self, session: Session) -> None:
        self.s = session

    def password_hash(self, user_id: UUID) -> str | None:
        row = self.s.get(PasswordRow, user_id)
        return row.hash if row else None

    def set_password_hash(self, user_id: UUID, hash: str, *, at: datetime) -> None:
        row = self.s.get(PasswordRow, user_id)
        if row is None:
            self.s.add(PasswordRow(user_id=user_id, hash=hash, changed_at=at))
        else:
            row.hash, row.changed_at = hash, at
        self.s.flush()

    def add_token(self, token: ApiToken) -> None:
        self.s.add(
            ApiTokenRow(
                id=token.id,
                org_id=token.org_id,
                user_id=token.user_id,
                name=token.name,
                digest=token.digest,
                created_at=token.created_at,
                expires_at=token.expires_at,
                created_by=token.created_by,
                revoked_at=token.revoked_at,
            )
        )
        self.s.flush()

    def token_by_digest(self, digest: str) -> ApiToken | None:
        found = _TOKEN_BY_DIGEST.first(self.s, digest=digest)
        return _token(found) if found is not None else None

    def token(self, token_id: UUID) -> ApiToken | None:
        row = self.s.get(ApiTokenRow, token_id)
        return _token(row) if row else None

    def tokens(self, org_id: UUID, user_id: UUID | None) -> list[ApiToken]:
        stmt = select(ApiTokenRow).where(ApiTokenRow.org_id == org_id)
        if user_id is not None:
            stmt = stmt.where(ApiTokenRow.user_id == user_id)
        rows = self.s.scalars(stmt.order_by(ApiTokenRow.created_at.desc(), ApiTokenRow.id))
        return [_token(r) for r in rows]

    def revoke_token(self, token_id: UUID, *, at: datetime) -> None:
        self.s.execute(
            update(ApiTokenRow)
            .where(ApiTokenRow.id == token_id, ApiTokenRow.revoked_at.is_(None))
            .values(revoked_at=at)
        )

    def revoke_all_tokens(self, user_id: UUID, *, at: datetime) -> int:
        result = self.s.execute(
            update(ApiTokenRow)
            .where(ApiTokenRow.user_id == user_id, ApiTokenRow.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    def oidc_user(self, issuer: str, subject: str) -> UUID | None:
        row = self.s.get(OidcLinkRow, (issuer, subject))
        return row.user_id if row else None

    def link_oidc(self, issuer: str, subject: str, user_id: UUID, *, at: datetime) -> None:
        self.s.add(OidcLinkRow(issuer=issuer, subject=subject, user_id=user_id, created_at=at))
        self.s.flush()


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
        for chunk in _chunks(keys):
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
        self, org_id: UUID, *, state: DeliveryState | None, after: str | None, limit: int
    ) -> list[OutboxMessage]:
        stmt = select(OutboxRow).where(OutboxRow.org_id == org_id)
        if state is not None:
            stmt = stmt.where(OutboxRow.state == state.value)
        if after is not None:
            stmt = stmt.where(tuple_(OutboxRow.created_at, OutboxRow.id) < _time_and_id(after))
        rows = self.s.scalars(
            stmt.order_by(OutboxRow.created_at.desc(), OutboxRow.id.desc()).limit(limit)
        )
        return [_message(r) for r in rows]


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
