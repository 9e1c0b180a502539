"""What the repositories' queries share: keyset page cursors, substring matching, IN lists
in chunks, and labels (names, UPNs) by id."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Select,
    SQLColumnExpression,
    select,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from jitpam.adapters.sql.db import fold
from jitpam.adapters.sql.memo import Memo, Slot
from jitpam.adapters.sql.prepared import Prepared
from jitpam.domain.directory import Group, User
from jitpam.domain.errors import InvalidInput
from jitpam.domain.text import unstorable


def encode_cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode()


def contains(column: SQLColumnExpression[str], text: str) -> ColumnElement[bool]:
    """``column`` contains ``text``, any case, with LIKE's wildcards taken literally."""
    needle = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return fold(column).like(f"%{needle}%", escape="\\")


def decode_cursor(cursor: str, n: int) -> list[str]:
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError):
        raise InvalidInput("the page cursor is not valid") from None
    if (
        not isinstance(parts, list)
        or len(parts) != n
        or not all(isinstance(p, str) and unstorable(p) is None for p in parts)
    ):
        raise InvalidInput("the page cursor is not valid")
    return parts


def parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput("the page cursor is not valid") from None
    if moment.tzinfo is None:
        raise InvalidInput("the page cursor is not valid")
    return moment


def time_and_id(cursor: str) -> tuple[datetime, UUID]:
    """A (time, id) keyset cursor, checked: a mangled one is invalid input, not a server error."""
    created, key = decode_cursor(cursor, 2)
    return moment_and_id(created, key)


def moment_and_id(moment: str, key: str) -> tuple[datetime, UUID]:
    try:
        return parse_time(moment), UUID(key)
    except ValueError:
        raise InvalidInput("the page cursor is not valid") from None


def after_key(cursor: str | None) -> str | None:
    """The key a one-part keyset cursor points after."""
    return decode_cursor(cursor, 1)[0] if cursor else None


def page_by_key(
    session: Session,
    stmt: Select[Any],
    key: InstrumentedAttribute[str],
    *,
    cursor: str | None,
    limit: int | None,
) -> tuple[list[Any], str | None]:
    """The rows of ``stmt`` in ``key`` order after the cursor's key, at most ``limit`` of them
    (None: all), and the cursor of the next page (None: this page ends the listing)."""
    after = after_key(cursor)
    if after is not None:
        stmt = stmt.where(key > after)
    stmt = stmt.order_by(key)
    rows = list(session.scalars(stmt if limit is None else stmt.limit(limit + 1)))
    if limit is None or len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(getattr(rows[-1], key.key))


_CHUNK = 900  # ids per IN list, well under every driver's limit on bound parameters


K = TypeVar("K", UUID, str)


def chunks(ids: Iterable[K]) -> Iterator[list[K]]:
    wanted = sorted(set(ids))
    for i in range(0, len(wanted), _CHUNK):
        yield wanted[i : i + _CHUNK]


_FEW_LABELS = 4  # up to this many ids, each is looked up by its key (no IN list to build)


_Named = TypeVar("_Named", User, Group)


def named_from_memory(
    memo: Memo,
    known: Slot[UUID, _Named],
    org_id: UUID,
    ids: Iterable[UUID],
    label: Callable[[_Named], str],
) -> tuple[dict[UUID, str], list[UUID]]:
    """The labels of those of ``ids`` this transaction has read already (of ``org_id``), and
    the ids it has not read."""
    out: dict[UUID, str] = {}
    unread: list[UUID] = []
    for i in ids:
        if (found := memo.get(known, i)) is None:
            unread.append(i)
        elif found.org_id == org_id:
            out[i] = label(found)
    return out, unread


def labels(
    session: Session,
    table: Any,
    column: str,
    org_id: UUID,
    ids: Iterable[UUID],
    one: Prepared | None = None,
) -> dict[UUID, str]:
    """``column`` of the organization's rows of ``table`` with these ids, by id (``one``: the
    label of one row, by ``org`` and ``id``)."""
    out: dict[UUID, str] = {}
    wanted = list(ids)
    if one is not None and len(wanted) <= _FEW_LABELS:
        for i in wanted:
            if (found := one.first(session, org=org_id, id=i)) is not None:
                out[i] = found[0]
        return out
    for chunk in chunks(wanted):
        rows = session.execute(
            select(table.c.id, table.c[column]).where(
                table.c.org_id == org_id, table.c.id.in_(chunk)
            )
        )
        out.update((i, label) for i, label in rows)
    return out
