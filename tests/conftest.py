"""Shared fixtures: the databases the suite runs against.

Database tests run on SQLite always, and on PostgreSQL too when JITPAM_TEST_DATABASE_URL is set
(CI sets it to a fresh database). Each test isolates its data in an organization of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import Engine

from jitpam.adapters.sql.db import make_engine
from jitpam.adapters.sql.migrate import upgrade

settings.register_profile(
    "db",
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

PG_URL = os.environ.get("JITPAM_TEST_DATABASE_URL")
BACKENDS = ["sqlite", *(["postgresql"] if PG_URL else [])]


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("sqlite") / "jitpam.db"
        return f"sqlite:///{path}"
    assert PG_URL is not None
    return PG_URL


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    upgrade(eng)
    yield eng
    eng.dispose()
