"""Catalogs shipped with jitpam, as TOML text (parsed by ``jitpam.domain.catalog``)."""

from __future__ import annotations

from importlib import resources

BUILTIN = "jitpam"
SHIPPED = ("jitpam", "exchange", "office365")


def shipped_catalog(name: str) -> str:
    """The text of a shipped catalog (``jitpam``, ``exchange`` or ``office365``); raises
    KeyError otherwise."""
    if name not in SHIPPED:
        raise KeyError(name)
    return resources.files(__package__).joinpath(f"{name}.toml").read_text(encoding="utf-8")
