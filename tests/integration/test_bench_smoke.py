"""The benchmark runs (on tiny data) in every test run, so it cannot rot; it times nothing here."""

from __future__ import annotations

import json
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


def run_bench(script: str, *args: str, tmp_path: Path) -> dict[str, object]:
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(BENCH.parent / script), *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    figures: dict[str, object] = json.loads(out.read_text())
    return figures


def test_the_http_benchmark_loads_real_servers_and_reports_each_figure(tmp_path: Path) -> None:
    figures = run_bench(
        "bench_http.py",
        "--processes", "2", "--duration", "0.5", "--warmup", "0.2", "--rounds", "3",
        "--connections", "4",
        tmp_path=tmp_path,
    )  # fmt: skip
    for name in ("bare", "bare_sync", "check", "create_request", "approve"):
        measured = figures[name]
        assert isinstance(measured, dict)
        assert measured["answered"] > 0, name
        assert set(measured["statuses"]) <= {"200", "201"}, (name, measured["statuses"])
    visibility = figures["visibility"]
    assert isinstance(visibility, dict)
    assert visibility["revocation"]["rounds"] == 3
    rows = figures["rows"]
    assert isinstance(rows, list)
    assert any("revocation seen by a check on another process" in r["figure"] for r in rows)


def test_the_database_layer_benchmark_keeps_the_chain_whole(tmp_path: Path) -> None:
    figures = run_bench("bench_db.py", "--n", "5", tmp_path=tmp_path)
    assert figures["chain_ok"] is True
    rows = figures["rows"]
    assert isinstance(rows, list)
    assert rows[0]["against"] == "raw driver"


def test_the_sign_in_benchmark_measures_writes_beside_their_ceiling(tmp_path: Path) -> None:
    figures = run_bench(
        "bench_sign_in.py", "--duration", "0.3", "--signers", "1", tmp_path=tmp_path
    )
    rows = figures["rows"]
    assert isinstance(rows, list)
    (writes,) = rows
    assert writes["against"] == "the same writes, no sign-in running"
    assert writes["ceiling"] > 0
