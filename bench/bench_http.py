"""jitpam over HTTP under load, beside a bare endpoint of the same app, measured in one run.

    .venv/bin/python bench/bench_http.py [--db URL] [--processes 2] [--duration 10] [--json F]

Servers are real processes (bench/http_server.py: jitpam's app plus two constant routes); the load
comes from another process (bench/loadgen.py) holding 32 kept-alive connections to 127.0.0.1,
spread over the server processes. Measured, each for ``--duration`` seconds after a warm-up:

- ``GET /bench/bare``: a route answering a constant (the ceiling);
- ``POST /api/v1/check``: eight users, each asking about themself, each allowed by an active
  authorization, every decision audited;
- ``POST /api/v1/requests``: new requests for tasks under a Manual policy that the requesters hold
  (through Organization Management), each (requester, task) once, left pending;
- ``POST /api/v1/requests/{id}/approve``: the approver approves those requests, each once;
- with two or more processes: how long after a revocation returns on one process a check on
  another process denies (and after an approval, allows), over ``--rounds`` rounds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from org import bench_organization  # bench/org.py, beside this script
from sqlalchemy import select
from table import markdown, row  # bench/table.py, beside this script

from jitpam.adapters.sql.models import CatalogEntryRow, CatalogLinkRow, RequestRow
from jitpam.bootstrap import build_context
from jitpam.domain.policy import ApprovalType, PolicyType
from jitpam.services import auth, directory, organizations, policies, requests
from jitpam.services.context import Caller, ServiceContext

HERE = Path(__file__).parent
MOVE = "Exchange\\New-MoveRequest"
CHECKERS = 8


@dataclass
class Setup:
    org_id: uuid.UUID
    approver_token: str
    checker_tokens: list[str]
    requester_tokens: list[str]
    tasks: list[str]
    grants: list[uuid.UUID] = field(default_factory=list)


def token(ctx: ServiceContext, caller: Caller) -> str:
    return auth.create_token(ctx, caller=caller, name="bench").secret


def prepare(url: str, requesters: int) -> Setup:
    """An organization with control on, task policies, approved grants for the checkers and
    enough requesters that every (requester, task) pair of the run is new."""
    ctx, engine = build_context(database_url=url)
    made = bench_organization(ctx)
    org, admin, domain = made.org, made.admin, made.domain

    def person(name: str) -> Caller:
        user = directory.add_user(ctx, caller=admin, upn=f"{name}@{domain}", display_name=name)
        return Caller(org.id, user.id)

    approver = person("approver")
    directory.add_group(ctx, caller=admin, name="Approvers")
    directory.change_membership(
        ctx, caller=admin, group="Approvers", upn=f"approver@{domain}", add=True
    )
    directory.add_group(ctx, caller=admin, name="Operators")
    directory.change_assignment(
        ctx, caller=admin, role_group="Organization Management", group="Operators", add=True
    )
    entry, group, role = (CatalogEntryRow.__table__.alias(n) for n in ("entry", "rg", "role"))
    to_role, to_task = (CatalogLinkRow.__table__.alias(n) for n in ("to_role", "to_task"))
    with engine.connect() as conn:
        tasks = sorted(
            f"{scope}\\{name}"
            for scope, name in conn.execute(
                select(entry.c.scope, entry.c.name).where(
                    entry.c.org_id == org.id, entry.c.kind == "task", entry.c.scope == "Exchange"
                )
            )
        )
        # The tasks the operators hold: requests for the others would be refused.
        held = {
            f"{scope}\\{name}"
            for scope, name in conn.execute(
                select(entry.c.scope, entry.c.name)
                .select_from(group)
                .join(to_role, to_role.c.parent_id == group.c.id)
                .join(role, role.c.id == to_role.c.child_id)
                .join(to_task, to_task.c.parent_id == role.c.id)
                .join(entry, entry.c.id == to_task.c.child_id)
                .where(
                    group.c.org_id == org.id,
                    group.c.kind == "role_group",
                    group.c.name == "Organization Management",
                )
            )
        }
    for task in tasks:
        policies.new_policy(
            ctx,
            caller=admin,
            type=PolicyType.TASK,
            target=task,
            approval_type=ApprovalType.MANUAL,
            approver_group="Approvers",
        )
    organizations.enable_access_control(ctx, caller=admin, admin_group="Approvers")
    setup = Setup(
        org.id, token(ctx, approver), [], [], [t for t in tasks if t != MOVE and t in held]
    )
    for i in range(CHECKERS + requesters):
        name = f"checker{i}" if i < CHECKERS else f"requester{i - CHECKERS}"
        caller = person(name)
        directory.change_membership(
            ctx, caller=admin, group="Operators", upn=f"{name}@{domain}", add=True
        )
        if i < CHECKERS:
            view = requests.new_request(
                ctx,
                caller=caller,
                type=PolicyType.TASK,
                target=MOVE,
                reason="benchmark",
                duration_hours=8,
            )
            requests.approve_request(ctx, caller=approver, request_id=view.request.id)
            setup.checker_tokens.append(token(ctx, caller))
        else:
            setup.requester_tokens.append(token(ctx, caller))
    engine.dispose()
    return setup


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_servers(
    url: str, count: int, workdir: Path
) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    procs, ports = [], []
    for i in range(count):
        port = free_port()
        log = (workdir / f"server{i}.log").open("wb")
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(HERE / "http_server.py"),
                    "--db",
                    url,
                    "--port",
                    str(port),
                    "--data-dir",
                    str(workdir / f"data{i}"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "JITPAM_LOG_LEVEL": "WARNING"},
            )
        )
        ports.append(port)
    deadline = time.monotonic() + 60
    for proc, port in zip(procs, ports, strict=True):
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"a server exited: see {workdir}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("a server did not start within 60 s")
            time.sleep(0.1)
    return procs, ports


def load(plan: dict[str, Any], workdir: Path) -> dict[str, Any]:
    path = workdir / "plan.json"
    path.write_text(json.dumps(plan))
    out = subprocess.run(
        [sys.executable, str(HERE / "loadgen.py"), str(path)],
        check=True,
        capture_output=True,
        text=True,
        timeout=float(plan["warmup"]) + float(plan["duration"]) + 120,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def post(path: str, secret: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "method": "POST",
        "path": path,
        "headers": {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
        "body": json.dumps(body),
    }


def visibility(setup: Setup, ports: list[int], rounds: int) -> dict[str, list[float]]:
    """Approve / revoke on the first process, check on the second until the answer follows:
    seconds from the change's response to the first check that reflects it."""
    one, other = (f"http://127.0.0.1:{p}/api/v1" for p in ports[:2])
    seen: dict[str, list[float]] = {"approval": [], "revocation": []}
    requester = setup.requester_tokens[-1]  # not used by the load runs' first pairs

    def h(secret: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {secret}"}

    task = setup.tasks[0]
    with httpx.Client(timeout=10) as c:
        for _ in range(rounds):
            made = c.post(
                f"{one}/requests",
                json={"type": "task", "target": task, "reason": "visibility", "duration_hours": 1},
                headers=h(requester),
            )
            made.raise_for_status()
            rid = made.json()["id"]
            for change, path, want in (
                ("approval", "approve", True),
                ("revocation", "revoke", False),
            ):
                url = f"{one}/requests/{rid}/approve" if path == "approve" else None
                if url is None:
                    url = f"{one}/authorizations/{rid}/revoke"
                c.post(url, json={}, headers=h(setup.approver_token)).raise_for_status()
                done = time.perf_counter()
                while True:
                    got = c.post(f"{other}/check", json={"task": task}, headers=h(requester))
                    got.raise_for_status()
                    if got.json()["allowed"] is want:
                        seen[change].append(time.perf_counter() - done)
                        break
                    if time.perf_counter() - done > 10:
                        raise SystemExit(f"{change} not seen by the other process within 10 s")
    return seen


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=100, help="visibility rounds")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="jitpam-bench-http-"))
    url = args.db or f"sqlite:///{workdir}/bench.db"
    # Enough requesters that no (requester, task) pair repeats at 1,000 new requests a second.
    tasks_per_user = 30  # of the Exchange tasks, those Organization Management holds: 35
    requesters = math.ceil((args.duration + args.warmup) * 1000 / tasks_per_user) + 1
    t0 = time.perf_counter()
    setup = prepare(url, requesters)
    print(f"prepared {requesters} requesters in {time.perf_counter() - t0:.1f} s", flush=True)
    procs, ports = start_servers(url, args.processes, workdir)
    base = {
        "ports": ports,
        "connections": args.connections,
        "warmup": args.warmup,
        "duration": args.duration,
    }
    results: dict[str, Any] = {
        "database": url.split(":", 1)[0],
        "processes": args.processes,
        "connections": args.connections,
    }
    try:
        results["bare"] = load(
            {**base, "requests": [{"method": "GET", "path": "/bench/bare"}]}, workdir
        )
        results["bare_sync"] = load(
            {**base, "requests": [{"method": "GET", "path": "/bench/bare-sync"}]}, workdir
        )
        results["check"] = load(
            {
                **base,
                "requests": [
                    post("/api/v1/check", s, {"task": MOVE}) for s in setup.checker_tokens
                ],
            },
            workdir,
        )
        creates = [
            post(
                "/api/v1/requests",
                s,
                {"type": "task", "target": t, "reason": "load", "duration_hours": 1},
            )
            for t in setup.tasks
            for s in setup.requester_tokens[:-1]
        ]
        results["create_request"] = load(
            {**base, "requests": creates, "once": True, "warmup": 0}, workdir
        )
        ids = pending_ids(url, setup)
        approvals = [post(f"/api/v1/requests/{i}/approve", setup.approver_token, {}) for i in ids]
        results["approve"] = load(
            {**base, "requests": approvals, "once": True, "warmup": 0}, workdir
        )
        if args.processes >= 2:
            seen = visibility(setup, ports, args.rounds)
            results["visibility"] = {k: summary(v) for k, v in seen.items()}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
    results["rows"] = rows(results)
    report(results)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2))


def pending_ids(url: str, setup: Setup) -> list[str]:
    _, engine = build_context(database_url=url)
    with engine.connect() as conn:
        rows = conn.execute(
            select(RequestRow.id)
            .where(RequestRow.org_id == setup.org_id, RequestRow.status == "pending")
            .order_by(RequestRow.created_at)
        ).scalars()
        ids = [str(r) for r in rows]
    engine.dispose()
    return ids


def summary(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {
        "p50_ms": round(statistics.median(s) * 1e3, 3),
        "p99_ms": round(s[min(len(s) - 1, int(len(s) * 0.99))] * 1e3, 3),
        "max_ms": round(s[-1] * 1e3, 3),
        "rounds": len(s),
    }


def rows(r: dict[str, Any]) -> list[dict[str, Any]]:
    """The figures against their ceilings and the issue's targets."""
    where = f"{r['database']}, {r['processes']} process{'es' if r['processes'] > 1 else ''}"
    bare = r["bare"]
    out = [
        row(
            f"POST /check, audited, {r['connections']} connections, {where}: requests/s",
            r["check"]["per_second"],
            bare["per_second"],
            "bare endpoint",
            at_least=0.60,
            unit="/s",
        ),
        row(
            f"POST /check p99, {where}",
            r["check"]["p99_ms"],
            bare["p99_ms"],
            "bare endpoint",
            at_most=2.0,
            unit="ms",
        ),
    ]
    for name, label in (("create_request", "POST /requests"), ("approve", "POST .../approve")):
        out.append(
            row(
                f"{label}, {where}: requests/s",
                r[name]["per_second"],
                bare["per_second"],
                "bare endpoint",
                at_least=0.50,
                unit="/s",
            )
        )
    for name, v in r.get("visibility", {}).items():
        out.append(
            row(
                f"{name} seen by a check on another process, p99",
                v["p99_ms"],
                None,
                "",
                at_most=1000,
                unit="ms",
            )
        )
    return out


def report(r: dict[str, Any]) -> None:
    print(f"{r['database']}, {r['processes']} process(es), {r['connections']} connections")
    for name in ("bare", "bare_sync", "check", "create_request", "approve"):
        f = r[name]
        print(
            f"  {name:<16} {f['per_second']:9.0f}/s  p50 {f['p50_ms']:7.2f} ms"
            f"  p99 {f['p99_ms']:7.2f} ms  {f['statuses']}"
        )
    for name, v in r.get("visibility", {}).items():
        print(
            f"  {name} seen by the other process:"
            f" p50 {v['p50_ms']:.1f} ms  p99 {v['p99_ms']:.1f} ms"
        )
    print(markdown(r["rows"]))


if __name__ == "__main__":
    main()
