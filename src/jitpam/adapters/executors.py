"""Running task definitions: the definitions on disk, secrets by reference, and the three
executors (a command, an HTTP call, a Python entry point in a child process).

No shell is ever involved: a command is an argument list, each parameter inside one argument.
Every child runs in a process group of its own, so a timeout kills it with everything it started.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO
from urllib.parse import quote

import httpx

from jitpam.domain.errors import ErrorKind, JitpamError, TaskDefinitionInvalid
from jitpam.domain.task_definitions import (
    PLACEHOLDER,
    CommandExecutor,
    HttpExecutor,
    PythonExecutor,
    RunOutcome,
    TaskDefinition,
    fill_json,
    parse_definition,
    render_value,
    substitute,
)

SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
BASE_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "HOME")
KILL_GRACE = 5.0  # seconds to collect output after the process group is gone

# The child that calls a Python entry point: the function's return value is its output.
PYTHON_CHILD = """
import importlib, json, sys
sys.path[:0] = json.loads(sys.argv[1])
module, _, function = sys.argv[2].partition(":")
result = getattr(importlib.import_module(module), function)(**json.loads(sys.argv[3]))
if result is not None:
    print(result if isinstance(result, str) else json.dumps(result, sort_keys=True))
"""


class SecretUnavailable(JitpamError):
    """A secret (a task's or a connector's) is missing on the server: its configuration, not
    the user's input."""

    code = "secret_unavailable"
    kind = ErrorKind.UNAVAILABLE


def resolve_secret(reference: str, *, environ: Mapping[str, str], secrets_dir: Path | None) -> str:
    """The value of a secret reference (``env:NAME`` or ``file:NAME`` in ``secrets_dir``), as
    task definitions and connectors write them; raises SecretUnavailable."""
    kind, _, name = reference.partition(":")
    if kind == "env":
        value = environ.get(name)
        if value is None:
            raise SecretUnavailable(f"the secret {reference} is not set on the server")
        return value
    if kind != "file" or not SAFE_NAME.match(name) or secrets_dir is None:
        raise SecretUnavailable(f"the secret {reference} cannot be read on the server")
    try:
        return (secrets_dir / name).read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError):
        raise SecretUnavailable(f"the secret {reference} cannot be read on the server") from None


def load_definitions(tasks_dir: Path) -> dict[str, dict[str, TaskDefinition]]:
    """``tasks_dir/<organization>/*.toml``: every organization's task definitions. Raises
    TaskDefinitionInvalid listing every problem in every file (and tasks defined twice)."""
    found: dict[str, dict[str, TaskDefinition]] = {}
    problems: list[str] = []
    if not tasks_dir.is_dir():
        raise TaskDefinitionInvalid([f"{tasks_dir}: the task directory does not exist"])
    for org_dir in sorted(p for p in tasks_dir.iterdir() if p.is_dir()):
        defined: dict[str, TaskDefinition] = {}
        for path in sorted(org_dir.glob("*.toml")):
            try:
                d = parse_definition(
                    path.read_text(encoding="utf-8"),
                    source=str(path),
                    definition_dir=str(org_dir.resolve()),
                )
            except TaskDefinitionInvalid as exc:
                problems.extend(exc.problems)
                continue
            key = str(d.task)
            if key in defined:
                problems.append(
                    f"{path}:1: task: {key} is already defined in {defined[key].source}"
                )
                continue
            defined[key] = d
        if org_dir.name.lower() in found:
            problems.append(f"{org_dir}: another folder names the same organization")
            continue
        found[org_dir.name.lower()] = defined
    if problems:
        raise TaskDefinitionInvalid(problems)
    return found


class TaskRunner:
    """The adapter behind services.runner.TaskRunnerPort."""

    def __init__(
        self,
        definitions: Mapping[str, Mapping[str, TaskDefinition]],
        *,
        secrets_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._definitions = definitions
        self._secrets_dir = secrets_dir
        self._environ = environ if environ is not None else os.environ

    @classmethod
    def from_directory(cls, tasks_dir: str, secrets_dir: str) -> TaskRunner:
        defs = load_definitions(Path(tasks_dir).expanduser()) if tasks_dir else {}
        return cls(defs, secrets_dir=Path(secrets_dir).expanduser() if secrets_dir else None)

    def definitions(self, organization: str) -> Mapping[str, TaskDefinition]:
        return self._definitions.get(organization.lower(), {})

    def resolve_secret(self, reference: str) -> str:
        return resolve_secret(reference, environ=self._environ, secrets_dir=self._secrets_dir)

    def execute(
        self,
        definition: TaskDefinition,
        values: dict[str, str | int | bool],
        secrets: dict[str, str],
    ) -> RunOutcome:
        """Run it. The output is kept up to the definition's limit plus the longest secret, so
        the caller can mask a secret that straddles the limit before cutting the output."""
        builtins = {"python": sys.executable, "definition_dir": definition.definition_dir}
        limit = definition.output_limit_bytes + max(
            (len(v.encode()) for v in secrets.values()), default=0
        )
        ex = definition.executor
        if isinstance(ex, HttpExecutor):
            return _http(definition, ex, values, builtins, secrets, limit)
        env = {k: self._environ[k] for k in (*BASE_ENV,) if k in self._environ}
        if isinstance(ex, CommandExecutor):
            env |= {k: self._environ[k] for k in ex.env if k in self._environ}
            argv = [a for a in (substitute(t, values, builtins) for t in ex.argv) if a is not None]
            cwd = substitute(ex.workdir, {}, builtins) if ex.workdir else None
            env |= secrets
            return run_process(
                argv,
                cwd=cwd or definition.definition_dir,
                env=env,
                timeout=definition.timeout_seconds,
                limit=limit,
            )
        assert isinstance(ex, PythonExecutor)
        paths = [p for p in (substitute(t, {}, builtins) for t in ex.path) if p]
        env |= secrets
        argv = [
            sys.executable,
            "-I",  # isolated: no PYTHON* variables, no user site, no current directory on the path
            "-c",
            PYTHON_CHILD,
            json.dumps([*paths, definition.definition_dir]),
            ex.entry_point,
            json.dumps(values),
        ]
        return run_process(
            argv,
            cwd=definition.definition_dir,
            env=env,
            timeout=definition.timeout_seconds,
            limit=limit,
        )


def _collect(
    stream: IO[bytes], limit: int, into: list[bytes], over: list[bool], stop: threading.Event
) -> None:
    """Read the child's output to the end, or until told to stop; keep ``limit`` bytes and drop
    the rest (reading on, so a chatty child never blocks on a full pipe)."""
    kept = 0
    fd = stream.fileno()
    while not stop.is_set():
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        room = limit - kept
        if room > 0:
            into.append(chunk[:room])
            kept += min(room, len(chunk))
        if len(chunk) > room:
            over[0] = True


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def run_process(
    argv: list[str], *, cwd: str, env: dict[str, str], timeout: float, limit: int
) -> RunOutcome:
    """Run ``argv`` in a new session (its own process group) with stdout and stderr captured
    together; after ``timeout`` seconds the whole group is killed. Whatever the program started
    and left running is killed with the group when it ends, too."""
    start = time.monotonic()
    try:
        proc = subprocess.Popen(  # noqa: S603 - an argument list from the server's own definition
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return RunOutcome.failed_without_output(
            f"the program could not be started: {exc.strerror or exc}",
            duration_ms=int((time.monotonic() - start) * 1000),
        )
    assert proc.stdout is not None
    chunks: list[bytes] = []
    over = [False]
    stop = threading.Event()
    reader = threading.Thread(
        target=_collect, args=(proc.stdout, limit, chunks, over, stop), daemon=True
    )
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
    _kill_group(proc.pid)
    proc.wait()
    # A program that left its group (setsid) may still hold the pipe: stop reading after a grace.
    reader.join(KILL_GRACE)
    stop.set()
    reader.join()
    proc.stdout.close()
    output = b"".join(chunks).decode("utf-8", errors="replace")
    code = proc.returncode
    return RunOutcome(
        succeeded=not timed_out and code == 0,
        exit_code=None if timed_out else code,
        http_status=None,
        output=output,
        truncated=over[0],
        timed_out=timed_out,
        duration_ms=int((time.monotonic() - start) * 1000),
        error=f"timed out after {timeout:g} s; the process group was killed" if timed_out else None,
    )


def _http(
    definition: TaskDefinition,
    ex: HttpExecutor,
    values: dict[str, str | int | bool],
    builtins: dict[str, str],
    secrets: dict[str, str],
    limit: int,
) -> RunOutcome:
    start = time.monotonic()
    quoted = {k: quote(render_value(v), safe="") for k, v in values.items()}
    url = substitute(ex.url, quoted, builtins)
    headers = {
        k: v
        for k, v in (
            (name, substitute(template, values, builtins, secrets)) for name, template in ex.headers
        )
        if v is not None
    }
    body = fill_json(ex.body, values, builtins, secrets) if ex.body is not None else None

    def elapsed_ms() -> int:
        return int((time.monotonic() - start) * 1000)

    if url is None:
        return RunOutcome.failed_without_output(
            "the URL names a parameter that was not given", duration_ms=elapsed_ms()
        )
    in_url = {m.group(1) for m in PLACEHOLDER.finditer(ex.url)}
    if any(quoted.get(name) in (".", "..") for name in in_url):
        return RunOutcome.failed_without_output(
            "a URL parameter may not be '.' or '..' (it would change the path)",
            duration_ms=elapsed_ms(),
        )
    if any("\r" in v or "\n" in v for v in headers.values()):
        return RunOutcome.failed_without_output(
            "a header value would contain a line break", duration_ms=elapsed_ms()
        )
    deadline = start + definition.timeout_seconds
    try:
        with httpx.Client(
            timeout=definition.timeout_seconds, follow_redirects=False, trust_env=False
        ) as client:
            request = client.build_request(
                ex.method,
                url,
                headers=headers,
                content=json.dumps(body).encode() if body is not None else None,
            )
            if body is not None:
                request.headers["content-type"] = "application/json"
            response = client.send(request, stream=True)
            try:
                received = bytearray()
                for chunk in response.iter_bytes():
                    received.extend(chunk)
                    if len(received) > limit or time.monotonic() > deadline:
                        break
                status = response.status_code
            finally:
                response.close()
    except httpx.TimeoutException:
        return RunOutcome.failed_without_output(
            f"timed out after {definition.timeout_seconds} s",
            duration_ms=elapsed_ms(),
            timed_out=True,
        )
    except httpx.HTTPError as exc:
        return RunOutcome.failed_without_output(
            f"the call failed: {type(exc).__name__}", duration_ms=elapsed_ms()
        )
    if time.monotonic() > deadline:
        return RunOutcome.failed_without_output(
            f"timed out after {definition.timeout_seconds} s",
            duration_ms=elapsed_ms(),
            timed_out=True,
            http_status=status,
        )
    return RunOutcome(
        succeeded=200 <= status < 300,
        exit_code=None,
        http_status=status,
        output=bytes(received[:limit]).decode("utf-8", errors="replace"),
        truncated=len(received) > limit,
        timed_out=False,
        duration_ms=elapsed_ms(),
    )
