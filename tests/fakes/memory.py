"""An in-memory unit of work: the services' ports without a database, for the rule tests.

It behaves like the SQL adapter where the rules can tell: a unit of work is one transaction over
a snapshot of the committed state, and ``commit`` makes the change and its audit records visible
together or not at all (``MemoryDatabase.refuse_audit`` makes the audit write fail, and nothing is
committed: ``AuditUnavailable``). The same unique keys are refused with the same errors
(``ConcurrentChange`` for a taken name, ``AlreadyVoted`` for a second review by the same
approver, ``RequestNotPending`` for a request that moved since it was read), the audit chain is
hashed by the domain's own ``chain`` and its details are stored as the canonical JSON the SQL
adapter stores. Two transactions that change data at the same time do not both commit: the later
commit is refused with ``ConcurrentChange`` (the SQL adapter serializes writers instead; the
races themselves are proved on the databases, tests/integration/test_concurrency.py).

What it leaves out: SEARCH_WINDOW (a search looks at every row, so a search page names no cursor
unless it is full), locks (the snapshot is the transaction's), and the SQL twin's query plans.
"""

from __future__ import annotations

import base64
import copy
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import TracebackType
from typing import Self, TypeVar
from uuid import UUID

from jitpam.domain.audit import GENESIS_HASH, AuditEvent, AuditRecord, Outcome, chain
from jitpam.domain.catalog import Catalog
from jitpam.domain.check import Grant
from jitpam.domain.connectors import (
    BoundKind,
    ConnectorState,
    HeldGrant,
    Membership,
    Origin,
    Recorded,
)
from jitpam.domain.control import AccessControl
from jitpam.domain.directory import (
    Assignment,
    Group,
    Organization,
    PrincipalKind,
    User,
    UserKind,
    fold_upn,
)
from jitpam.domain.errors import (
    AlreadyVoted,
    AuditUnavailable,
    ConcurrentChange,
    InvalidInput,
    RequestNotPending,
)
from jitpam.domain.lockbox import LockboxRequest
from jitpam.domain.names import SEPARATOR, QualifiedName
from jitpam.domain.notifications import Channel, DeliveryState, OutboxMessage, WebhookEndpoint
from jitpam.domain.policy import ApprovalType, Policy, PolicyType
from jitpam.domain.requests import AccessRequest, RequestStatus
from jitpam.domain.scim import Filter
from jitpam.domain.separation import Stewardship
from jitpam.domain.text import unstorable
from jitpam.domain.timeutil import canonical_json, iso
from jitpam.domain.tokens import ApiToken
from jitpam.services.ports import (
    AssignmentRepository,
    AuditFilter,
    AuditRepository,
    CatalogRepository,
    ConnectorRepository,
    CredentialRepository,
    GroupRepository,
    GroupSummary,
    LockboxFilter,
    LockboxRepository,
    Operator,
    OrganizationRepository,
    OutboxRepository,
    Page,
    PolicyRepository,
    RequestFilter,
    RequestRepository,
    Reviewer,
    RoleMember,
    Stamped,
    UnitOfWorkFactory,
    UserRepository,
    WebhookRepository,
)

_CONFLICT = (
    "another change to the same data was made at the same time; nothing was changed, try again"
)
_AUDIT_FAILED = "the audit log could not be written, so nothing was changed"


def _taken(what: str) -> ConcurrentChange:
    """What the SQL adapter answers for a unique key taken (an IntegrityError)."""
    return ConcurrentChange(f"{_CONFLICT} ({what})")


def _encode_cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode()


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


def _time_and_id(moment: str, key: str) -> tuple[datetime, UUID]:
    try:
        at = datetime.fromisoformat(moment.replace("Z", "+00:00"))
        if at.tzinfo is None:
            raise ValueError("naive")
        return at, UUID(key)
    except ValueError:
        raise InvalidInput("the page cursor is not valid") from None


_T = TypeVar("_T")


def _after(cursor: str | None) -> str | None:
    return _decode_cursor(cursor, 1)[0] if cursor else None


def _page(found: list[_T], limit: int | None, key: Callable[[_T], tuple[str, ...]]) -> Page[_T]:
    """The first ``limit`` of ``found`` (all without one), with a cursor after the last of
    them when more follow."""
    if limit is None or len(found) <= limit:
        return Page(found, None)
    return Page(found[:limit], _encode_cursor(*key(found[limit - 1])))


_KIND = {
    PolicyType.TASK: "task",
    PolicyType.ROLE: "role",
    PolicyType.ROLE_GROUP: "role_group",
    PolicyType.DATA_ACCESS: "data_access",
}


@dataclass
class _Entry:
    """A catalog entry: its name, its description and the keys of what it holds."""

    name: QualifiedName
    description: str
    children: frozenset[str] = frozenset()


@dataclass
class _Tables:
    """Every row the ports can read, by its key. Values are immutable or copied at the door."""

    orgs: dict[UUID, tuple[Organization, datetime]] = field(default_factory=dict)
    controls: dict[UUID, AccessControl] = field(default_factory=dict)
    domains: dict[str, UUID] = field(default_factory=dict)
    users: dict[UUID, tuple[User, datetime]] = field(default_factory=dict)
    # (user, steward, how) -> (org, at)
    stewards: dict[tuple[UUID, UUID, str], tuple[UUID, datetime]] = field(default_factory=dict)
    groups: dict[UUID, tuple[Group, datetime]] = field(default_factory=dict)
    members: dict[tuple[UUID, UUID], UUID | None] = field(default_factory=dict)  # -> added_by
    # org -> (kind, key) -> entry
    catalog: dict[UUID, dict[tuple[str, str], _Entry]] = field(default_factory=dict)
    assignments: dict[UUID, tuple[Assignment, datetime]] = field(default_factory=dict)
    policies: dict[UUID, Policy] = field(default_factory=dict)
    requests: dict[UUID, tuple[AccessRequest, int]] = field(default_factory=dict)  # version
    lockbox: dict[UUID, tuple[LockboxRequest, int]] = field(default_factory=dict)  # version
    operator: dict[int, Operator] = field(default_factory=dict)  # at most one row, key 1
    heads: dict[UUID, tuple[int, str]] = field(default_factory=dict)
    audit: dict[UUID, tuple[AuditRecord, ...]] = field(default_factory=dict)
    passwords: dict[UUID, str] = field(default_factory=dict)
    tokens: dict[UUID, ApiToken] = field(default_factory=dict)
    oidc: dict[tuple[str, str], UUID] = field(default_factory=dict)
    outbox: dict[UUID, tuple[OutboxMessage, datetime | None]] = field(default_factory=dict)
    webhooks: dict[UUID, WebhookEndpoint] = field(default_factory=dict)
    modified: dict[UUID, datetime] = field(default_factory=dict)  # user or group -> last change
    # (org, connector, target, member) -> record; (org, connector) -> state
    connector_records: dict[tuple[UUID, str, str, str], Recorded] = field(default_factory=dict)
    connector_states: dict[tuple[UUID, str], ConnectorState] = field(default_factory=dict)

    def copy(self) -> _Tables:
        """A snapshot sharing every table; a transaction copies a table before its first write
        to it (``own``), and mutable rows are copied whenever they are read or written."""
        return _Tables(**vars(self))

    def own(self, names: Iterable[str], owned: set[str]) -> None:
        """Copy the tables ``names`` that this transaction has not copied yet (``owned``)."""
        for name in names:
            if name not in owned:
                setattr(self, name, dict(getattr(self, name)))
                owned.add(name)


class MemoryDatabase:
    """The committed state every unit of work of one test shares."""

    def __init__(self) -> None:
        self.tables = _Tables()
        self.version = 0  # moves at every commit that changed something
        self.lock = threading.Lock()
        self.refuse_audit = False  # the audit store fails: commits raise AuditUnavailable
        self.commits = 0

    def unit_of_work(self) -> MemoryUnitOfWork:
        return MemoryUnitOfWork(self)


class MemoryOrganizations:
    def __init__(self, t: _Tables, changed: Callable[[], None]) -> None:
        self.t, self._changed = t, changed

    def add(self, org: Organization, control: AccessControl, *, at: datetime) -> None:
        if org.id in self.t.orgs or any(o.name == org.name for o, _ in self.t.orgs.values()):
            raise _taken(f"organization {org.name}")
        self._changed()
        self.t.orgs[org.id] = (org, at)
        self.t.heads[org.id] = (0, GENESIS_HASH)
        self.t.audit[org.id] = ()
        self.save_control(control)

    def get(self, org_id: UUID) -> Organization | None:
        found = self.t.orgs.get(org_id)
        return found[0] if found else None

    def get_by_name(self, name: str) -> Organization | None:
        return next((o for o, _ in self.t.orgs.values() if o.name == name), None)

    def all(self) -> list[Organization]:
        return sorted((o for o, _ in self.t.orgs.values()), key=lambda o: o.name)

    def domain_owner(self, domain: str) -> UUID | None:
        return self.t.domains.get(domain.lower())

    def add_domain(self, org_id: UUID, domain: str) -> None:
        if domain.lower() in self.t.domains:
            raise _taken(f"domain {domain}")
        self._changed()
        self.t.domains[domain.lower()] = org_id

    def domains(self, org_id: UUID) -> list[str]:
        return sorted(d for d, o in self.t.domains.items() if o == org_id)

    def control(self, org_id: UUID, *, for_update: bool = False) -> AccessControl:
        found = self.t.controls.get(org_id)
        if found is None:
            raise LookupError(f"no organization {org_id}")
        return found

    def save_control(self, control: AccessControl) -> None:
        self._changed()
        # As stored: the designators of the system accounts only.
        designators = {
            i: control.system_account_designators.get(i) for i in control.system_account_ids
        }
        self.t.controls[control.org_id] = replace(control, system_account_designators=designators)


class MemoryUsers:
    def __init__(self, t: _Tables, changed: Callable[[], None]) -> None:
        self.t, self._changed = t, changed

    def add(self, user: User, *, at: datetime) -> None:
        if user.id in self.t.users or self.get_by_upn(user.upn) is not None:
            raise _taken(f"user {user.upn}")
        self._changed()
        self.t.users[user.id] = (user, at)

    def get(self, user_id: UUID, *, for_update: bool = False) -> User | None:
        found = self.t.users.get(user_id)
        return found[0] if found else None

    def get_by_upn(self, upn: str) -> User | None:
        key = fold_upn(upn)
        return next((u for u, _ in self.t.users.values() if u.upn == key), None)

    def save(self, user: User, *, at: datetime | None = None) -> None:
        self._changed()
        stored, created = self.t.users[user.id]
        other = self.get_by_upn(user.upn)
        if other is not None and other.id != user.id:
            raise _taken(f"user {user.upn}")
        self.t.users[user.id] = (
            replace(
                stored,
                upn=user.upn,
                display_name=user.display_name,
                email=user.email,
                enabled=user.enabled,
                external_id=user.external_id,
                source=user.source,
                scim_deleted=user.scim_deleted,
                disabled_by_hand=user.disabled_by_hand,
            ),
            created,
        )
        if at is not None:
            self.t.modified[user.id] = at

    def scim_page(
        self, org_id: UUID, *, where: Filter | None, offset: int, limit: int
    ) -> tuple[int, list[Stamped[User]]]:
        found = sorted(
            (
                (u, at)
                for u, at in self.t.users.values()
                if u.org_id == org_id
                and u.kind in (UserKind.PERSON, UserKind.GUEST)
                and not u.scim_deleted
                and (where is None or _scim_user_matches(u, where))
            ),
            key=lambda pair: pair[0].upn,
        )
        chosen = found[offset : offset + limit]
        return len(found), [Stamped(u, at, self.t.modified.get(u.id)) for u, at in chosen]

    def in_org(
        self, org_id: UUID, *, cursor: str | None = None, limit: int | None = None
    ) -> Page[User]:
        after = _after(cursor) or ""
        found = sorted(
            (u for u, _ in self.t.users.values() if u.org_id == org_id and after < u.upn),
            key=lambda u: u.upn,
        )
        return _page(found, limit, lambda u: (u.upn,))

    def group_ids(self, user_id: UUID) -> frozenset[UUID]:
        return frozenset(g for g, u in self.t.members if u == user_id)

    def add_steward(self, user: User, steward_id: UUID, how: Stewardship, *, at: datetime) -> None:
        key = (user.id, steward_id, how.value)
        if key not in self.t.stewards:  # the first time is the one kept
            self._changed()
            self.t.stewards[key] = (user.org_id, at)

    def stewards(self, user_ids: Iterable[UUID]) -> dict[UUID, frozenset[UUID]]:
        found: dict[UUID, set[UUID]] = {i: set() for i in user_ids}
        for user_id, steward_id, _ in self.t.stewards:
            if user_id in found:
                found[user_id].add(steward_id)
        return {i: frozenset(s) for i, s in found.items()}

    def steered_by(self, steward_ids: frozenset[UUID]) -> frozenset[UUID]:
        return frozenset(u for u, s, _ in self.t.stewards if s in steward_ids)

    def scim_visible(self, org_id: UUID, ids: Iterable[UUID]) -> frozenset[UUID]:
        seen = (self.t.users.get(i) for i in ids)
        return frozenset(
            u.id
            for u, _ in (s for s in seen if s is not None)
            if u.org_id == org_id
            and u.kind in (UserKind.PERSON, UserKind.GUEST)
            and not u.scim_deleted
        )

    def every_upn(self, org_id: UUID) -> list[str]:
        return [u.upn for u, _ in self.t.users.values() if u.org_id == org_id]

    def upns(self, org_id: UUID, ids: Iterable[UUID]) -> dict[UUID, str]:
        out: dict[UUID, str] = {}
        for i in ids:
            found = self.t.users.get(i)
            if found is not None and found[0].org_id == org_id:
                out[i] = found[0].upn
        return out


class MemoryGroups:
    def __init__(self, t: _Tables, changed: Callable[[], None]) -> None:
        self.t, self._changed = t, changed

    def _group(self, group: Group) -> Group:
        members = frozenset(u for g, u in self.t.members if g == group.id)
        return replace(group, member_ids=members)

    def add(self, group: Group, *, at: datetime) -> None:
        for other, _ in self.t.groups.values():
            if other.org_id == group.org_id and (
                other.name.casefold() == group.name.casefold()
                or other.email.casefold() == group.email.casefold()
            ):
                raise _taken(f"group {group.name}")
        self._changed()
        self.t.groups[group.id] = (replace(group, member_ids=frozenset()), at)

    def get(self, group_id: UUID) -> Group | None:
        found = self.t.groups.get(group_id)
        return self._group(found[0]) if found else None

    def find(self, org_id: UUID, name_or_email: str) -> Group | None:
        key = name_or_email.strip().casefold()
        for group, _ in self.t.groups.values():
            if group.org_id == org_id and key in (group.name.casefold(), group.email.casefold()):
                return self._group(group)
        return None

    def remove(self, group_id: UUID) -> None:
        self._changed()
        for membership in [k for k in self.t.members if k[0] == group_id]:
            del self.t.members[membership]
        for policy in list(self.t.policies.values()):
            if group_id in policy.eligible_group_ids:
                self.t.policies[policy.id] = replace(
                    policy, eligible_group_ids=policy.eligible_group_ids - {group_id}
                )
        for key, (a, _) in list(self.t.assignments.items()):
            if a.principal_kind is PrincipalKind.GROUP and a.principal_id == group_id:
                del self.t.assignments[key]
        self.t.groups.pop(group_id, None)

    def save(self, group: Group, *, at: datetime) -> None:
        for other, _ in self.t.groups.values():
            if (
                other.id != group.id
                and other.org_id == group.org_id
                and (
                    other.name.casefold() == group.name.casefold()
                    or other.email.casefold() == group.email.casefold()
                )
            ):
                raise _taken(f"group {group.name}")
        self._changed()
        _, created = self.t.groups[group.id]
        self.t.groups[group.id] = (replace(group, member_ids=frozenset()), created)
        self.t.modified[group.id] = at

    def scim_page(
        self, org_id: UUID, *, where: Filter | None, offset: int, limit: int
    ) -> tuple[int, list[Stamped[Group]]]:
        found = [
            g for g in self._ordered(org_id, None) if where is None or _scim_group_matches(g, where)
        ]
        chosen = found[offset : offset + limit]
        return len(found), [
            Stamped(self._group(g), self.t.groups[g.id][1], self.t.modified.get(g.id))
            for g in chosen
        ]

    def add_member(self, group_id: UUID, user_id: UUID, *, added_by: UUID | None) -> bool:
        key = (group_id, user_id)
        if key in self.t.members and self.t.members[key] == added_by:
            return False
        self._changed()
        self.t.members[key] = added_by  # added again by someone else: theirs now
        return True

    def remove_member(self, group_id: UUID, user_id: UUID) -> bool:
        if (group_id, user_id) not in self.t.members:
            return False
        self._changed()
        del self.t.members[(group_id, user_id)]
        return True

    def member_paths(
        self, group_id: UUID, user_ids: Iterable[UUID]
    ) -> dict[UUID, list[tuple[UUID | None, ...]]]:
        found: dict[UUID, list[tuple[UUID | None, ...]]] = {i: [] for i in user_ids}
        for user_id in found:
            if (group_id, user_id) in self.t.members:
                found[user_id].append((self.t.members[(group_id, user_id)],))
        return found

    def is_member(self, group_id: UUID, user_id: UUID, *, lock: bool = False) -> bool:
        return (group_id, user_id) in self.t.members

    def _ordered(self, org_id: UUID, after: str | None) -> list[Group]:
        return sorted(
            (
                g
                for g, _ in self.t.groups.values()
                if g.org_id == org_id and (after is None or g.name.casefold() > after)
            ),
            key=lambda g: g.name.casefold(),
        )

    def in_org(
        self, org_id: UUID, *, cursor: str | None = None, limit: int | None = None
    ) -> Page[Group]:
        found = [self._group(g) for g in self._ordered(org_id, _after(cursor))]
        return _page(found, limit, lambda g: (g.name.casefold(),))

    def summaries(
        self, org_id: UUID, *, cursor: str | None, limit: int, members: int
    ) -> Page[GroupSummary]:
        groups = self._ordered(org_id, _after(cursor))
        nxt = None
        if len(groups) > limit:
            groups = groups[:limit]
            nxt = _encode_cursor(groups[-1].name.casefold())
        out = []
        for g in groups:
            upns = sorted(self.t.users[u][0].upn for gid, u in self.t.members if gid == g.id)
            out.append(GroupSummary(g.name, g.email, len(upns), upns[: max(members, 0)]))
        return Page(out, nxt)

    def names(self, org_id: UUID, ids: Iterable[UUID]) -> dict[UUID, str]:
        out: dict[UUID, str] = {}
        for i in ids:
            found = self.t.groups.get(i)
            if found is not None and found[0].org_id == org_id:
                out[i] = found[0].name
        return out

    def approves(self, group_id: UUID) -> bool:
        return any(p.approver_group_id == group_id for p in self.t.policies.values()) or any(
            c.default_approver_group_id == group_id for c in self.t.controls.values()
        )

    def in_use(self, group_id: UUID) -> str | None:
        for policy in self.t.policies.values():
            if policy.approver_group_id == group_id:
                return f"it is the approver group of the policy {policy.id}"
        if any(c.default_approver_group_id == group_id for c in self.t.controls.values()):
            return "it is the default approver group of access control"
        for policy in self.t.policies.values():
            if group_id in policy.eligible_group_ids:
                return f"it is an eligible requester of the policy {policy.id}"
        for a, _ in self.t.assignments.values():
            if a.principal_kind is PrincipalKind.GROUP and a.principal_id == group_id:
                return f"it holds '{a.target}': remove that assignment first"
        return None


def _scim_user_matches(user: User, where: Filter) -> bool:
    if where.attribute == "id":
        return str(user.id) == where.value.lower()
    if where.attribute == "username":
        return user.upn == fold_upn(where.value)
    if where.attribute == "displayname":
        return user.display_name.lower() == where.value.lower()
    return user.external_id == where.value


def _scim_group_matches(group: Group, where: Filter) -> bool:
    if where.attribute == "id":
        return str(group.id) == where.value.lower()
    if where.attribute == "displayname":
        return group.name.casefold() == where.value.casefold()
    return group.external_id == where.value


_SORTED: dict[tuple[int, str], tuple[dict[tuple[str, str], _Entry], list[_Entry]]] = {}


class MemoryCatalog:
    def __init__(self, t: _Tables, changed: Callable[[], None]) -> None:
        self.t, self._changed = t, changed

    def _put(
        self, entries: dict[tuple[str, str], _Entry], kind: str, name: QualifiedName, text: str
    ) -> int:
        found = entries.get((kind, name.key))
        if found is None:
            entries[(kind, name.key)] = _Entry(name, text)
            return 1
        if found.description != text:
            entries[(kind, name.key)] = replace(found, description=text)
            return 1
        return 0

    @staticmethod
    def _link(
        entries: dict[tuple[str, str], _Entry], kind: str, name: QualifiedName, keys: Iterable[str]
    ) -> int:
        wanted = frozenset(keys)
        if entries[(kind, name.key)].children == wanted:
            return 0
        entries[(kind, name.key)] = replace(entries[(kind, name.key)], children=wanted)
        return 1

    def store(self, org_id: UUID, catalog: Catalog) -> int:
        self._changed()
        entries = dict(self.t.catalog.get(org_id, {}))
        self.t.catalog[org_id] = entries
        changed = 0
        for task, desc in catalog.tasks.items():
            changed += self._put(entries, "task", task, desc)
        for role in catalog.roles:
            changed += self._put(entries, "role", role.name, role.description)
            changed += self._link(entries, "role", role.name, (t.key for t in role.tasks))
        for group in catalog.role_groups:
            changed += self._put(entries, "role_group", group.name, group.description)
            changed += self._link(entries, "role_group", group.name, (r.key for r in group.roles))
        for scope, desc in catalog.data_scopes.items():
            changed += self._put(entries, _KIND[PolicyType.DATA_ACCESS], scope, desc)
        return changed

    def _entries(self, org_id: UUID, kind: str) -> list[_Entry]:
        entries = self.t.catalog.get(org_id, {})
        # An organization's entries never change in place (store writes a new dict), so their
        # order is worked out once per version of them.
        cached = _SORTED.get((id(entries), kind))
        if cached is None or cached[0] is not entries:
            found = sorted(
                (e for (k, _), e in entries.items() if k == kind), key=lambda e: e.name.key
            )
            if len(_SORTED) > 1_000:  # kept for the organizations in use, not the session's
                _SORTED.clear()
            cached = _SORTED[(id(entries), kind)] = (entries, found)
        return cached[1]

    def _entry(self, org_id: UUID, kind: str, name: str) -> _Entry | None:
        return self.t.catalog.get(org_id, {}).get((kind, name.casefold()))

    def names(self, org_id: UUID, kind: PolicyType, bare_name: str) -> list[QualifiedName]:
        wanted = bare_name.strip().casefold()
        return [
            e.name for e in self._entries(org_id, _KIND[kind]) if e.name.name.casefold() == wanted
        ]

    def task_exists(self, org_id: UUID, task: str) -> bool:
        return self._entry(org_id, "task", task) is not None

    def tasks_held(
        self, org_id: UUID, roles: frozenset[str], tasks: Sequence[str]
    ) -> frozenset[str]:
        held: set[str] = set()
        for role in roles:
            if (entry := self._entry(org_id, "role", role)) is not None:
                held |= entry.children
        return frozenset(
            t.casefold()
            for t in tasks
            if t.casefold() in held and self.task_exists(org_id, t.casefold())
        )

    def roles_holding(self, org_id: UUID, task: str) -> frozenset[str]:
        if not self.task_exists(org_id, task):
            return frozenset()
        key = task.casefold()
        return frozenset(str(e.name) for e in self._entries(org_id, "role") if key in e.children)

    def role_group_roles(
        self, org_id: UUID, only: Iterable[str] | None = None
    ) -> dict[str, frozenset[str]]:
        if only is None:
            groups = {str(e.name): e for e in self._entries(org_id, "role_group")}
        else:
            groups = {n: e for n in only if (e := self._entry(org_id, "role_group", n))}
        out: dict[str, frozenset[str]] = {}
        for name, entry in groups.items():
            roles = [self._entry(org_id, "role", r) for r in entry.children]
            if found := frozenset(str(r.name) for r in roles if r is not None):
                out[name] = found
        return out

    def _tasks_of(self, org_id: UUID, role: str) -> list[QualifiedName]:
        entry = self._entry(org_id, "role", role)
        if entry is None:
            return []
        tasks = [self._entry(org_id, "task", t) for t in entry.children]
        return sorted((t.name for t in tasks if t is not None), key=lambda n: n.key)

    def tasks_of_role(self, org_id: UUID, role: str) -> list[str]:
        return sorted(str(n) for n in self._tasks_of(org_id, role))

    def entries(self, org_id: UUID, kind: PolicyType) -> list[QualifiedName]:
        return [e.name for e in self._entries(org_id, _KIND[kind])]

    @staticmethod
    def _names_page(
        names: list[QualifiedName], cursor: str | None, limit: int
    ) -> Page[QualifiedName]:
        after = _after(cursor)
        rows = [n for n in names if after is None or n.key > after][: limit + 1]
        nxt = _encode_cursor(rows[limit - 1].key) if len(rows) > limit else None
        return Page(rows[:limit], nxt)

    def page(
        self, org_id: UUID, kind: PolicyType, *, cursor: str | None, limit: int
    ) -> Page[QualifiedName]:
        return self._names_page(self.entries(org_id, kind), cursor, limit)

    def role_tasks_page(
        self, org_id: UUID, role: str, *, cursor: str | None, limit: int
    ) -> Page[QualifiedName]:
        return self._names_page(self._tasks_of(org_id, role), cursor, limit)

    def lookup(self, org_id: UUID, kind: PolicyType, text: str, limit: int) -> list[QualifiedName]:
        typed = text.strip().casefold()
        every = self.entries(org_id, kind)
        by_key = [n for n in every if n.key >= typed][:limit]
        found = [n for n in by_key if n.key.startswith(typed)]
        if SEPARATOR not in typed and len(found) < limit:
            by_name = sorted(
                (n for n in every if n.name.casefold() >= typed), key=lambda n: n.name.casefold()
            )[:limit]
            for n in by_name:
                if n.name.casefold().startswith(typed) and n not in found:
                    found.append(n)
        if not found:
            found = by_key
        return found[:limit]


class MemoryAssignments:
    def __init__(self, t: _Tables, changed: Callable[[], None]) -> None:
        self.t, self._changed = t, changed

    def _same(self, a: Assignment) -> UUID | None:
        for key, (b, _) in self.t.assignments.items():
            if (b.org_id, b.principal_kind, b.principal_id, b.target_kind) == (
                a.org_id,
                a.principal_kind,
                a.principal_id,
                a.target_kind,
            ) and b.target.casefold() == a.target.casefold():
                return key
        return None

    def add(self, assignment: Assignment, *, at: datetime) -> bool:
        if self._same(assignment) is not None:
            return False
        self._changed()
        self.t.assignments[assignment.id] = (assignment, at)
        return True

    def remove(self, assignment: Assignment) -> bool:
        key = self._same(assignment)
        if key is None:
            return False
        self._changed()
        del self.t.assignments[key]
        return True

    def standing_roles(
        self, org_id: UUID, user_id: UUID, group_ids: frozenset[UUID]
    ) -> frozenset[str]:
        held = [
            a
            for a, _ in self.t.assignments.values()
            if a.org_id == org_id
            and (
                (a.principal_kind is PrincipalKind.USER and a.principal_id == user_id)
                or (a.principal_kind is PrincipalKind.GROUP and a.principal_id in group_ids)
            )
        ]
        roles = {a.target for a in held if a.target_kind == "role"}
        groups = {a.target for a in held if a.target_kind == "role_group"}
        if groups:
            mapping = MemoryCatalog(self.t, self._changed).role_group_roles(org_id, only=groups)
            for g in groups:
                roles |= mapping.get(g, frozenset())
        return frozenset(roles)

    def of_target(self, org_id: UUID, target_kind: str, target: str) -> list[Assignment]:
        return [
            a
            for a, _ in self.t.assignments.values()
            if a.org_id == org_id
            and a.target_kind == target_kind
            and a.target.casefold() == target.casefold()
        ]

    def of_principal(
        self, org_id: UUID, kind: PrincipalKind, principal_id: UUID
    ) -> list[Assignment]:
        return [
            a
            for a, _ in self.t.assignments.values()
            if a.org_id == org_id and a.principal_kind is kind and a.principal_id == principal_id
        ]

    def holders(
        self,
        org_id: UUID,
        targets: Sequence[tuple[PolicyType, str]],
        *,
        at: datetime,
        cursor: str | None,
        limit: int | None,
    ) -> Page[RoleMember]:
        parts = [(kind, target, part) for kind, target in targets for part in ("standing", "jit")]
        start, position = 0, None
        if cursor:
            kind_, key, part_, moment, last = _decode_cursor(cursor, 5)
            names = [(k.value, t.casefold(), p) for k, t, p in parts]
            if (kind_, key, part_) not in names:
                raise InvalidInput("the page cursor is not valid")
            start, position = names.index((kind_, key, part_)), _time_and_id(moment, last)
        found: list[tuple[RoleMember, str]] = []
        for kind, target, part in parts[start:]:
            rows = self._standing(org_id, kind, target) if part == "standing" else []
            if part == "jit":
                rows = self._jit(org_id, kind, target, at)
            found += [(m, c) for place, m, c in rows if position is None or place > position]
            position = None
            if limit is not None and len(found) > limit:
                break
        nxt = None
        if limit is not None and len(found) > limit:
            found = found[:limit]
            nxt = found[-1][1]
        return Page([m for m, _ in found], nxt)

    def _standing(
        self, org_id: UUID, kind: PolicyType, target: str
    ) -> list[tuple[tuple[datetime, UUID], RoleMember, str]]:
        out = []
        for a, created in self.t.assignments.values():
            if (a.org_id, a.target_kind) != (org_id, kind.value):
                continue
            if a.target.casefold() != target.casefold():
                continue
            user = self.t.users.get(a.principal_id)
            group = self.t.groups.get(a.principal_id)
            name = (
                user[0].upn
                if user and a.principal_kind is PrincipalKind.USER
                else group[0].name
                if group and a.principal_kind is PrincipalKind.GROUP
                else str(a.principal_id)
            )
            cursor = _encode_cursor(
                kind.value, target.casefold(), "standing", iso(created), str(a.id)
            )
            out.append(((created, a.id), RoleMember(a.principal_kind, name, target, False), cursor))
        return sorted(out, key=lambda row: row[0])

    def _jit(
        self, org_id: UUID, kind: PolicyType, target: str, at: datetime
    ) -> list[tuple[tuple[datetime, UUID], RoleMember, str]]:
        out = []
        for request, _ in self.t.requests.values():
            z = request.authorization
            if (
                z is None
                or request.org_id != org_id
                or request.status is not RequestStatus.APPROVED
            ):
                continue
            if z.type is not kind or str(z.target) != target:
                continue
            if not (z.start <= at < z.end) or (z.revoked_at is not None and z.revoked_at <= at):
                continue
            cursor = _encode_cursor(kind.value, target.casefold(), "jit", iso(z.end), str(z.id))
            member = RoleMember(
                PrincipalKind.USER, request.requester_upn, target, True, z.end, z.id
            )
            out.append(((z.end, z.id), member, cursor))
        return sorted(out, key=lambda row: row[0])


class MemoryPolicies:
    def __init__(self, t: _Tables, changed: Callable[[], None]) -> None:
        self.t, self._changed = t, changed

    def add(self, policy: Policy) -> None:
        if policy.id in self.t.policies or self._for(policy.org_id, policy.type, policy.target.key):
            raise _taken(f"policy for {policy.target}")
        self._changed()
        self.t.policies[policy.id] = policy

    def _for(self, org_id: UUID, type: PolicyType, key: str) -> Policy | None:
        for p in self.t.policies.values():
            if (p.org_id, p.type, p.target.key) == (org_id, type, key):
                return p
        return None

    def get(self, policy_id: UUID) -> Policy | None:
        return self.t.policies.get(policy_id)

    def for_target(self, org_id: UUID, type: PolicyType, target: QualifiedName) -> Policy | None:
        return self._for(org_id, type, target.key)

    def save(self, policy: Policy) -> None:
        self._changed()
        stored = self.t.policies[policy.id]
        # As the SQL adapter writes it: the settings, never the identity, target or creation.
        self.t.policies[policy.id] = replace(
            policy,
            org_id=stored.org_id,
            type=stored.type,
            target=stored.target,
            created_at=stored.created_at,
        )

    def remove(self, policy_id: UUID) -> None:
        self._changed()
        self.t.policies.pop(policy_id, None)

    def count(self, org_id: UUID) -> int:
        return sum(1 for p in self.t.policies.values() if p.org_id == org_id)

    @staticmethod
    def _order(p: Policy) -> tuple[str, str]:
        return (p.type.value, p.target.key)

    def _ordered(
        self, org_id: UUID, type: PolicyType | None, approval_type: ApprovalType | None
    ) -> list[Policy]:
        return sorted(
            (
                p
                for p in self.t.policies.values()
                if p.org_id == org_id
                and (type is None or p.type is type)
                and (approval_type is None or p.approval_type is approval_type)
            ),
            key=self._order,
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
        found = [
            p
            for p in self._ordered(org_id, type, approval_type)
            if (after is None or self._order(p) > after)
            and (scope is None or p.target.key.startswith(f"{scope.casefold()}\\"))
        ]
        return found[:limit]

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
        after = tuple(_decode_cursor(cursor, 2)) if cursor else None
        found = [
            p
            for p in self._ordered(org_id, type, approval_type)
            if (after is None or self._order(p) > after)
            and (not search or search.lower() in str(p.target).lower())
        ][: limit + 1]
        nxt = None
        if len(found) > limit:
            found = found[:limit]
            nxt = _encode_cursor(*self._order(found[-1]))
        return Page(found, nxt)


_Position = tuple[datetime, UUID]


def _matches_search(request: AccessRequest, flt: RequestFilter) -> bool:
    target = str(request.target).lower()
    if flt.target_contains and flt.target_contains.lower() not in target:
        return False
    if flt.search:
        needle = flt.search.lower()
        return needle in target or needle in request.requester_upn.lower()
    return True


def _copy_request(request: AccessRequest) -> AccessRequest:
    """A copy the caller may change without touching the store (reviews are immutable)."""
    grant = request.authorization
    return replace(
        request,
        reviews=list(request.reviews),
        authorization=replace(grant) if grant is not None else None,
    )


class MemoryRequests:
    def __init__(self, t: _Tables, changed: Callable[[], None]) -> None:
        self.t, self._changed = t, changed
        self._loaded: dict[UUID, int] = {}  # the version each request was read at

    def _read(self, request_id: UUID) -> AccessRequest | None:
        found = self.t.requests.get(request_id)
        if found is None:
            return None
        self._loaded[request_id] = found[1]
        return _copy_request(found[0])

    def _all(self, org_id: UUID) -> Iterator[AccessRequest]:
        return (r for r, _ in self.t.requests.values() if r.org_id == org_id)

    def add(self, request: AccessRequest) -> None:
        if request.id in self.t.requests:
            raise _taken(f"request {request.id}")
        self._changed()
        self._check_reviews(request)
        self.t.requests[request.id] = (_copy_request(request), 1)
        self._loaded[request.id] = 1

    def get(self, request_id: UUID, *, for_update: bool = False) -> AccessRequest | None:
        return self._read(request_id)

    @staticmethod
    def _check_reviews(request: AccessRequest) -> None:
        approvers = [r.approver_id for r in request.reviews]
        if len(set(approvers)) != len(approvers):  # the reviews' primary key
            raise AlreadyVoted(f"a review of {request.describe()} by this approver already exists")

    def save(self, request: AccessRequest) -> None:
        stored, version = self.t.requests[request.id]
        if self._loaded.get(request.id) != version:
            raise RequestNotPending(
                f"{request.describe()} was changed by someone else at the same time"
            )
        self._check_reviews(request)
        self._changed()
        # As the SQL adapter writes it: the status, new reviews and the grant; the content the
        # signature covers is never rewritten.
        kept = _copy_request(stored)
        kept.status, kept.decided_at = request.status, request.decided_at
        kept.reviews = list(request.reviews)
        kept.authorization = replace(request.authorization) if request.authorization else None
        self.t.requests[request.id] = (kept, version + 1)
        self._loaded[request.id] = version + 1

    def open_for(
        self,
        org_id: UUID,
        requester_id: UUID,
        type: PolicyType,
        target: str,
        at: datetime,
        *,
        subject_id: UUID | None = None,
    ) -> AccessRequest | None:
        for r in self._all(org_id):
            # An application's request whoever filed it, or the requester's own.
            whose = r.subject_id if subject_id is not None else r.requester_id
            wanted = subject_id if subject_id is not None else requester_id
            if (whose, r.type, str(r.target)) != (wanted, type, target):
                continue
            pending = r.status is RequestStatus.PENDING and r.pending_until > at
            active = (
                r.status is RequestStatus.APPROVED
                and r.authorization is not None
                and r.authorization.end > at
            )
            if pending or active:
                return self._read(r.id)
        return None

    def _visible(self, r: AccessRequest, flt: RequestFilter, at: datetime) -> bool:
        if flt.requester_id is not None and r.requester_id != flt.requester_id:
            return False
        if flt.subject_id is not None and r.subject_id != flt.subject_id:
            return False
        if flt.status is not None and r.status_at(at) is not flt.status:
            return False
        if flt.types is not None and r.type not in flt.types:
            return False
        if flt.reviewer is not None:
            policy = self.t.policies.get(r.policy_id)
            asked = flt.or_requester_id is not None and r.requester_id == flt.or_requester_id
            if not asked and not self._reviews(flt.reviewer, policy):
                return False
        if flt.awaiting_vote_of is not None:
            voter = flt.awaiting_vote_of
            if voter in (r.requester_id, r.subject_id):
                return False
            if any(v.approver_id == voter for v in r.reviews):
                return False
            if self._has_a_hand(r, voter) or self._steers_subject(r, voter):
                return False
        return True

    @staticmethod
    def _reviews(reviewer: Reviewer, policy: Policy | None) -> bool:
        if policy is None:
            return False
        if policy.approver_group_id is not None:
            return policy.approver_group_id in reviewer.groups
        return reviewer.default_group is not None and reviewer.default_group in reviewer.groups

    def _steering(self, voter: UUID) -> frozenset[UUID]:
        found: set[UUID] = set()
        frontier = {voter}
        while frontier:
            stewards = {s for u, s, _ in self.t.stewards if u in frontier}
            frontier = stewards - found - {voter}
            found |= frontier
        return frozenset(found)

    def _steers_subject(self, r: AccessRequest, voter: UUID) -> bool:
        """The SQL adapter's twin of ``steers_subject`` (its ``_steers_subject``): the voter
        steers the request's application account, directly or through accounts they steer."""
        if r.subject_id is None:
            return False
        steered: set[UUID] = set()
        frontier = {voter}
        while frontier:
            frontier = {u for u, s, _ in self.t.stewards if s in frontier} - steered
            steered |= frontier
        return r.subject_id in steered

    def _has_a_hand(self, r: AccessRequest, voter: UUID) -> bool:
        """The SQL adapter's twin of ``hand_in_vote`` for the pages' counts (see its
        ``_requester_has_a_hand``): the requester steers the voter, placed the voter in the
        approver group, or last set the policy's approval setup (those two by their own hand)."""
        requester = r.requester_id
        if requester in self._steering(voter):
            return True
        policy = self.t.policies.get(r.policy_id)
        control = self.t.controls.get(r.org_id)
        if policy is None or control is None:
            return False
        chose = requester in (
            policy.approver_group_set_by,
            policy.approval_type_set_by,
            policy.approvals_required_set_by,
        ) or (
            policy.approver_group_id is None and control.default_approver_group_set_by == requester
        )
        group = policy.approver_group_id or control.default_approver_group_id
        placed = (
            group is not None
            and (group, voter) in self.t.members
            and self.t.members[(group, voter)] == requester
        )
        return chose or placed

    def _listed(self, org_id: UUID, flt: RequestFilter, at: datetime) -> list[AccessRequest]:
        return sorted(
            (r for r in self._all(org_id) if self._visible(r, flt, at)),
            key=lambda r: (r.created_at, r.id),
            reverse=not flt.oldest_first,
        )

    def page(
        self, org_id: UUID, flt: RequestFilter, *, at: datetime, cursor: str | None, limit: int
    ) -> Page[AccessRequest]:
        position = _time_and_id(*_decode_cursor(cursor, 2)) if cursor else None
        found = [
            r
            for r in self._listed(org_id, flt, at)
            if _matches_search(r, flt)
            and (
                position is None
                or (
                    (r.created_at, r.id) > position
                    if flt.oldest_first
                    else (r.created_at, r.id) < position
                )
            )
        ][: limit + 1]
        nxt = None
        if len(found) > limit:
            found = found[:limit]
            nxt = _encode_cursor(iso(found[-1].created_at), str(found[-1].id))
        return Page([r for f in found if (r := self._read(f.id)) is not None], nxt)

    def count(self, org_id: UUID, flt: RequestFilter, *, at: datetime, limit: int) -> int:
        if flt.search or flt.target_contains:
            raise ValueError("requests are counted without a search")
        return min(len(self._listed(org_id, flt, at)), limit)

    def grants(self, org_id: UUID, user_id: UUID, at: datetime) -> tuple[Grant, ...]:
        found = [
            z
            for r in self._all(org_id)
            if (z := r.authorization) is not None
            and z.user_id == user_id
            and z.end > at
            and (z.revoked_at is None or z.revoked_at > at)
        ]
        # decide() names the first grant holding a role: the one that lasts longest (id ties).
        found.sort(key=lambda z: (-z.end.timestamp(), z.id))
        return tuple(
            Grant(z.id, z.type, str(z.target), z.start, z.end, z.revoked_at) for z in found
        )

    def _by_auth(
        self, org_id: UUID, at: datetime, keep: Callable[[AccessRequest], bool]
    ) -> list[AccessRequest]:
        found = [
            r
            for r in self._all(org_id)
            if r.status is RequestStatus.APPROVED
            and r.authorization is not None
            and r.authorization.end > at
            and keep(r)
        ]
        found.sort(key=lambda r: r.authorization.end if r.authorization else at)
        return [c for r in found if (c := self._read(r.id)) is not None]

    def active_for_user(self, org_id: UUID, user_id: UUID, at: datetime) -> list[AccessRequest]:
        # The grants the user holds: an application's data access, not its installer's.
        return self._by_auth(
            org_id, at, lambda r: r.authorization is not None and r.authorization.user_id == user_id
        )

    def pending_for_user(self, org_id: UUID, user_id: UUID, at: datetime) -> list[AccessRequest]:
        return [
            c
            for r in self._all(org_id)
            if user_id in (r.requester_id, r.subject_id)
            and r.status is RequestStatus.PENDING
            and r.pending_until > at
            and (c := self._read(r.id)) is not None
        ]

    def jit_holders(
        self, org_id: UUID, type: PolicyType, target: str, at: datetime
    ) -> list[AccessRequest]:
        return self._by_auth(org_id, at, lambda r: r.type is type and str(r.target) == target)

    def role_grants(self, org_id: UUID, at: datetime) -> list[HeldGrant]:
        found = []
        for r in self._all(org_id):
            auth = r.authorization
            if r.type not in (PolicyType.ROLE, PolicyType.ROLE_GROUP) or auth is None:
                continue
            if r.status is not RequestStatus.APPROVED or not auth.start <= at < auth.end:
                continue
            user = self.t.users.get(r.grantee_id)
            if user is not None and user[0].enabled:
                found.append(HeldGrant(user[0].upn, BoundKind(r.type.value), str(r.target)))
        return found

    def to_settle(
        self, org_id: UUID, at: datetime, limit: int, *, lock: bool = True
    ) -> list[AccessRequest]:
        lapsed = [
            r
            for r in self._all(org_id)
            if r.status is RequestStatus.PENDING and r.pending_until <= at
        ]
        ended = [
            r
            for r in self._all(org_id)
            if r.status is RequestStatus.APPROVED
            and r.authorization is not None
            and r.authorization.end <= at
        ]
        return [c for r in (lapsed + ended)[:limit] if (c := self._read(r.id)) is not None]

    def granted(
        self,
        org_id: UUID,
        user_id: UUID | None,
        *,
        active_at: datetime | None,
        cursor: str | None,
        limit: int,
    ) -> Page[AccessRequest]:
        rows: list[tuple[datetime, UUID, UUID]] = []
        for r in self._all(org_id):
            z = r.authorization
            if z is None or (user_id is not None and z.user_id != user_id):
                continue
            if active_at is not None and not (
                z.end > active_at and (z.revoked_at is None or z.revoked_at > active_at)
            ):
                continue
            rows.append((z.start if active_at is None else z.end, z.id, r.id))
        rows.sort(reverse=active_at is None)
        if cursor:
            position = _time_and_id(*_decode_cursor(cursor, 2))
            rows = [
                row
                for row in rows
                if (
                    (row[0], row[1]) < position
                    if active_at is None
                    else (row[0], row[1]) > position
                )
            ]
        rows = rows[: limit + 1]
        nxt = None
        if len(rows) > limit:
            rows = rows[:limit]
            nxt = _encode_cursor(iso(rows[-1][0]), str(rows[-1][1]))
        return Page([c for *_, i in rows if (c := self._read(i)) is not None], nxt)

    def ending(self, org_id: UUID, after: datetime, until: datetime) -> list[tuple[UUID, UUID]]:
        found = [
            (z.end, z.id, r.id)
            for r in self._all(org_id)
            if (z := r.authorization) is not None
            and after < z.end <= until
            and (z.revoked_at is None or z.revoked_at > after)
        ]
        return [(r, i) for _, i, r in sorted(found)]

    def id_for_authorization(self, authorization_id: UUID) -> UUID | None:
        for r, _ in self.t.requests.values():
            if r.authorization is not None and r.authorization.id == authorization_id:
                return r.id
        return None

    def lock_grant(self, authorization_id: UUID) -> Grant | None:
        request_id = self.id_for_authorization(authorization_id)
        if request_id is None:
            return None
        z = self.t.requests[request_id][0].authorization
        assert z is not None
        return Grant(z.id, z.type, str(z.target), z.start, z.end, z.revoked_at)


def _stored(record: AuditRecord) -> AuditRecord:
    """The record as the SQL adapter reads it back: its details through canonical JSON."""
    return replace(record, details=json.loads(canonical_json(record.details)))


class MemoryLockbox:
    """The SQL adapter's twin (adapters/sql/lockbox.py): saved by compare-and-set on the version
    the transaction read."""

    def __init__(self, t: _Tables, changed: Callable[[], None]) -> None:
        self.t, self._changed = t, changed
        self._loaded: dict[UUID, int] = {}  # the version each request was read at

    def operator(self) -> Operator | None:
        return self.t.operator.get(1)

    def set_operator(self, org_id: UUID | None, *, at: datetime) -> None:
        self._changed()
        self.t.operator.clear()
        if org_id is not None:
            self.t.operator[1] = Operator(org_id, at)

    def _read(self, request_id: UUID) -> LockboxRequest:
        stored, version = self.t.lockbox[request_id]
        self._loaded[request_id] = version
        return replace(stored)

    def add(self, request: LockboxRequest) -> None:
        if request.id in self.t.lockbox:
            raise _taken(f"lockbox request {request.id}")
        self._changed()
        self.t.lockbox[request.id] = (replace(request), 1)
        self._loaded[request.id] = 1

    def get(self, request_id: UUID, *, for_update: bool = False) -> LockboxRequest | None:
        return self._read(request_id) if request_id in self.t.lockbox else None

    def save(self, request: LockboxRequest) -> None:
        if request.id not in self._loaded:
            raise LookupError(f"{request.describe()} was not read in this transaction")
        stored, version = self.t.lockbox[request.id]
        if self._loaded[request.id] != version:
            raise RequestNotPending(
                f"{request.describe()} was changed by someone else at the same time"
            )
        self._changed()
        # As the SQL adapter writes it: what a decision, a revocation or the sweeper changes.
        kept = replace(
            stored,
            status=request.status,
            decided_at=request.decided_at,
            decided_by=request.decided_by,
            decision_comment=request.decision_comment,
            start=request.start,
            end=request.end,
            revoked_at=request.revoked_at,
            revoked_by=request.revoked_by,
            revocation_comment=request.revocation_comment,
        )
        self.t.lockbox[request.id] = (kept, version + 1)
        self._loaded[request.id] = version + 1

    @staticmethod
    def _listed(r: LockboxRequest, flt: LockboxFilter, at: datetime) -> bool:
        return (
            (flt.customer_org_id is None or r.customer_org_id == flt.customer_org_id)
            and (flt.operator_org_id is None or r.operator_org_id == flt.operator_org_id)
            and (flt.requester_id is None or r.requester_id == flt.requester_id)
            and (flt.statuses is None or r.status_at(at) in flt.statuses)
            and (flt.created_after is None or r.created_at > flt.created_after)
            and (flt.request_id is None or r.id == flt.request_id)
        )

    def page(
        self, flt: LockboxFilter, *, at: datetime, cursor: str | None, limit: int
    ) -> Page[LockboxRequest]:
        if flt.customer_org_id is None and flt.operator_org_id is None:
            raise ValueError("a lockbox listing is of a customer or of the operator")
        position = _time_and_id(*_decode_cursor(cursor, 2)) if cursor else None
        found = sorted(
            (
                r
                for r, _ in self.t.lockbox.values()
                if self._listed(r, flt, at)
                and (position is None or (r.created_at, r.id) < position)
            ),
            key=lambda r: (r.created_at, r.id),
            reverse=True,
        )
        page = _page(found, limit, lambda r: (iso(r.created_at), str(r.id)))
        return Page([self._read(r.id) for r in page.items], page.next_cursor)

    def approved(self, customer_org_id: UUID, user_id: UUID) -> list[LockboxRequest]:
        found = sorted(
            (
                r
                for r, _ in self.t.lockbox.values()
                if r.customer_org_id == customer_org_id
                and r.requester_id == user_id
                and r.status is RequestStatus.APPROVED
            ),
            key=lambda r: (r.created_at, r.id),
        )
        return [self._read(r.id) for r in found]

    def due(self, at: datetime, *, limit: int) -> list[LockboxRequest]:
        found: list[tuple[datetime, UUID]] = []
        for r, _ in self.t.lockbox.values():
            if r.status is RequestStatus.PENDING and r.pending_until <= at:
                found.append((r.pending_until, r.id))
            elif r.status is RequestStatus.APPROVED and r.end is not None and r.end <= at:
                found.append((r.end, r.id))
        return [self._read(i) for _, i in sorted(found)[:limit]]


class MemoryConnectors:
    """The SQL adapter's twin (adapters/sql/connectors.py)."""

    def __init__(self, t: _Tables, changed: Callable[[], None]) -> None:
        self.t = t
        self._changed = changed

    def records(self, org_id: UUID, connector: str) -> list[Recorded]:
        return [
            r
            for (org, name, _, _), r in sorted(
                self.t.connector_records.items(), key=lambda i: i[0][1:]
            )
            if org == org_id and name == connector
        ]

    def records_on(self, org_id: UUID, targets: Iterable[str]) -> list[tuple[str, Recorded]]:
        wanted = set(targets)
        return [
            (key[1], r)
            for key, r in sorted(self.t.connector_records.items(), key=lambda item: item[0][1:])
            if key[0] == org_id and key[2] in wanted
        ]

    def put(self, org_id: UUID, connector: str, record: Recorded) -> None:
        self._changed()
        m = record.applied.membership
        self.t.connector_records[(org_id, connector, m.target, m.member)] = record

    def drop(self, org_id: UUID, connector: str, membership: Membership) -> None:
        self._changed()
        self.t.connector_records.pop(
            (org_id, connector, membership.target, membership.member), None
        )

    def state(self, org_id: UUID, connector: str, *, for_update: bool = False) -> ConnectorState:
        found = self.t.connector_states.get((org_id, connector))
        return replace(found) if found is not None else ConnectorState(org_id, connector)

    def states(self, org_id: UUID) -> list[ConnectorState]:
        names = {n for (o, n) in self.t.connector_states if o == org_id} | set(self.counts(org_id))
        return [self.state(org_id, n) for n in sorted(names)]

    def save_state(self, state: ConnectorState) -> None:
        self._changed()
        self.t.connector_states[(state.org_id, state.name)] = replace(state)

    def holding(self) -> dict[UUID, frozenset[str]]:
        out: dict[UUID, set[str]] = {}
        for (org, name, _, _), r in self.t.connector_records.items():
            if r.applied.origin is Origin.ADDED:
                out.setdefault(org, set()).add(name)
        return {org: frozenset(names) for org, names in out.items()}

    def counts(self, org_id: UUID) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (org, name, _, _), r in self.t.connector_records.items():
            if org == org_id:
                by_origin = out.setdefault(name, {})
                origin = r.applied.origin.value
                by_origin[origin] = by_origin.get(origin, 0) + 1
        return out


class MemoryAudit:
    def __init__(self, t: _Tables, changed: Callable[[], None], db: MemoryDatabase) -> None:
        self.t, self._changed, self._db = t, changed, db

    def append(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        if self._db.refuse_audit:
            raise AuditUnavailable(_AUDIT_FAILED)
        out: list[AuditRecord] = []
        for org_id in dict.fromkeys(e.org_id for e in events):
            seq, prev = self.head(org_id, lock=True)
            added = []
            for event in (e for e in events if e.org_id == org_id):
                rec = _stored(chain(event, prev_seq=seq, prev_hash=prev))
                added.append(rec)
                seq, prev = rec.seq, rec.hash
            self._changed()
            self.t.audit[org_id] = (*self.t.audit.get(org_id, ()), *added)
            self.t.heads[org_id] = (seq, prev)
            out += added
        return out

    def head(self, org_id: UUID, *, lock: bool = False) -> tuple[int, str]:
        found = self.t.heads.get(org_id)
        if found is None:
            raise AuditUnavailable(f"no audit chain for organization {org_id}")
        return found

    def changes(self, org_id: UUID, *, after: int, ignore: frozenset[str]) -> list[AuditRecord]:
        return [
            r
            for r in self.t.audit.get(org_id, ())
            if r.seq > after and r.outcome is Outcome.SUCCESS and r.operation not in ignore
        ]

    def records(self, org_id: UUID, *, after: int = 0) -> Iterator[AuditRecord]:
        return iter([r for r in self.t.audit.get(org_id, ()) if r.seq > after])

    def search(
        self, org_id: UUID, flt: AuditFilter, *, cursor: str | None, limit: int
    ) -> Page[AuditRecord]:
        before: int | None = None
        if cursor:
            (seq,) = _decode_cursor(cursor, 1)
            if not (seq.isascii() and seq.isdigit() and len(seq) <= 18):
                raise InvalidInput("the page cursor is not valid")
            before = int(seq)

        def wanted(r: AuditRecord) -> bool:
            return (
                (flt.since is None or r.at >= flt.since)
                and (flt.until is None or r.at < flt.until)
                and (not flt.actor or flt.actor.lower() == r.actor_name or flt.actor == r.actor_id)
                and (not flt.operation or r.operation.lower() == flt.operation.lower())
                and (not flt.target or r.target == flt.target)
                and (flt.outcome is None or r.outcome is flt.outcome)
                and (before is None or r.seq < before)
            )

        rows = [r for r in reversed(self.t.audit.get(org_id, ())) if wanted(r)][: limit + 1]
        items = rows[:limit]
        nxt = _encode_cursor(str(items[-1].seq)) if len(rows) > limit else None
        return Page(items, nxt)


class MemoryCredentials:
    def __init__(self, t: _Tables, changed: Callable[[], None]) -> None:
        self.t, self._changed = t, changed

    def password_hash(self, user_id: UUID) -> str | None:
        return self.t.passwords.get(user_id)

    def set_password_hash(self, user_id: UUID, hash: str, *, at: datetime) -> None:
        self._changed()
        self.t.passwords[user_id] = hash

    def add_token(self, token: ApiToken) -> None:
        if token.id in self.t.tokens or self.token_by_digest(token.digest) is not None:
            raise _taken(f"token {token.name}")
        self._changed()
        self.t.tokens[token.id] = token

    def token_by_digest(self, digest: str) -> ApiToken | None:
        return next((t for t in self.t.tokens.values() if t.digest == digest), None)

    def token(self, token_id: UUID) -> ApiToken | None:
        return self.t.tokens.get(token_id)

    def tokens(self, org_id: UUID, user_id: UUID | None) -> list[ApiToken]:
        found = [
            t
            for t in self.t.tokens.values()
            if t.org_id == org_id and (user_id is None or t.user_id == user_id)
        ]
        found.sort(key=lambda t: t.id)
        found.sort(key=lambda t: t.created_at, reverse=True)
        return found

    def revoke_token(self, token_id: UUID, *, at: datetime) -> None:
        found = self.t.tokens.get(token_id)
        if found is not None and found.revoked_at is None:
            self._changed()
            self.t.tokens[token_id] = replace(found, revoked_at=at)

    def revoke_all_tokens(self, user_id: UUID, *, at: datetime) -> int:
        live = [t for t in self.t.tokens.values() if t.user_id == user_id and t.revoked_at is None]
        for t in live:
            self.revoke_token(t.id, at=at)
        return len(live)

    def oidc_user(self, issuer: str, subject: str) -> UUID | None:
        return self.t.oidc.get((issuer, subject))

    def link_oidc(self, issuer: str, subject: str, user_id: UUID, *, at: datetime) -> None:
        if (issuer, subject) in self.t.oidc:
            raise _taken(f"sign-in {issuer} {subject}")
        self._changed()
        self.t.oidc[(issuer, subject)] = user_id

    def unlink_oidc(self, user_id: UUID) -> int:
        links = [key for key, linked in self.t.oidc.items() if linked == user_id]
        if links:
            self._changed()
        for key in links:
            del self.t.oidc[key]
        return len(links)


class MemoryOutbox:
    def __init__(self, t: _Tables, changed: Callable[[], None]) -> None:
        self.t, self._changed = t, changed

    def add(self, message: OutboxMessage) -> bool:
        if self.taken([message.idempotency_key]):
            return False
        self._changed()
        # As stored: the payload through canonical JSON, no lease, nothing delivered yet.
        stored = copy.deepcopy(message)
        stored.payload = json.loads(canonical_json(message.payload))
        stored.last_error, stored.delivered_at = None, None
        self.t.outbox[message.id] = (stored, None)
        return True

    def taken(self, keys: Sequence[str]) -> frozenset[str]:
        wanted = set(keys)
        return frozenset(
            m.idempotency_key for m, _ in self.t.outbox.values() if m.idempotency_key in wanted
        )

    def claim(
        self, *, at: datetime, lease_until: datetime, limit: int, channels: frozenset[Channel]
    ) -> list[OutboxMessage]:
        due = sorted(
            (
                m
                for m, lease in self.t.outbox.values()
                if m.channel in channels
                and m.state is DeliveryState.PENDING
                and m.next_attempt_at <= at
                and (lease is None or lease < at)
            ),
            key=lambda m: m.next_attempt_at,
        )[:limit]
        out = []
        for m in due:
            self._changed()
            taken = copy.deepcopy(m)
            taken.attempts += 1
            self.t.outbox[m.id] = (taken, lease_until)
            out.append(copy.deepcopy(taken))
        return out

    def save(self, message: OutboxMessage, *, lease_until: datetime | None = None) -> bool:
        found = self.t.outbox.get(message.id)
        if found is None or (lease_until is not None and found[1] != lease_until):
            return False
        self._changed()
        stored = copy.deepcopy(found[0])
        stored.state, stored.attempts = message.state, message.attempts
        stored.next_attempt_at, stored.last_error = message.next_attempt_at, message.last_error
        stored.delivered_at = message.delivered_at
        self.t.outbox[message.id] = (stored, None)
        return True

    def get(self, message_id: UUID) -> OutboxMessage | None:
        found = self.t.outbox.get(message_id)
        return copy.deepcopy(found[0]) if found else None

    def listing(
        self, org_id: UUID, *, state: DeliveryState | None, cursor: str | None, limit: int
    ) -> Page[OutboxMessage]:
        position = _time_and_id(*_decode_cursor(cursor, 2)) if cursor else None
        found = sorted(
            (
                m
                for m, _ in self.t.outbox.values()
                if m.org_id == org_id
                and (state is None or m.state is state)
                and (position is None or (m.created_at, m.id) < position)
            ),
            key=lambda m: (m.created_at, m.id),
            reverse=True,
        )
        copies = [copy.deepcopy(m) for m in found[: limit + 1]]
        return _page(copies, limit, lambda m: (iso(m.created_at), str(m.id)))


class MemoryWebhooks:
    def __init__(self, t: _Tables, changed: Callable[[], None]) -> None:
        self.t, self._changed = t, changed

    def add(self, endpoint: WebhookEndpoint) -> None:
        self._changed()
        self.t.webhooks[endpoint.id] = endpoint

    def get(self, endpoint_id: UUID) -> WebhookEndpoint | None:
        return self.t.webhooks.get(endpoint_id)

    def remove(self, endpoint_id: UUID) -> None:
        self._changed()
        self.t.webhooks.pop(endpoint_id, None)

    def in_org(self, org_id: UUID) -> list[WebhookEndpoint]:
        return sorted(
            (w for w in self.t.webhooks.values() if w.org_id == org_id), key=lambda w: w.created_at
        )


class MemoryUnitOfWork:
    """One transaction over a snapshot of ``db``; see the module's docstring."""

    orgs: OrganizationRepository
    users: UserRepository
    groups: GroupRepository
    catalog: CatalogRepository
    assignments: AssignmentRepository
    policies: PolicyRepository
    requests: RequestRepository
    lockbox: LockboxRepository
    connectors: ConnectorRepository
    audit: AuditRepository
    credentials: CredentialRepository
    outbox: OutboxRepository
    webhooks: WebhookRepository

    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db
        self._events: list[AuditEvent] = []

    def _begin(self) -> None:
        with self._db.lock:
            self._tables = self._db.tables.copy()
            self._read_at = self._db.version
        self._dirty = False
        self._owned: set[str] = set()
        t, writes = self._tables, self._writes
        self.orgs = MemoryOrganizations(t, writes("orgs", "controls", "domains", "heads", "audit"))
        self.users = MemoryUsers(t, writes("users", "stewards", "modified"))
        self.groups = MemoryGroups(
            t, writes("groups", "members", "policies", "assignments", "modified")
        )
        self.catalog = MemoryCatalog(t, writes("catalog"))
        self.assignments = MemoryAssignments(t, writes("assignments"))
        self.policies = MemoryPolicies(t, writes("policies"))
        self.requests = MemoryRequests(t, writes("requests"))
        self.lockbox = MemoryLockbox(t, writes("lockbox", "operator"))
        self.connectors = MemoryConnectors(t, writes("connector_records", "connector_states"))
        self.audit = MemoryAudit(t, writes("audit", "heads"), self._db)
        self.credentials = MemoryCredentials(t, writes("passwords", "tokens", "oidc"))
        self.outbox = MemoryOutbox(t, writes("outbox"))
        self.webhooks = MemoryWebhooks(t, writes("webhooks"))

    def _writes(self, *tables: str) -> Callable[[], None]:
        """What a repository calls before it writes: it owns copies of its tables from then on."""

        def changed() -> None:
            self._dirty = True
            self._tables.own(tables, self._owned)

        return changed

    def __enter__(self) -> Self:
        self._events = []
        self._begin()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.rollback()

    def record(self, event: AuditEvent) -> None:
        self._events.append(event)

    def record_all(self, events: Iterable[AuditEvent]) -> None:
        self._events.extend(events)

    def commit(self) -> None:
        """Chain the recorded events and make them visible with the change, or nothing."""
        try:
            if self._events:
                self.audit.append(self._events)
            with self._db.lock:
                if self._dirty:
                    if self._db.version != self._read_at:
                        raise ConcurrentChange(_CONFLICT)
                    self._db.tables = self._tables
                    self._db.version += 1
                self._db.commits += 1
        except (AuditUnavailable, ConcurrentChange):
            self.rollback()
            raise
        finally:
            self._events = []
        self._begin()  # what follows in the same block is a new transaction, as with a session

    def rollback(self) -> None:
        self._events = []
        self._begin()


def factory(db: MemoryDatabase) -> UnitOfWorkFactory:
    """The unit-of-work factory a ServiceContext takes (mypy checks the fake against the
    protocols here)."""
    return db.unit_of_work
