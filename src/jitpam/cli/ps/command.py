"""``jitpam ps``: cmdlet lines run in order against the server, through the SDK client given.

Every line is parsed before any runs (a parse error anywhere runs nothing, as a PowerShell
script); the lines then run in order, stopping at the first that fails, whose exit code is the
command's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from jitpam.cli import output
from jitpam.cli.ps import cmdlets, pipeline
from jitpam.cli.ps.binding import BindError
from jitpam.cli.ps.syntax import ParseError, Pipeline, parse
from jitpam.sdk import ApiError, Client, Unreachable


@dataclass(frozen=True)
class Line:
    number: int  # 1-based, in the text it came from
    text: str


def lines_of(text: str) -> list[Line]:
    """The cmdlet lines of a script: blank lines and ``#`` comments skipped; a line ending with
    a backtick continues on the next."""
    found: list[Line] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not pending:
            start = number
        stripped = raw.rstrip()
        if stripped.endswith("`") and not stripped.endswith("``"):
            pending.append(stripped[:-1])
            continue
        joined = " ".join([*pending, raw]).strip()
        pending = []
        if joined and not joined.startswith("#"):
            found.append(Line(start, joined))
    if pending and " ".join(pending).strip():
        found.append(Line(start, " ".join(pending).strip()))
    return found


class Failed(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _parsed(line: Line) -> Pipeline:
    try:
        return parse(line.text)
    except ParseError as exc:
        raise Failed(str(exc), output.USAGE) from None


def run_line(api: Client, parsed: Pipeline, as_json: bool) -> str:
    """What one parsed line prints (text or one JSON array); raises Failed."""
    first, rest = parsed.commands[0], parsed.commands[1:]
    try:
        cmdlet = cmdlets.find(first.name)
        bound = cmdlet.bind(first)
        stages = [pipeline.stage(c) for c in rest]
        pipeline.check_order(stages)
    except (cmdlets.UnknownCmdlet, BindError, pipeline.StageError) as exc:
        raise Failed(str(exc), output.USAGE) from None
    try:
        docs = cmdlet.call(api, bound)
    except ApiError as exc:
        code = output.NOT_PERMITTED if exc.status in (401, 403) else output.REFUSED
        detail = output.first_line(exc.detail) or exc.code
        raise Failed(f"{cmdlet.name} : {detail} ({exc.status})", code) from None
    except Unreachable as exc:
        raise Failed(f"{cmdlet.name} : {output.first_line(str(exc))}", output.UNREACHABLE) from None
    try:
        items = pipeline.apply(stages, [cmdlet.shape(d) for d in docs])
    except pipeline.StageError as exc:
        raise Failed(str(exc), output.USAGE) from None
    if as_json:
        return json.dumps(items)
    return pipeline.render(stages, items)


def run(
    client: Callable[[], Client],
    lines: Sequence[Line],
    *,
    as_json: bool,
    write: Callable[[str], object],
    error: Callable[[str], None],
    several: bool,
) -> int:
    """Run the lines in order; the exit code (0, or the first failing line's)."""

    def where(line: Line) -> str:
        return f"line {line.number}: " if several else ""

    def report(line: Line, failed: Failed) -> int:
        error(where(line) + " ".join(str(failed).split("\n")))  # one line, whatever it quotes
        return failed.code

    parsed: list[tuple[Line, Pipeline]] = []
    for line in lines:
        try:
            parsed.append((line, _parsed(line)))
        except Failed as exc:
            return report(line, exc)
    if not parsed:
        return 0
    with client() as api:
        printed_before = False
        for line, tree in parsed:
            try:
                text = run_line(api, tree, as_json)
            except Failed as exc:
                return report(line, exc)
            if text:
                if printed_before and not as_json:
                    write("\n")
                write(text + "\n")
                printed_before = True
    return 0
