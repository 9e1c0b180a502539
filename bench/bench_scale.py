"""Enforcement at speed, measured: a real server on a generated database, and its lists timed.

    .venv/bin/python bench/bench_scale.py [--db URL] [--small | --policies N --authorizations N
        --requests N --users N] [--reuse [--org NAME]] [--json PATH]

Generates the data (``generate.py``; ``--reuse`` takes the newest benchmark organization already
in the database instead), starts ``jitpam serve`` on it, and measures: seconds from spawning the
server to ``/readyz`` answering 200; ``POST /api/v1/check`` cold (the first after the start) and
warm; every list route the API and the web pages have, first pages, pages reached by following
``next_cursor`` a few hundred times and pages reached by cursors taken deep in the data, each as
p50/p99 over up to ``--samples`` calls (or ``--budget`` seconds); and, after all that, the
server's resident memory (VmRSS, children included). The targets are the "enforcement at speed"
issue's: start within 30 s, under 2 GB resident, lists under 50 ms at the 99th percentile.
Prints a table and writes it as JSON (``--json``, default ``bench/results/scale.json``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from generate import Generated, find, generate, row_counts
from sqlalchemy import Engine, func, select

from jitpam.adapters.sql.db import make_engine
from jitpam.adapters.sql.models import AuthorizationRow, PolicyRow, RequestRow, UserRow
from jitpam.adapters.sql.queries import encode_cursor
from jitpam.domain.timeutil import iso

HERE = Path(__file__).resolve().parent
JITPAM = str(Path(sys.executable).with_name("jitpam"))
API = "/api/v1"
START_TARGET_S = 30.0
RSS_TARGET_MB = 2048.0
LIST_TARGET_MS = 50.0
DEPTHS = (0.1, 0.5, 0.9, 0.99)  # where the jump cursors point, as a share of the rows
FULL = {"policies": 100_000, "authorizations": 1_000_000, "requests": 1_000_000, "users": 10_000}
SMALL = {"policies": 1_000, "authorizations": 10_000, "requests": 12_000, "users": 500}
STATUSES = ("pending", "approved", "completed", "revoked", "denied", "cancelled", "expired")


@dataclass
class Figure:
    name: str
    value: float | None  # p99 for latencies
    unit: str
    target: float | None = None
    samples: int = 1
    p50: float | None = None
    max: float | None = None
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.value is not None and self.value <= self.target


def percentile(sorted_values: list[float], share: float) -> float:
    """Nearest rank: the smallest value with at least ``share`` of the values at or below it."""
    return sorted_values[max(0, math.ceil(share * len(sorted_values)) - 1)]


# -- the server --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path
    started_in: float  # seconds from spawn to /readyz = 200

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_server(url: str, data_dir: Path, deadline: float, *, worker: bool = True) -> Server:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JITPAM_")}
    if not worker:
        env["JITPAM_WORKER_IN_PROCESS"] = "false"
    log = data_dir.with_name("server.log")
    args = [JITPAM, "serve", "--db", url, "--port", str(port), "--data-dir", str(data_dir)]
    spawned = time.perf_counter()
    with log.open("wb") as out:  # the child keeps its own copy
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return Server(proc, base, log, time.perf_counter() - spawned)
        except httpx.TransportError:
            pass
        time.sleep(0.05)  # polling interval, not a wait for an effect
    proc.kill()
    proc.wait()
    raise RuntimeError(f"the server was not ready within {deadline:.0f} s:\n{log.read_text()}")


def _status_field(pid: int, name: str) -> int:
    """A ``kB`` field of /proc/<pid>/status, 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid:  # the field after state is the ppid
            out.append(int(entry.name))
    return out


def resident_kb(pid: int, field: str = "VmRSS") -> int:
    """The process's resident memory with all its descendants'."""
    return _status_field(pid, field) + sum(resident_kb(c, field) for c in _children(pid))


# -- timing ------------------------------------------------------------------------------------

Call = Callable[[int], httpx.Response | None]


class Pages:
    """Follows ``next_cursor``: call ``i`` fetches the page after call ``i - 1``'s."""

    def __init__(self, client: httpx.Client, path: str, params: dict[str, Any]) -> None:
        self.client, self.path, self.params = client, path, params
        self.cursor: str | None = None
        self.done = False

    def __call__(self, _: int) -> httpx.Response | None:
        if self.done:
            return None
        params = {**self.params, **({"cursor": self.cursor} if self.cursor else {})}
        return self.client.get(self.path, params=params)

    def seen(self, response: httpx.Response) -> None:
        self.cursor = response.json().get("next_cursor")
        self.done = self.cursor is None


@dataclass
class Bench:
    samples: int
    pages: int
    budget: float
    figures: list[Figure]

    def latency(
        self, name: str, call: Call, *, n: int | None = None, target: float | None = LIST_TARGET_MS
    ) -> Figure:
        """Time ``call(0), call(1), ...`` until ``n`` samples, the budget, or no more pages."""
        times: list[float] = []
        note = ""
        started = time.monotonic()
        for i in range(n or self.samples):
            t = time.perf_counter()
            try:
                response = call(i)
            except httpx.TimeoutException:
                note = f"timed out after {time.perf_counter() - t:.0f} s"
                break
            took = time.perf_counter() - t
            if response is None:
                break
            if response.status_code != 200:
                note = f"HTTP {response.status_code}: {response.text[:160]}"
                break
            times.append(took * 1e3)
            if isinstance(call, Pages):
                call.seen(response)
            if time.monotonic() - started > self.budget:
                note = f"stopped after {self.budget:.0f} s"
                break
        times.sort()
        figure = Figure(
            name,
            percentile(times, 0.99) if times else None,
            "ms",
            target,
            samples=len(times),
            p50=percentile(times, 0.5) if times else None,
            max=times[-1] if times else None,
            note=note,
        )
        self.figures.append(figure)
        print(f"  {_row(figure)}", flush=True)
        return figure


def repeat(client: httpx.Client, path: str, **params: Any) -> Call:
    return lambda _: client.get(path, params=params)


def jumps(client: httpx.Client, path: str, cursors: list[str], **params: Any) -> Call:
    return lambda i: client.get(path, params={**params, "cursor": cursors[i % len(cursors)]})


# -- cursors deep in the data ------------------------------------------------------------------


def request_cursors(engine: Engine, gen: Generated) -> list[str]:
    """Cursors of GET /requests (newest first) pointing at the given depths of the requests."""
    with engine.connect() as conn:
        total = conn.scalar(
            select(func.count()).select_from(RequestRow).where(RequestRow.org_id == gen.org_id)
        )
        out = []
        for depth in DEPTHS:
            row = conn.execute(
                select(RequestRow.created_at, RequestRow.id)
                .where(RequestRow.org_id == gen.org_id)
                .order_by(RequestRow.created_at.desc(), RequestRow.id.desc())
                .offset(int((total or 0) * depth))
                .limit(1)
            ).first()
            if row is not None:
                out.append(encode_cursor(iso(row[0]), str(row[1])))
    return out


def policy_cursors(engine: Engine, gen: Generated) -> list[str]:
    with engine.connect() as conn:
        keys = [
            conn.execute(
                select(PolicyRow.type, PolicyRow.target_key)
                .where(PolicyRow.org_id == gen.org_id)
                .order_by(PolicyRow.type, PolicyRow.target_key)
                .offset(int(len(gen.tasks) * depth))
                .limit(1)
            ).first()
            for depth in DEPTHS
        ]
    return [encode_cursor(k[0], k[1]) for k in keys if k is not None]


def user_cursors(engine: Engine, gen: Generated) -> list[str]:
    with engine.connect() as conn:
        upns = [
            conn.scalar(
                select(UserRow.upn)
                .where(UserRow.org_id == gen.org_id)
                .order_by(UserRow.upn)
                .offset(int(len(gen.users) * depth))
                .limit(1)
            )
            for depth in DEPTHS
        ]
    return [encode_cursor(u) for u in upns if u is not None]


def active_grant(engine: Engine, gen: Generated) -> tuple[str, str] | None:
    """(user, task) of a grant running now and for a while yet: the checks are allowed ones."""
    now = datetime.now(UTC)
    with engine.connect() as conn:
        row = conn.execute(
            select(UserRow.upn, AuthorizationRow.target)
            .join(UserRow, UserRow.id == AuthorizationRow.user_id)
            .where(
                AuthorizationRow.org_id == gen.org_id,
                AuthorizationRow.revoked_at.is_(None),
                AuthorizationRow.start_at <= now,
                AuthorizationRow.end_at > now + timedelta(minutes=30),
            )
            .limit(1)
        ).first()
    return (row[0], row[1]) if row else None


# -- the run -----------------------------------------------------------------------------------


def sign_in(base: str, upn: str, password: str) -> str:
    response = httpx.post(
        f"{base}{API}/auth/login", json={"user": upn, "password": password}, timeout=60
    )
    response.raise_for_status()
    return str(response.json()["token"])


def measure(bench: Bench, server: Server, engine: Engine, gen: Generated) -> None:
    admin_token = sign_in(server.url, gen.admin_upn, gen.admin_password)
    domain = gen.admin_upn.split("@")[1]
    approver_token = sign_in(server.url, f"approver1@{domain}", gen.admin_password)
    auth = {"authorization": f"Bearer {admin_token}"}
    with (
        httpx.Client(base_url=server.url + API, headers=auth, timeout=300) as api,
        httpx.Client(
            base_url=server.url + API,
            headers={"authorization": f"Bearer {approver_token}"},
            timeout=300,
        ) as approver,
        httpx.Client(
            base_url=server.url, cookies={"jitpam_session": admin_token}, timeout=300
        ) as web,
        httpx.Client(
            base_url=server.url, cookies={"jitpam_session": approver_token}, timeout=300
        ) as web_approver,
    ):
        print("floor: the server on this machine now", flush=True)
        floor = httpx.Client(base_url=server.url, timeout=60)
        with floor:
            bench.latency("GET /healthz (no database)", repeat(floor, "/healthz"), target=None)
            bench.latency("GET /readyz (SELECT 1)", repeat(floor, "/readyz"), target=None)
            bench.latency("GET /api/v1/me (token, one user)", repeat(api, "/me"), target=None)

        print("check", flush=True)
        grant = active_grant(engine, gen)
        user, task = grant if grant else (gen.users[0], gen.tasks[0])
        body = {"user": user, "task": task}
        cold = bench.latency(
            "POST /check, cold (first after start)",
            lambda _: api.post("/check", json=body),
            n=1,
            target=None,
        )
        answer = api.post("/check", json=body).json()
        cold.note = f"{user} on {task}: allowed={answer.get('allowed')} ({answer.get('reason')})"
        bench.latency("POST /check, warm", lambda _: api.post("/check", json=body), target=None)
        bench.latency(
            "POST /check, another user each time",
            lambda i: api.post(
                "/check",
                json={
                    "user": gen.users[(i * 7919) % len(gen.users)],
                    "task": gen.tasks[i % len(gen.tasks)],
                },
            ),
            target=None,
        )

        print("requests", flush=True)
        deep = request_cursors(engine, gen)
        bench.latency("GET /requests, first page", repeat(api, "/requests"))
        bench.latency(
            "GET /requests, following next_cursor",
            Pages(api, "/requests", {}),
            n=bench.pages,
        )
        bench.latency("GET /requests, jump cursors 10-99% deep", jumps(api, "/requests", deep))
        bench.latency(
            "GET /requests?limit=500, jump cursors", jumps(api, "/requests", deep, limit=500)
        )
        for status in STATUSES:
            bench.latency(
                f"GET /requests?status={status}, first page",
                repeat(api, "/requests", status=status),
            )
        bench.latency(
            "GET /requests?status=completed, following next_cursor",
            Pages(api, "/requests", {"status": "completed"}),
            n=bench.pages,
        )
        bench.latency(
            "GET /requests?status=denied, jump cursors",
            jumps(api, "/requests", deep, status="denied"),
        )
        some_task = gen.tasks[len(gen.tasks) // 3].split("\\")[1]
        bench.latency(
            f"GET /requests?target={some_task} (search)",
            repeat(api, "/requests", target=some_task),
        )
        bench.latency(
            "GET /requests?requester=<user>", repeat(api, "/requests", requester=gen.users[1])
        )
        bench.latency("GET /requests?mine=true", repeat(api, "/requests", mine="true"))
        bench.latency("GET /requests as an approver, first page", repeat(approver, "/requests"))
        bench.latency(
            "GET /requests?status=pending as an approver",
            repeat(approver, "/requests", status="pending"),
        )

        print("authorizations", flush=True)
        bench.latency("GET /authorizations (own)", repeat(api, "/authorizations"))
        bench.latency(
            "GET /authorizations?user=<user>",
            repeat(api, "/authorizations", user=gen.users[2]),
        )
        bench.latency(
            "GET /authorizations?user=*&active=true",
            repeat(api, "/authorizations", user="*", active="true"),
        )
        bench.latency("GET /authorizations?user=*", repeat(api, "/authorizations", user="*"))

        print("policies, users, groups, audit, catalog", flush=True)
        bench.latency("GET /policies, first page", repeat(api, "/policies"))
        bench.latency("GET /policies, following next_cursor", Pages(api, "/policies", {}))
        bench.latency(
            "GET /policies, jump cursors",
            jumps(api, "/policies", policy_cursors(engine, gen)),
        )
        bench.latency("GET /users, first page", repeat(api, "/users"))
        bench.latency("GET /users, following next_cursor", Pages(api, "/users", {}))
        bench.latency("GET /users, jump cursors", jumps(api, "/users", user_cursors(engine, gen)))
        bench.latency("GET /groups", repeat(api, "/groups"))
        bench.latency("GET /audit, first page", repeat(api, "/audit"))
        bench.latency("GET /audit, following next_cursor", Pages(api, "/audit", {"limit": 20}))
        bench.latency("GET /tokens", repeat(api, "/tokens"))
        bench.latency("GET /outbox", repeat(api, "/outbox"))
        bench.latency("GET /roles", repeat(api, "/roles"))
        bench.latency("GET /catalog/tasks, first page", repeat(api, "/catalog/tasks"))
        bench.latency("GET /catalog/tasks, following next_cursor", Pages(api, "/catalog/tasks", {}))
        bench.latency(
            f"GET /roles/{gen.role} (first page of tasks and members)",
            repeat(api, f"/roles/{gen.role}"),
        )
        bench.latency(
            "GET /catalog/tasks?role=<role>, following next_cursor",
            Pages(api, "/catalog/tasks", {"role": gen.role}),
        )

        print("web pages", flush=True)
        bench.latency("web /requests", repeat(web, "/requests"))
        bench.latency("web /requests?status=pending", repeat(web, "/requests", status="pending"))
        bench.latency("web /requests?q=<user> (search)", repeat(web, "/requests", q=gen.users[3]))
        bench.latency(
            f"web /requests?q={some_task} (search)", repeat(web, "/requests", q=some_task)
        )
        bench.latency("web /my-access", repeat(web, "/my-access"))
        bench.latency("web /policies", repeat(web, "/policies"))
        bench.latency("web /directory", repeat(web, "/directory"))
        bench.latency(
            "web /directory/role (the role's first page)",
            repeat(web, "/directory/role", name=gen.role),
        )
        bench.latency("web /audit", repeat(web, "/audit"))
        bench.latency("web /requests as an approver", repeat(web_approver, "/requests"))
        bench.latency("web /my-access as an approver", repeat(web_approver, "/my-access"))


def _row(f: Figure) -> str:
    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:,.1f}"

    target = "-" if f.target is None else f"{f.target:,.0f} {f.unit}"
    met = {None: "-", True: "yes", False: "NO"}[f.met]
    detail = f"p50 {num(f.p50)}, n={f.samples}" if f.unit == "ms" else ""
    value = f"{num(f.value)} {f.unit}"
    line = f"{f.name:<58} {value:>13} {target:>9} {met:>4}  {detail}"
    return line + (f"  [{f.note}]" if f.note else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--small", action="store_true", help="small sizes, for a quick run")
    for name, default in FULL.items():
        parser.add_argument(f"--{name}", type=int, help=f"default {default:,}")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--reuse", action="store_true", help="use the data already there")
    parser.add_argument("--org", help="with --reuse: the organization (default: newest bench-*)")
    parser.add_argument("--samples", type=int, default=100, help="timed calls per figure")
    parser.add_argument("--pages", type=int, default=300, help="next_cursor pages to follow")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds per figure at most")
    parser.add_argument(
        "--no-worker",
        action="store_true",
        help="serve without the in-process worker (its sweeps), to tell their cost apart",
    )
    parser.add_argument("--json", type=Path, default=HERE / "results" / "scale.json")
    args = parser.parse_args()
    sizes = {name: getattr(args, name) or (SMALL if args.small else FULL)[name] for name in FULL}
    work = Path(tempfile.mkdtemp(prefix="jitpam-scale-"))
    url = args.db or f"sqlite:///{work / 'scale.db'}"
    figures: list[Figure] = []
    started = time.perf_counter()
    if args.reuse:
        gen = find(url, args.org)
        generated_in = None
    else:
        print(f"generating {sizes} into {url.split('@')[-1]}", flush=True)
        gen = generate(url, seed=args.seed, **sizes)
        generated_in = time.perf_counter() - started
        figures.append(Figure("generate the data", generated_in, "s"))
    counts = row_counts(url, gen.org_id)
    print(f"organization {gen.org_name}: {counts}", flush=True)
    engine = make_engine(url)
    server = start_server(url, work / "data", deadline=300, worker=not args.no_worker)
    try:
        figures.append(Figure("server start to /readyz", server.started_in, "s", START_TARGET_S))
        print(f"  {_row(figures[-1])}", flush=True)
        after_start = resident_kb(server.proc.pid) / 1024
        bench = Bench(args.samples, args.pages, args.budget, figures)
        measure(bench, server, engine, gen)
        rss = resident_kb(server.proc.pid) / 1024
        peak = resident_kb(server.proc.pid, "VmHWM") / 1024
        figures.append(
            Figure(
                "server resident memory after the run (VmRSS)",
                rss,
                "MB",
                RSS_TARGET_MB,
                note=f"{after_start:,.0f} MB after start; peak (VmHWM) {peak:,.0f} MB",
            )
        )
    finally:
        server.stop()
        engine.dispose()
        # The server's data directory (its signing key) goes; a database made here stays.
        shutil.rmtree(work / "data", ignore_errors=True)
        if args.db:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"{'figure':<58} {'value':>13} {'target':>9} {'met':>4}")
    for f in figures:
        print(_row(f))
    result = {
        "database": engine.dialect.name,
        "organization": gen.org_name,
        "sizes": None if args.reuse else sizes,
        "rows": counts,
        "worker_in_process": not args.no_worker,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "figures": [{**asdict(f), "met": f.met} for f in figures],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten to {args.json}; the data: {url} (--reuse to measure it again)")


if __name__ == "__main__":
    main()
