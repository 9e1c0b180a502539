"""The decision benchmark runs (on tiny data) in every test run, so it cannot rot; no timing is
asserted, only that every system answered every sampled pair as jitpam did and the table exists."""

from __future__ import annotations

import json
from pathlib import Path

from bench import bench_decide


def test_the_decision_benchmark_agrees_on_every_pair_and_writes_its_table(
    database_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "results" / "decide.json"
    report = bench_decide.main(
        ["--sizes", "small", "--db", database_url, "--n", "40", "--json", str(out)]
    )
    written = json.loads(out.read_text())
    assert written["rows"] == report["rows"]
    systems = {"jitpam", "ceiling", "casbin", "cedar"}
    for size in written["sizes"]:
        assert size["allowed"], "the sample holds allowed pairs"
        assert size["allowed"] < 40, "and denied ones"
        assert size["agree"]["jitpam"] == 40
        for system in systems - {"jitpam"}:
            # main() fails on any disagreement; the counts say every pair was compared.
            assert size["agree"][system] == 40, system
        assert systems <= {m["system"] for m in size["measured"]}
    others = {row["other"] for row in written["rows"]}
    assert {"dict ceiling", "casbin", "cedar"} <= others
    assert any(row["figure"].startswith("100 vs 10 policies") for row in written["rows"])
    for row in written["rows"]:
        assert set(row) == {"figure", "jitpam_us", "other", "other_us", "ratio", "target", "met"}
        assert row["jitpam_us"] > 0
        assert row["other_us"] > 0
