"""Writes while people sign in: how many other writes commit per second while sign-ins run, beside
the same writes with no sign-in running (the ceiling), measured in the same run.

    .venv/bin/python bench/bench_sign_in.py [--db URL] [--duration 5] [--signers 2]

A sign-in checks a password with Argon2id at the server's settings (slow on purpose: some 0.1 to
0.4 s). Were it checked inside the sign-in's write transaction, every other write would wait for
it on SQLite, where one transaction writes at a time. The writes measured are Set-User (a display
name changed, audited), one after another on one thread; ``--signers`` threads sign in over and
over meanwhile. The row's target: writes keep at least a tenth of their rate while the hashes
run. The hashes still take CPU (two of them fill a two-core machine), but not the write lock:
with the hash inside the transaction, writes fell to under 2% of their rate, each waiting for
the sign-ins ahead of it (1.3 against 87.5 per second, the slowest 1.5 s, on two loaded cores).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

from org import bench_organization  # bench/org.py, beside this script
from table import row

from jitpam.bootstrap import build_context
from jitpam.services import auth, directory
from jitpam.services.context import Caller, ServiceContext
from jitpam.settings import Settings

PASSWORD = "a-bench-password-long-enough"


def writes_per_second(
    ctx: ServiceContext, admin: Caller, upn: str, duration: float
) -> tuple[float, float]:
    """Set-User calls committed per second for ``duration`` seconds, and their slowest (s)."""
    done, slowest = 0, 0.0
    end = time.perf_counter() + duration
    started = time.perf_counter()
    while (now := time.perf_counter()) < end:
        directory.set_user(ctx, caller=admin, upn=upn, display_name=f"Writer {done}")
        slowest = max(slowest, time.perf_counter() - now)
        done += 1
    return done / (time.perf_counter() - started), slowest


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--signers", type=int, default=2, help="threads signing in meanwhile")
    parser.add_argument("--json", type=Path, help="write the rows here too")
    args = parser.parse_args()
    url = args.db or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    ctx, engine = build_context(database_url=url, settings=Settings())
    made = bench_organization(ctx)
    writer = directory.add_user(
        ctx, caller=made.admin, upn=f"writer@{made.domain}", display_name="Writer"
    )
    signer = directory.add_user(
        ctx, caller=made.admin, upn=f"signer@{made.domain}", display_name="Signer"
    )
    auth.set_password(ctx, caller=Caller(made.org.id, signer.id), upn=signer.upn, password=PASSWORD)
    writes_per_second(ctx, made.admin, writer.upn, 0.5)  # warm up

    ceiling, ceiling_slowest = writes_per_second(ctx, made.admin, writer.upn, args.duration)

    stop = threading.Event()
    sign_ins = [0] * args.signers

    def sign_in_again_and_again(i: int) -> None:
        while not stop.is_set():
            auth.sign_in(ctx, upn=signer.upn, password=PASSWORD, client=f"bench-{i}")
            sign_ins[i] += 1

    threads = [
        threading.Thread(target=sign_in_again_and_again, args=(i,)) for i in range(args.signers)
    ]
    for t in threads:
        t.start()
    try:
        during, during_slowest = writes_per_second(ctx, made.admin, writer.upn, args.duration)
    finally:
        stop.set()
        for t in threads:
            t.join()
    signed = sum(sign_ins) / args.duration
    where = engine.dialect.name
    print(f"database: {where}, {args.duration:g} s per measurement, {args.signers} signing in")
    print(f"ceiling: Set-User alone          {ceiling:8.1f} /s   slowest {ceiling_slowest:.3f} s")
    print(f"Set-User while sign-ins run      {during:8.1f} /s   slowest {during_slowest:.3f} s")
    print(f"sign-ins meanwhile               {signed:8.1f} /s")
    rows = [
        row(
            f"writes (Set-User) per second while {args.signers} threads sign in ({where})",
            during,
            ceiling,
            "the same writes, no sign-in running",
            at_least=0.1,
            unit="/s",
        )
    ]
    if args.json:
        args.json.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    engine.dispose()


if __name__ == "__main__":
    main()
