"""A failed database call is reported as what it is: someone else was first (409), the audit
log refused the write or the database is gone (503), never one disguised as the other. The
error's class and the driver's code tell them apart, never the words of its message."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError

from jitpam.adapters.sql.uow import _domain_error
from jitpam.domain.errors import ConcurrentChange, DatabaseUnavailable, InvalidInput


class DriverError(Exception):
    def __init__(
        self, message: str, sqlstate: str | None = None, sqlite_errorcode: int | None = None
    ) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        if sqlite_errorcode is not None:
            self.sqlite_errorcode = sqlite_errorcode


def failed(
    message: str, sqlstate: str | None = None, sqlite_errorcode: int | None = None
) -> OperationalError:
    return OperationalError("SQL", {}, DriverError(message, sqlstate, sqlite_errorcode))


SQLITE_BUSY_SNAPSHOT = sqlite3.SQLITE_BUSY | (2 << 8)  # an extended code of SQLITE_BUSY


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (IntegrityError("INSERT", {}, DriverError("duplicate key")), ConcurrentChange),
        (failed("could not serialize access", "40001"), ConcurrentChange),
        (failed("deadlock detected", "40P01"), ConcurrentChange),
        (failed("database is locked", sqlite_errorcode=sqlite3.SQLITE_BUSY), ConcurrentChange),
        (
            failed("database table is locked", sqlite_errorcode=sqlite3.SQLITE_LOCKED),
            ConcurrentChange,
        ),
        (failed("database is locked", sqlite_errorcode=SQLITE_BUSY_SNAPSHOT), ConcurrentChange),
        (failed("terminating connection (administrator command)", "57P01"), DatabaseUnavailable),
        (failed("server closed the connection unexpectedly"), DatabaseUnavailable),
        (failed("disk I/O error", sqlite_errorcode=sqlite3.SQLITE_IOERR), DatabaseUnavailable),
    ],
)
def test_each_failure_is_named_for_what_it_is(error: DBAPIError, expected: type) -> None:
    mapped = _domain_error(error)
    assert type(mapped) is expected
    assert "(" not in mapped.message  # no driver class names or internals in the message


def test_a_value_the_database_cannot_store_is_invalid_input() -> None:
    refused = DataError("INSERT", {}, DriverError("value too long", "22001"))
    assert type(_domain_error(refused)) is InvalidInput


@pytest.mark.parametrize(
    "message",
    [
        "audit records are append-only",  # once read as the audit log's failure
        "database is locked",  # once read as a race, whatever the driver said
    ],
)
def test_the_words_of_a_message_decide_nothing(message: str) -> None:
    """An outage is an outage, whatever its message says: a failed audit write is reported as
    AuditUnavailable where it happens (tests/integration/test_audit_integrity.py), and a race by
    the driver's code."""
    assert type(_domain_error(failed(message))) is DatabaseUnavailable
