"""Engines from the URLs users type, with the settings each database needs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, String, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


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
        engine = create_engine(
            parsed,
            connect_args={"check_same_thread": False, "timeout": 30},
            # Connections are kept open (SQLAlchemy's pool): when the last connection to a WAL
            # database closes, SQLite checkpoints and removes the log, which made every
            # transaction pay for a checkpoint.
            **kwargs,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # let the hook below issue BEGIN itself
            cur = dbapi_conn.cursor()
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
            # SQLite's lower() folds ASCII only; searches fold every letter (see fold()).
            dbapi_conn.create_function(FOLD_FUNCTION, 1, _fold, deterministic=True)

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            reads_only = conn.get_execution_options().get(READ_ONLY, False)
            conn.exec_driver_sql("BEGIN" if reads_only else "BEGIN IMMEDIATE")

        return engine
    return create_engine(parsed, pool_pre_ping=True, **kwargs)
