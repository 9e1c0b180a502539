"""A failed database call is reported as what it is: someone else was first (409), the audit
log refused the write or the database is gone (503), never one disguised as the other."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from jitpam.adapters.sql.uow import _domain_error
from jitpam.domain.errors import AuditUnavailable, ConcurrentChange, DatabaseUnavailable


class DriverError(Exception):
    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def failed(message: str, sqlstate: str | None = None) -> OperationalError:
    return OperationalError("SQL", {}, DriverError(message, sqlstate))


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (IntegrityError("INSERT", {}, DriverError("duplicate key")), ConcurrentChange),
        (failed("could not serialize access", "40001"), ConcurrentChange),
        (failed("deadlock detected", "40P01"), ConcurrentChange),
        (failed("database is locked"), ConcurrentChange),
        (failed("terminating connection (administrator command)", "57P01"), DatabaseUnavailable),
        (failed("server closed the connection unexpectedly"), DatabaseUnavailable),
        (failed("disk I/O error"), DatabaseUnavailable),
        (failed("audit records are append-only"), AuditUnavailable),
    ],
)
def test_each_failure_is_named_for_what_it_is(error: DBAPIError, expected: type) -> None:
    mapped = _domain_error(error)
    assert type(mapped) is expected
    assert "(" not in mapped.message  # no driver class names or internals in the message
