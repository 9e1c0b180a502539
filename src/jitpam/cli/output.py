"""What the command line prints: one JSON document with --json, readable tables otherwise."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import typer

# Exit codes (docs/reference.md): 1 refused by a rule or not found, 2 usage, 3 check denied,
# 4 not signed in or not permitted, 5 server unreachable.
REFUSED, USAGE, DENIED, NOT_PERMITTED, UNREACHABLE = 1, 2, 3, 4, 5


def first_line(text: str) -> str:
    """The first non-blank line of a message: errors are one line on stderr."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def fail(message: str, code: int = REFUSED) -> NoReturn:
    typer.echo(f"jitpam: {first_line(message)}", err=True)
    raise typer.Exit(code)


def emit_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    if not rows:
        typer.echo("(none)")
        return
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    widths = [min(w, 60) for w in widths]
    typer.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        typer.echo("  ".join(v[:60].ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def record(doc: dict[str, Any], fields: Sequence[str] | None = None) -> None:
    keys = fields or list(doc)
    width = max(len(k) for k in keys)
    for k in keys:
        typer.echo(f"{k.ljust(width)}  {_cell(doc.get(k))}")


def show(
    doc: Any,
    as_json: bool,
    *,
    columns: Sequence[str] | None = None,
    fields: Sequence[str] | None = None,
) -> None:
    if as_json:
        emit_json(doc)
    elif isinstance(doc, list):
        table(doc, columns or (list(doc[0]) if doc else []))
    elif isinstance(doc, dict):
        record(doc, fields)
    else:
        typer.echo(str(doc))
