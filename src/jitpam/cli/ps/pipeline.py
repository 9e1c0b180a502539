"""The stages after a cmdlet (``select``, ``where``, ``fl``, ``ft``) and how objects print.

Pure code, no I/O: objects in, objects (or text) out. Property names match case-insensitively,
with ``*`` and ``?`` wildcards, as in PowerShell.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from jitpam.cli.ps.binding import BindError, Param, bind
from jitpam.cli.ps.syntax import (
    Command,
    Compare,
    Expr,
    Literal,
    Logical,
    Not,
    Property,
    ScriptBlock,
)

Item = Any  # an object (dict of M365 property names) or a plain value (select -ExpandProperty)


class StageError(Exception):
    """A stage cannot run (exit code 2): an unknown one, or bad parameters."""


def _wildcard(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(ch))
            else:
                out.append("[" + re.escape(pattern[i + 1 : end]).replace("\\-", "-") + "]")
                i = end
        elif ch == "`" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out), re.S)


def like(value: str, pattern: str, *, case_sensitive: bool = False) -> bool:
    """PowerShell's ``-like``: the whole value matches the wildcard pattern."""
    flags = 0 if case_sensitive else re.I
    try:
        return re.fullmatch(_wildcard(pattern).pattern, value, flags) is not None
    except re.error:  # a pattern such as [z-a]: PowerShell refuses it too
        return False


def _property(item: Item, name: str) -> Any:
    if not name:
        return item
    if isinstance(item, dict):
        for key, value in item.items():
            if key.lower() == name.lower():
                return value
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if value is True:
        return "True"
    if value is False:
        return "False"
    return str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


def _compare_one(left: Any, operator: str, right: Any) -> bool:
    case = operator.startswith("c")
    op = operator[1:] if operator[:1] in ("c", "i") and operator[1:] in _BASE else operator
    if op in ("like", "notlike"):
        hit = like(_text(left), _text(right), case_sensitive=case)
        return hit if op == "like" else not hit
    if op in ("match", "notmatch"):
        try:
            hit = re.search(_text(right), _text(left), 0 if case else re.I) is not None
        except re.error as exc:
            raise StageError(
                f"Invalid regular expression pattern {_text(right)!r}: {exc}"
            ) from None
        return hit if op == "match" else not hit
    if isinstance(left, bool) and isinstance(right, str):
        right = right.lower() in ("true", "1", "$true")
    a, b = _number(left), _number(right)
    if a is not None and b is not None and not isinstance(left, str):
        pair: tuple[Any, Any] = (a, b)
    else:
        x, y = _text(left), _text(right)
        pair = (x, y) if case else (x.lower(), y.lower())
    if op == "eq":
        return bool(pair[0] == pair[1])
    if op == "ne":
        return bool(pair[0] != pair[1])
    if left is None or right is None:
        return False
    order: dict[str, bool] = {
        "gt": pair[0] > pair[1],
        "ge": pair[0] >= pair[1],
        "lt": pair[0] < pair[1],
        "le": pair[0] <= pair[1],
    }
    return order[op]


_BASE = ("eq", "ne", "like", "notlike", "match", "notmatch", "gt", "ge", "lt", "le")


def _value(operand: Property | Literal, item: Item) -> Any:
    return _property(item, operand.name) if isinstance(operand, Property) else operand.value


def _truthy(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return len(value) > 0
    return bool(value)


def evaluate(expr: Expr, item: Item) -> bool:
    """A filter's verdict on one object. A collection on the left matches when an element does."""
    if isinstance(expr, Logical):
        if expr.operator == "and":
            return evaluate(expr.left, item) and evaluate(expr.right, item)
        return evaluate(expr.left, item) or evaluate(expr.right, item)
    if isinstance(expr, Not):
        return not evaluate(expr.operand, item)
    if isinstance(expr, Compare):
        left, right = _value(expr.left, item), _value(expr.right, item)
        if isinstance(left, (list, tuple)):
            return any(_compare_one(v, expr.operator, right) for v in left)
        return _compare_one(left, expr.operator, right)
    return _truthy(_value(expr, item))


# ---------------------------------------------------------------- stages
@dataclass(frozen=True)
class Select:
    properties: tuple[str, ...] = ()
    expand: str | None = None
    first: int | None = None
    last: int | None = None


@dataclass(frozen=True)
class Where:
    expr: Expr


@dataclass(frozen=True)
class Format:
    kind: str  # list or table
    properties: tuple[str, ...] = ()


Stage = Select | Where | Format

_SELECT = (
    Param("Property", "strings", position=0),
    Param("ExpandProperty", "string"),
    Param("First", "int", minimum=0),
    Param("Last", "int", minimum=0),
)
_WHERE = (
    Param("FilterScript", "script", position=0),
    Param("Property", "string"),
    Param("Value", "any", position=1),
    *(Param(op.upper() if len(op) == 2 else op.capitalize(), "switch") for op in _BASE),
)
_FORMAT = (Param("Property", "strings", position=0),)

_NAMES: dict[str, str] = {
    "select": "Select-Object",
    "select-object": "Select-Object",
    "where": "Where-Object",
    "where-object": "Where-Object",
    "?": "Where-Object",
    "fl": "Format-List",
    "format-list": "Format-List",
    "ft": "Format-Table",
    "format-table": "Format-Table",
}


def stage(command: Command) -> Stage:
    """The stage a pipeline command names; raises StageError."""
    name = _NAMES.get(command.name.lower())
    if name is None:
        raise StageError(
            f"The term '{command.name}' is not recognized as a name of a cmdlet jitpam ps runs "
            "after '|' (select, where, fl, ft)."
        )
    try:
        if name == "Select-Object":
            got = bind(name, _SELECT, command.elements)
            return Select(
                tuple(got.get("Property", ())),
                got.get("ExpandProperty"),
                got.get("First"),
                got.get("Last"),
            )
        if name == "Where-Object":
            return Where(_filter(name, bind(name, _WHERE, command.elements)))
        got = bind(name, _FORMAT, command.elements)
        return Format("list" if name == "Format-List" else "table", tuple(got.get("Property", ())))
    except BindError as exc:
        raise StageError(str(exc)) from None


def _filter(name: str, got: dict[str, Any]) -> Expr:
    """A script block, or the simplified form ``where Prop -eq value``."""
    script = got.get("FilterScript")
    operators = [op for op in _BASE if got.get(op.upper() if len(op) == 2 else op.capitalize())]
    if isinstance(script, ScriptBlock):
        if operators or "Property" in got or "Value" in got:
            raise StageError(f"{name} : Parameter set cannot be resolved.")
        return script.expr
    prop = got.get("Property") or (script if isinstance(script, str) else None)
    if not prop:
        raise StageError(f"{name} : a filter script block {{ ... }} or a property is needed.")
    if len(operators) > 1:
        raise StageError(f"{name} : Parameter set cannot be resolved.")
    if not operators:
        return Property(str(prop))
    value = got.get("Value")
    return Compare(Property(str(prop)), operators[0], Literal(value))


def _names(item: Item) -> list[str]:
    return list(item) if isinstance(item, dict) else []


def _pick(item: Item, patterns: Sequence[str]) -> dict[str, Any]:
    """The properties named (wildcards expand to the object's own, in its order)."""
    picked: dict[str, Any] = {}
    for pattern in patterns:
        if any(c in pattern for c in "*?["):
            for key in _names(item):
                if like(key, pattern) and key not in picked:
                    picked[key] = item[key]
        else:
            key = next((k for k in _names(item) if k.lower() == pattern.lower()), pattern)
            picked.setdefault(key, _property(item, pattern))
    return picked


def apply(stages: Sequence[Stage], items: list[Item]) -> list[Item]:
    """Run the select and where stages in order (format stages do not change the objects)."""
    for each in stages:
        if isinstance(each, Where):
            items = [item for item in items if evaluate(each.expr, item)]
        elif isinstance(each, Select):
            if each.first is not None:
                items = items[: each.first]
            if each.last is not None:
                items = items[len(items) - each.last :] if each.last else []
            if each.properties:
                items = [_pick(item, each.properties) for item in items]
            if each.expand is not None:
                expanded: list[Item] = []
                for item in items:
                    if not any(k.lower() == each.expand.lower() for k in _names(item)):
                        raise StageError(
                            f'Select-Object : Property "{each.expand}" cannot be found.'
                        )
                    value = _property(item, each.expand)
                    expanded.extend(value if isinstance(value, list) else [value])
                items = expanded
        elif each.properties:
            items = [_pick(item, each.properties) for item in items]
    return items


def check_order(stages: Sequence[Stage]) -> None:
    """A format stage ends the pipeline (what it prints is text, not objects)."""
    for each in stages[:-1]:
        if isinstance(each, Format):
            raise StageError("Format-List and Format-Table must be the last command of the line.")


# ---------------------------------------------------------------- printing
def cell(value: Any) -> str:
    """A value as PowerShell prints it: a list in braces, True/False, nothing for $null."""
    if isinstance(value, list):
        return "{" + ", ".join(cell(v) for v in value) + "}"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return _text(value)


def format_list(items: Sequence[Item]) -> str:
    blocks = []
    for item in items:
        if not isinstance(item, dict):
            blocks.append(cell(item))
            continue
        if not item:
            continue
        width = max(len(k) for k in item)
        blocks.append("\n".join(f"{k.ljust(width)} : {cell(v)}".rstrip() for k, v in item.items()))
    scalars = all(not isinstance(i, dict) for i in items)
    return ("\n" if scalars else "\n\n").join(blocks)


def format_table(items: Sequence[Item]) -> str:
    if not items:
        return ""
    if not isinstance(items[0], dict):
        return "\n".join(cell(i) for i in items)
    columns = list(items[0])
    rows = [[cell(_property(i, c)) for c in columns] for i in items]
    widths = [max(len(c), *(len(r[n]) for r in rows)) for n, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        return " ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    dashes = ["-" * len(c) for c in columns]
    return "\n".join([line(columns), line(dashes), *(line(r) for r in rows)])


def render(stages: Sequence[Stage], items: Sequence[Item]) -> str:
    """The text a line prints: as a table after ``ft``, else as a list (PowerShell's ``fl``)."""
    last = stages[-1] if stages else None
    as_table = isinstance(last, Format) and last.kind == "table"
    printer: Callable[[Sequence[Item]], str] = format_table if as_table else format_list
    return printer(items)
