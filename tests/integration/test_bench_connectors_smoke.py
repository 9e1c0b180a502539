"""The connector benchmark runs (two rounds, a fast worker) in every test run, so it cannot rot;
it times nothing here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.integration.pg_roles import SERVER

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_connectors.py"


def test_the_connector_benchmark_runs_on_both_connectors(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            *("--rounds", "2", "--interval-ms", "100", "--pg", SERVER, "--json", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    figures = [r["figure"] for r in json.loads(out.read_text())["rows"]]
    assert [f.split(",")[0] for f in figures] == [
        "connector postgresql: approval to membership present",
        "connector postgresql: revocation to membership gone",
        "connector ldap: approval to membership present",
        "connector ldap: revocation to membership gone",
    ]
    assert "the change done directly" in done.stdout + "".join(figures)
