"""Parameter binding, as PowerShell binds: names case-insensitive, a unique prefix (or an alias)
names a parameter, a switch takes no value (``-Switch:$false`` turns it off), values are
converted to the parameter's type. Pure code, no I/O."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from jitpam.cli.ps.syntax import Argument, Element, ScriptBlock, Value

Kind = Literal["string", "strings", "int", "switch", "guid", "date", "choice", "script", "any"]
_TYPE_NAMES = {
    "string": "System.String",
    "strings": "System.String[]",
    "int": "System.Int32",
    "switch": "System.Management.Automation.SwitchParameter",
    "guid": "System.Guid",
    "date": "System.DateTime",
    "choice": "System.String",
    "script": "System.Management.Automation.ScriptBlock",
    "any": "System.Object",
}


class BindError(Exception):
    """The parameters do not fit the cmdlet (exit code 2); the message is PowerShell's."""


@dataclass(frozen=True)
class Param:
    """One parameter: its name and type; ``required``; ``position`` for positional values;
    ``choices`` for a set of values (matched case-insensitively, kept in their declared case)."""

    name: str
    kind: Kind = "string"
    required: bool = False
    position: int | None = None
    choices: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    help: str = ""

    @property
    def type_name(self) -> str:
        return _TYPE_NAMES[self.kind]


def resolve(cmdlet: str, params: Sequence[Param], name: str) -> Param:
    """The parameter ``-name`` means: exact name or alias first, else a unique prefix."""
    low = name.lower()
    for p in params:
        if p.name.lower() == low or low in (a.lower() for a in p.aliases):
            return p
    matches = [p for p in params if any(n.lower().startswith(low) for n in (p.name, *p.aliases))]
    if len(matches) == 1 and low:
        return matches[0]
    if len(matches) > 1 and low:
        options = " ".join(f"-{p.name}" for p in matches)
        raise BindError(
            f"{cmdlet} : Parameter cannot be processed because the parameter name '{name}' is "
            f"ambiguous. Possible matches include: {options}."
        )
    raise BindError(f"{cmdlet} : A parameter cannot be found that matches parameter name '{name}'.")


def _show(value: Value) -> str:
    if isinstance(value, tuple):
        return " ".join(_show(v) for v in value)
    if isinstance(value, ScriptBlock):
        return value.text
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    return value


_US_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?")


def parse_date(text: str) -> datetime | None:
    """A date as a script writes one: ISO 8601 (``2026-01-15``, ``2026-01-15T08:30:00Z``, with
    or without an offset) or the invariant culture's ``1/15/2026 [08:30[:00]]``. No offset means
    UTC. None when it is neither."""
    text = text.strip()
    found = _US_DATE.fullmatch(text)
    try:
        if found:
            month, day, year, hour, minute, second = found.groups()
            h, m, sec = (int(part or 0) for part in (hour, minute, second))
            at = datetime(int(year), int(month), int(day), h, m, sec, tzinfo=UTC)
        else:
            at = datetime.fromisoformat(text)
    except ValueError:
        return None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _flat(value: Value) -> list[Value]:
    if isinstance(value, tuple):
        return [v for item in value for v in _flat(item)]
    return [value]


def convert(cmdlet: str, param: Param, value: Value) -> Any:
    """``value`` as the parameter's type; raises BindError as PowerShell words it."""

    def refuse(why: str = "") -> BindError:
        return BindError(
            f"{cmdlet} : Cannot bind parameter '{param.name}'. Cannot convert value "
            f'"{_show(value)}" to type "{param.type_name}".' + (f" {why}" if why else "")
        )

    if param.kind == "any":
        return value
    if param.kind == "script":
        if isinstance(value, (ScriptBlock, str)):
            return value
        raise refuse()
    if param.kind == "switch":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise refuse()
    if param.kind == "strings":
        items = _flat(value)
        if any(not isinstance(v, str) for v in items):
            raise refuse()
        return [str(v) for v in items]
    if isinstance(value, tuple) or not isinstance(value, str):
        if param.kind == "string" and isinstance(value, bool):
            return "True" if value else "False"
        raise refuse()
    if param.kind == "int":
        try:
            number = int(value.strip())
        except ValueError:
            raise refuse() from None
        low, high = param.minimum, param.maximum
        if (low is not None and number < low) or (high is not None and number > high):
            bounds = f"{low if low is not None else '-∞'}..{high if high is not None else '∞'}"
            raise BindError(
                f"{cmdlet} : Cannot validate argument on parameter '{param.name}'. The {number} "
                f"argument is not in the range {bounds}."
            )
        return number
    if param.kind == "guid":
        try:
            return str(uuid.UUID(value.strip()))
        except ValueError:
            raise refuse() from None
    if param.kind == "date":
        at = parse_date(value)
        if at is None:
            raise refuse()
        return at.isoformat().replace("+00:00", "Z")
    if param.kind == "choice":
        for choice in param.choices:
            if choice.lower() == value.strip().lower():
                return choice
        raise BindError(
            f"{cmdlet} : Cannot validate argument on parameter '{param.name}'. The argument "
            f'"{value}" does not belong to the set "{",".join(param.choices)}".'
        )
    return value


def bind(cmdlet: str, params: Sequence[Param], elements: Sequence[Element]) -> dict[str, Any]:
    """The cmdlet's parameters from a command's elements, by parameter name (converted values;
    switches True or False). Raises BindError for an unknown, ambiguous, repeated or missing
    parameter, a value of the wrong type, or a positional value nothing takes."""
    bound: dict[str, Any] = {}
    positional = sorted(
        (p for p in params if p.position is not None), key=lambda p: p.position or 0
    )
    i = 0
    while i < len(elements):
        element = elements[i]
        i += 1
        if isinstance(element, Argument):
            target = next((p for p in positional if p.name not in bound), None)
            if target is None:
                raise BindError(
                    f"{cmdlet} : A positional parameter cannot be found that accepts argument "
                    f"'{_show(element.value)}'."
                )
            bound[target.name] = convert(cmdlet, target, element.value)
            continue
        param = resolve(cmdlet, params, element.name)
        if param.name in bound:
            raise BindError(
                f"{cmdlet} : Cannot bind parameter because parameter '{param.name}' is specified "
                "more than once."
            )
        if element.has_value:
            value = element.value
        elif param.kind == "switch":
            value = True
        elif i < len(elements) and isinstance(nxt := elements[i], Argument):
            value = nxt.value
            i += 1
        else:
            raise BindError(
                f"{cmdlet} : Missing an argument for parameter '{param.name}'. Specify a "
                f"parameter of type '{param.type_name}' and try again."
            )
        bound[param.name] = convert(cmdlet, param, value)
    missing = [p.name for p in params if p.required and p.name not in bound]
    if missing:
        raise BindError(
            f"{cmdlet} : Cannot process command because of one or more missing mandatory "
            f"parameters: {' '.join(missing)}."
        )
    return bound
