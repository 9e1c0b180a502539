"""How long one audited check takes, with 10 and with 100,000 policies, beside its ceilings.

    .venv/bin/python bench/bench_check.py [--db URL] [--n 2000]

The ceilings, measured in the same run on the same database: a bare transaction that inserts one
row and commits (an audited check cannot be cheaper than its audit write), and the pure
``decide()`` on prepared facts (what the in-memory index of the enforcement issue will cost).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from org import bench_organization  # bench/org.py, beside this script
from sqlalchemy import insert, text

from jitpam.adapters.sql.models import CatalogEntryRow, PolicyRow
from jitpam.bootstrap import build_context
from jitpam.domain.check import CheckFacts, decide
from jitpam.services import access, directory, organizations
from jitpam.services.context import Caller


def timed(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def report(label: str, samples: list[float]) -> None:
    samples = sorted(samples)
    p50 = samples[len(samples) // 2] * 1e3
    p99 = samples[int(len(samples) * 0.99) - 1] * 1e3
    rate = len(samples) / sum(samples)
    print(f"{label:<52} p50 {p50:8.3f} ms   p99 {p99:8.3f} ms   {rate:10.0f} /s")


def add_policies(engine: object, org_id: uuid.UUID, count: int, at: datetime) -> None:
    tasks = [
        {
            "id": uuid.uuid4(),
            "org_id": org_id,
            "kind": "task",
            "scope": "Bench",
            "name": f"Task-{i}",
            "key": f"bench\\task-{i}",
            "name_key": f"task-{i}",
            "description": "",
        }
        for i in range(count)
    ]
    policies = [
        {
            "id": uuid.uuid4(),
            "org_id": org_id,
            "type": "task",
            "target": f"Bench\\Task-{i}",
            "target_key": f"bench\\task-{i}",
            "approval_type": "manual",
            "approver_group_id": None,
            "approvals_required": 1,
            "max_duration_hours": None,
            "require_ticket": False,
            "created_at": at,
        }
        for i in range(count)
    ]
    with engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(insert(CatalogEntryRow), tasks)
        conn.execute(insert(PolicyRow), policies)
    if engine.dialect.name == "postgresql":  # type: ignore[attr-defined]
        # What autovacuum would do after such a load, done now rather than during the measurement.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:  # type: ignore[attr-defined]
            conn.execute(text("ANALYZE"))
            conn.execute(text("CHECKPOINT"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--policies", type=int, default=100_000)
    args = parser.parse_args()
    url = args.db or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    ctx, engine = build_context(database_url=url)
    made = bench_organization(ctx)
    org, admin = made.org, made.admin
    user = directory.add_user(
        ctx, caller=admin, upn=f"helpdesk@{made.domain}", display_name="Helpdesk"
    )
    directory.change_assignment(ctx, caller=admin, role="Move Mailboxes", user=user.upn, add=True)
    directory.add_group(ctx, caller=admin, name="Approvers")
    organizations.enable_access_control(ctx, caller=admin, admin_group="Approvers")
    me = Caller(org.id, user.id)

    def check() -> object:
        return access.check_access(ctx, caller=me, user=user.upn, task="Exchange\\New-MoveRequest")

    print(f"database: {engine.dialect.name}, {args.n} calls each")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS bench_ceiling (id INTEGER, body TEXT)"))

    def raw_commit() -> None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO bench_ceiling VALUES (1, :b)"), {"b": "x" * 400})

    db_ctx = replace(ctx, index=None)

    def check_from_database() -> object:
        return access.check_access(
            db_ctx, caller=me, user=user.upn, task="Exchange\\New-MoveRequest"
        )

    report("ceiling: bare insert + commit", timed(raw_commit, args.n))
    report("check_access (audited, index), 0 other policies", timed(check, args.n))
    report("check_access (audited, database reads)", timed(check_from_database, args.n))
    add_policies(engine, org.id, args.policies, datetime.now(UTC))
    report(f"check_access (audited, index), {args.policies:,} policies", timed(check, args.n))
    assert ctx.index is not None
    index = ctx.index
    with ctx.uow() as uow:
        head, _ = uow.audit.head(org.id)
        index.catch_up(uow, org.id, head)
        moment = datetime.now(UTC)

        def from_index() -> object:
            _, found = index.facts(uow, org.id, user.upn, "Exchange\\New-MoveRequest", moment)
            return decide(found, moment)

        in_memory = timed(from_index, args.n * 10)
    report("in process: index look-up + decide()", in_memory)
    print(f"index look-up + decide() mean {statistics.fmean(in_memory) * 1e6:.2f} µs")
    facts = CheckFacts(
        task="Exchange\\New-MoveRequest",
        user_exists=True,
        user_enabled=True,
        task_exists=True,
        task_roles=frozenset({"Exchange\\Move Mailboxes"}),
        standing_roles=frozenset({"Exchange\\Move Mailboxes"}),
        control_enabled=True,
        task_policy=True,
    )
    now = datetime.now(UTC)
    pure = timed(lambda: decide(facts, now), args.n * 10)
    report("ceiling: pure decide() on prepared facts", pure)
    print(f"decide() mean {statistics.fmean(pure) * 1e6:.2f} µs")
    engine.dispose()


if __name__ == "__main__":
    main()
