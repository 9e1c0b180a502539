"""The registry of signing keys' public halves, shared by every server of an installation."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from jitpam.adapters.sql.db import reading
from jitpam.adapters.sql.models import SigningKeyRow


def register_key(engine: Engine, *, key_id: str, public_key: str) -> None:
    """Record a server's public key (idempotent)."""
    with engine.begin() as conn:
        found = conn.execute(
            select(SigningKeyRow.key_id).where(SigningKeyRow.key_id == key_id)
        ).first()
        if found is not None:
            return
        # Another server may register the same key at the same moment: that is fine.
        with contextlib.suppress(IntegrityError):
            conn.execute(
                insert(SigningKeyRow).values(
                    key_id=key_id, public_key=public_key, created_at=datetime.now(UTC)
                )
            )


def lookup_key(engine: Engine, key_id: str) -> str | None:
    """Another server's public key. Asked while verifying a signature, possibly inside a write
    transaction of this thread: so it only reads, never waiting for the write lock."""
    with reading(engine).connect() as conn:
        row = conn.execute(
            select(SigningKeyRow.public_key).where(SigningKeyRow.key_id == key_id)
        ).first()
    return str(row[0]) if row else None
