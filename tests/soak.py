"""The soak: minutes of mixed load against real ``jitpam serve`` processes, with faults injected.

    .venv/bin/python -m tests.soak [--minutes 5] [--db sqlite|postgresql] [--pg URL]
    make soak SOAK_ARGS="--minutes 3 --db postgresql"

Writers (tests/e2e/writes.py) cycle through new requests, approvals and revocations, and checkers
ask ``POST /check`` as fast as the servers answer, spread over the servers (one on SQLite, two on
PostgreSQL, on a database of the soak's own). Every ``--fault-every`` seconds a fault, in turn: the
first server killed with SIGKILL and started again on the same port, and (PostgreSQL) every server
connection terminated with ``pg_terminate_backend``. Server memory (RSS) is sampled every five
seconds; the servers never killed show its trend over the whole run. At the end: the changes the
servers acknowledged against those the database holds, the audit chain verified, the answers by
kind, and the memory over time. Exit status 1 when an acknowledged change is missing, the chain
does not verify, or any answer was a server error or an unexpected refusal. Not part of ``make
test``: it runs for minutes.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from tests.e2e.conftest import Server, start_server
from tests.e2e.writes import MOVE, Acks, Connection, Writer, chain_verified, make_write_org, unfound

SAMPLE_EVERY = 5.0  # seconds between memory samples


@dataclass
class Slot:
    """One server of the soak, across its restarts (each restart is a new process, same port)."""

    name: str
    home: Path
    db: str
    server: Server
    restarts: int = 0
    rss: list[tuple[float, int, int]] = field(default_factory=list)  # (t, incarnation, KiB)

    def url(self) -> str:
        return self.server.url

    def kill_and_restart(self) -> float:
        """SIGKILL, then the same server again; returns seconds until it answered again."""
        os.kill(self.server.proc.pid, signal.SIGKILL)
        self.server.proc.wait(timeout=30)
        started = time.monotonic()
        port = int(self.server.url.rsplit(":", 1)[1])
        self.restarts += 1
        self.server = start_server(self.home, "--db", self.db, port=port)
        return time.monotonic() - started

    def sample(self, t: float) -> None:
        try:
            with open(f"/proc/{self.server.proc.pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        self.rss.append((t, self.restarts, int(line.split()[1])))
        except FileNotFoundError:  # between a kill and its restart
            pass


class Checker(threading.Thread):
    """A requester's own check, as fast as the server answers; counts the answers by kind."""

    def __init__(self, slot: Slot, token: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.connection = Connection(slot.url, token)
        self.stop = stop
        self.answers: Counter[str] = Counter()

    def run(self) -> None:
        while not self.stop.is_set():
            answer = self.connection.call("POST", "/check", {"task": MOVE})
            label = answer.label()
            if answer.status == 200:
                label += " allowed" if answer.body["allowed"] else " denied"
            self.answers[label] += 1
            if answer.status != 200:
                time.sleep(0.05)  # the server is away or refusing: do not spin
        self.connection.close()


def terminate_connections(db: str) -> int:
    """pg_terminate_backend for every other connection to the soak's database; how many."""
    with psycopg.connect(db, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend'"
        ).fetchall()
    return len(rows)


def machine() -> str:
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"


def soak(
    db: str, *, minutes: float, servers: int, writers: int, checkers: int, every: float
) -> bool:
    postgres = db.startswith("postgresql")
    work = Path(tempfile.mkdtemp(prefix="jitpam-soak-"))
    org = make_write_org(db, writers)
    slots = []
    for i in range(servers):
        home = work / f"server{i}"
        home.mkdir()
        slots.append(Slot(f"server{i}", home, db, start_server(home, "--db", db)))
    acks, stop = Acks(), threading.Event()
    threads: list[Writer | Checker] = [
        Writer(slots[i % servers].url, org, i, acks, stop, pause=0.05) for i in range(writers)
    ]
    checking = [
        Checker(slots[i % servers], org.requester_tokens[i % writers], stop)
        for i in range(checkers)
    ]
    threads += checking
    faults: Counter[str] = Counter()
    back_after: list[float] = []
    started = time.monotonic()
    end = started + minutes * 60
    print(f"soak: {db.split('@')[-1]}, {servers} server(s), {writers} writers, {checkers} checkers")
    print(f"      {minutes:g} min, a fault every {every:g} s; work dir {work}", flush=True)
    for thread in threads:
        thread.start()
    next_fault, next_sample, turn = started + every, started, 0
    restarting: threading.Thread | None = None  # a killed server coming back, meanwhile
    try:
        while (now := time.monotonic()) < end:
            if now >= next_sample:
                for slot in slots:
                    slot.sample(now - started)
                next_sample += SAMPLE_EVERY
            # The next fault comes ``every`` seconds after the last one ended (a restart too).
            if restarting is not None and not restarting.is_alive():
                restarting, next_fault = None, now + every
            if now >= next_fault and restarting is None:
                if postgres and turn % 2 == 1:
                    faults[f"pg_terminate_backend ({terminate_connections(db)} connections)"] += 1
                    next_fault = now + every
                else:
                    restarting = threading.Thread(
                        target=lambda: back_after.append(slots[0].kill_and_restart())
                    )
                    restarting.start()
                    faults["kill -9 and restart"] += 1
                turn += 1
                print(f"  {now - started:6.0f} s: {acks.count} changes acknowledged", flush=True)
            time.sleep(0.2)
    finally:
        if restarting is not None:
            restarting.join(timeout=120)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        for slot in slots:
            slot.server.stop()
    took = time.monotonic() - started
    lost = unfound(db, org.org_id, acks)
    broken = chain_verified(db, org)
    checks: Counter[str] = sum((c.answers for c in checking), Counter())
    writes = acks.answers
    server_errors = {k: n for k, n in (checks + writes).items() if k.startswith("5")}
    server_errors = {k: n for k, n in server_errors.items() if "unavailable" not in k}

    print(f"\nsoak report: {took / 60:.1f} min on {machine()}")
    print(f"  faults: {dict(faults)}")
    if back_after:
        print(f"  a killed server answered again after {max(back_after):.1f} s at most")
    print(f"  writes acknowledged: {acks.count} ({acks.by_stage()} requests by furthest stage)")
    print(f"  write answers: {dict(writes)}")
    print(f"  check answers: {dict(checks)}")
    print(f"  acknowledged changes missing from the database: {len(lost)}")
    for line in lost[:20]:
        print(f"    {line}")
    print(f"  audit chain: {'verified' if broken is None else broken}")
    print(f"  unexpected answers: {len(acks.unexpected)}; server errors: {server_errors}")
    for line in acks.unexpected[:10]:
        print(f"    {line}")
    print("  server memory (RSS, MB) by minute:")
    for slot in slots:
        by_minute: dict[int, int] = {}
        for t, _, kib in slot.rss:
            by_minute[int(t // 60)] = max(by_minute.get(int(t // 60), 0), kib)
        shown = ", ".join(f"{m}: {kib / 1024:.0f}" for m, kib in sorted(by_minute.items()))
        peak = max((kib for _, _, kib in slot.rss), default=0) / 1024
        print(f"    {slot.name} ({slot.restarts} restarts): {shown}; peak {peak:.0f}")
        for incarnation in range(slot.restarts + 1):
            samples = [(t, kib) for t, n, kib in slot.rss if n == incarnation]
            if len(samples) > 1:
                (t0, first), (t1, last) = samples[0], samples[-1]
                print(
                    f"      process {incarnation}: {first / 1024:.0f} MB at {t0:.0f} s, "
                    f"{last / 1024:.0f} MB at {t1:.0f} s"
                )
    return not lost and broken is None and not acks.unexpected and not server_errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--servers", type=int, help="default: 1 on SQLite, 2 on PostgreSQL")
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--checkers", type=int, default=4)
    parser.add_argument("--fault-every", type=float, default=30.0, help="seconds between faults")
    args = parser.parse_args()
    servers = args.servers or (2 if args.db == "postgresql" else 1)
    options = {
        "minutes": args.minutes,
        "servers": servers,
        "writers": args.writers,
        "checkers": args.checkers,
        "every": args.fault_every,
    }
    if args.db == "sqlite":
        ok = soak(f"sqlite:///{tempfile.mkdtemp(prefix='jitpam-soak-db-')}/jitpam.db", **options)
    else:
        name = f"jitpam_soak_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            ok = soak(f"{args.pg}/{name}", **options)
        finally:
            with psycopg.connect(f"{args.pg}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
