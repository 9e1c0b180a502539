"""UTC instants: the only kind of time the domain accepts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from jitpam.domain.errors import InvalidInput


def require_utc(at: datetime) -> datetime:
    """Return ``at`` in UTC; a naive datetime is a bug and raises InvalidInput."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInput("times must carry a time zone (naive datetime given)")
    try:
        return at.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before the first representable instant
        raise InvalidInput("the time is outside the years 1 to 9999 in UTC") from None


def iso(at: datetime) -> str:
    """Fixed-width ISO 8601 with microseconds and a Z, so equal instants encode equally."""
    return require_utc(at).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def hours(n: int) -> timedelta:
    return timedelta(hours=n)


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, explicit nulls, UTF-8: the encoding every digest is taken over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
