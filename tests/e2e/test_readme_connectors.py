"""The README's connector walk-through, run line by line as a user would type it: a PostgreSQL
role and an OpenLDAP server of its own, the demo server with contoso's connectors, a grant that
shows in both systems and a revocation that takes it away.

Two things differ from what a reader types, so that the test can run beside anything else: the
slapd port (3890) and its folder (/tmp/jitpam-slapd) are the test's own, in the commands and in a
copy of examples/connectors; and the test starts the demo server itself (the README's `make demo
&`), with the environment the walk-through exports. A line that reads a target system is
repeated until it shows what the README says (the worker acts within about a second)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import FAST, JITPAM, start_server
from tests.integration.pg_roles import SERVER, admin

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SECTION = "### Walk-through: a grant in PostgreSQL and in LDAP"


def walkthrough() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.S)
    assert block, "the README has the connector walk-through"
    joined = block.group(1).replace("\\\n", " ")
    return [
        line.strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _drop_walkthrough_roles() -> None:
    with admin() as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE usename IN ('alice', 'jitpam_connector')"
        )
        for role in ("alice", "mailbox_searchers", "jitpam_connector"):
            conn.execute(f"DROP ROLE IF EXISTS {role}")


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A copy of the examples with the test's port and folder, and what to replace in lines."""
    port, slapd_dir = str(free_port()), tmp_path / "slapd"
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    for path in (tmp_path / "examples").rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            text = text.replace("/tmp/jitpam-slapd", str(slapd_dir)).replace("3890", port)
            path.write_text(text, encoding="utf-8")
    yield tmp_path, {"/tmp/jitpam-slapd": str(slapd_dir), "3890": port}
    pid = slapd_dir / "slapd.pid"
    if pid.exists():  # the walk-through stops it; a failed run may not have got so far
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid.read_text().strip()), signal.SIGTERM)
    _drop_walkthrough_roles()


def test_the_connector_walkthrough_runs_as_written(
    workdir: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    cwd, swaps = workdir
    psql_server = SERVER.rsplit("/", 1)[0]
    assert psql_server.endswith("127.0.0.1:5432"), "the walk-through names the local server"
    env = {
        **os.environ,
        **FAST,
        "JITPAM_CONFIG_DIR": str(tmp_path / "cli"),
        "PATH": f"{Path(JITPAM).parent}:{os.environ['PATH']}",
    }
    env.pop("JITPAM_TOKEN", None)
    server = None
    authorization = ""
    granted = False  # what the target systems must show: alice a member, or not
    try:
        for line in walkthrough():
            for old, new in swaps.items():
                line = line.replace(old, new)
            line = line.replace("AUTHORIZATION_ID", authorization)
            if line.startswith("export "):
                for name, value in re.findall(r"(\w+)=(\S+)", line):
                    if name not in ("PATH", "JITPAM_URL"):  # the test's own: venv, server
                        env[name] = value
                continue
            if line == "make demo &":
                env["JITPAM_URL"] = "set by the server below"
                connectors = cwd / env.pop("JITPAM_CONNECTORS_DIR")
                server = start_server(
                    tmp_path,
                    "--demo",
                    extra_env={**env, "JITPAM_CONNECTORS_DIR": str(connectors)},
                )
                env["JITPAM_URL"] = server.url
                continue
            if "request new --role" in line:
                granted = True
            elif "authorization revoke" in line:
                granted = False
            done = run(line, env, cwd, member=granted)
            found = re.search(r"^authorization_id\s+(\S+)", done.stdout, flags=re.M)
            if found:
                authorization = found.group(1)
    finally:
        if server is not None:
            server.stop()


def run(
    line: str, env: dict[str, str], cwd: Path, *, member: bool
) -> subprocess.CompletedProcess[str]:
    """Run one line; a line reading a target system again until it shows what the README's
    comment above it promises: the membership, then its absence."""
    reads = line.startswith(("psql -h 127.0.0.1 -U postgres -Atc", "ldapsearch"))
    deadline = time.monotonic() + (30 if reads else 0)
    while True:
        done = subprocess.run(
            ["bash", "-c", line],
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        if not reads or _as_promised(line, done.stdout, member) or time.monotonic() > deadline:
            break
        time.sleep(0.2)  # polling interval
    if reads:
        assert _as_promised(line, done.stdout, member), f"{line}\n{done.stdout}"
    return done


def _as_promised(line: str, out: str, member: bool) -> bool:
    if line.startswith("psql"):
        return out.strip() == ("t" if member else "f")
    return ("uid=alice" in out) is member
