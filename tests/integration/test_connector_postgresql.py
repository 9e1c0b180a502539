"""The PostgreSQL connector's adapter against the real server: the server of
JITPAM_TEST_DATABASE_URL, or the local one. Roles are cluster-wide, so each test makes its own
with a unique prefix, and drops them afterwards whatever happened."""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from uuid import uuid4

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from jitpam.adapters.connectors.postgresql import PostgresqlConnector
from jitpam.adapters.executors import SecretUnavailable
from jitpam.domain.connectors import (
    Applied,
    Bound,
    BoundKind,
    Change,
    ConnectorConfig,
    Membership,
    Origin,
    Plan,
    parse_connector,
    plan,
)
from jitpam.domain.errors import ConnectorUnavailable
from jitpam.domain.names import QualifiedName
from tests.integration.pg_roles import SERVER, admin, exists, made_roles, members, session_as

DEADLINE = 10.0
ANALYTICS = Bound(BoundKind.ROLE, QualifiedName("Data", "Analytics"))
READERS = Bound(BoundKind.ROLE_GROUP, QualifiedName("Data", "Readers"))


@dataclass(frozen=True)
class Roles:
    prefix: str
    connector: str  # the connector's own role: least privilege
    password: str
    analytics: str  # bound roles
    reader: str  # a name built to break out of its quotes
    alice: str  # logins
    bob: str
    weird: str  # a login built to break out of its quotes
    victim: str  # what the hostile names would drop
    unbound: str  # a role the connector holds no ADMIN OPTION on

    def dsn(self) -> str:
        return make_conninfo(SERVER, user=self.connector, password=self.password)

    def config(self, *, terminate: bool = True) -> ConnectorConfig:
        def toml(s: str) -> str:
            return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

        text = (
            f'kind = "postgresql"\ndsn = "env:PG_DSN"\nlogin = {toml(self.prefix + "{local}")}\n'
            f"terminate_sessions = {str(terminate).lower()}\n"
            f'[[bindings]]\nrole = "Data\\\\Analytics"\ngrant = {toml(self.analytics)}\n'
            f'[[bindings]]\nrole_group = "Data\\\\Readers"\ngrant = {toml(self.reader)}\n'
        )
        return parse_connector(text, source="/x/contoso/analytics.toml")


@pytest.fixture
def roles() -> Iterator[Roles]:
    p = f"jitpam_t_{uuid4().hex[:6]}_"
    r = Roles(
        prefix=p,
        connector=p + "connector",
        password=f"pw-{uuid4().hex}",
        analytics=p + "analytics",
        reader=f'{p}read"er; DROP ROLE {p}victim --',
        alice=p + "alice",
        bob=p + "bob",
        weird=f'{p}we"ird; DROP ROLE {p}victim',
        victim=p + "victim",
        unbound=p + "unbound",
    )
    logins = [r.alice, r.bob, r.weird, r.victim, r.unbound]
    with made_roles(
        connector=r.connector, password=r.password, bound=[r.analytics, r.reader], logins=logins
    ):
        with admin() as conn:  # a role the connector holds no ADMIN OPTION on
            conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(r.unbound)))
        yield r


def only(adds: Collection[Membership] = (), removes: Collection[Membership] = ()) -> Plan:
    empty: frozenset[Membership] = frozenset()
    return Plan(frozenset(adds), frozenset(removes), empty, empty, empty)


def test_add_shows_in_present_add_again_changes_nothing_and_remove_takes_it_away(
    roles: Roles,
) -> None:
    adapter = PostgresqlConnector(roles.config(), roles.dsn())
    grant = Membership(roles.analytics, roles.alice)
    assert adapter.present() == {roles.analytics: frozenset(), roles.reader: frozenset()}

    for _ in range(2):  # the second GRANT is only a notice
        [outcome] = adapter.apply(only(adds={grant}))
        assert (outcome.change, outcome.membership, outcome.done) == (Change.ADD, grant, True)
        assert adapter.present()[roles.analytics] == {roles.alice}
        assert members(roles.analytics) == [roles.alice, roles.connector]

    for _ in range(2):  # revoking a non-member is only a warning
        [outcome] = adapter.apply(only(removes={grant}))
        assert (outcome.change, outcome.done) == (Change.REMOVE, True)
        assert adapter.present()[roles.analytics] == frozenset()


def test_present_covers_the_roles_records_name_and_leaves_out_the_connector_itself(
    roles: Roles,
) -> None:
    adapter = PostgresqlConnector(roles.config(), roles.dsn())
    gone = roles.prefix + "no_such_role"
    with admin() as conn:
        conn.execute(
            sql.SQL("GRANT {} TO {}").format(
                sql.Identifier(roles.unbound), sql.Identifier(roles.bob)
            )
        )
    present = adapter.present([roles.unbound, gone])
    # the connector is a member of each bound role (its ADMIN OPTION) but never drift to repair
    assert members(roles.analytics) == [roles.connector]
    assert present == {
        roles.analytics: frozenset(),
        roles.reader: frozenset(),
        roles.unbound: {roles.bob},
        gone: frozenset(),
    }


def test_one_failing_change_stops_no_other_and_its_message_holds_no_secret(
    roles: Roles,
) -> None:
    adapter = PostgresqlConnector(roles.config(), roles.dsn())
    ghost = roles.prefix + "ghost"
    changes = {
        Membership(roles.analytics, ghost),
        Membership(roles.analytics, roles.alice),
        Membership(roles.reader, roles.bob),
    }
    outcomes = adapter.apply(only(adds=changes, removes={Membership(roles.reader, ghost)}))
    by_change = {(o.change, o.membership): o for o in outcomes}
    assert len(outcomes) == 4
    failed = [o for o in outcomes if not o.done]
    assert [(o.change, o.membership.member) for o in failed] == [
        (Change.ADD, ghost),
        (Change.REMOVE, ghost),
    ]
    for o in failed:
        assert o.error is not None
        assert "does not exist" in o.error
        assert roles.password not in o.error
        assert "password" not in o.error
    assert by_change[(Change.ADD, Membership(roles.analytics, roles.alice))].done
    assert members(roles.analytics) == [roles.alice, roles.connector]
    assert members(roles.reader) == [roles.bob, roles.connector]


def test_a_connector_without_admin_option_fails_each_change_with_the_servers_reason(
    roles: Roles,
) -> None:
    adapter = PostgresqlConnector(roles.config(), roles.dsn())
    [outcome] = adapter.apply(only(adds={Membership(roles.unbound, roles.alice)}))
    assert outcome.error is not None
    assert "admin option" in outcome.error
    assert members(roles.unbound) == []


@pytest.mark.parametrize("inherit", [True, False])
def test_removal_ends_the_sessions_that_ran_set_role(roles: Roles, inherit: bool) -> None:
    if not inherit:  # pg_signal_backend's privileges then need SET ROLE; ADMIN OPTION does not
        with admin() as conn:
            conn.execute(sql.SQL("ALTER ROLE {} NOINHERIT").format(sql.Identifier(roles.connector)))
    adapter = PostgresqlConnector(roles.config(terminate=True), roles.dsn())
    grant, other = Membership(roles.analytics, roles.alice), Membership(roles.analytics, roles.bob)
    assert all(o.done for o in adapter.apply(only(adds={grant, other})))
    session = session_as(roles.alice, roles.analytics)
    try:
        bystander = session_as(roles.bob, roles.analytics)  # another login's: left alone
    except BaseException:
        session.close()
        raise
    try:
        [outcome] = adapter.apply(only(removes={grant}))
        assert outcome.done, outcome.error
        assert outcome.sessions_ended == 1
        deadline = time.monotonic() + DEADLINE
        while True:  # the backend exits shortly after the signal: poll until it is gone
            try:
                session.execute("SELECT 1")
            except psycopg.OperationalError:
                break
            assert time.monotonic() < deadline, "the session that ran SET ROLE still lives"
            time.sleep(0.05)
        assert session.broken
        assert bystander.execute("SELECT current_user").fetchone() == (roles.analytics,)
    finally:
        session.close()
        bystander.close()


def test_without_terminate_sessions_a_set_role_session_keeps_the_role(roles: Roles) -> None:
    adapter = PostgresqlConnector(roles.config(terminate=False), roles.dsn())
    grant = Membership(roles.analytics, roles.alice)
    assert adapter.apply(only(adds={grant}))[0].done
    with session_as(roles.alice, roles.analytics) as session:
        [outcome] = adapter.apply(only(removes={grant}))
        assert outcome.done, outcome.error
        assert outcome.sessions_ended == 0
        assert adapter.present()[roles.analytics] == frozenset()
        # why terminate_sessions exists: the membership is gone, the session still acts as it
        assert session.execute("SELECT current_user").fetchone() == (roles.analytics,)


def test_hostile_role_names_are_quoted_never_executed(roles: Roles) -> None:
    adapter = PostgresqlConnector(roles.config(), roles.dsn())
    changes = {Membership(roles.reader, roles.weird), Membership(roles.analytics, roles.weird)}
    assert all(o.done for o in adapter.apply(only(adds=changes)))
    present = adapter.present()
    assert present[roles.reader] == {roles.weird}
    assert present[roles.analytics] == {roles.weird}
    assert exists(roles.victim)
    assert all(o.done for o in adapter.apply(only(removes=changes)))
    assert adapter.present() == {roles.analytics: frozenset(), roles.reader: frozenset()}
    assert exists(roles.victim)
    assert exists(roles.weird)
    assert exists(roles.reader)


def test_the_domains_plan_applied_twice_is_idempotent_and_spares_what_was_there(
    roles: Roles,
) -> None:
    config = roles.config()
    adapter = PostgresqlConnector(config, roles.dsn())
    with admin() as conn:  # bob was a reader before jitpam: pre-existing, never removed
        conn.execute(
            sql.SQL("GRANT {} TO {}").format(
                sql.Identifier(roles.reader), sql.Identifier(roles.bob)
            )
        )
    upns = {
        "alice": "alice@contoso.com",
        "bob": "bob@contoso.com",
        "weird": 'we"ird; DROP ROLE ' + roles.victim + "@contoso.com",
    }
    login = {k: config.member_for(v) for k, v in upns.items()}
    assert login == {"alice": roles.alice, "bob": roles.bob, "weird": roles.weird}

    def holders(h: dict[Bound, frozenset[str]]) -> dict[str, frozenset[str]]:
        return config.needed(h)

    def now() -> dict[str, frozenset[str]]:
        return adapter.present()

    needed = holders(
        {ANALYTICS: frozenset({login["alice"], login["weird"]}), READERS: frozenset({login["bob"]})}
    )
    first = plan(config, holders=needed, applied=frozenset(), present=now())
    assert first.adds == {
        Membership(roles.analytics, roles.alice),
        Membership(roles.analytics, roles.weird),
    }
    assert first.adopt == {Membership(roles.reader, roles.bob)}
    for _ in range(2):
        assert all(o.done for o in adapter.apply(first))
        assert now() == {
            roles.analytics: {roles.alice, roles.weird},
            roles.reader: {roles.bob},
        }
    applied = frozenset(
        {Applied(m, Origin.ADDED) for m in first.adds}
        | {Applied(m, Origin.PRE_EXISTING) for m in first.adopt}
    )
    assert plan(config, holders=needed, applied=applied, present=now()).empty

    ended = plan(config, holders=holders({}), applied=applied, present=now())
    assert ended.removes == first.adds
    for _ in range(2):
        assert all(o.done for o in adapter.apply(ended))
        assert now() == {roles.analytics: frozenset(), roles.reader: {roles.bob}}
    assert exists(roles.victim)


def test_connection_errors_raise_the_adapters_error_without_the_secret(roles: Roles) -> None:
    config = roles.config()
    secret = "hunter2-" + uuid4().hex
    no_db = make_conninfo(roles.dsn(), dbname=roles.prefix + "nodb", password=secret)
    no_server = make_conninfo(roles.dsn(), port=1, password=secret)
    for dsn in (no_db, no_server):
        with pytest.raises(ConnectorUnavailable) as caught:
            PostgresqlConnector(config, dsn, connect_timeout_seconds=2).present()
        assert caught.value.message.startswith("connector analytics: cannot connect")
        assert secret not in caught.value.message
        assert dsn not in caught.value.message
        with pytest.raises(ConnectorUnavailable):
            PostgresqlConnector(config, dsn, connect_timeout_seconds=2).apply(only())
    with pytest.raises(ConnectorUnavailable) as caught:
        PostgresqlConnector(config, f"host=localhost password={secret} oops")
    assert "not a PostgreSQL connection string" in caught.value.message
    assert secret not in caught.value.message


def test_the_dsn_comes_from_the_secret_the_configuration_names(
    roles: Roles, tmp_path: Path
) -> None:
    config = roles.config()  # dsn = "env:PG_DSN"
    with pytest.raises(SecretUnavailable):
        PostgresqlConnector.from_config(config, secrets_dir=None, environ={})
    adapter = PostgresqlConnector.from_config(
        config, secrets_dir=None, environ={"PG_DSN": roles.dsn()}
    )
    assert adapter.present()[roles.analytics] == frozenset()
    (tmp_path / "pg-dsn").write_text(roles.dsn() + "\n", encoding="utf-8")
    from_file = replace(config, target=replace(config.target, dsn="file:pg-dsn"))
    adapter = PostgresqlConnector.from_config(from_file, secrets_dir=tmp_path, environ={})
    assert adapter.present()[roles.analytics] == frozenset()


def test_only_logins_are_granted_never_a_group_role_or_the_connector_itself(
    roles: Roles,
) -> None:
    adapter = PostgresqlConnector(roles.config(), roles.dsn())
    group, itself = (
        Membership(roles.analytics, roles.unbound),
        Membership(roles.analytics, roles.connector),
    )
    errors = {o.membership: o.error for o in adapter.apply(only(adds={group, itself}))}
    assert "role without LOGIN" in (errors[group] or "")  # its members would all inherit it
    assert "connector's own login" in (errors[itself] or "")
    assert members(roles.analytics) == [roles.connector]  # through its ADMIN OPTION only
