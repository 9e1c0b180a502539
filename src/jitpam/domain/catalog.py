"""Task catalogs: which tasks a workload (scope) has and which roles and role groups hold them.

A catalog is a TOML document::

    scope = "Exchange"
    description = "..."

    [tasks]
    "New-MoveRequest" = "Moves a mailbox to another database"

    [[roles]]
    name = "Move Mailboxes"
    tasks = ["New-MoveRequest"]

    [[role_groups]]
    name = "Organization Management"
    roles = ["Move Mailboxes"]

    [data_scopes]
    "Mail.Read" = "Read the mail of the mailboxes a request names"

Data scopes are what an application asks to read or change of a service's data (a data access
request); policies cover them as they cover tasks.

``parse_catalog`` validates the whole document and reports every problem with the file, line and
field it concerns.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from jitpam.domain.errors import CatalogInvalid, InvalidInput
from jitpam.domain.names import QualifiedName, split_name

BUILTIN_SCOPE = "jitpam"
_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z_][A-Za-z0-9_]*)\s*\]\]?\s*(#.*)?$")


@dataclass(frozen=True)
class RoleDefinition:
    name: QualifiedName
    description: str
    tasks: tuple[QualifiedName, ...]


@dataclass(frozen=True)
class RoleGroupDefinition:
    name: QualifiedName
    description: str
    roles: tuple[QualifiedName, ...]


@dataclass(frozen=True)
class Catalog:
    scope: str
    description: str
    tasks: dict[QualifiedName, str] = field(default_factory=dict)
    roles: tuple[RoleDefinition, ...] = ()
    role_groups: tuple[RoleGroupDefinition, ...] = ()
    data_scopes: dict[QualifiedName, str] = field(default_factory=dict)


class _Lines:
    """Finds the line a TOML key sits on, since tomllib reports none for valid documents."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.sections: list[tuple[str, int]] = []  # (header name, line index)
        for i, line in enumerate(self.lines):
            m = _HEADER.match(line)
            if m:
                self.sections.append((m.group(1), i))

    def _span(self, table: str | None, index: int) -> tuple[int, int]:
        if table is None:
            end = self.sections[0][1] if self.sections else len(self.lines)
            return 0, end
        starts = [i for name, i in self.sections if name == table]
        if index >= len(starts):
            return 0, len(self.lines)
        start = starts[index]
        later = [i for _, i in self.sections if i > start]
        return start, later[0] if later else len(self.lines)

    def of(self, table: str | None, index: int = 0, key: str | None = None) -> int:
        start, end = self._span(table, index)
        if key is not None:
            pattern = re.compile(r'^\s*"?' + re.escape(key) + r'"?\s*=')
            for i in range(start, end):
                if pattern.match(self.lines[i]):
                    return i + 1
        return start + 1


def _name_part(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        scope, name = split_name(value)
    except InvalidInput:
        return None
    return name if scope is None else None


def parse_catalog(text: str, *, source: str, allow_builtin: bool = False) -> Catalog:
    """Parse and validate a catalog; raises CatalogInvalid listing every problem found."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogInvalid([f"{source}: not valid TOML: {exc}"]) from None
    where = _Lines(text)
    problems: list[str] = []

    def problem(line: int, field_name: str, message: str) -> None:
        problems.append(f"{source}, line {line}, field {field_name}: {message}")

    known_fields = {"scope", "description", "tasks", "roles", "role_groups", "data_scopes"}
    for key in sorted(set(doc) - known_fields):
        problem(where.of(None, key=key), key, "unknown field")

    scope = _name_part(doc.get("scope"))
    if scope is None:
        problem(where.of(None, key="scope"), "scope", "a scope name such as 'Exchange' is required")
        scope = "?"
    elif scope.casefold() == BUILTIN_SCOPE and not allow_builtin:
        problem(
            where.of(None, key="scope"),
            "scope",
            "the 'jitpam' scope is built in and cannot be imported",
        )
    description = doc.get("description", "")
    if not isinstance(description, str):
        problem(where.of(None, key="description"), "description", "must be a string")
        description = ""

    def described(table: str, what: str) -> dict[QualifiedName, str]:
        found: dict[QualifiedName, str] = {}
        raw = doc.get(table, {})
        if not isinstance(raw, dict):
            problem(
                where.of(None, key=table), table, f"must be a table of {what} name = description"
            )
            raw = {}
        for name, desc in raw.items():
            line = where.of(table, key=name)
            part = _name_part(name)
            if part is None:
                problem(
                    line, f"{table}.{name}", f"not a valid {what} name (write it without a scope)"
                )
            elif not isinstance(desc, str):
                problem(line, f"{table}.{name}", "the description must be a string")
            else:
                found[QualifiedName(scope, part)] = desc
        return found

    tasks = described("tasks", "task")
    data_scopes = described("data_scopes", "data scope")
    task_keys = {t.name.casefold(): t for t in tasks}

    def members(
        table: str, member_field: str, known: dict[str, QualifiedName], what: str
    ) -> list[tuple[QualifiedName, str, tuple[QualifiedName, ...]]]:
        out: list[tuple[QualifiedName, str, tuple[QualifiedName, ...]]] = []
        raw = doc.get(table, [])
        if not isinstance(raw, list):
            problem(where.of(None, key=table), table, f"must be written as [[{table}]] tables")
            return out
        seen: set[str] = set()
        for i, entry in enumerate(raw):
            label = f"{table}[{i}]"
            if not isinstance(entry, dict):
                problem(where.of(table, i), label, "must be a table")
                continue
            for key in sorted(set(entry) - {"name", "description", member_field}):
                problem(where.of(table, i, key), f"{label}.{key}", "unknown field")
            part = _name_part(entry.get("name"))
            if part is None:
                problem(
                    where.of(table, i, "name"),
                    f"{label}.name",
                    "a name without a scope is required",
                )
                continue
            if part.casefold() in seen:
                problem(where.of(table, i, "name"), f"{label}.name", f"{part!r} is defined twice")
                continue
            seen.add(part.casefold())
            desc = entry.get("description", "")
            if not isinstance(desc, str):
                problem(
                    where.of(table, i, "description"), f"{label}.description", "must be a string"
                )
                desc = ""
            refs = entry.get(member_field, [])
            resolved: list[QualifiedName] = []
            if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
                problem(
                    where.of(table, i, member_field),
                    f"{label}.{member_field}",
                    "must be a list of names",
                )
                refs = []
            for ref in refs:
                target = known.get(ref.casefold())
                if target is None:
                    problem(
                        where.of(table, i, member_field),
                        f"{label}.{member_field}",
                        f"unknown {what} {ref!r}",
                    )
                else:
                    resolved.append(target)
            out.append((QualifiedName(scope, part), desc, tuple(dict.fromkeys(resolved))))
        return out

    roles = tuple(
        RoleDefinition(n, d, m) for n, d, m in members("roles", "tasks", task_keys, "task")
    )
    role_keys = {r.name.name.casefold(): r.name for r in roles}
    groups = tuple(
        RoleGroupDefinition(n, d, m)
        for n, d, m in members("role_groups", "roles", role_keys, "role")
    )
    if problems:
        raise CatalogInvalid(problems)
    return Catalog(
        scope=scope,
        description=description,
        tasks=tasks,
        roles=roles,
        role_groups=groups,
        data_scopes=data_scopes,
    )
