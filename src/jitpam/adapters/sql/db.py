"""Engines from the URLs users type, with the settings each database needs."""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import Any

from sqlalchemy import Engine, String, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from jitpam.domain.errors import DatabaseUnavailable


def normalize_url(url: str) -> URL:
    """Accept ``postgresql://`` and ``sqlite:///path`` as written; map to the installed drivers."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername not in ("postgresql+psycopg", "sqlite", "sqlite+pysqlite"):
        raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}")
    return parsed


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


FOLD_FUNCTION = "jitpam_fold"


def _fold(value: str | None) -> str | None:
    return value.lower() if value is not None else None


class fold(FunctionElement[str]):  # noqa: N801 - used like SQLAlchemy's func.lower
    """Lower case of every letter on every backend: ``lower()`` on PostgreSQL, and on SQLite a
    function registered on each connection (its own ``lower()`` leaves Ü as it is)."""

    type = String()
    inherit_cache = True


@compiles(fold)
def _fold_default(element: fold, compiler: Any, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(fold, "sqlite")
def _fold_sqlite(element: fold, compiler: Any, **kw: Any) -> str:
    return f"{FOLD_FUNCTION}({compiler.process(element.clauses, **kw)})"


READ_ONLY = "jitpam_read_only"
BUSY_TIMEOUT_S = 30

# One lock per SQLite file for this process's write transactions. SQLite lets one writer in at
# a time; the others wait in its busy handler, which polls with sleeps of up to 100 ms, so under
# load the lock sat free while every waiter slept (new requests at 32 connections: p99 of
# seconds). Writers of this process queue on a Python lock instead and are woken the moment
# it is free; the busy timeout still covers other processes (the CLI beside a server).
_WRITERS: dict[str, threading.Lock] = {}
_WRITERS_GUARD = threading.Lock()
_HOLDS = "jitpam_holds_write_lock"


def _writer_lock(path: str) -> threading.Lock:
    with _WRITERS_GUARD:
        return _WRITERS.setdefault(os.path.realpath(path), threading.Lock())


# Refusals that mean "someone else was first": on PostgreSQL (SQLSTATE) serialization failure,
# deadlock, lock not taken; on SQLite (primary result code) the database or a table is locked.
_RACES = {"40001", "40P01", "55P03"}
_SQLITE_RACES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}


def is_race(error: BaseException | None) -> bool:
    """Whether the driver's error says another transaction held what this one needed."""
    if getattr(error, "sqlstate", None) in _RACES:
        return True
    code = getattr(error, "sqlite_errorcode", None)  # an extended code: its low byte is primary
    return isinstance(code, int) and code & 0xFF in _SQLITE_RACES


_DUPLICATES = {sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY}


def is_duplicate(error: BaseException | None) -> bool:
    """Whether the driver's error is a unique key taken by another row (not some other
    constraint, such as a trigger's refusal)."""
    if getattr(error, "sqlstate", None) == "23505":
        return True
    return getattr(error, "sqlite_errorcode", None) in _DUPLICATES


def reading(engine: Engine) -> Engine:
    """The engine for transactions that only read. On SQLite they do not take the write lock
    (WAL lets them read beside a writer), so a read made while the same thread holds a write
    transaction elsewhere does not wait for it."""
    return engine.execution_options(**{READ_ONLY: True})


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine. SQLite gets WAL, a busy timeout and ``BEGIN IMMEDIATE`` transactions.

    Immediate transactions take the write lock up front, so two use cases that read and then
    write wait for each other instead of failing with "database is locked".
    """
    parsed = normalize_url(url)
    if parsed.drivername.startswith("sqlite"):
        memory = parsed.database in (None, "", ":memory:")
        pooled: dict[str, Any] = {} if memory else {"pool_size": 32, "max_overflow": 32}
        engine = create_engine(
            parsed,
            connect_args={"check_same_thread": False, "timeout": 30},
            # Connections are kept open (SQLAlchemy's pool): when the last connection to a WAL
            # database closes, SQLite checkpoints and removes the log, which made every
            # transaction pay for a checkpoint. Enough are kept for the thread pool's callers at
            # once: a connection opened and closed again per call (past the default five) cost
            # more than its statements.
            **{**pooled, **kwargs},
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # let the hook below issue BEGIN itself
            cur = dbapi_conn.cursor()
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
            cur.close()
            # SQLite's lower() folds ASCII only; searches fold every letter (see fold()).
            dbapi_conn.create_function(FOLD_FUNCTION, 1, _fold, deterministic=True)

        writers = None if memory else _writer_lock(str(parsed.database))

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            reads_only = conn.get_execution_options().get(READ_ONLY, False)
            if not reads_only and writers is not None and not conn.info.get(_HOLDS):
                if not writers.acquire(timeout=BUSY_TIMEOUT_S):
                    # Raised before SQLAlchemy sees a driver call, so it is not wrapped: say
                    # what it means to the caller here (503, try again), not as a driver error.
                    raise DatabaseUnavailable(
                        "the database is busy with other changes; nothing was changed, try again"
                    )
                conn.info[_HOLDS] = True  # until the connection goes back to the pool
            # On the driver's connection: BEGIN runs once per transaction, and through
            # SQLAlchemy's statement machinery it cost a third of a small write transaction.
            conn.connection.dbapi_connection.execute("BEGIN" if reads_only else "BEGIN IMMEDIATE")

        if writers is not None:

            def _release(dbapi_conn: Any, record: Any, *_: Any) -> None:
                # After the transaction's COMMIT or ROLLBACK (the pool resets a connection
                # before it takes it back), or when the connection is dropped.
                if record is not None and record.info.pop(_HOLDS, False):
                    writers.release()

            for name in ("checkin", "invalidate", "close", "detach"):
                event.listen(engine.pool, name, _release)

        return engine
    return create_engine(parsed, pool_pre_ping=True, **kwargs)
