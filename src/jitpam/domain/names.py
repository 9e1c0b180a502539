"""``Scope\\Name`` names of tasks, roles and role groups, and resolution of bare names."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from jitpam.domain.errors import AmbiguousName, InvalidInput, NotFound

SEPARATOR = "\\"
MAX_PART = 128
_UNPRINTABLE = re.compile("[\x00-\x1f\ud800-\udfff]")  # control characters, lone surrogates


@dataclass(frozen=True, order=True)
class QualifiedName:
    scope: str
    name: str

    def __str__(self) -> str:
        return f"{self.scope}{SEPARATOR}{self.name}"

    @property
    def key(self) -> str:
        """Case-insensitive identity, as Exchange treats cmdlet and role names."""
        return str(self).casefold()

    @classmethod
    def parse(cls, text: str) -> QualifiedName:
        """Parse ``Scope\\Name``; raises InvalidInput when either part is missing or malformed."""
        scope, name = split_name(text)
        if scope is None:
            raise InvalidInput(f"name {text!r} must be written Scope\\Name")
        return cls(scope, name)


def _check_part(part: str, text: str) -> str:
    part = part.strip()
    if (
        not part
        or len(part) > MAX_PART
        or _UNPRINTABLE.search(part) is not None
        or SEPARATOR in part
    ):
        raise InvalidInput(f"name {text!r} is not a valid Scope\\Name")
    return part


def split_name(text: str) -> tuple[str | None, str]:
    """Split a typed name into (scope or None, name)."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("a name is required")
    if SEPARATOR in text:
        scope, _, name = text.partition(SEPARATOR)
        return _check_part(scope, text), _check_part(name, text)
    return None, _check_part(text, text)


def resolve_name(text: str, candidates: Iterable[QualifiedName], *, kind: str) -> QualifiedName:
    """Find the one candidate a typed name means.

    ``Scope\\Name`` must match exactly (ignoring case); a bare name is accepted when exactly one
    scope has it. Raises NotFound or AmbiguousName.
    """
    scope, name = split_name(text)
    matches = sorted(
        {
            c
            for c in candidates
            if c.name.casefold() == name.casefold()
            and (scope is None or c.scope.casefold() == scope.casefold())
        }
    )
    if not matches:
        raise NotFound(f"no {kind} named {text!r}")
    if len(matches) > 1:
        listed = ", ".join(f"'{m}'" for m in matches)
        raise AmbiguousName(f"{kind} name {text!r} is ambiguous: write one of {listed}")
    return matches[0]
