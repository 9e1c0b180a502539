"""The in-process decision: jitpam beside a hand-written ceiling and the peers, on the same data.

    .venv/bin/python bench/bench_decide.py [--db URL] [--sizes small|largest|full] [--n 1000]
        [--json bench/results/decide.json]

Per size, ``bench/generate.py`` builds an organization (task policies, requesters holding one role
standing, authorizations of which 1% run now). The facts are read back from the database once
and fed to every system:

* jitpam: its decision index (``MemoryDecisionIndex``, warmed for the sampled users, as a
  server's first use does), then index look-up + ``decide()``, like ``from_index`` in
  bench_check.py;
* the ceiling: a minimal decision over plain dicts written here, what no real system beats;
* pycasbin's ``FastEnforcer`` with the model in ``CASBIN_MODEL``;
* cedarpy with the policies in ``CEDAR_POLICIES`` and the grants as entities.

Every system is given what a server keeps to decide at the present: the grants still running or
to come (an ended or revoked grant can never allow again; jitpam's index drops them the same way).
The peers are also shown with more data, to show how their cost grows.

A fixed random sample of (user, task) pairs (allowed: a running grant; denied: an ended grant, no
grant, or a task the user does not hold) is answered by every system; all answers must agree
before anything is timed. A peer too slow for the whole sample is timed on a prefix of it (the
table says how many pairs). Times are per decision: the median over repeated passes of the sample.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import casbin
import cedarpy
from casbin.model import FastModel
from sqlalchemy import select

from jitpam.adapters.sql.db import make_engine
from jitpam.adapters.sql.models import (
    AssignmentRow,
    AuthorizationRow,
    CatalogEntryRow,
    CatalogLinkRow,
    GroupMemberRow,
    GroupRow,
    OrganizationRow,
    PolicyRow,
    SystemAccountRow,
    UserRow,
)
from jitpam.bootstrap import build_context
from jitpam.domain.check import decide
from jitpam.domain.names import QualifiedName
from jitpam.services.ports import DecisionIndex

try:  # run as a script: bench/ is on sys.path
    from generate import Generated, generate
except ImportError:  # imported as bench.bench_decide (the smoke test)
    from bench.generate import Generated, generate  # type: ignore[no-redef]

RESULTS = Path(__file__).resolve().parent / "results" / "decide.json"
Pair = tuple[str, str]  # (user UPN, canonical task name)
Decider = Callable[[str, str], bool]


@dataclass(frozen=True)
class Size:
    policies: int
    grants: int  # authorizations in the database, running or not
    users: int


SIZES = {
    # Two axes: policies at the most grants, grants at the most policies.
    "small": [Size(10, 300, 40), Size(100, 300, 40), Size(100, 30, 40)],
    # The size the ceiling and peer targets are stated for, alone (the flatness figure needs
    # "full").
    "largest": [Size(100_000, 1_000_000, 10_000)],
    "full": [
        Size(100, 1_000_000, 10_000),
        Size(10_000, 1_000_000, 10_000),
        Size(100_000, 1_000_000, 10_000),
        Size(100_000, 1_000, 10_000),
        Size(100_000, 100_000, 10_000),
    ],
}
CEILING_FACTOR = 3.0  # jitpam at most 3x the ceiling (with the most grants)
PEER_FACTOR = 3.0  # each peer at least 3x slower than jitpam
FLAT_FACTOR = 1.2  # jitpam at the most policies within 20% of the fewest


@dataclass(frozen=True)
class Timing:
    ours: float  # seconds for jitpam, the ceiling and jitpam's halves, taking turns
    peer: float  # seconds of timed passes per peer variant (at least one pass)
    budget: float  # seconds a peer variant may spend answering before it is trimmed


TIMING = {
    "small": Timing(0.05, 0.0, 5.0),
    "largest": Timing(3.0, 1.0, 20.0),
    "full": Timing(3.0, 1.0, 20.0),
}

# -- the facts, read back from the database ------------------------------------------------------


class Window(NamedTuple):
    """One task authorization: it allows from ``start`` until ``end`` (the earlier of its end
    and its revocation)."""

    start: datetime
    end: datetime
    id: str


@dataclass
class Facts:
    """One organization's decision facts as plain dicts, as read from the database."""

    roles_of: dict[str, frozenset[str]]  # user UPN -> roles held standing
    task_roles: dict[str, frozenset[str]]  # task -> roles holding it
    covered: frozenset[str]  # tasks a task policy covers
    live: dict[Pair, tuple[Window, ...]]  # grants running at ``now`` or still to come
    granted: frozenset[Pair]  # pairs with any authorization ever (for the sample)
    grant_rows: list[tuple[str, str, Window]]  # every authorization, ended ones too
    control: bool
    exempt: frozenset[str]  # system accounts and disabled users: not sampled


def load_facts(url: str, org_id: uuid.UUID, now: datetime) -> Facts:
    """Read roles, task policies and authorizations of the organization with SQLAlchemy."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            entries = conn.execute(
                select(
                    CatalogEntryRow.id,
                    CatalogEntryRow.kind,
                    CatalogEntryRow.scope,
                    CatalogEntryRow.name,
                    CatalogEntryRow.key,
                ).where(CatalogEntryRow.org_id == org_id)
            ).all()
            links = conn.execute(
                select(CatalogLinkRow.parent_id, CatalogLinkRow.child_id)
                .join(CatalogEntryRow, CatalogEntryRow.id == CatalogLinkRow.parent_id)
                .where(CatalogEntryRow.org_id == org_id)
            ).all()
            users = conn.execute(
                select(UserRow.id, UserRow.upn, UserRow.enabled).where(UserRow.org_id == org_id)
            ).all()
            members = conn.execute(
                select(GroupMemberRow.group_id, GroupMemberRow.user_id)
                .join(GroupRow, GroupRow.id == GroupMemberRow.group_id)
                .where(GroupRow.org_id == org_id)
            ).all()
            assignments = conn.execute(
                select(
                    AssignmentRow.principal_kind,
                    AssignmentRow.principal_id,
                    AssignmentRow.target_kind,
                    AssignmentRow.target_key,
                ).where(AssignmentRow.org_id == org_id)
            ).all()
            policy_keys = conn.scalars(
                select(PolicyRow.target_key).where(
                    PolicyRow.org_id == org_id, PolicyRow.type == "task"
                )
            ).all()
            control = conn.scalar(
                select(OrganizationRow.control_enabled).where(OrganizationRow.id == org_id)
            )
            system = set(
                conn.scalars(
                    select(SystemAccountRow.user_id).where(SystemAccountRow.org_id == org_id)
                )
            )
            grants = conn.execute(
                select(
                    AuthorizationRow.id,
                    AuthorizationRow.user_id,
                    AuthorizationRow.type,
                    AuthorizationRow.target,
                    AuthorizationRow.start_at,
                    AuthorizationRow.end_at,
                    AuthorizationRow.revoked_at,
                ).where(AuthorizationRow.org_id == org_id)
            ).all()
    finally:
        engine.dispose()

    name_of = {e.id: str(QualifiedName(e.scope, e.name)) for e in entries}
    kind_of = {e.id: e.kind for e in entries}
    by_key = {(e.kind, e.key): name_of[e.id] for e in entries}
    task_roles: dict[str, set[str]] = {}
    group_roles: dict[str, set[str]] = {}
    for parent, child in links:
        if kind_of[parent] == "role" and kind_of.get(child) == "task":
            task_roles.setdefault(name_of[child], set()).add(name_of[parent])
        elif kind_of[parent] == "role_group" and kind_of.get(child) == "role":
            group_roles.setdefault(name_of[parent], set()).add(name_of[child])
    groups_of: dict[uuid.UUID, set[uuid.UUID]] = {}
    for group_id, user_id in members:
        groups_of.setdefault(user_id, set()).add(group_id)
    held: dict[tuple[str, uuid.UUID], set[str]] = {}  # (principal kind, id) -> roles
    for kind, principal, target_kind, key in assignments:
        name = by_key.get((target_kind, key))
        if name is None:
            continue
        roles = {name} if target_kind == "role" else group_roles.get(name, set())
        held.setdefault((kind, principal), set()).update(roles)
    upn_of = {u.id: u.upn for u in users}
    roles_of: dict[str, frozenset[str]] = {}
    for u in users:
        roles = set(held.get(("user", u.id), ()))
        for group_id in groups_of.get(u.id, ()):
            roles |= held.get(("group", group_id), set())
        roles_of[u.upn] = frozenset(roles)

    live: dict[Pair, list[Window]] = {}
    granted: set[Pair] = set()
    rows: list[tuple[str, str, Window]] = []
    for grant_id, user_id, kind, target, start, end, revoked in grants:
        if kind != "task":
            raise SystemExit(
                f"authorization {grant_id} grants a {kind}: this benchmark compares task "
                "authorizations only (the ceiling and the peer models have no role grants)"
            )
        window = Window(start, min(end, revoked) if revoked else end, str(grant_id))
        pair = (upn_of[user_id], target)
        granted.add(pair)
        rows.append((pair[0], pair[1], window))
        if window.end > now and window.start < window.end:
            live.setdefault(pair, []).append(window)
    return Facts(
        roles_of=roles_of,
        task_roles={t: frozenset(r) for t, r in task_roles.items()},
        covered=frozenset(by_key[("task", k)] for k in policy_keys if ("task", k) in by_key),
        live={p: tuple(w) for p, w in live.items()},
        granted=frozenset(granted),
        grant_rows=rows,
        control=bool(control),
        exempt=frozenset(upn_of[i] for i in system) | {u.upn for u in users if not u.enabled},
    )


# -- the sample ------------------------------------------------------------------------------------


def make_sample(
    facts: Facts, gen: Generated, now: datetime, n: int, seed: int
) -> tuple[list[Pair], dict[str, int]]:
    """A fixed random mix of pairs, shuffled so that any prefix is a mix too.

    About a third allowed (a running grant), a third with only ended or revoked grants, the rest
    with no grant at all, and one in twenty a task the user does not hold (the administrator).
    """
    rng = random.Random(seed)
    users = [u for u in gen.users if u not in facts.exempt]
    running = sorted(p for p, ws in facts.live.items() if any(w.start <= now for w in ws))
    ended = sorted(p for p in facts.granted if p not in facts.live)

    def draw(pool: Sequence[Pair], k: int) -> list[Pair]:
        if not pool:
            return []
        return rng.sample(pool, k) if len(pool) >= k else rng.choices(pool, k=k)

    not_held = max(1, n // 20)
    allowed = draw(running, n // 3)
    lapsed = draw(ended, n // 3)
    none: list[Pair] = []
    while len(allowed) + len(lapsed) + len(none) + not_held < n:
        pair = (rng.choice(users), rng.choice(gen.tasks))
        if pair not in facts.granted:
            none.append(pair)
    strangers = [(gen.admin_upn, rng.choice(gen.tasks)) for _ in range(not_held)]
    sample = allowed + lapsed + none + strangers
    rng.shuffle(sample)
    mix = {
        "running grant": len(allowed),
        "ended grant": len(lapsed),
        "no grant": len(none),
        "not held": len(strangers),
    }
    return sample, mix


# -- the ceiling -----------------------------------------------------------------------------------


def ceiling(facts: Facts, now: datetime) -> Decider:
    """The least work the decision needs: two set look-ups, a dict look-up, a time comparison.

    Access control is on and no sampled user is a system account (both checked by the caller).
    """
    roles_of, task_roles = facts.roles_of, facts.task_roles
    covered, live = facts.covered, facts.live
    none: frozenset[str] = frozenset()

    def allowed(user: str, task: str) -> bool:
        if roles_of.get(user, none).isdisjoint(task_roles.get(task, none)):
            return False
        if task not in covered:
            return True
        for start, end, _ in live.get((user, task), ()):  # noqa: SIM110 (no generator per call)
            if start <= now < end:
                return True
        return False

    return allowed


# -- casbin ----------------------------------------------------------------------------------------

# RBAC, one enforcer per organization (as jitpam keeps one index entry per organization), one
# row per grant. ``g`` says which roles a user holds standing. A ``p`` row says who may run a
# task, through which role, and when: for a task a policy covers, one row per grant (the user,
# and a role holding the task: the user must still hold it) with the grant's window; for a task
# no policy covers, one row per role holding it, for anyone ("*") and for all time. Times are
# ISO-8601 UTC text of one fixed width, so text order is time order; the request carries the
# present. FastEnforcer indexes the rows by the request fields matched exactly (organization and
# task), so the matcher runs over that task's rows only.
# Not chosen: casbin's RBAC with domains (``g = _, _, _``), the textbook multi-tenant model:
# pycasbin's domain role manager gives each domain a default pattern-matching function, which
# makes building a domain's roles on its first check quadratic in its users (minutes for 10,000
# users). Nor role -> task links in ``g``: has_link then walks every task of the role per check.
CASBIN_MODEL = """
[request_definition]
r = sub, dom, obj, now

[policy_definition]
p = sub, dom, obj, role, start, end

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.dom == p.dom && r.obj == p.obj && (p.sub == "*" || p.sub == r.sub) \
&& p.start <= r.now && r.now < p.end && g(r.sub, p.role)
"""
CASBIN_KEYS = [1, 2]  # p.dom, p.obj
EVER = ("0000-01-01T00:00:00.000000Z", "9999-12-31T23:59:59.999999Z")


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def casbin_enforcer(
    facts: Facts, org: str, grants: Sequence[tuple[str, str, Window]]
) -> casbin.FastEnforcer:
    """A FastEnforcer holding the roles, the uncovered tasks and ``grants`` as policy rows."""
    model = FastModel(CASBIN_KEYS)
    model.load_model_from_text(CASBIN_MODEL)
    enforcer = casbin.FastEnforcer(model, cache_key_order=CASBIN_KEYS)
    enforcer.add_named_grouping_policies(
        "g", [[user, role] for user, roles in facts.roles_of.items() for role in roles]
    )
    rows: set[tuple[str, ...]] = set()  # casbin refuses a batch holding a row twice
    for task, roles in facts.task_roles.items():
        if task not in facts.covered:
            rows.update(("*", org, task, role, *EVER) for role in roles)
    for user, task, w in grants:
        for role in facts.task_roles.get(task, ()):
            rows.add((user, org, task, role, iso(w.start), iso(w.end)))
    if rows:
        enforcer.add_policies([list(r) for r in sorted(rows)])
    return enforcer


def casbin_decider(enforcer: casbin.FastEnforcer, org: str, now: datetime) -> Decider:
    at = iso(now)

    def allowed(user: str, task: str) -> bool:
        return bool(enforcer.enforce(user, org, task, at))

    return allowed


# -- cedar -----------------------------------------------------------------------------------------

# A user is a member of the roles it holds standing; a task lists the roles holding it and says
# whether a task policy covers it. Grants are entities with a start and an end (the earlier of
# its end and its revocation), in microseconds since the epoch (Cedar's Long; its datetime type
# keeps milliseconds only). Cedar has no joins and no quantifiers, so the user reaches its grant
# for a task through an entity tag named after the task; a user holds at most one grant still
# running or to come per task (the application allows one open request per user and task), which
# the loader checks. The request carries the present in its context.
CEDAR_POLICIES = """
permit (principal, action == Action::"run", resource)
when { principal in resource.roles && !resource.covered };

permit (principal, action == Action::"run", resource)
when {
  principal in resource.roles &&
  resource.covered &&
  principal.hasTag(resource.name) &&
  principal.getTag(resource.name).start <= context.now &&
  context.now < principal.getTag(resource.name).end
};
"""
CEDAR_ACTION = {"type": "Action", "id": "run"}


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(at: datetime) -> int:
    return (at - EPOCH) // timedelta(microseconds=1)


def _uid(kind: str, name: str) -> dict[str, str]:
    return {"type": kind, "id": name}


class CedarEntities:
    """The facts as Cedar entities; the open grants by user and task, one each (checked)."""

    def __init__(self, facts: Facts) -> None:
        self.facts = facts
        self.open: dict[str, dict[str, Window]] = {}
        for (user, task), windows in facts.live.items():
            if len(windows) > 1:
                raise SystemExit(
                    f"{user} holds {len(windows)} open grants for {task}: the Cedar model "
                    "reaches one per task"
                )
            self.open.setdefault(user, {})[task] = windows[0]

    def user(self, user: str) -> list[dict[str, Any]]:
        """One user as a server would slice it: the user, its roles, its open grants."""
        grants = self.open.get(user, {})
        roles = sorted(self.facts.roles_of.get(user, ()))
        return [
            {
                "uid": _uid("User", user),
                "attrs": {},
                "parents": [_uid("Role", r) for r in roles],
                "tags": {t: {"__entity": _uid("Grant", w.id)} for t, w in grants.items()},
            },
            *({"uid": _uid("Role", r), "attrs": {}, "parents": []} for r in roles),
            *(
                {
                    "uid": _uid("Grant", w.id),
                    "attrs": {"start": micros(w.start), "end": micros(w.end)},
                    "parents": [],
                }
                for w in grants.values()
            ),
        ]

    def task(self, task: str) -> dict[str, Any]:
        roles = sorted(self.facts.task_roles.get(task, ()))
        return {
            "uid": _uid("Task", task),
            "attrs": {
                "name": task,
                "covered": task in self.facts.covered,
                "roles": [{"__entity": _uid("Role", r)} for r in roles],
            },
            "parents": [],
        }

    def organization(self) -> str:
        """Every user, role, open grant and task of the organization as one JSON list."""
        entities: dict[tuple[str, str], dict[str, Any]] = {}
        for user in self.facts.roles_of:
            for entity in self.user(user):
                entities[entity["uid"]["type"], entity["uid"]["id"]] = entity
        for task in self.facts.task_roles:
            entities["Task", task] = self.task(task)
        return json.dumps(list(entities.values()))


HANDLES = hasattr(cedarpy, "PolicySet")  # pre-parsed handles: cedarpy 4.8 on


def cedar_policies() -> Any:
    """The policies, parsed once where this cedarpy can keep them parsed."""
    return cedarpy.PolicySet.from_str(CEDAR_POLICIES) if HANDLES else CEDAR_POLICIES


def cedar_request(user: str, task: str, now: int) -> dict[str, Any]:
    return {
        "principal": _uid("User", user),
        "action": CEDAR_ACTION,
        "resource": _uid("Task", task),
        "context": {"now": now},
    }


def cedar_sliced(cedar: CedarEntities, sample: Sequence[Pair], now: datetime) -> Decider:
    """Per call: the request's user slice and its task as one JSON text (each part serialized
    once and kept, as a server would cache them), with the policies parsed once."""
    policies = cedar_policies()
    users = {u: json.dumps(cedar.user(u))[1:-1] for u, _ in sample}
    tasks = {t: json.dumps(cedar.task(t)) for _, t in sample}
    at = micros(now)

    def allowed(user: str, task: str) -> bool:
        entities = f"[{users[user]},{tasks[task]}]"
        request = cedar_request(user, task, at)
        return bool(cedarpy.is_authorized(request, policies, entities).allowed)

    return allowed


def cedar_whole(text: str, now: datetime, *, parsed: bool) -> Decider:
    """Per call: the whole organization, either as JSON text (parsed on every call) or as an
    ``Entities`` handle parsed once."""
    policies = cedar_policies()
    entities: Any = cedarpy.Entities.from_json_str(text) if parsed else text
    at = micros(now)

    def allowed(user: str, task: str) -> bool:
        request = cedar_request(user, task, at)
        return bool(cedarpy.is_authorized(request, policies, entities).allowed)

    return allowed


# -- measuring -------------------------------------------------------------------------------------


def answers(decider: Decider, pairs: Sequence[Pair], budget: float | None) -> list[bool]:
    """The answers for ``pairs``, or for as many of them as fit in ``budget`` seconds (at least
    10): the prefix the system is then timed on."""
    out: list[bool] = []
    started = time.perf_counter()
    for user, task in pairs:
        out.append(decider(user, task))
        if budget is not None and len(out) >= 10 and time.perf_counter() - started > budget:
            break
    return out


def per_decision(
    runs: dict[str, tuple[Decider, Sequence[Pair]]], seconds: float = 1.0
) -> dict[str, float]:
    """Seconds per decision of each decider on its pairs: the median over passes, the deciders'
    passes taking turns (so that a busy machine slows them alike), as many rounds as fit in
    ``seconds`` (at least one, at most 25)."""
    passes: dict[str, list[float]] = {name: [] for name in runs}
    spent, rounds = 0.0, 0
    while rounds == 0 or (spent < seconds and rounds < 25):
        for name, (decider, pairs) in runs.items():
            started = time.perf_counter()
            for user, task in pairs:
                decider(user, task)
            took = time.perf_counter() - started
            passes[name].append(took / len(pairs))
            spent += took
        rounds += 1
    return {name: statistics.median(times) for name, times in passes.items()}


@dataclass
class Measured:
    system: str
    passed: str  # what the system is given, per call
    seconds: float  # per decision
    pairs: int  # how many sampled pairs it answered and was timed on
    setup: float  # seconds to build it from the facts (jitpam: to warm its index)


@dataclass
class SizeResult:
    size: Size
    generate_s: float
    load_s: float
    open_grants: int
    mix: dict[str, int]
    allowed: int = 0
    agree: dict[str, int] = field(default_factory=dict)  # system -> pairs agreeing with jitpam
    measured: list[Measured] = field(default_factory=list)
    jitpam_parts_us: dict[str, float] = field(default_factory=dict)


class _NoDatabase:
    """The unit of work for a warmed index once its own is closed: any use fails loudly."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the warmed index read the database ({name})")


NO_DATABASE: Any = _NoDatabase()


def jitpam_decider(index: DecisionIndex, uow: Any, org_id: uuid.UUID, now: datetime) -> Decider:
    """Index look-up + decide(), as a check does once it holds the audit chain's head."""

    def allowed(user: str, task: str) -> bool:
        _, found = index.facts(uow, org_id, user, task, now)
        return decide(found, now).allowed

    return allowed


def run_size(
    size: Size, url: str, n: int, timing: Timing, seed: int
) -> tuple[SizeResult, Decider, list[Pair]]:
    """Generate, load, answer, check, time: one size. Returns also jitpam's warmed decider
    (needing no database any more) and its sample, to time it again beside other sizes."""
    print(f"\n== {size.policies:,} policies, {size.grants:,} grants, {size.users:,} users")
    started = time.perf_counter()
    gen = generate(
        url,
        policies=size.policies,
        authorizations=size.grants,
        requests=size.grants,
        users=size.users,
        seed=seed,
    )
    generated = time.perf_counter() - started
    now = datetime.now(UTC)  # the one present every system decides at
    started = time.perf_counter()
    facts = load_facts(url, gen.org_id, now)
    loaded = time.perf_counter() - started
    assert facts.control, "the benchmark organization must have access control on"
    sample, mix = make_sample(facts, gen, now, n, seed)
    grants = sum(len(w) for w in facts.live.values())
    print(f"generated in {generated:.1f} s, facts read in {loaded:.1f} s; {grants:,} open grants")
    print("sample: " + ", ".join(f"{k} {v}" for k, v in mix.items()))
    result = SizeResult(size, generated, loaded, grants, mix)
    expected: dict[Pair, bool] = {}

    def verify(system: str, decider: Decider, limit: float | None) -> list[Pair]:
        """The pairs ``system`` answered, each as jitpam did; else print the mismatches, fail."""
        got = answers(decider, sample, limit)
        pairs = sample[: len(got)]
        wrong = [(p, expected[p], a) for p, a in zip(pairs, got, strict=True) if expected[p] != a]
        for (user, task), want, have in wrong[:10]:
            print(f"MISMATCH {system}: {user} / {task}: jitpam says {want}, {system} says {have}")
        assert not wrong, f"{system} disagrees with jitpam on {len(wrong)} of {len(pairs)} pairs"
        result.agree[system] = len(pairs)
        return pairs

    ctx, engine = build_context(database_url=url)
    index = ctx.index
    assert index is not None
    try:
        with ctx.uow() as uow:
            head, _ = uow.audit.head(gen.org_id)
            index.catch_up(uow, gen.org_id, head)
            jitpam = jitpam_decider(index, uow, gen.org_id, now)
            started = time.perf_counter()
            truth = answers(jitpam, sample, None)  # first use: loads the sampled users
            warm = time.perf_counter() - started
            looked_up = {p: index.facts(uow, gen.org_id, *p, now)[1] for p in sample}
    finally:
        engine.dispose()
    jitpam = jitpam_decider(index, NO_DATABASE, gen.org_id, now)
    expected.update(zip(sample, truth, strict=True))
    result.agree["jitpam"] = len(sample)
    result.allowed = sum(truth)
    denied = len(sample) - result.allowed
    print(f"jitpam: {result.allowed} allowed, {denied} denied (warmed in {warm:.2f} s)")
    assert result.allowed, "the sample must hold allowed pairs"
    assert denied, "the sample must hold denied pairs"
    dicts = ceiling(facts, now)
    verify("ceiling", dicts, None)

    # jitpam's two halves, for whoever wants to make it faster.
    def look_up(user: str, task: str) -> bool:
        return index.facts(NO_DATABASE, gen.org_id, user, task, now)[0] is not None

    def decide_only(user: str, task: str) -> bool:
        return decide(looked_up[user, task], now).allowed

    took = per_decision(
        {
            "jitpam": (jitpam, sample),
            "ceiling": (dicts, sample),
            "facts": (look_up, sample),
            "decide": (decide_only, sample),
        },
        seconds=timing.ours,
    )
    result.measured.append(
        Measured("jitpam", "index look-up + decide()", took["jitpam"], len(sample), warm)
    )
    result.measured.append(
        Measured("ceiling", "plain dicts of the open grants", took["ceiling"], len(sample), 0.0)
    )
    result.jitpam_parts_us = {
        "index.facts()": took["facts"] * 1e6,
        "decide() (+ a dict look-up)": took["decide"] * 1e6,
    }
    print(
        f"{'jitpam':<20} {took['jitpam'] * 1e6:>12.2f} µs  (index.facts() "
        f"{took['facts'] * 1e6:.2f} µs, decide() {took['decide'] * 1e6:.2f} µs)"
    )
    print(f"{'ceiling':<20} {took['ceiling'] * 1e6:>12.2f} µs")

    def peer(system: str, passed: str, build: Callable[[], Decider]) -> None:
        started = time.perf_counter()
        decider = build()
        decider(*sample[0])  # whatever is built on first use is setup too
        setup = time.perf_counter() - started
        pairs = verify(system, decider, timing.budget)
        seconds = per_decision({system: (decider, pairs)}, seconds=timing.peer)[system]
        result.measured.append(Measured(system, passed, seconds, len(pairs), setup))
        trimmed = "" if len(pairs) == len(sample) else f" (timed on {len(pairs)} pairs)"
        print(f"{system:<20} {seconds * 1e6:>12.2f} µs  setup {setup:6.1f} s{trimmed}")
        del decider
        gc.collect()  # the next one starts with this one's rows gone

    org = str(gen.org_id)
    open_rows = [(u, t, w) for (u, t), ws in facts.live.items() for w in ws]
    peer(
        "casbin",
        "FastEnforcer, a row per open grant",
        lambda: casbin_decider(casbin_enforcer(facts, org, open_rows), org, now),
    )
    peer(
        "casbin (all rows)",
        "FastEnforcer, a row per grant ever (no sweep)",
        lambda: casbin_decider(casbin_enforcer(facts, org, facts.grant_rows), org, now),
    )
    cedar = CedarEntities(facts)
    peer(
        "cedar",
        "JSON: the user, its roles and open grants, the task",
        lambda: cedar_sliced(cedar, sample, now),
    )
    whole = cedar.organization()
    if HANDLES:
        peer(
            "cedar (org handle)",
            "Entities handle of the whole organization, parsed once",
            lambda: cedar_whole(whole, now, parsed=True),
        )
    else:
        print("cedar (org handle): skipped, this cedarpy has no Entities handles")
    peer(
        "cedar (org JSON)",
        "JSON: the whole organization, every call",
        lambda: cedar_whole(whole, now, parsed=False),
    )
    return result, jitpam, sample


# -- the table -------------------------------------------------------------------------------------


def _row(
    figure: str, ours: float, other: str, theirs: float, ratio: float, target: str, met: bool | None
) -> dict[str, Any]:
    return {
        "figure": figure,
        "jitpam_us": round(ours * 1e6, 3),
        "other": other,
        "other_us": round(theirs * 1e6, 3),
        "ratio": round(ratio, 2),
        "target": target,
        "met": met,
    }


def table(results: list[SizeResult], flat: dict[int, float]) -> list[dict[str, Any]]:
    """One row per comparison; ``ratio`` is what ``target`` bounds. ``flat``: jitpam's seconds
    per decision by policies, at the most grants, measured taking turns."""
    rows: list[dict[str, Any]] = []
    most_grants = max(r.size.grants for r in results)
    for r in results:
        by = {m.system: m for m in r.measured}
        ours = by["jitpam"].seconds
        figure = f"{r.size.policies:,} policies, {r.size.grants:,} grants"
        ceil = by["ceiling"].seconds
        targeted = r.size.grants == most_grants
        rows.append(
            _row(
                figure,
                ours,
                "dict ceiling",
                ceil,
                ours / ceil,
                f"jitpam/ceiling <= {CEILING_FACTOR:g}" if targeted else "(info)",
                ours / ceil <= CEILING_FACTOR if targeted else None,
            )
        )
        for m in r.measured:
            if m.system in ("jitpam", "ceiling"):
                continue
            main_peer = m.system in ("casbin", "cedar")
            label = m.system + (f" [{m.pairs} pairs]" if m.pairs < by["jitpam"].pairs else "")
            rows.append(
                _row(
                    figure,
                    ours,
                    label,
                    m.seconds,
                    m.seconds / ours,
                    f"{m.system}/jitpam >= {PEER_FACTOR:g}" if main_peer else "(info)",
                    m.seconds / ours >= PEER_FACTOR if main_peer else None,
                )
            )
    if len(flat) >= 2:
        few, many = min(flat), max(flat)
        rows.append(
            _row(
                f"{many:,} vs {few:,} policies, {most_grants:,} grants",
                flat[many],
                f"jitpam at {few:,} policies",
                flat[few],
                flat[many] / flat[few],
                f"many/few <= {FLAT_FACTOR:g}",
                flat[many] / flat[few] <= FLAT_FACTOR,
            )
        )
    return rows


def legend(results: list[SizeResult]) -> dict[str, str]:
    """What each system is given per call."""
    return {m.system: m.passed for r in results for m in r.measured}


def print_table(rows: list[dict[str, Any]], given: dict[str, str]) -> None:
    head = f"{'figure':<42} {'jitpam µs':>10}  {'ceiling or peer':<32} {'µs':>13} {'ratio':>10}"
    print("\n" + head + f"  {'target':<26} met")
    for row in rows:
        met = {True: "yes", False: "NO", None: "-"}[row["met"]]
        print(
            f"{row['figure']:<42} {row['jitpam_us']:>10.2f}  {row['other']:<32} "
            f"{row['other_us']:>13.2f} {row['ratio']:>10.2f}  {row['target']:<26} {met}"
        )
    print("\nper call, each system is given:")
    for system, passed in given.items():
        print(f"  {system:<20} {passed}")


# -- the whole -------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="database URL (default: a fresh SQLite file per size)")
    parser.add_argument("--sizes", choices=sorted(SIZES), default="full")
    parser.add_argument("--n", type=int, default=1000, help="sampled (user, task) pairs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"default: {RESULTS}")
    args = parser.parse_args(argv)
    timing = TIMING[args.sizes]
    results: list[SizeResult] = []
    jitpam: dict[int, tuple[Decider, Sequence[Pair]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for i, size in enumerate(SIZES[args.sizes]):
            url = args.db or f"sqlite:///{scratch}/decide-{i}.db"
            result, decider, sample = run_size(size, url, args.n, timing, args.seed)
            results.append(result)
            jitpam[i] = (decider, sample)
    # Sizes measured minutes apart on a shared machine compare badly: the sizes with the most
    # grants are timed again, taking turns, for the policies figure.
    most = max(r.size.grants for r in results)
    again = per_decision(
        {str(r.size.policies): jitpam[i] for i, r in enumerate(results) if r.size.grants == most},
        seconds=timing.ours,
    )
    print(
        "\njitpam again, the sizes taking turns: "
        + ", ".join(f"{int(p):,} policies {t * 1e6:.2f} µs" for p, t in again.items())
    )
    rows = table(results, {int(p): t for p, t in again.items()})
    given = legend(results)
    print_table(rows, given)
    trimmed = [
        f"{m.system} at {r.size.policies:,}/{r.size.grants:,}: {m.pairs} of {args.n} pairs"
        for r in results
        for m in r.measured
        if m.pairs < args.n
    ]
    if trimmed:
        print("\npeers timed on a prefix of the sample (time budget): " + "; ".join(trimmed))
    report = {
        "benchmark": "in-process decision",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "database": (args.db or "sqlite").split("://")[0].split("+")[0],
        "sizes_set": args.sizes,
        "n": args.n,
        "versions": {"casbin": _version("casbin"), "cedarpy": _version("cedarpy")},
        "sizes": [{**asdict(r), "measured": [asdict(m) for m in r.measured]} for r in results],
        "rows": rows,
        "given_per_call": given,
        "jitpam_again_us": {p: t * 1e6 for p, t in again.items()},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nwritten to {args.json}")
    return report


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    main()
