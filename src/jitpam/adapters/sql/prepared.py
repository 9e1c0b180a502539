"""Statements on the hot paths (checks, new requests, votes), compiled once and run on the
driver's own cursor.

A Core statement executed through SQLAlchemy costs some 40 µs of Python around a 5 µs SQLite
look-up (building the cache key, the execution context, the result object); an ORM query costs
five times that. New requests, reviews and checks run a dozen or two statements each, so that
cost was most of theirs (``bench/bench_db.py`` measures it). A ``Prepared`` statement is written
as Core (so it stays checked against the schema and rendered by the dialect), compiled once per
dialect, and then run on the DBAPI connection under the session's transaction, its parameters
and columns converted by the same type processors SQLAlchemy would use. Driver errors come back
as SQLAlchemy's exceptions, so the unit of work maps them (conflicts, outages) as it maps every
other.

Only SQLAlchemy's public interface is used: the compiled statement's ``string``, ``params`` and
``binds``, the types' processors, ``Session.flush`` and ``Connection.connection``'s
``driver_connection``. Parameters are always passed by name: a dialect whose driver takes them by
position (SQLite's ``qmark``) renders the statement in the driver's named style instead, so the
order of the parameters never has to be known. Every statement is registered in ``STATEMENTS``;
tests/integration/test_prepared_statements.py runs each against both databases beside the same
statement run by SQLAlchemy.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from jitpam.adapters.sql.memo import DRIVER, Memo

Processor = Callable[[Any], Any]

# Named styles of the drivers whose own style is positional.
_NAMED_STYLE = {"sqlite": "named"}


def _rendering_dialect(dialect: Dialect) -> Dialect:
    """A dialect that renders the statement with parameters by name for this driver."""
    if not dialect.positional:
        return dialect
    style = _NAMED_STYLE.get(dialect.name)
    if style is None:
        raise ValueError(f"no named parameter style known for the {dialect.name} driver")
    # The dialect's class, made with the driver's named style (its type processors are the same).
    make: Callable[..., Dialect] = type(dialect)
    return make(paramstyle=style, dbapi=dialect.loaded_dbapi)


class _Compiled:
    """One statement rendered for one dialect, with its parameters' and columns' converters."""

    def __init__(self, stmt: ClauseElement, dialect: Dialect) -> None:
        compiled = stmt.compile(dialect=_rendering_dialect(dialect))
        assert isinstance(compiled, SQLCompiler)
        if any(b.expanding for b in compiled.binds.values()):
            raise ValueError("a prepared statement cannot expand parameters (IN lists)")
        self.sql = compiled.string
        self.defaults: dict[str, Any] = dict(compiled.params)
        binds: dict[str, Processor] = {}
        for name in self.defaults:
            processor = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                binds[name] = processor
        self.binds = binds
        columns = list(getattr(stmt, "selected_columns", ()))
        results = [c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns]
        self.results: list[tuple[int, Processor]] = [
            (i, p) for i, p in enumerate(results) if p is not None
        ]
        # Rows read by column name, as Core's rows are (a named tuple costs less than a Row).
        fields = [c.key or f"c{i}" for i, c in enumerate(columns)] or ["_"]
        row_type: Any = namedtuple("Row", fields, rename=True)  # type: ignore[misc]
        self.make: Callable[[Sequence[Any]], Any] = row_type._make
        self.dbapi_error: type[Exception] = dialect.loaded_dbapi.Error

    def parameters(self, given: Mapping[str, Any]) -> dict[str, Any]:
        values = {**self.defaults, **given}
        for name, processor in self.binds.items():
            values[name] = processor(values[name])
        return values

    def row(self, raw: Sequence[Any]) -> Any:
        if not self.results:
            return self.make(raw)
        out = list(raw)
        for i, processor in self.results:
            out[i] = processor(out[i])
        return self.make(out)


def _driver(session: Session) -> tuple[Dialect, Any]:
    """The dialect and the DBAPI connection of the session's transaction (found once for it).

    A savepoint begun on the session (``begin_nested``) is sent to the database only when the
    session next uses its connection: a prepared statement run right after it would run before
    it. Nothing in jitpam nests transactions; a use case that does must touch
    ``session.connection()`` first."""
    memo = Memo.of(session)
    found = memo.get(DRIVER, None)
    if found is None:
        connection = session.connection()  # begins the transaction if none is open
        found = (connection.dialect, connection.connection.driver_connection)
        memo.put(DRIVER, None, found)
    return found


STATEMENTS: list[Prepared] = []


class Prepared:
    """A Core statement run on the session's connection at the driver's cost (see module)."""

    __slots__ = ("_by_dialect", "_stmts")

    def __init__(self, stmt: ClauseElement, **by_dialect: ClauseElement) -> None:
        """``stmt``, or for the dialects named (``sqlite=``, ``postgresql=``) their own."""
        self._stmts = {"": stmt, **by_dialect}
        self._by_dialect: dict[str, _Compiled] = {}
        STATEMENTS.append(self)

    def statement(self, dialect: Dialect) -> ClauseElement:
        """The Core statement run on ``dialect`` (what a test runs through SQLAlchemy too)."""
        return self._stmts.get(dialect.name, self._stmts[""])

    def _compiled(self, dialect: Dialect) -> _Compiled:
        found = self._by_dialect.get(dialect.name)
        if found is None:
            found = self._by_dialect[dialect.name] = _Compiled(self.statement(dialect), dialect)
        return found

    def _run(
        self, session: Session, params: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    ) -> tuple[_Compiled, Any]:
        session.flush()  # what the session holds goes first: the statement reads the database
        dialect, driver = _driver(session)
        compiled = self._compiled(dialect)
        cursor = driver.cursor()
        values: Any = None
        try:
            if isinstance(params, Mapping):
                values = compiled.parameters(params)
                cursor.execute(compiled.sql, values)
            else:
                values = [compiled.parameters(p) for p in params]
                cursor.executemany(compiled.sql, values)
        except compiled.dbapi_error as exc:
            cursor.close()
            raise DBAPIError.instance(
                compiled.sql, values, exc, compiled.dbapi_error, dialect=dialect
            ) from exc
        return compiled, cursor

    def all(self, session: Session, **params: Any) -> list[Any]:
        """Every row, each a named tuple of the statement's columns."""
        compiled, cursor = self._run(session, params)
        try:
            return [compiled.row(r) for r in cursor.fetchall()]
        finally:
            cursor.close()

    def first(self, session: Session, **params: Any) -> Any | None:
        compiled, cursor = self._run(session, params)
        try:
            found = cursor.fetchone()
            return compiled.row(found) if found is not None else None
        finally:
            cursor.close()

    def scalars(self, session: Session, **params: Any) -> list[Any]:
        return [r[0] for r in self.all(session, **params)]

    def execute(self, session: Session, **params: Any) -> int:
        """Run a write; returns the number of rows it touched."""
        _, cursor = self._run(session, params)
        try:
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def execute_many(self, session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run a write once per set of parameters, in one call to the driver."""
        if rows:
            _, cursor = self._run(session, rows)
            cursor.close()
