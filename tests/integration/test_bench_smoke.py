"""The benchmark runs (on tiny data) in every test run, so it cannot rot; it times nothing here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_check.py"


def test_the_check_benchmark_runs_and_prints_its_table() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--n", "3", "--policies", "50"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "ceiling: bare insert + commit" in done.stdout
    assert "check_access (audited, index), 50 policies" in done.stdout
    assert "check_access (audited, database reads)" in done.stdout
    assert "in process: index look-up + decide()" in done.stdout
