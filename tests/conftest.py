"""Shared fixtures: the databases the suite runs against.

Database tests run on SQLite always, and on PostgreSQL too when JITPAM_TEST_DATABASE_URL is set
(CI sets it to a fresh database). Each test isolates its data in an organization of its own.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

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


_TEMPLATES: dict[str, str] = {}


def migrated_template(server_url: str) -> str:
    """The name of a database on ``server_url``'s PostgreSQL server migrated to the code's schema
    once per test process, and dropped when the process ends: a database made from it with
    ``CREATE DATABASE ... TEMPLATE`` is a file copy, where migrating a new one runs every
    revision (tests that check migrating an empty database make an empty one instead)."""
    if server_url not in _TEMPLATES:
        name = f"jitpam_template_{uuid4().hex[:12]}"
        with _server(server_url) as server, server.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
        eng = make_engine(url)
        try:
            upgrade(eng)
        finally:
            eng.dispose()  # no connection may stay open on a template while it is copied
        _TEMPLATES[server_url] = name
        atexit.register(_drop, server_url, name)
    return _TEMPLATES[server_url]


@contextmanager
def _server(server_url: str) -> Iterator[Engine]:
    server = make_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        yield server
    finally:
        server.dispose()


def _drop(server_url: str, name: str) -> None:
    with _server(server_url) as server, server.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def postgresql_database(server_url: str, prefix: str, *, migrated: bool) -> Iterator[str]:
    """A new database on ``server_url``'s PostgreSQL server (its URL), dropped afterwards: a copy
    of the migrated template, or empty."""
    name = f"{prefix}_{uuid4().hex[:10]}"
    template = f' TEMPLATE "{migrated_template(server_url)}"' if migrated else ""
    with _server(server_url) as server, server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"{template}'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        _drop(server_url, name)


@contextmanager
def database_of_its_own(database_url: str, tmp: Path) -> Iterator[Engine]:
    """A new database of the same kind as ``database_url`` (a SQLite file under ``tmp``, or a
    database on the same PostgreSQL server), migrated, and dropped afterwards.

    For tests whose use cases act on every organization of the database (the outbox worker, the
    sweeps): on the session's shared database they would also work through all that every test
    before them left behind, which costs time and makes the cost depend on the test order."""
    if database_url.startswith("sqlite"):
        eng = make_engine(f"sqlite:///{tmp / 'own.db'}")
        upgrade(eng)
        try:
            yield eng
        finally:
            eng.dispose()
        return
    with postgresql_database(database_url, "jitpam_own", migrated=True) as url:
        eng = make_engine(url)
        try:
            yield eng
        finally:
            eng.dispose()
