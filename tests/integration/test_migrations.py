"""Alembic owns the schema: migrating an empty database gives exactly the models' schema, migrating
again changes nothing, and a database migrated by a newer jitpam is refused, untouched.

Each test gets an empty database of its own: a fresh SQLite file, and on PostgreSQL (when
JITPAM_TEST_DATABASE_URL is set) a temporary database created on the same server and dropped
afterwards. The session's shared database is only read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, event, inspect, text
from sqlalchemy.engine import make_url

from jitpam.adapters.clock import FixedClock
from jitpam.adapters.signing import Ed25519Signer
from jitpam.adapters.sql.db import make_engine
from jitpam.adapters.sql.migrate import (
    SchemaTooNewError,
    alembic_config,
    head_revision,
    upgrade,
)
from jitpam.adapters.sql.models import Base
from jitpam.adapters.sql.uow import SqlUnitOfWork, unit_of_work_factory
from jitpam.services import organizations
from jitpam.services.context import ServiceContext
from jitpam.services.ports import UnitOfWork

WRITES = re.compile(r"^\s*(CREATE|ALTER|DROP|INSERT|UPDATE|DELETE)\b", re.IGNORECASE)


@pytest.fixture
def empty_database(database_url: str, tmp_path: Path) -> Iterator[Engine]:
    if database_url.startswith("sqlite"):
        engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
        yield engine
        engine.dispose()
        return
    name = f"jitpam_migration_{uuid4().hex[:12]}"
    server = make_engine(database_url, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        server.dispose()


def differences(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def stored_revision(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one())


def add_organization(engine: Engine) -> str:
    sessions = unit_of_work_factory(engine)

    def new_uow() -> UnitOfWork:
        return SqlUnitOfWork(sessions)

    ctx = ServiceContext(
        uow=new_uow,
        clock=FixedClock(datetime(2026, 11, 24, 9, 0, tzinfo=UTC)),
        signer=Ed25519Signer.generate(),
    )
    org, _ = organizations.create_organization(
        ctx, name="contoso", admin_upn="admin@contoso.com", admin_display_name="Admin"
    )
    return org.name


def test_migrating_an_empty_database_gives_exactly_the_models_schema(
    empty_database: Engine,
) -> None:
    assert inspect(empty_database).get_table_names() == []

    revision = upgrade(empty_database)

    assert revision == head_revision()
    assert stored_revision(empty_database) == head_revision()
    assert differences(empty_database) == []
    tables = set(inspect(empty_database).get_table_names())
    assert tables == set(Base.metadata.tables) | {"alembic_version"}


def test_the_shared_test_database_matches_the_models(engine: Engine) -> None:
    assert differences(engine) == []


def test_migrating_twice_changes_nothing(empty_database: Engine) -> None:
    upgrade(empty_database)
    name = add_organization(empty_database)
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(empty_database, "before_cursor_execute", seen)
    try:
        assert upgrade(empty_database) == head_revision()
    finally:
        event.remove(empty_database, "before_cursor_execute", seen)

    assert statements, "the second upgrade did not even read the schema version"
    assert [s for s in statements if WRITES.match(s)] == []
    assert differences(empty_database) == []
    with empty_database.connect() as conn:
        assert conn.execute(text("SELECT name FROM organizations")).scalars().all() == [name]


def test_a_database_migrated_by_a_newer_jitpam_is_refused_untouched(
    empty_database: Engine,
) -> None:
    upgrade(empty_database)
    name = add_organization(empty_database)
    with empty_database.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))

    with pytest.raises(SchemaTooNewError) as refused:
        upgrade(empty_database)

    message = str(refused.value)
    assert "revision 9999" in message
    assert "migrated by a newer jitpam" in message
    assert "upgrade jitpam" in message

    assert stored_revision(empty_database) == "9999"
    assert differences(empty_database) == []
    with empty_database.connect() as conn:
        assert conn.execute(text("SELECT name FROM organizations")).scalars().all() == [name]
        if conn.dialect.name == "postgresql":
            held = conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())"
                )
            ).scalar_one()
            assert held == 0  # the migration lock was released: other servers may start


def test_organizations_made_before_customer_lockbox_get_its_default_settings(
    empty_database: Engine,
) -> None:
    with empty_database.begin() as conn:
        command.upgrade(alembic_config(conn), "0006")
    name = "fabrikam"
    with empty_database.begin() as conn:  # as jitpam before 0007 wrote it
        conn.execute(
            text(
                "INSERT INTO organizations (id, name, created_at, control_enabled, pending_hours) "
                "VALUES (:id, :name, :at, :enabled, 24)"
            ),
            {"id": uuid4().hex, "name": name, "at": "2026-11-24 09:00:00.000000", "enabled": False},
        )

    upgrade(empty_database)

    with empty_database.connect() as conn:
        settings = conn.execute(
            text(
                "SELECT lockbox_approval_required, lockbox_max_hours FROM organizations "
                "WHERE name = :name"
            ),
            {"name": name},
        ).one()
    assert (bool(settings[0]), settings[1]) == (False, 4)


def test_requests_made_before_data_access_requests_get_no_application_and_no_data(
    empty_database: Engine,
) -> None:
    with empty_database.begin() as conn:
        command.upgrade(alembic_config(conn), "0007")
    org, user, request = uuid4(), uuid4(), uuid4()
    at = "2026-11-24 09:00:00.000000"
    with empty_database.begin() as conn:  # as jitpam before 0008 wrote them
        uuid = (lambda u: u.hex) if conn.dialect.name == "sqlite" else str
        conn.execute(
            text(
                "INSERT INTO organizations (id, name, created_at, control_enabled, pending_hours) "
                "VALUES (:id, 'fabrikam', :at, :enabled, 24)"
            ),
            {"id": uuid(org), "at": at, "enabled": True},
        )
        conn.execute(
            text(
                "INSERT INTO users (id, org_id, upn, display_name, email, kind, enabled, "
                "created_at) VALUES (:id, :org, 'rita@fabrikam.com', 'Rita', "
                "'rita@fabrikam.com', 'person', :enabled, :at)"
            ),
            {"id": uuid(user), "org": uuid(org), "enabled": True, "at": at},
        )
        conn.execute(
            text(
                "INSERT INTO requests (id, org_id, requester_id, requester_upn, policy_id, type, "
                "target, reason, duration_hours, approvals_required, created_at, pending_until, "
                "status, decided_at, key_id, signature, version) VALUES (:id, :org, :user, "
                "'rita@fabrikam.com', :policy, 'task', 'Exchange\\New-MoveRequest', 'stuck', 2, "
                "1, :at, :at, 'denied', :at, 'k', 's', 2)"
            ),
            {
                "id": uuid(request),
                "org": uuid(org),
                "user": uuid(user),
                "policy": uuid(uuid4()),
                "at": at,
            },
        )
        # a review refers to the request: the migration must keep both
        conn.execute(
            text(
                "INSERT INTO reviews (request_id, approver_id, decision, comment, at) "
                "VALUES (:request, :user, 'deny', 'no', :at)"
            ),
            {"request": uuid(request), "user": uuid(user), "at": at},
        )

    upgrade(empty_database)

    assert differences(empty_database) == []
    with empty_database.connect() as conn:
        stored = conn.execute(text("SELECT subject_id, subject_upn, resources FROM requests")).one()
        assert conn.execute(text("SELECT count(*) FROM reviews")).scalar_one() == 1
    assert tuple(stored) == (None, None, "[]")
    with SqlUnitOfWork(unit_of_work_factory(empty_database)) as uow:
        read = uow.requests.get(request)
    assert read is not None
    assert (read.subject_id, read.subject_upn, read.resources) == (None, None, ())
    assert (read.grantee_id, read.grantee_upn) == (user, "rita@fabrikam.com")
    assert [r.comment for r in read.reviews] == ["no"]
