"""Task definitions: how jitpam runs a protected task for a user, so nobody holds its credential.

One TOML file per task, in the organization's folder of the server's task directory::

    task = "Exchange\\New-MoveRequest"
    description = "Move a mailbox to another database"
    timeout_seconds = 60
    concurrency = 2
    keep_output = true

    [parameters.Identity]
    type = "string"            # string, integer, boolean or choice
    required = true
    pattern = '^[^@\\s]+@[^@\\s]+$'

    [parameters.TargetDatabase]
    type = "choice"
    choices = ["DB01", "DB02"]

    [secrets]
    EXO_TOKEN = "file:exchange-token"   # or "env:NAME"; resolved at run time, never stored

    [command]                  # or [http], or [python]: exactly one executor
    argv = ["{python}", "{definition_dir}/move.py", "--identity", "{Identity}"]

A ``{Name}`` placeholder is replaced by the parameter's value inside one argument, header or
string; the value never becomes more than that one element (no shell, ever). ``{secret:NAME}``
names a secret in an HTTP header or body. Parsing reports every problem with file, line and field.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from jitpam.domain.config_files import Problems, secret_reference_problem
from jitpam.domain.control import pattern_problem
from jitpam.domain.errors import InvalidInput, TaskDefinitionInvalid
from jitpam.domain.names import QualifiedName

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*(?::[A-Za-z_][A-Za-z0-9_]*)?)\}")
PARAMETER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
BUILTIN_PLACEHOLDERS = frozenset({"python", "definition_dir"})
HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
MAX_TIMEOUT = 24 * 3600
MAX_OUTPUT = 16 * 1024 * 1024
MAX_VALUE = 4096


class ParameterType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    CHOICE = "choice"


@dataclass(frozen=True)
class Parameter:
    name: str
    type: ParameterType
    required: bool = False
    description: str = ""
    pattern: str | None = None
    choices: tuple[str, ...] = ()
    allow_leading_dash: bool = False  # off: a value cannot pose as an option ("--output=...")

    def parse(self, raw: object) -> str | int | bool:
        """The typed value of ``raw`` (a JSON value, or the text typed on a command line);
        raises InvalidInput naming the parameter."""
        where = f"parameter {self.name!r}"
        if self.type is ParameterType.BOOLEAN:
            if isinstance(raw, bool):
                return raw
            if isinstance(raw, str) and raw.lower() in ("true", "false"):
                return raw.lower() == "true"
            raise InvalidInput(f"{where} must be true or false")
        if self.type is ParameterType.INTEGER:
            if isinstance(raw, bool):
                raise InvalidInput(f"{where} must be a whole number")
            if isinstance(raw, int):
                return raw
            if isinstance(raw, str) and re.fullmatch(r"-?[0-9]{1,18}", raw.strip()):
                return int(raw.strip())
            raise InvalidInput(f"{where} must be a whole number")
        if not isinstance(raw, str):
            raise InvalidInput(f"{where} must be text")
        if len(raw) > MAX_VALUE:
            raise InvalidInput(f"{where} is longer than {MAX_VALUE} characters")
        if "\x00" in raw:
            raise InvalidInput(f"{where} contains a NUL character")
        if (
            raw.startswith("-")
            and not self.allow_leading_dash
            and self.type is not (ParameterType.CHOICE)
        ):
            raise InvalidInput(
                f"{where} must not start with '-' (it could pass for an option of the program)"
            )
        if self.type is ParameterType.CHOICE and raw not in self.choices:
            raise InvalidInput(f"{where} must be one of: {', '.join(self.choices)}")
        if self.pattern is not None and not re.fullmatch(self.pattern, raw):
            raise InvalidInput(f"{where} does not match the pattern {self.pattern}")
        return raw


@dataclass(frozen=True)
class CommandExecutor:
    argv: tuple[str, ...]
    workdir: str | None = None
    env: tuple[str, ...] = ()  # names passed through from the server's environment


@dataclass(frozen=True)
class HttpExecutor:
    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    body: Any = None  # a JSON template, or None for no body


@dataclass(frozen=True)
class PythonExecutor:
    entry_point: str  # package.module:function
    path: tuple[str, ...] = ()  # extra import paths ({definition_dir} allowed)


Executor = CommandExecutor | HttpExecutor | PythonExecutor


@dataclass(frozen=True)
class TaskDefinition:
    task: QualifiedName
    description: str
    parameters: tuple[Parameter, ...]
    executor: Executor
    source: str
    definition_dir: str
    secrets: dict[str, str] = field(default_factory=dict)  # name -> "env:X" / "file:X"
    timeout_seconds: int = 60
    concurrency: int = 1
    keep_output: bool = False
    output_limit_bytes: int = 64 * 1024

    @property
    def kind(self) -> str:
        return {CommandExecutor: "command", HttpExecutor: "http", PythonExecutor: "python"}[
            type(self.executor)
        ]

    def validate(self, given: dict[str, object]) -> dict[str, str | int | bool]:
        """The typed parameters of a run: every unknown, missing or malformed one is refused,
        all named in one error."""
        known = {p.name: p for p in self.parameters}
        problems = [f"unknown parameter {name!r}" for name in sorted(given) if name not in known]
        values: dict[str, str | int | bool] = {}
        for p in self.parameters:
            if p.name not in given:
                if p.required:
                    problems.append(f"parameter {p.name!r} is required")
                continue
            try:
                values[p.name] = p.parse(given[p.name])
            except InvalidInput as exc:
                problems.append(exc.message)
        if problems:
            raise InvalidInput(f"{self.task}: " + "; ".join(problems))
        return values


def render_value(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def substitute(
    template: str,
    values: Mapping[str, str | int | bool],
    builtins: dict[str, str],
    secrets: dict[str, str] | None = None,
) -> str | None:
    """``template`` with its placeholders filled in; None when it names an optional parameter
    that was not given (the element is then left out). A value is inserted as it is: it is never
    parsed again, so it cannot add arguments, headers or JSON structure."""
    missing = False

    def fill(m: re.Match[str]) -> str:
        nonlocal missing
        name = m.group(1)
        if name.startswith("secret:"):
            if secrets is None:
                raise InvalidInput(f"a secret cannot be used here: {m.group(0)}")
            return secrets[name.removeprefix("secret:")]
        if name in builtins:
            return builtins[name]
        if name not in values:
            missing = True
            return ""
        return render_value(values[name])

    out = PLACEHOLDER.sub(fill, template)
    return None if missing else out


def fill_json(
    template: Any,
    values: dict[str, str | int | bool],
    builtins: dict[str, str],
    secrets: dict[str, str],
) -> Any:
    """A JSON body from its template: a string that is exactly ``{Name}`` becomes the typed value;
    other strings get text substitution; keys whose value names a missing optional parameter are
    left out."""
    if isinstance(template, dict):
        out = {}
        for key, item in template.items():
            filled = fill_json(item, values, builtins, secrets)
            if filled is not _MISSING:
                out[key] = filled
        return out
    if isinstance(template, list):
        return [
            f
            for f in (fill_json(i, values, builtins, secrets) for i in template)
            if f is not _MISSING
        ]
    if isinstance(template, str):
        whole = PLACEHOLDER.fullmatch(template)
        if whole and whole.group(1) in values:
            return values[whole.group(1)]
        filled = substitute(template, values, builtins, secrets)
        return _MISSING if filled is None else filled
    return template


_MISSING: Any = object()


# -- parsing ----------------------------------------------------------------------------------


def _text(
    doc: dict[str, Any], key: str, problems: Problems, path: tuple[str, ...], required: bool
) -> str | None:
    value = doc.get(key)
    if value is None:
        if required:
            problems.add((*path, key), "is required")
        return None
    if not isinstance(value, str) or not value.strip():
        problems.add((*path, key), "must be non-empty text")
        return None
    return value


def _whole(
    doc: dict[str, Any], key: str, default: int, low: int, high: int, problems: Problems
) -> int:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        problems.add((key,), f"must be a whole number from {low} to {high}")
        return default
    return value


def _string_list(value: Any, path: tuple[str, ...], problems: Problems) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.add(path, "must be a list of text")
        return ()
    return tuple(value)


def _parameters(doc: Any, problems: Problems) -> tuple[Parameter, ...]:
    if doc is None:
        return ()
    if not isinstance(doc, dict):
        problems.add(("parameters",), "must be a table of parameters")
        return ()
    found = []
    for name, spec in doc.items():
        path = ("parameters", name)
        if not PARAMETER_NAME.match(name) or name in BUILTIN_PLACEHOLDERS:
            problems.add(path, "a parameter name is a letter or _ then letters, digits or _")
            continue
        if not isinstance(spec, dict):
            problems.add(path, "must be a table")
            continue
        unknown = set(spec) - {
            "type",
            "required",
            "description",
            "pattern",
            "choices",
            "allow_leading_dash",
        }
        for key in sorted(unknown):
            problems.add((*path, key), "is not a parameter field")
        try:
            kind = ParameterType(spec.get("type", "string"))
        except ValueError:
            problems.add((*path, "type"), "must be string, integer, boolean or choice")
            continue
        pattern = spec.get("pattern")
        if pattern is not None:
            if kind is not ParameterType.STRING or not isinstance(pattern, str):
                problems.add((*path, "pattern"), "is text, for string parameters only")
                pattern = None
            elif pattern_problem(pattern) is not None:
                problems.add((*path, "pattern"), f"{pattern_problem(pattern)}")
                pattern = None
        choices: tuple[str, ...] = ()
        if kind is ParameterType.CHOICE:
            choices = _string_list(spec.get("choices"), (*path, "choices"), problems)
            if not choices:
                problems.add((*path, "choices"), "a choice parameter lists its choices")
        elif "choices" in spec:
            problems.add((*path, "choices"), "is for choice parameters only")
        required = spec.get("required", False)
        if not isinstance(required, bool):
            problems.add((*path, "required"), "must be true or false")
            required = False
        dash = spec.get("allow_leading_dash", False)
        if not isinstance(dash, bool) or (dash and kind is not ParameterType.STRING):
            problems.add((*path, "allow_leading_dash"), "is true or false, for strings only")
            dash = False
        description = spec.get("description", "")
        if not isinstance(description, str):
            problems.add((*path, "description"), "must be text")
            description = ""
        found.append(
            Parameter(
                name,
                kind,
                required,
                description,
                pattern,
                choices,
                dash,
            )
        )
    return tuple(found)


def _placeholders_known(
    texts: list[str], names: set[str], secrets: set[str], allow_secrets: bool
) -> list[str]:
    """The placeholders in ``texts`` that name nothing (or a secret where none may go)."""
    bad = []
    for text in texts:
        for m in PLACEHOLDER.finditer(text):
            name = m.group(1)
            if name.startswith("secret:"):
                if not allow_secrets or name.removeprefix("secret:") not in secrets:
                    bad.append(m.group(0))
            elif name not in names and name not in BUILTIN_PLACEHOLDERS:
                bad.append(m.group(0))
    return bad


def _json_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _json_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _json_strings(v)]
    return []


def _executor(
    doc: dict[str, Any], names: set[str], secrets: set[str], problems: Problems
) -> Executor | None:
    present = [k for k in ("command", "http", "python") if k in doc]
    if len(present) != 1:
        problems.add(("command",), "define exactly one executor: [command], [http] or [python]")
        return None
    kind = present[0]
    spec = doc[kind]
    if not isinstance(spec, dict):
        problems.add((kind,), "must be a table")
        return None

    def unknown(allowed: set[str]) -> None:
        for key in sorted(set(spec) - allowed):
            problems.add((kind, key), f"is not a field of [{kind}]")

    def placeholders(texts: list[str], key: str, allow_secrets: bool) -> None:
        for bad in _placeholders_known(texts, names, secrets, allow_secrets):
            if not bad.startswith("{secret:"):
                problems.add((kind, key), f"{bad} names no parameter")
            elif allow_secrets:
                problems.add((kind, key), f"{bad} names no secret of [secrets]")
            else:
                problems.add(
                    (kind, key),
                    f"{bad}: secrets may not stand here (a command or Python task gets them "
                    "as environment variables)",
                )

    def builtin_only(text: str, key: str) -> None:
        for m in PLACEHOLDER.finditer(text):
            if m.group(1) not in BUILTIN_PLACEHOLDERS:
                problems.add(
                    (kind, key),
                    f"{m.group(0)}: only {{python}} and {{definition_dir}} may stand here, "
                    "never a parameter",
                )

    if kind == "command":
        unknown({"argv", "workdir", "env"})
        argv = _string_list(spec.get("argv"), (kind, "argv"), problems)
        if "argv" in spec and not argv:
            problems.add((kind, "argv"), "names the program to run, then its arguments")
        elif "argv" not in spec:
            problems.add((kind, "argv"), "is required")
        placeholders(list(argv), "argv", False)
        workdir = spec.get("workdir")
        if workdir is not None and not isinstance(workdir, str):
            problems.add((kind, "workdir"), "must be text")
            workdir = None
        if workdir is not None:
            builtin_only(workdir, "workdir")
        env = _string_list(spec.get("env", []), (kind, "env"), problems)
        return CommandExecutor(argv, workdir, env) if argv else None
    if kind == "http":
        unknown({"method", "url", "headers", "body"})
        method = str(spec.get("method", "POST")).upper()
        if method not in HTTP_METHODS:
            problems.add((kind, "method"), f"must be one of {', '.join(sorted(HTTP_METHODS))}")
        url = _text(spec, "url", problems, (kind,), True)
        if url is not None and not url.startswith(("https://", "http://")):
            problems.add((kind, "url"), "must be an http:// or https:// URL")
        elif url is not None and "{" in re.split(r"[/?#]", url.split("://", 1)[1], maxsplit=1)[0]:
            problems.add(
                (kind, "url"),
                "placeholders may stand in the path and query only: a parameter must never "
                "choose the host a call goes to",
            )
        headers = spec.get("headers", {})
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            problems.add((kind, "headers"), "must be a table of text values")
            headers = {}
        placeholders([url or ""], "url", False)
        placeholders(list(headers.values()), "headers", True)
        body = spec.get("body")
        if body is not None and not isinstance(body, dict | list):
            problems.add((kind, "body"), "must be a table or a list (the JSON sent)")
            body = None
        placeholders(_json_strings(body), "body", True)
        if url is None:
            return None
        return HttpExecutor(method, url, tuple(headers.items()), body)
    unknown({"entry_point", "path"})
    entry = _text(spec, "entry_point", problems, (kind,), True)
    if entry is not None and not re.fullmatch(
        r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*", entry
    ):
        problems.add((kind, "entry_point"), "must look like package.module:function")
        entry = None
    path = _string_list(spec.get("path", []), (kind, "path"), problems)
    for item in path:
        builtin_only(item, "path")
    return PythonExecutor(entry, path) if entry is not None else None


def parse_definition(text: str, *, source: str, definition_dir: str) -> TaskDefinition:
    """One task definition; raises TaskDefinitionInvalid listing every problem as
    ``file:line: field: message``."""
    problems = Problems(source, text)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TaskDefinitionInvalid([f"{source}: not valid TOML: {exc}"]) from None
    known = {
        "task",
        "description",
        "timeout_seconds",
        "concurrency",
        "keep_output",
        "output_limit_bytes",
        "parameters",
        "secrets",
        "command",
        "http",
        "python",
    }
    for key in sorted(set(doc) - known):
        problems.add((key,), "is not a field of a task definition")
    task_text = _text(doc, "task", problems, (), True)
    task: QualifiedName | None = None
    if task_text is not None:
        try:
            task = QualifiedName.parse(task_text)
        except InvalidInput as exc:
            problems.add(("task",), exc.message)
    description = doc.get("description", "")
    if not isinstance(description, str):
        problems.add(("description",), "must be text")
        description = ""
    timeout = _whole(doc, "timeout_seconds", 60, 1, MAX_TIMEOUT, problems)
    concurrency = _whole(doc, "concurrency", 1, 1, 1000, problems)
    limit = _whole(doc, "output_limit_bytes", 64 * 1024, 1024, MAX_OUTPUT, problems)
    keep = doc.get("keep_output", False)
    if not isinstance(keep, bool):
        problems.add(("keep_output",), "must be true or false")
        keep = False
    parameters = _parameters(doc.get("parameters"), problems)
    secrets_doc = doc.get("secrets", {})
    secrets: dict[str, str] = {}
    if not isinstance(secrets_doc, dict):
        problems.add(("secrets",), 'must be a table of NAME = "env:VAR" or "file:NAME"')
    else:
        for name, ref in secrets_doc.items():
            if not PARAMETER_NAME.match(name):
                problems.add(
                    ("secrets", name), "a secret's name is a letter or _ then letters, digits or _"
                )
            elif (problem := secret_reference_problem(ref)) is not None:
                problems.add(("secrets", name), problem)
            else:
                secrets[name] = str(ref)
    executor = _executor(doc, {p.name for p in parameters}, set(secrets), problems)
    if problems.found or task is None or executor is None:
        raise TaskDefinitionInvalid(problems.found or [f"{source}: not a task definition"])
    return TaskDefinition(
        task=task,
        description=description,
        parameters=parameters,
        executor=executor,
        source=source,
        definition_dir=definition_dir,
        secrets=secrets,
        timeout_seconds=timeout,
        concurrency=concurrency,
        keep_output=keep,
        output_limit_bytes=limit,
    )


@dataclass(frozen=True)
class RunOutcome:
    """What running an executor gave: an exit code (command, Python) or an HTTP status."""

    succeeded: bool
    exit_code: int | None
    http_status: int | None
    output: str
    truncated: bool
    timed_out: bool
    duration_ms: int
    error: str | None = None  # the executor could not run (not found, refused connection)

    @classmethod
    def failed_without_output(
        cls,
        error: str,
        *,
        duration_ms: int,
        timed_out: bool = False,
        http_status: int | None = None,
    ) -> RunOutcome:
        """A run that failed before giving any output (it could not start, or was cut short);
        ``error`` says why."""
        return cls(
            succeeded=False,
            exit_code=None,
            http_status=http_status,
            output="",
            truncated=False,
            timed_out=timed_out,
            duration_ms=duration_ms,
            error=error,
        )

    @property
    def result(self) -> str:
        if self.timed_out:
            return "timed_out"
        return "succeeded" if self.succeeded else "failed"


def mask(text: str, secrets: list[str]) -> str:
    """``text`` with every secret value replaced, longest first (one may contain another)."""
    for value in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(value, "********")
    return text
