"""Statements on the hot paths, compiled once and run on the driver's own cursor.

A Core statement executed through SQLAlchemy costs some 40 µs of Python around a 5 µs SQLite
look-up (building the cache key, the execution context, the result object); an ORM query costs
five times that. New requests, reviews and checks run a dozen or two statements each, so that
cost was most of theirs. A ``Prepared`` statement is written as Core (so it stays checked
against the schema and rendered by the dialect), compiled once per dialect, and then run on the
DBAPI connection under the session's transaction, its parameters and columns converted by the
same type processors SQLAlchemy would use. Driver errors come back as SQLAlchemy's exceptions,
so the unit of work maps them (conflicts, outages) as it maps every other.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any]


class _Compiled:
    """One statement rendered for one dialect, with its parameters' and columns' converters."""

    def __init__(self, stmt: ClauseElement, dialect: Dialect) -> None:
        compiled = stmt.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        if compiled.post_compile_params:
            raise ValueError("a prepared statement cannot expand parameters (IN lists)")
        self.sql = compiled.string
        self.defaults = compiled.construct_params(_check=False)
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        self.positional = dialect.positional
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

    def parameters(self, given: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        values = {**self.defaults, **given}
        for name, processor in self.binds.items():
            values[name] = processor(values[name])
        if self.positional:
            return [values[n] for n in self.names]
        return values

    def row(self, raw: Sequence[Any]) -> Any:
        if not self.results:
            return self.make(raw)
        out = list(raw)
        for i, processor in self.results:
            out[i] = processor(out[i])
        return self.make(out)


_DRIVER = "jitpam.prepared.driver"


def _driver(session: Session) -> tuple[Dialect, Any]:
    """The dialect and the DBAPI connection of the session's transaction (found once for it)."""
    held: PerTransaction[str, tuple[Dialect, Any]] = PerTransaction(session, _DRIVER)
    found = held.get(_DRIVER)
    if found is None:
        connection = session.connection()  # begins the transaction if none is open
        found = (connection.dialect, connection.connection.driver_connection)
        held.put(_DRIVER, found)
    return found


class Prepared:
    """A Core statement run on the session's connection at the driver's cost (see module)."""

    __slots__ = ("_by_dialect", "_stmts")

    def __init__(self, stmt: ClauseElement, **by_dialect: ClauseElement) -> None:
        """``stmt``, or for the dialects named (``sqlite=``, ``postgresql=``) their own."""
        self._stmts = {"": stmt, **by_dialect}
        self._by_dialect: dict[str, _Compiled] = {}

    def _compiled(self, dialect: Dialect) -> _Compiled:
        found = self._by_dialect.get(dialect.name)
        if found is None:
            stmt = self._stmts.get(dialect.name, self._stmts[""])
            found = self._by_dialect[dialect.name] = _Compiled(stmt, dialect)
        return found

    def _run(
        self, session: Session, params: Mapping[str, Any] | Sequence[Mapping[str, Any]]
    ) -> tuple[_Compiled, Any]:
        if not session._is_clean():
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


K = TypeVar("K")
V = TypeVar("V")


class PerTransaction(Generic[K, V]):
    """Values read in the session's current transaction, forgotten when another begins.

    Kept in the session under ``name``: repositories that share a name share the values (one
    reads them, another that changes what they describe forgets them).
    """

    __slots__ = ("_name", "_session")

    def __init__(self, session: Session, name: str) -> None:
        self._session = session
        self._name = name

    def _current(self) -> dict[K, V]:
        transaction = self._session.get_transaction()
        held = self._session.info.get(self._name)
        if held is None or held[0] is not transaction:
            held = self._session.info[self._name] = (transaction, {})
        values: dict[K, V] = held[1]
        return values

    def get(self, key: K) -> V | None:
        return self._current().get(key)

    def put(self, key: K, value: V) -> None:
        if self._session.get_transaction() is not None:
            self._current()[key] = value

    def forget(self, key: K) -> None:
        self._current().pop(key, None)

    def clear(self) -> None:
        self._current().clear()
