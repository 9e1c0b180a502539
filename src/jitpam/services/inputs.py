"""Values callers pass in, read as the types the use cases work with."""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

from jitpam.domain.errors import InvalidInput

E = TypeVar("E", bound=Enum)


def parse_enum(kind: type[E], value: object, field: str) -> E:
    """``value`` as a member of ``kind``; raises InvalidInput listing the accepted values."""
    if isinstance(value, kind):
        return value
    try:
        return kind(value)
    except ValueError:
        accepted = ", ".join(str(m.value) for m in kind)
        raise InvalidInput(f"{field} must be one of: {accepted}") from None
