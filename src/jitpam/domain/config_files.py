"""What the server's TOML configuration files share (task definitions, connectors): secrets
named by reference only, and problems reported with file, line and field.

tomllib reports no line for a valid document, so ``Problems`` finds the line of a field in the
text itself: a table's header (``[a.b]``, or the n-th ``[[a]]`` of an array of tables), else the
line where the field's first key is written.
"""

from __future__ import annotations

import re

SECRET_REFERENCE = re.compile(r"^(env|file):([A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$")

# A path names a field: table names and keys, and for an array of tables the index of its
# element (counted from 0 in code, shown counted from 1: ``bindings[1].role`` is the first).
Path = tuple[str | int, ...]


def secret_reference_problem(ref: object) -> str | None:
    """Why ``ref`` is not a secret reference (``env:NAME`` or ``file:NAME``), or None. A secret
    is never written in a file itself, and never names the server's own JITPAM_ settings."""
    if not isinstance(ref, str) or not SECRET_REFERENCE.match(ref):
        return 'must be "env:NAME" or "file:NAME" (a secret is never written here itself)'
    if ref.upper().startswith("ENV:JITPAM_"):
        return "must not name the server's own JITPAM_ settings"
    return None


def path_text(path: Path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part + 1}]"
        else:
            out += f".{part}" if out else part
    return out


class Problems:
    """The problems found in one file, each ``file:line: field: message``."""

    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.lines = text.splitlines()
        self.found: list[str] = []

    def _header(self, tables: Path) -> int | None:
        """The index of the line ``[a.b]`` (parts bare or quoted), or of the n-th ``[[a.b]]``
        when the last part is an index n; None when there is none."""
        if tables and isinstance(tables[-1], int):
            names, index = tables[:-1], tables[-1]
            if any(isinstance(t, int) for t in names):
                return None
            part = self._parts(names)
            header = re.compile(r"^\s*\[\[\s*" + part + r"\s*\]\]")
            hits = [i for i, line in enumerate(self.lines) if header.match(line)]
            return hits[index] if index < len(hits) else None
        if any(isinstance(t, int) for t in tables):
            return None
        header = re.compile(r"^\s*\[\s*" + self._parts(tables) + r"\s*\]")
        return next((i for i, line in enumerate(self.lines) if header.match(line)), None)

    @staticmethod
    def _parts(tables: Path) -> str:
        return r"\s*\.\s*".join(r'["\']?' + re.escape(str(t)) + r'["\']?' for t in tables)

    def line_of(self, path: Path) -> int:
        """The line of ``path`` (table names, then keys): the table's own header when it is one,
        else the line where its first key is written inside the nearest table that has a
        header; 1 when it cannot be told."""
        for split in range(len(path), -1, -1):
            tables, keys = path[:split], path[split:]
            if keys and isinstance(keys[0], int):
                continue
            start = self._header(tables) if tables else 0
            if start is None:
                continue
            if not keys:
                return start + 1
            key = re.compile(r'^\s*["\']?' + re.escape(str(keys[0])) + r'["\']?\s*[=.]')
            for i in range(start, len(self.lines)):
                if i > start and self.lines[i].lstrip().startswith("["):
                    break
                if key.match(self.lines[i]):
                    return i + 1
            return start + 1
        return 1

    def add(self, path: Path, message: str) -> None:
        self.found.append(f"{self.source}:{self.line_of(path)}: {path_text(path)}: {message}")
