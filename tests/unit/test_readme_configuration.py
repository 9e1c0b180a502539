"""The README's configuration table names every setting with the default the code really has."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from jitpam.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def _table() -> list[tuple[list[str], list[str]]]:
    """The rows of the table under "## Configuration": (setting names, their defaults)."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`(\w+)`", cells[0])
        rows.append((names, [d.strip() for d in cells[1].split(", ")]))
    return rows


def _says(default: str, actual: object, name: str) -> None:
    """One README default against the code's: numbers and booleans as written, "none" for an
    empty setting, a backticked value as the string itself; anything else describes a default
    the server derives at start (the setting itself is empty)."""
    if isinstance(actual, bool):
        assert default == str(actual).lower(), f"{name}: README says {default}, code {actual}"
    elif isinstance(actual, int):
        assert default.strip("`") == str(actual), f"{name}: README says {default}, code {actual}"
    elif default.startswith("none"):
        assert actual in ("", ()), f"{name}: README says none, code {actual!r}"
    elif re.fullmatch(r"`[^`]*`", default) and actual != "":
        assert default.strip("`") == actual, f"{name}: README says {default}, code {actual!r}"
    else:
        assert actual == "", f"{name}: README describes a derived default, code has {actual!r}"


def test_every_setting_is_in_the_readme_with_its_real_default() -> None:
    defaults = Settings()
    table = _table()
    named = [n for names, _ in table for n in names]
    assert sorted(named) == sorted(f.name for f in fields(Settings)), "settings vs README rows"
    for names, given in table:
        assert len(given) == len(names), f"{names}: {len(names)} settings, {len(given)} defaults"
        for name, default in zip(names, given, strict=True):
            _says(default, getattr(defaults, name), name)
