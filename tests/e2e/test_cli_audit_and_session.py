"""Audit export, checkpoints and verification, sign-out and metrics, from the command line."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import httpx

from tests.e2e.conftest import Cli


def test_audit_exports_as_json_lines_and_csv(cli: Cli, tmp_path: Path) -> None:
    cli.sign_in("admin@contoso.com")
    lines = cli.run("audit", "export", "--format", "jsonl").stdout.splitlines()
    records = [json.loads(line) for line in lines]
    assert {r["operation"] for r in records} >= {"New-Organization", "Sign-In"}
    out = tmp_path / "audit.csv"
    assert cli.run("audit", "export", "--format", "csv", "--output", str(out)).returncode == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) >= len(records)
    assert set(rows[0]) >= {
        "seq",
        "at",
        "actor",
        "operation",
        "target",
        "outcome",
        "details",
        "hash",
    }


def test_a_checkpoint_file_verifies_and_a_forged_one_does_not(cli: Cli, tmp_path: Path) -> None:
    cli.sign_in("admin@contoso.com")
    checkpoint = tmp_path / "checkpoint.json"
    assert cli.run("audit", "checkpoint", "--output", str(checkpoint)).returncode == 0
    good = cli.json("audit", "verify", "--checkpoint", str(checkpoint))
    assert good["ok"] is True
    assert good["checkpoint_signature_valid"] is True
    forged = json.loads(checkpoint.read_text())
    forged["head_hash"] = "0" * 64
    checkpoint.write_text(json.dumps(forged))
    bad = cli.run("audit", "verify", "--checkpoint", str(checkpoint), "--json")
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["checkpoint_signature_valid"] is False


def test_logout_revokes_the_saved_token(cli: Cli) -> None:
    cli.login("carol@contoso.com")
    token = json.loads((cli.config_dir / "credentials.json").read_text())["token"]
    assert oct((cli.config_dir / "credentials.json").stat().st_mode & 0o777) == "0o600"
    assert cli.run("logout").returncode == 0
    assert not (cli.config_dir / "credentials.json").exists()
    assert cli.run("request", "list", token=token).returncode == 4


def test_metrics_count_requests_and_decisions(cli: Cli) -> None:
    cli.sign_in("alice@contoso.com")
    cli.run("check", "--task", "Exchange\\New-MoveRequest")
    metrics = httpx.get(cli.server.url + "/metrics").text
    assert 'jitpam_http_requests_total{method="POST",route="/api/v1/check"' in metrics
    assert "jitpam_check_decisions_total" in metrics
    assert "jitpam_http_request_seconds_bucket" in metrics
