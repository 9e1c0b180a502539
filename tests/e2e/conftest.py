"""A real ``jitpam serve --demo`` process on a free port, and the CLI run as a subprocess."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import BACKENDS, PG_URL, postgresql_database

JITPAM = str(Path(sys.executable).with_name("jitpam"))
DEMO_PASSWORD = "contoso-demo-2026"
# Cheap hashing and relaxed throttling: the suite is not what these settings protect against.
FAST = {
    "JITPAM_ARGON2_TIME_COST": "1",
    "JITPAM_ARGON2_MEMORY_KIB": "8",
    "JITPAM_LOGIN_MAX_FAILURES": "1000",
    "JITPAM_LOGIN_MAX_CLIENT_FAILURES": "1000",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, proc: subprocess.Popen[bytes], deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # polling interval, not a wait for an effect
    raise RuntimeError("the server did not come up")


@dataclass
class Server:
    url: str
    data_dir: Path
    proc: subprocess.Popen[bytes]
    env: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_server(
    tmp: Path, *args: str, extra_env: dict[str, str] | None = None, port: int | None = None
) -> Server:
    port = port or free_port()
    env = {**os.environ, **FAST, **(extra_env or {})}
    with (tmp / f"server-{port}.log").open("wb") as log:  # the child keeps its own copy
        proc = subprocess.Popen(
            [JITPAM, "serve", "--port", str(port), "--data-dir", str(tmp / "data"), *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", tmp / "data", proc, env)
    try:
        wait_until_up(server.url, proc)
    except RuntimeError:
        server.stop()
        raise RuntimeError((tmp / f"server-{port}.log").read_text()) from None
    return server


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("demo"), "--demo")
    yield server
    server.stop()


@dataclass
class Cli:
    server: Server
    config_dir: Path
    token: str | None = None  # sent as JITPAM_TOKEN when a command is given none (sign_in)

    def run(
        self, *args: str, stdin: str | None = None, token: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            **FAST,
            "JITPAM_URL": self.server.url,
            "JITPAM_CONFIG_DIR": str(self.config_dir),
        }
        env.pop("JITPAM_TOKEN", None)
        token = token or self.token
        if token:
            env["JITPAM_TOKEN"] = token
        return subprocess.run(
            [JITPAM, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    def run_all(
        self, *commands: Sequence[str], token: str | None = None
    ) -> list[subprocess.CompletedProcess[str]]:
        """Commands that depend on no other's effect, each run as ``run`` runs it (a process
        of its own), several at once; the results in the commands' order. A command mostly
        spends its time starting Python and importing jitpam, which the machine's cores share."""
        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(lambda args: self.run(*args, token=token), commands))

    def json(self, *args: str, stdin: str | None = None) -> Any:
        done = self.run(*args, "--json", stdin=stdin)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def login(self, upn: str) -> None:
        """``jitpam login``: the token saved in the config directory (and no sign_in's)."""
        self.token = None
        done = self.run("login", "--user", upn, "--password-stdin", stdin=DEMO_PASSWORD + "\n")
        assert done.returncode == 0, done.stderr

    def sign_in(self, upn: str) -> None:
        """Later commands act as ``upn`` (JITPAM_TOKEN, from the sign-in API): for a test's
        set-up, where ``login`` would cost a process of its own and sign-in is not the point."""
        self.token = token_for(self.server, upn)


@pytest.fixture
def cli(demo_server: Server, tmp_path: Path) -> Cli:
    return Cli(demo_server, tmp_path / "config")


def token_for(server: Server, upn: str) -> str:
    response = httpx.post(
        f"{server.url}/api/v1/auth/login", json={"user": upn, "password": DEMO_PASSWORD}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def call(server: Server, token: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One API call as ``token``'s user (``path`` after /api/v1)."""
    return httpx.request(
        method,
        f"{server.url}/api/v1{path}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        **kwargs,
    )


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The problem+json body of a refusal with ``status``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    doc: dict[str, Any] = response.json()
    assert doc["status"] == status
    return doc


def shell(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A README command line as a user types it (bash, the given environment)."""
    return subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def on_the_server(db: str, *args: str) -> Any:
    """A server command (it opens the database itself), its JSON answer."""
    done = subprocess.run(
        [JITPAM, *args, "--db", db, "--json"],
        env={**os.environ, **FAST},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@contextmanager
def fresh_postgresql_database(prefix: str, *, migrated: bool = True) -> Iterator[str]:
    """A new database on the test PostgreSQL server, dropped afterwards: a copy of a database
    migrated once per session (``CREATE DATABASE ... TEMPLATE``), or empty."""
    assert PG_URL is not None
    with postgresql_database(PG_URL, prefix, migrated=migrated) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def fresh_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database no other test writes, migrated (on SQLite a new file that the first to open
    it migrates: cheap there)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
        return
    with fresh_postgresql_database("jitpam_two") as url:
        yield url


@pytest.fixture(params=BACKENDS)
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database no other test writes, with no schema yet: for tests of migrating from empty."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
        return
    with fresh_postgresql_database("jitpam_empty", migrated=False) as url:
        yield url


@pytest.fixture(scope="session")
def demo_server_on(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Server]]:
    """``jitpam serve --demo`` on the named database ("sqlite" or "postgresql"), started the
    first time a test asks for it and shared by the session's tests that take any server's
    demo organization as they find it (a fresh PostgreSQL database of its own)."""
    started: dict[str, Server] = {}
    with ExitStack() as stack:

        def on(backend: str) -> Server:
            if backend not in started:
                tmp = tmp_path_factory.mktemp(f"demo-{backend}")
                args = ["--demo"]
                if backend == "postgresql":
                    args += ["--db", stack.enter_context(fresh_postgresql_database("jitpam_demo"))]
                started[backend] = server = start_server(tmp, *args)
                stack.callback(server.stop)
            return started[backend]

        yield on
