"""A benchmark organization at scale: policies, requests and authorizations, bulk-inserted.

    .venv/bin/python bench/generate.py --db URL --policies N --authorizations N --requests N \\
        [--users N] [--seed N]

What the services create (so it is audited, as in production): the organization with the
built-in catalog, its administrator, the approver group ``Bench Approvers`` with a few approvers,
and access control with that group as default approvers. The administrator and ``approver1``
sign in with ``PASSWORD``.

What is bulk-inserted (SQLAlchemy Core on SQLite, COPY on PostgreSQL, each value encoded as its
column's SQLAlchemy type encodes it), row for row as the application writes it once its sweeps
have run: the catalog tasks ``Bench\\Task-<i>`` (one per policy), the role
``Bench\\Bench Operators`` holding them all, the requesters (each holding that role standing),
one Manual or Auto task policy per task, the requests (signed with a key registered like a
server's), their reviews, and an authorization for each approved request. ``requests`` counts
every request and ``authorizations`` the approved ones among them, so
``requests >= authorizations``; 1% of the authorizations are active now (for an hour more at
least), 5% were revoked, the rest have ended; the other requests are pending (10%), denied,
cancelled or expired. Ended grants and lapsed requests are stored settled (``completed``,
``expired``), as the worker's sweep leaves them, so a server started on the data has no backlog
to write down. The requests span the last year, newest last.

The generated history predates the audit chain: no audit records (and no outbox messages) are
written for the bulk rows. The chain holds only the records of the service calls above, and
verifies; the decision index reads the bulk rows from the database on first use.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Boolean, Connection, Engine, Table, Uuid, func, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect

from jitpam.adapters.signing import Ed25519Signer
from jitpam.adapters.sql.db import make_engine
from jitpam.adapters.sql.keys import lookup_key, register_key
from jitpam.adapters.sql.models import (
    AssignmentRow,
    AuthorizationRow,
    Base,
    CatalogEntryRow,
    CatalogLinkRow,
    OrganizationRow,
    PolicyRow,
    RequestRow,
    ReviewRow,
    UserRow,
    UTCDateTime,
)
from jitpam.bootstrap import build_context
from jitpam.domain.names import QualifiedName
from jitpam.domain.policy import PolicyType
from jitpam.domain.requests import AccessRequest
from jitpam.services import auth, directory, organizations
from jitpam.services.context import Caller, ServiceContext

PASSWORD = "jitpam-bench-2026"  # the administrator's and approver1's
ORG_PREFIX = "bench-"
DOMAIN_SUFFIX = ".bench.example"
SCOPE = "Bench"
ROLE = QualifiedName(SCOPE, "Bench Operators")
APPROVER_GROUP = "Bench Approvers"
APPROVERS = 5
HISTORY_DAYS = 365
PENDING = timedelta(hours=24)  # the organization's default pending_hours
CHUNK = 10_000  # requests per job and rows per insert
POOL_FROM = 20_000  # build and sign requests in worker processes from this many on

# What a request became.
COMPLETED, REVOKED, DENIED, CANCELLED, EXPIRED, ACTIVE, OPEN = range(7)
GRANTED = (ACTIVE, COMPLETED, REVOKED)
STATUS = {
    COMPLETED: "completed",
    REVOKED: "revoked",
    DENIED: "denied",
    CANCELLED: "cancelled",
    EXPIRED: "expired",
    ACTIVE: "approved",
    OPEN: "pending",
}
# The row version the application leaves: its add writes 1 and saves 2, each later save adds 1.
VERSION = {OPEN: 2, ACTIVE: 3, DENIED: 3, CANCELLED: 3, EXPIRED: 3, COMPLETED: 4, REVOKED: 4}

REASONS = (
    "INC{n}: {task} fails for a user's mailbox, rerunning it by hand",
    "CHG{n}: scheduled maintenance in tonight's change window",
    "Ticket {n}: customer escalation, need {task} to investigate",
    "Quarterly access review follow-up {n}",
    "Migration batch {n} needs a manual fix-up with {task}",
    "On call: alert {n} fired, restoring service",
)
APPROVE_COMMENTS = ("Approved", "Go ahead", "OK within the change window", "Approved per ticket")
DENY_COMMENTS = ("No ticket referenced", "Not in the change window", "Ask your manager first")
REVOKE_COMMENTS = ("Work done", "Case closed", "Ended early after review", "No longer needed")
DURATIONS = (1, 2, 4, 4, 4, 8)

LOADED = (
    "catalog_entries",
    "catalog_links",
    "policies",
    "users",
    "assignments",
    "requests",
    "reviews",
    "authorizations",
)


def table(model: type[Base]) -> Table:
    found = model.__table__
    assert isinstance(found, Table)
    return found


REQUESTS = table(RequestRow)
REVIEWS = table(ReviewRow)
AUTHORIZATIONS = table(AuthorizationRow)


@dataclass(frozen=True)
class Generated:
    url: str  # the database URL
    org_id: uuid.UUID
    org_name: str
    admin_upn: str
    admin_password: str  # so a benchmark can sign in over HTTP
    users: list[str]  # UPNs of the generated requesters
    tasks: list[str]  # canonical names ("Bench\\Task-17"), each covered by a task policy
    role: str  # the role that holds all generated tasks; every generated user holds it standing


def task_name(i: int) -> str:
    return str(QualifiedName(SCOPE, f"Task-{i}"))


def is_auto(policy: int) -> bool:
    """Every tenth policy approves automatically; the others need votes."""
    return policy % 10 == 9


def approvals_required(policy: int) -> int:
    return 2 if policy % 20 == 3 else 1


def max_duration(policy: int) -> int | None:
    return 8 if policy % 4 == 0 else None


def _manual(policy: int) -> int:
    """``policy`` or its Manual neighbour: a request that was voted on had a Manual policy."""
    return policy - 1 if is_auto(policy) else policy


# -- values as the database stores them ----------------------------------------------------------

Row = tuple[Any, ...]


def _text(value: Any) -> Any:
    return None if value is None else str(value)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _hex(value: uuid.UUID | None) -> str | None:
    return None if value is None else value.hex


def _naive_utc(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


class Encoder:
    """Rows of Python values to what the driver is handed. On SQLite, each value as the column
    type's own bind processor makes it (what the ORM writes), by a quicker equivalent checked
    against that processor on the first row of each table; for PostgreSQL's text COPY, UUIDs
    and times as text. Cheap enough to run in the worker processes, off the writing one."""

    def __init__(self, dialect_name: str) -> None:
        self.dialect_name = dialect_name
        self._dialect: Dialect = sqlite.dialect()
        self._cache: dict[tuple[str, tuple[str, ...]], list[tuple[int, Callable[[Any], Any]]]] = {}

    def _converters(
        self, table: Table, columns: tuple[str, ...]
    ) -> list[tuple[int, Callable[[Any], Any]]]:
        out: list[tuple[int, Callable[[Any], Any]]] = []
        for i, name in enumerate(columns):
            column_type = table.c[name].type
            if isinstance(column_type, Uuid):
                out.append((i, _hex if self.dialect_name == "sqlite" else _text))
            elif isinstance(column_type, UTCDateTime):
                out.append((i, _naive_utc if self.dialect_name == "sqlite" else _iso))
            elif isinstance(column_type, Boolean) and self.dialect_name == "sqlite":
                out.append((i, int))
        return out

    def _check(self, table: Table, columns: tuple[str, ...], row: Row, encoded: Row) -> None:
        """The quick encoding of ``row`` is the one SQLAlchemy's own processors give."""
        if self.dialect_name != "sqlite":
            return
        for name, value, quick in zip(columns, row, encoded, strict=True):
            process = table.c[name].type.dialect_impl(self._dialect).bind_processor(self._dialect)
            if (process(value) if process else value) != quick:
                raise AssertionError(f"{table.name}.{name}: {quick!r} is not how jitpam stores it")

    def rows(self, table: Table, columns: tuple[str, ...], rows: Sequence[Row]) -> list[Row]:
        key = (table.name, columns)
        fresh = key not in self._cache
        if fresh:
            self._cache[key] = self._converters(table, columns)
        convert = self._cache[key]
        out = []
        for row in rows:
            values = list(row)
            for i, f in convert:
                values[i] = f(values[i])
            out.append(tuple(values))
        if fresh and rows:
            self._check(table, columns, rows[0], out[0])
        return out


@dataclass
class Batch:
    """Encoded rows for several tables, written together and committed."""

    tables: list[tuple[Table, tuple[str, ...], list[Row]]] = field(default_factory=list)

    def add(self, table: Table, columns: tuple[str, ...], rows: list[Row]) -> None:
        self.tables.append((table, columns, rows))


REQUEST_COLUMNS = (
    "id",
    "org_id",
    "requester_id",
    "requester_upn",
    "policy_id",
    "type",
    "target",
    "reason",
    "duration_hours",
    "approvals_required",
    "created_at",
    "pending_until",
    "status",
    "decided_at",
    "key_id",
    "signature",
    "version",
)
REVIEW_COLUMNS = ("request_id", "approver_id", "decision", "comment", "at")
AUTHORIZATION_COLUMNS = (
    "id",
    "org_id",
    "request_id",
    "user_id",
    "type",
    "target",
    "start_at",
    "end_at",
    "revoked_at",
    "revoked_by",
    "revocation_comment",
)


# -- requests, built and signed in worker processes ----------------------------------------------


@dataclass(frozen=True)
class Plan:
    """All a worker needs to build requests: the organization's ids and the signing key."""

    dialect: str
    org_id: uuid.UUID
    now: datetime
    key_id: str
    private_key: bytes  # raw Ed25519: the workers sign as the registered key
    user_ids: Sequence[uuid.UUID]
    upns: Sequence[str]
    approver_ids: Sequence[uuid.UUID]
    policy_ids: Sequence[uuid.UUID]
    history_start: datetime
    history_step: timedelta  # time between two historical requests


@dataclass
class _State:
    plan: Plan
    signer: Ed25519Signer
    encoder: Encoder
    checked: bool = False  # the hand-made signing payload was compared with the domain's


_state: _State | None = None


def _start(plan: Plan) -> None:
    """Make ``plan`` this process's: run in each worker, and in-process when there is none."""
    global _state
    signer = Ed25519Signer(Ed25519PrivateKey.from_private_bytes(plan.private_key))
    _state = _State(plan, signer, Encoder(plan.dialect))


_json_text = json.JSONEncoder(ensure_ascii=False).encode
ISO = "%Y-%m-%dT%H:%M:%S.%fZ"


def _payload(row: Row) -> bytes:
    """``AccessRequest.signing_payload()`` of a request row, made three times faster by hand:
    canonical JSON (sorted keys, no spaces, UTF-8) of the same fields."""
    (rid, org, requester, upn, policy, _, target, reason, hours, needed, created, until) = row[:12]
    return (
        f'{{"approvals_required":{needed},"created_at":"{created.strftime(ISO)}",'
        f'"duration_hours":{hours},"id":"{rid}","org_id":"{org}",'
        f'"pending_until":"{until.strftime(ISO)}","policy_id":"{policy}",'
        f'"reason":{_json_text(reason)},"requester_id":"{requester}",'
        f'"requester_upn":{_json_text(upn)},"target":{_json_text(target)},"type":"task"}}'
    ).encode()


def _domain_payload(row: Row) -> bytes:
    (rid, org, requester, upn, policy, _, target, reason, hours, needed, created, until) = row[:12]
    return AccessRequest(
        id=rid,
        org_id=org,
        requester_id=requester,
        requester_upn=upn,
        policy_id=policy,
        type=PolicyType.TASK,
        target=QualifiedName.parse(target),
        reason=reason,
        duration_hours=hours,
        approvals_required=needed,
        created_at=created,
        pending_until=until,
    ).signing_payload()


@dataclass
class _Made:
    request: Row
    reviews: list[Row]
    grant: Row | None
    decided: datetime


def _request(rng: random.Random, category: int, user: int, policy: int, created: datetime) -> _Made:
    """One request as the application holds it: Auto policies approve at once, Manual ones
    after one approving vote per required approval; one deny decides."""
    assert _state is not None
    p = _state.plan
    auto = is_auto(policy) and category in GRANTED
    needed = approvals_required(policy)
    hours = rng.choice(DURATIONS)
    cap = max_duration(policy)
    if cap is not None:
        hours = min(hours, cap)
    target = f"{SCOPE}\\Task-{policy}"
    reason = rng.choice(REASONS).format(n=rng.randrange(10_000, 99_999), task=f"Task-{policy}")
    until = created + PENDING
    rid, requester = uuid.uuid4(), p.user_ids[user]
    decided: datetime | None
    if category == OPEN:
        decided = None
    elif category == EXPIRED:
        decided = until  # as the sweep writes it
    elif auto:
        decided = created
    else:  # voted on within hours; the grants running now were granted within half an hour
        wait = 1800 if category == ACTIVE else 6 * 3600
        decided = created + timedelta(seconds=90 + rng.random() * wait)
    head: Row = (
        rid,
        p.org_id,
        requester,
        p.upns[user],
        p.policy_ids[policy],
        "task",
        target,
        reason,
        hours,
        needed,
        created,
        until,
    )
    payload = _payload(head)
    if not _state.checked:
        if payload != _domain_payload(head):
            raise AssertionError("the signing payload differs from AccessRequest's")
        _state.checked = True
    signature = _state.signer.sign(payload)
    request = (*head, STATUS[category], decided, p.key_id, signature, VERSION[category])
    reviews: list[Row] = []
    grant: Row | None = None
    if category in GRANTED:
        assert decided is not None
        if not auto:
            voters = rng.sample(p.approver_ids, min(needed, len(p.approver_ids)))
            for k, voter in enumerate(voters):
                at = decided - timedelta(minutes=len(voters) - 1 - k)
                reviews.append((rid, voter, "approve", rng.choice(APPROVE_COMMENTS), at))
        end = decided + timedelta(hours=hours)
        revoked_at = revoked_by = comment = None
        if category == REVOKED:
            revoked_at = decided + (end - decided) * (0.1 + 0.8 * rng.random())
            revoked_by = requester if rng.random() < 0.5 else rng.choice(p.approver_ids)
            comment = rng.choice(REVOKE_COMMENTS)
        grant = (
            uuid.uuid4(),
            p.org_id,
            rid,
            requester,
            "task",
            target,
            decided,
            end,
            revoked_at,
            revoked_by,
            comment,
        )
    elif category == DENIED:
        assert decided is not None
        reviews.append(
            (rid, rng.choice(p.approver_ids), "deny", rng.choice(DENY_COMMENTS), decided)
        )
    return _Made(request, reviews, grant, decided or created)


def _encoded(made: Sequence[_Made]) -> Batch:
    assert _state is not None
    enc = _state.encoder
    batch = Batch()
    batch.add(
        REQUESTS, REQUEST_COLUMNS, enc.rows(REQUESTS, REQUEST_COLUMNS, [m.request for m in made])
    )
    reviews = [r for m in made for r in m.reviews]
    batch.add(REVIEWS, REVIEW_COLUMNS, enc.rows(REVIEWS, REVIEW_COLUMNS, reviews))
    grants = [m.grant for m in made if m.grant is not None]
    batch.add(
        AUTHORIZATIONS,
        AUTHORIZATION_COLUMNS,
        enc.rows(AUTHORIZATIONS, AUTHORIZATION_COLUMNS, grants),
    )
    return batch


def history_batch(job: tuple[int, int, bytes]) -> Batch:
    """Decided requests number ``first ..`` of the history, oldest first, with the categories
    given; any (user, task) will do for these. The same job gives the same requests."""
    assert _state is not None
    p = _state.plan
    seed, first, categories = job
    rng = random.Random(seed * 1_000_003 + first)
    users, policies = len(p.user_ids), len(p.policy_ids)
    made = []
    for k, category in enumerate(categories):
        created = p.history_start + p.history_step * (first + k + rng.random())
        policy = rng.randrange(policies)
        if category not in GRANTED:
            policy = _manual(policy)
        made.append(_request(rng, category, rng.randrange(users), policy, created))
    return _encoded(made)


def recent_batch(seed: int, active: int, pending: int) -> Batch:
    """Requests open now, active grants and pending requests, at most one per (user, task) as
    the application allows; oldest first."""
    assert _state is not None
    p = _state.plan
    rng = random.Random(seed * 7_919 + 17)
    users, policies = len(p.user_ids), len(p.policy_ids)
    taken: set[tuple[int, int]] = set()

    def pick(manual: bool) -> tuple[int, int]:
        while True:
            user, policy = rng.randrange(users), rng.randrange(policies)
            if manual:
                policy = _manual(policy)
            if (user, policy) not in taken:
                taken.add((user, policy))
                return user, policy

    made = []
    for _ in range(active):
        user, policy = pick(manual=False)
        while True:  # asked up to 5 h ago, granted, and running for an hour yet at least
            created = p.now - timedelta(seconds=120 + rng.random() * 5 * 3600)
            m = _request(rng, ACTIVE, user, policy, created)
            assert m.grant is not None
            ends = m.grant[AUTHORIZATION_COLUMNS.index("end_at")]
            if m.decided <= p.now - timedelta(seconds=30) and ends > p.now + timedelta(hours=1):
                break
        made.append(m)
    for _ in range(pending):
        user, policy = pick(manual=True)
        created = p.now - timedelta(seconds=60 + rng.random() * (PENDING.total_seconds() - 3600))
        made.append(_request(rng, OPEN, user, policy, created))
    created_at = REQUEST_COLUMNS.index("created_at")
    made.sort(key=lambda m: m.request[created_at])
    return _encoded(made)


# -- writing -----------------------------------------------------------------------------------


class Writer:
    """Encoded rows into one table at a time: COPY on PostgreSQL, executemany on SQLite."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.postgres = conn.dialect.name == "postgresql"
        self.encoder = Encoder(conn.dialect.name)

    def rows(self, table: Table, columns: tuple[str, ...], encoded: list[Row]) -> None:
        if not encoded:
            return
        if not self.conn.in_transaction():
            self.conn.begin()  # so that commit() commits the driver's COPY too
        names = ", ".join(columns)
        if self.postgres:
            raw = self.conn.connection.driver_connection
            assert raw is not None
            with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
                for row in encoded:
                    copy.write_row(row)
            return
        marks = ", ".join("?" * len(columns))
        sql = f"INSERT INTO {table.name} ({names}) VALUES ({marks})"
        for start in range(0, len(encoded), CHUNK):
            self.conn.exec_driver_sql(sql, encoded[start : start + CHUNK])

    def values(self, table: Table, columns: tuple[str, ...], rows: list[Row]) -> None:
        """Rows of Python values, encoded here."""
        self.rows(table, columns, self.encoder.rows(table, columns, rows))

    def batch(self, batch: Batch) -> int:
        for table, columns, rows in batch.tables:
            self.rows(table, columns, rows)
        self.conn.commit()
        return len(batch.tables[0][2]) if batch.tables else 0


def _fast_load(conn: Connection) -> None:
    """Settings for this loading connection only (a crash mid-load leaves a database to drop)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SET synchronous_commit = off"))
        conn.commit()
        return
    raw = conn.connection.driver_connection  # outside any transaction, as PRAGMAs want
    assert raw is not None
    raw.execute("PRAGMA synchronous=OFF")
    raw.execute("PRAGMA cache_size=-262144")  # 256 MiB: random UUID keys stay in memory


# -- the organization, through the services ----------------------------------------------------


@dataclass(frozen=True)
class Org:
    org_id: uuid.UUID
    name: str
    domain: str
    admin_upn: str
    approver_group_id: uuid.UUID
    approver_ids: list[uuid.UUID]


def _organization(ctx: ServiceContext) -> Org:
    suffix = uuid.uuid4().hex[:8]
    domain = suffix + DOMAIN_SUFFIX
    org, admin_user = organizations.create_organization(
        ctx,
        name=ORG_PREFIX + suffix,
        admin_upn=f"admin@{domain}",
        admin_display_name="Bench Administrator",
    )
    admin = Caller(org.id, admin_user.id)
    auth.set_password(ctx, caller=admin, upn=admin_user.upn, password=PASSWORD)
    group = directory.add_group(ctx, caller=admin, name=APPROVER_GROUP).group
    approvers = []
    for i in range(1, APPROVERS + 1):
        upn = f"approver{i}@{domain}"
        approver = directory.add_user(ctx, caller=admin, upn=upn, display_name=f"Approver {i}")
        directory.change_membership(ctx, caller=admin, group=APPROVER_GROUP, upn=upn, add=True)
        approvers.append(approver.id)
    # One approver signs in too (password hashing is slow on purpose, so not all of them).
    auth.set_password(ctx, caller=admin, upn=f"approver1@{domain}", password=PASSWORD)
    organizations.enable_access_control(ctx, caller=admin, admin_group=APPROVER_GROUP)
    return Org(org.id, org.name, domain, admin_user.upn, group.id, approvers)


# -- the catalog, the requesters, the policies -----------------------------------------------

CATALOG_COLUMNS = ("id", "org_id", "kind", "scope", "name", "key", "name_key", "description")
POLICY_COLUMNS = (
    "id",
    "org_id",
    "type",
    "target",
    "target_key",
    "approval_type",
    "approver_group_id",
    "approvals_required",
    "max_duration_hours",
    "require_ticket",
    "created_at",
)
USER_COLUMNS = ("id", "org_id", "upn", "display_name", "email", "kind", "enabled", "created_at")
ASSIGNMENT_COLUMNS = (
    "id",
    "org_id",
    "principal_kind",
    "principal_id",
    "target_kind",
    "target",
    "target_key",
    "created_at",
)


def _catalog_and_policies(
    w: Writer, org: Org, policies: int, at: datetime
) -> tuple[list[uuid.UUID], list[str]]:
    """The tasks, the role holding them all, and one task policy per task."""
    role_id = uuid.uuid4()
    role = (role_id, org.org_id, "role", ROLE.scope, ROLE.name, ROLE.key, ROLE.name.casefold())
    w.values(table(CatalogEntryRow), CATALOG_COLUMNS, [(*role, "Runs every benchmark task")])
    policy_ids: list[uuid.UUID] = []
    tasks: list[str] = []
    for start in range(0, policies, CHUNK):
        entries, links, rules = [], [], []
        for i in range(start, min(start + CHUNK, policies)):
            name = QualifiedName(SCOPE, f"Task-{i}")
            task_id, policy_id = uuid.uuid4(), uuid.uuid4()
            entries.append(
                (
                    task_id,
                    org.org_id,
                    "task",
                    SCOPE,
                    name.name,
                    name.key,
                    name.name.casefold(),
                    f"Benchmark task number {i}",
                )
            )
            links.append((role_id, task_id))
            group = org.approver_group_id if i % 2 == 0 else None  # None: the default group
            rules.append(
                (
                    policy_id,
                    org.org_id,
                    "task",
                    str(name),
                    name.key,
                    "auto" if is_auto(i) else "manual",
                    group,
                    approvals_required(i),
                    max_duration(i),
                    False,
                    at + timedelta(seconds=i),
                )
            )
            policy_ids.append(policy_id)
            tasks.append(str(name))
        w.values(table(CatalogEntryRow), CATALOG_COLUMNS, entries)
        w.values(table(CatalogLinkRow), ("parent_id", "child_id"), links)
        w.values(table(PolicyRow), POLICY_COLUMNS, rules)
        w.conn.commit()
    return policy_ids, tasks


def _users(w: Writer, org: Org, users: int, at: datetime) -> tuple[list[uuid.UUID], list[str]]:
    """The requesters, each holding the benchmark role standing."""
    ids: list[uuid.UUID] = []
    upns: list[str] = []
    for start in range(0, users, CHUNK):
        people, roles = [], []
        for i in range(start, min(start + CHUNK, users)):
            user_id, upn = uuid.uuid4(), f"user{i:05d}@{org.domain}"
            people.append((user_id, org.org_id, upn, f"Bench User {i}", upn, "person", True, at))
            roles.append(
                (uuid.uuid4(), org.org_id, "user", user_id, "role", str(ROLE), ROLE.key, at)
            )
            ids.append(user_id)
            upns.append(upn)
        w.values(table(UserRow), USER_COLUMNS, people)
        w.values(table(AssignmentRow), ASSIGNMENT_COLUMNS, roles)
        w.conn.commit()
    return ids, upns


# -- the requests --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mix:
    """How many requests of each category, from the requests and authorizations asked for."""

    counts: dict[int, int]

    @classmethod
    def of(cls, requests: int, authorizations: int) -> Mix:
        active = max(1, authorizations // 100) if authorizations else 0
        revoked = authorizations // 20
        others = requests - authorizations
        pending = math.ceil(others * 0.10)
        denied = round(others * 0.30)
        cancelled = round(others * 0.15)
        return cls(
            {
                ACTIVE: active,
                REVOKED: revoked,
                COMPLETED: authorizations - active - revoked,
                OPEN: pending,
                DENIED: denied,
                CANCELLED: cancelled,
                EXPIRED: others - pending - denied - cancelled,
            }
        )

    @property
    def historical(self) -> int:
        return sum(n for c, n in self.counts.items() if c not in (ACTIVE, OPEN))


def _history_jobs(mix: Mix, seed: int) -> Iterator[tuple[int, int, bytes]]:
    codes = bytearray()
    for category in (COMPLETED, REVOKED, DENIED, CANCELLED, EXPIRED):
        codes.extend([category] * mix.counts[category])
    random.Random(seed).shuffle(codes)
    for first in range(0, len(codes), CHUNK):
        yield seed, first, bytes(codes[first : first + CHUNK])


def _context() -> multiprocessing.context.BaseContext:
    """Fork where there is fork: workers start at once, and callers need no ``__main__`` guard
    (the loading connection is inherited but never used by a worker)."""
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method)


def _write_history(w: Writer, plan: Plan, mix: Mix, seed: int, log: Callable[[str], None]) -> None:
    jobs = _history_jobs(mix, seed)
    if mix.historical < POOL_FROM:
        for job in jobs:
            w.batch(history_batch(job))
        return
    workers = os.cpu_count() or 2
    done, started, shown = 0, time.perf_counter(), 0
    with ProcessPoolExecutor(
        workers,
        mp_context=_context(),
        initializer=_start,
        initargs=(plan,),
    ) as pool:
        window: list[Future[Batch]] = []
        for job in jobs:
            window.append(pool.submit(history_batch, job))
            while len(window) > 2 * workers or (window and window[0].done()):
                done += w.batch(window.pop(0).result())  # bounded: never the whole history
                if done - shown >= 100_000:
                    shown = done
                    rate = done / (time.perf_counter() - started)
                    log(f"  {done:>10,} requests ({rate:,.0f}/s)")
        for future in window:
            w.batch(future.result())


# -- the whole -----------------------------------------------------------------------------------


def generate(
    url: str,
    *,
    policies: int,
    authorizations: int,
    requests: int,
    users: int = 10_000,
    seed: int = 1,
) -> Generated:
    """Create a benchmark organization in the database at ``url`` (migrated first) and fill it.

    Raises ValueError unless there are at least one policy and one user and
    ``0 <= authorizations <= requests``."""
    return _generate(
        url,
        policies=policies,
        authorizations=authorizations,
        requests=requests,
        users=users,
        seed=seed,
        log=lambda _: None,
    )


def _generate(
    url: str,
    *,
    policies: int,
    authorizations: int,
    requests: int,
    users: int,
    seed: int,
    log: Callable[[str], None],
) -> Generated:
    if policies < 1 or users < 1:
        raise ValueError("at least one policy and one user are needed")
    if not 0 <= authorizations <= requests:
        raise ValueError("each authorization belongs to an approved request: 0 <= a <= r")
    mix = Mix.of(requests, authorizations)
    if mix.counts[ACTIVE] + mix.counts[OPEN] > users * policies // 2:
        raise ValueError("too few users and tasks for that many open requests")
    started = time.perf_counter()
    key = Ed25519PrivateKey.generate()
    signer = Ed25519Signer(key)
    ctx, engine = build_context(
        database_url=url, signer=signer.with_lookup(lambda key_id: lookup_key(engine, key_id))
    )
    try:
        # Registered as a server's key is, so every server verifies the requests' signatures.
        register_key(engine, key_id=signer.key_id, public_key=signer.public_key)
        org = _organization(ctx)
        log(f"organization {org.name} through the services: {time.perf_counter() - started:.1f} s")
        now = ctx.clock.now()
        before = now - timedelta(days=HISTORY_DAYS + 30)
        history_start = now - timedelta(days=HISTORY_DAYS)
        history_end = now - timedelta(days=2)
        with engine.connect() as conn:
            _fast_load(conn)
            w = Writer(conn)
            policy_ids, tasks = _catalog_and_policies(w, org, policies, before)
            user_ids, upns = _users(w, org, users, before)
            log(f"catalog, policies and users: {time.perf_counter() - started:.1f} s")
            plan = Plan(
                dialect=engine.dialect.name,
                org_id=org.org_id,
                now=now,
                key_id=signer.key_id,
                private_key=key.private_bytes_raw(),
                user_ids=user_ids,
                upns=upns,
                approver_ids=org.approver_ids,
                policy_ids=policy_ids,
                history_start=history_start,
                history_step=(history_end - history_start) / max(1, mix.historical),
            )
            _start(plan)
            _write_history(w, plan, mix, seed, log)
            w.batch(recent_batch(seed, mix.counts[ACTIVE], mix.counts[OPEN]))
            log(f"requests, reviews, authorizations: {time.perf_counter() - started:.1f} s")
        _settle_storage(engine)
        log(f"storage settled: {time.perf_counter() - started:.1f} s")
        return Generated(
            url=url,
            org_id=org.org_id,
            org_name=org.name,
            admin_upn=org.admin_upn,
            admin_password=PASSWORD,
            users=upns,
            tasks=tasks,
            role=str(ROLE),
        )
    finally:
        engine.dispose()


def _settle_storage(engine: Engine) -> None:
    """PostgreSQL: what autovacuum would do after such a load, done now (statistics, visibility
    map) and a checkpoint. SQLite: fold the write-ahead log into the database file."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            tables = ", ".join(LOADED)
            conn.execute(text(f"VACUUM (ANALYZE) {tables}"))
            conn.execute(text("CHECKPOINT"))
        return
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def find(url: str, org_name: str | None = None) -> Generated:
    """The benchmark organization already in the database at ``url``: the one named, else the
    newest ``bench-*`` one. Raises LookupError when there is none."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            stmt = select(OrganizationRow.id, OrganizationRow.name)
            if org_name:
                stmt = stmt.where(OrganizationRow.name == org_name)
            else:
                stmt = stmt.where(OrganizationRow.name.like(ORG_PREFIX + "%"))
            found = conn.execute(stmt.order_by(OrganizationRow.created_at.desc())).first()
            if found is None:
                raise LookupError(f"no benchmark organization in {url}")
            org_id, name = found
            upns = conn.scalars(
                select(UserRow.upn)
                .join(AssignmentRow, AssignmentRow.principal_id == UserRow.id)
                .where(UserRow.org_id == org_id, AssignmentRow.target_key == ROLE.key)
                .order_by(UserRow.upn)
            ).all()
            count = conn.scalar(
                select(func.count())
                .select_from(PolicyRow)
                .where(
                    PolicyRow.org_id == org_id,
                    PolicyRow.target_key.startswith("bench\\task-", autoescape=True),
                )
            )
    finally:
        engine.dispose()
    domain = name.removeprefix(ORG_PREFIX) + DOMAIN_SUFFIX
    return Generated(
        url=url,
        org_id=org_id,
        org_name=name,
        admin_upn=f"admin@{domain}",
        admin_password=PASSWORD,
        users=list(upns),
        tasks=[task_name(i) for i in range(count or 0)],
        role=str(ROLE),
    )


def row_counts(url: str, org_id: uuid.UUID) -> dict[str, int]:
    """The organization's rows of each kind, and its requests by stored status."""
    engine = make_engine(url)
    out: dict[str, int] = {}
    try:
        with engine.connect() as conn:
            for label, model in (
                ("policies", PolicyRow),
                ("users (with admin, approvers)", UserRow),
                ("requests", RequestRow),
                ("authorizations", AuthorizationRow),
            ):
                stmt = select(func.count()).select_from(model).where(model.org_id == org_id)
                out[label] = int(conn.scalar(stmt) or 0)
            reviews = (
                select(func.count())
                .select_from(ReviewRow)
                .join(RequestRow, RequestRow.id == ReviewRow.request_id)
                .where(RequestRow.org_id == org_id)
            )
            out["reviews"] = int(conn.scalar(reviews) or 0)
            by_status = (
                select(RequestRow.status, func.count())
                .where(RequestRow.org_id == org_id)
                .group_by(RequestRow.status)
                .order_by(RequestRow.status)
            )
            for status, n in conn.execute(by_status):
                out[f"requests {status}"] = int(n)
    finally:
        engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--db", required=True, help="database URL")
    parser.add_argument("--policies", type=int, required=True)
    parser.add_argument("--authorizations", type=int, required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.perf_counter()
    made = _generate(
        args.db,
        policies=args.policies,
        authorizations=args.authorizations,
        requests=args.requests,
        users=args.users,
        seed=args.seed,
        log=lambda line: print(line, flush=True),
    )
    took = time.perf_counter() - started
    print(f"made organization {made.org_name} ({made.org_id}) in {took:.1f} s")
    print(f"sign in as {made.admin_upn} or approver1@... with the password {PASSWORD}")
    for label, n in row_counts(args.db, made.org_id).items():
        print(f"  {label:<30} {n:>12,}")


if __name__ == "__main__":
    main()
