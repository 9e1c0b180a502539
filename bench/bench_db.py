"""jitpam's database layer against the raw driver doing the same writes, in the same run.

    .venv/bin/python bench/bench_db.py [--db URL] [--n 2000] [--json F]

The writes of a new request: the request row, its audit record chained after the organization's
head, the head moved on, one commit. jitpam does them through its unit of work and repositories
(SQLAlchemy); the ceiling does them with the bare driver (sqlite3 or psycopg) and hand-written
SQL, with the same connection settings, the same values and the same chain hashing.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from org import bench_organization  # bench/org.py, beside this script
from sqlalchemy.engine import make_url
from table import row  # bench/table.py, beside this script

from jitpam.bootstrap import build_context
from jitpam.domain.audit import Actor, AuditEvent, canonical_json, chain
from jitpam.domain.names import QualifiedName
from jitpam.domain.operations import AuditOperation
from jitpam.domain.policy import PolicyType
from jitpam.domain.requests import AccessRequest, RequestStatus
from jitpam.services import audit_log, directory

TARGET = QualifiedName("Exchange", "New-MoveRequest")


def timed_in_turn(
    first: Callable[[], object], second: Callable[[], object], n: int
) -> tuple[list[float], list[float]]:
    """Each ``n`` times, taking turns: whatever else the machine does weighs on both alike."""
    out: tuple[list[float], list[float]] = ([], [])
    for _ in range(n):
        for fn, samples in ((first, out[0]), (second, out[1])):
            t = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t)
    return sorted(out[0]), sorted(out[1])


def figures(samples: list[float]) -> dict[str, float]:
    return {
        "per_second": round(len(samples) / sum(samples), 1),
        "p50_ms": round(samples[len(samples) // 2] * 1e3, 4),
        "p99_ms": round(samples[int(len(samples) * 0.99) - 1] * 1e3, 4),
    }


def new_request(org_id: uuid.UUID, user_id: uuid.UUID, upn: str) -> AccessRequest:
    now = datetime.now(UTC)
    return AccessRequest(
        id=uuid.uuid4(),
        org_id=org_id,
        requester_id=user_id,
        requester_upn=upn,
        policy_id=uuid.uuid4(),
        type=PolicyType.TASK,
        target=TARGET,
        reason="benchmark",
        duration_hours=4,
        approvals_required=1,
        created_at=now,
        pending_until=now + timedelta(hours=24),
        status=RequestStatus.PENDING,
        key_id="bench",
        signature="0" * 88,
    )


def audit_event(r: AccessRequest) -> AuditEvent:
    return AuditEvent(
        org_id=r.org_id,
        at=r.created_at,
        actor=Actor(str(r.requester_id), r.requester_upn),
        operation=AuditOperation.NEW_REQUEST,
        target=str(r.target),
        details={"request_id": str(r.id), "reason": r.reason, "duration_hours": 4},
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    url = args.db or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    ctx, engine = build_context(database_url=url)
    made = bench_organization(ctx)
    org, admin = made.org, made.admin
    user = directory.add_user(ctx, caller=admin, upn=f"u@{made.domain}", display_name="U")
    sqlite = engine.dialect.name == "sqlite"

    def through_jitpam() -> None:
        r = new_request(org.id, user.id, user.upn)
        with ctx.uow() as uow:
            uow.requests.add(r)
            uow.record(audit_event(r))
            uow.commit()

    raw_connection: Any
    if sqlite:
        database = make_url(url).database
        assert database is not None
        raw_connection = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            raw_connection.execute(f"PRAGMA {pragma}")
        mark = "?"
    else:
        raw_connection = psycopg.connect(
            make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        )
        mark = "%s"

    def ident(value: uuid.UUID) -> object:
        return value.hex if sqlite else value

    def moment(value: datetime) -> object:
        return value.replace(tzinfo=None).isoformat(sep=" ") if sqlite else value

    insert_request = (
        "INSERT INTO requests (id, org_id, requester_id, requester_upn, policy_id, type, target,"
        " reason, duration_hours, approvals_required, created_at, pending_until, status,"
        f" decided_at, key_id, signature, version) VALUES ({', '.join([mark] * 17)})"
    )
    insert_audit = (
        "INSERT INTO audit_records (org_id, seq, at, actor_id, actor_name, operation, target,"
        f" outcome, details, prev_hash, hash) VALUES ({', '.join([mark] * 11)})"
    )
    lock_head = f"SELECT seq, head_hash FROM audit_heads WHERE org_id = {mark}" + (
        "" if sqlite else " FOR UPDATE"
    )
    move_head = f"UPDATE audit_heads SET seq = {mark}, head_hash = {mark} WHERE org_id = {mark}"

    def through_driver() -> None:
        r = new_request(org.id, user.id, user.upn)
        cur = raw_connection.cursor()
        cur.execute("BEGIN IMMEDIATE" if sqlite else "BEGIN")
        cur.execute(lock_head, (ident(org.id),))
        seq, head = cur.fetchone()
        cur.execute(
            insert_request,
            (
                ident(r.id), ident(r.org_id), ident(r.requester_id), r.requester_upn,
                ident(r.policy_id), r.type.value, str(r.target), r.reason, r.duration_hours,
                r.approvals_required, moment(r.created_at), moment(r.pending_until),
                r.status.value, None, r.key_id, r.signature, 1,
            ),
        )  # fmt: skip
        rec = chain(audit_event(r), prev_seq=seq, prev_hash=head)
        cur.execute(
            insert_audit,
            (
                ident(rec.org_id), rec.seq, moment(rec.at), rec.actor_id, rec.actor_name,
                rec.operation, rec.target, rec.outcome.value,
                canonical_json(rec.details).decode(), rec.prev_hash, rec.hash,
            ),
        )  # fmt: skip
        cur.execute(move_head, (rec.seq, rec.hash, ident(org.id)))
        cur.execute("COMMIT")

    if not sqlite:
        raw_connection.autocommit = True  # BEGIN / COMMIT as written above
    through_jitpam()
    through_driver()  # both paths warm, and the chain stays whole across them
    raw_samples, our_samples = timed_in_turn(through_driver, through_jitpam, args.n)
    raw, ours = figures(raw_samples), figures(our_samples)
    raw_connection.close()
    # The two paths wrote one chain between them: it must still verify.
    report = audit_log.verify_audit(ctx, caller=admin).report
    engine.dispose()
    ratio = ours["per_second"] / raw["per_second"]
    print(f"database: {engine.dialect.name}, {args.n} new-request write transactions each")
    print(f"  raw driver            {raw['per_second']:9.0f}/s  p50 {raw['p50_ms']:.3f} ms")
    print(f"  jitpam (SQLAlchemy)   {ours['per_second']:9.0f}/s  p50 {ours['p50_ms']:.3f} ms")
    print(f"  ratio {ratio:.2f} (target >= 0.60); audit chain intact: {report.ok}")
    rows = [
        row(
            f"database layer, new-request write transaction, {engine.dialect.name}: per second",
            ours["per_second"],
            raw["per_second"],
            "raw driver",
            at_least=0.60,
            unit="/s",
        )
    ]
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(
            json.dumps(
                {
                    "database": engine.dialect.name,
                    "raw": raw,
                    "jitpam": ours,
                    "ratio": round(ratio, 3),
                    "chain_ok": report.ok,
                    "rows": rows,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
