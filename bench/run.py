"""Every benchmark in one run, one table: ``make bench``.

    .venv/bin/python bench/run.py [--quick] [--no-scale] [--pg URL]

Runs, one after the other on an otherwise idle machine:

- bench_decide.py: the in-process decision against a hand-written dict decision, pycasbin and
  cedarpy, from 100 to 100,000 policies and up to 1,000,000 authorizations;
- bench_db.py: the database layer against the raw driver (SQLite, PostgreSQL);
- bench_http.py: the check, new requests and approvals over HTTP against a bare endpoint of the
  same app (SQLite with one server process; PostgreSQL with two), and how soon a change on one
  process shows in a check on the other;
- bench_sign_in.py: other writes committed per second while sign-ins hash passwords (SQLite);
- bench_connectors.py: from approval to membership present and from revocation to membership
  gone in a real PostgreSQL server and a real slapd, with the worker running (SQLite store);
- bench_scale.py: start time, memory and list pages with 100,000 policies, 1,000,000
  authorizations and 1,000,000 requests (skipped with ``--no-scale``).

PostgreSQL runs get a database of their own, made and dropped here (``--pg``: the server's URL,
default ``postgresql://postgres@127.0.0.1:5432``). ``--quick`` shrinks every size and duration
(to see that everything runs, not to quote). The table goes to stdout and, with the machine's
description, to bench/results/latest.json and latest.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from table import markdown

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def machine(pg: str | None) -> dict[str, Any]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    described = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": None,
    }
    if pg:
        with psycopg.connect(f"{pg}/postgres") as conn:
            row = conn.execute("SHOW server_version").fetchone()
            described["postgresql"] = row[0] if row else None
    return described


def fresh_database(pg: str) -> str:
    name = f"jitpam_bench_{int(time.time())}_{os.getpid()}"
    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return name


def drop_database(pg: str, name: str) -> None:
    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def run(script: str, *args: str) -> list[dict[str, Any]]:
    """Run one benchmark script, echoing its output; return the rows of its JSON that have a
    target, in the common shape (bench/table.py)."""
    out = RESULTS / f"{Path(script).stem}-{len(list(RESULTS.glob('*.json')))}.json"
    command = [sys.executable, str(HERE / script), *args, "--json", str(out)]
    print(f"\n$ {' '.join(command[1:])}", flush=True)
    subprocess.run(command, check=True)
    found = json.loads(out.read_text())
    if "figures" in found:  # bench_scale.py: one figure per line, judged against its own bound
        where = found["database"]
        return [
            {
                "figure": f"{f['name']} ({where}, {sizes(found['sizes'])})",
                "jitpam": round(f["value"], 3),
                "ceiling": None,
                "against": "",
                "ratio": None,
                "target": f"<= {f['target']:g} {f['unit']}",
                "met": bool(f["met"]),
                "unit": f["unit"],
            }
            for f in found["figures"]
            if f["target"] is not None
        ]
    rows: list[dict[str, Any]] = []
    for r in found["rows"]:
        if "jitpam_us" not in r:
            rows.append(r)
        elif r["met"] is not None:  # bench_decide.py: microseconds against a ceiling or a peer
            rows.append(
                {
                    "figure": f"in-process decision, {r['figure']}",
                    "jitpam": r["jitpam_us"],
                    "ceiling": r["other_us"],
                    "against": r["other"],
                    "ratio": r["ratio"],
                    "target": r["target"],
                    "met": bool(r["met"]),
                    "unit": "µs",
                }
            )
    return rows


def sizes(given: dict[str, int] | None) -> str:
    return ", ".join(f"{v:,} {k}" for k, v in (given or {}).items()) or "data as found"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="tiny sizes, short runs")
    parser.add_argument("--no-scale", action="store_true", help="skip the 1,000,000-row run")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    for old in RESULTS.glob("*.json"):
        old.unlink()
    pg = None if args.no_pg else args.pg.rstrip("/")
    quick = args.quick
    http = ["--duration", "2", "--warmup", "0.5", "--rounds", "10"] if quick else []
    rows: list[dict[str, Any]] = []
    rows += run("bench_decide.py", "--sizes", "small" if quick else "full")
    rows += run("bench_db.py", "--n", "200" if quick else "3000")
    rows += run("bench_http.py", "--processes", "1", *http)
    rows += run("bench_sign_in.py", "--duration", "1" if quick else "5")
    rows += run(
        "bench_connectors.py",
        "--rounds",
        "5" if quick else "100",
        *(["--pg", f"{pg}/postgres"] if pg else ["--kinds", "ldap"]),
    )
    if pg:
        for step in ("db", "http"):
            name = fresh_database(pg)
            try:
                url = f"{pg}/{name}"
                if step == "db":
                    rows += run("bench_db.py", "--db", url, "--n", "200" if quick else "3000")
                else:
                    rows += run("bench_http.py", "--db", url, "--processes", "2", *http)
            finally:
                drop_database(pg, name)
    if not args.no_scale:
        rows += run("bench_scale.py", *(["--small"] if quick else []))
        if pg:
            name = fresh_database(pg)
            try:
                rows += run(
                    "bench_scale.py", "--db", f"{pg}/{name}", *(["--small"] if quick else [])
                )
            finally:
                drop_database(pg, name)
    described = machine(pg)
    table = markdown(rows)
    header = (
        f"{described['date']}, {described['cpu']}, {described['cores']} cores, "
        f"{described['memory_gib']} GiB; Python {described['python']}, SQLite "
        f"{described['sqlite']}, PostgreSQL {described['postgresql'] or '-'}"
        f"{' (quick run: sizes and durations cut, not for quoting)' if quick else ''}"
    )
    print(f"\n{header}\n\n{table}")
    (RESULTS / "latest.md").write_text(f"{header}\n\n{table}\n")
    (RESULTS / "latest.json").write_text(
        json.dumps({"machine": described, "quick": quick, "rows": rows}, indent=2) + "\n"
    )
    missed = [r["figure"] for r in rows if not r["met"]]
    print(f"\n{len(rows) - len(missed)} of {len(rows)} targets met")


if __name__ == "__main__":
    main()
