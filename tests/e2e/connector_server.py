"""A real ``jitpam serve --demo`` with one connector, ``exchange``, against real PostgreSQL roles
(tests/integration/pg_roles.py): contoso's role ``Exchange\\Mailbox Search`` (auto-approved for
the helpdesk, alice among them) is granted to a PostgreSQL role of a unique prefix.

The worker runs its first pass when the server starts and none after (a long interval): the
tests ask for each later pass themselves, so no pass of theirs meets one of the worker's."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import httpx
from psycopg import sql

from tests.e2e.conftest import Server, start_server, token_for
from tests.integration.pg_roles import admin, dsn, made_roles, members

CONNECTOR = "exchange"
SEARCH_ROLE = "Exchange\\Mailbox Search"
ADMIN = "admin@contoso.com"


@dataclass
class ConnectorScene:
    server: Server
    prefix: str
    connector_role: str
    search: str  # the PostgreSQL role bound to Mailbox Search

    def login(self, upn: str) -> str:
        return self.prefix + upn.split("@")[0]

    def members(self) -> list[str]:
        return members(self.search, admins=False)

    def target_down(self, down: bool) -> None:
        """The connector's own role may log in no more (``down``), or again."""
        login = sql.SQL("NOLOGIN" if down else "LOGIN")
        with admin() as conn:
            conn.execute(
                sql.SQL("ALTER ROLE {} {}").format(sql.Identifier(self.connector_role), login)
            )


def _first_pass_done(server: Server) -> None:
    """Wait (polling, with a generous deadline) until the worker's pass at start-up is
    recorded."""
    headers = {"Authorization": f"Bearer {token_for(server, ADMIN)}"}
    end = time.monotonic() + 30
    while time.monotonic() < end:
        answer = httpx.get(f"{server.url}/api/v1/connectors", headers=headers, timeout=10)
        items = answer.json()["items"] if answer.status_code == 200 else []
        if items and all(c["last_run_at"] for c in items):
            return
        time.sleep(0.1)  # polling interval, not a wait for an effect
    raise AssertionError("the worker's first connector pass did not happen")


@contextmanager
def connector_server(tmp: Path) -> Iterator[ConnectorScene]:
    prefix = f"jitpam_e_{uuid4().hex[:6]}_"
    password = f"pw-{uuid4().hex}"
    connector_role, search = prefix + "connector", prefix + "search"
    folder = tmp / "connectors" / "contoso"
    folder.mkdir(parents=True)
    (folder / f"{CONNECTOR}.toml").write_text(
        "\n".join(
            [
                'kind = "postgresql"',
                'dsn = "env:PG_DSN"',
                f'login = "{prefix}{{local}}"',
                "[[bindings]]",
                'role = "Exchange\\\\Mailbox Search"',
                f'grant = "{search}"',
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    logins = [prefix + "alice", prefix + "bob"]
    with made_roles(connector=connector_role, password=password, bound=[search], logins=logins):
        server = start_server(
            tmp,
            "--demo",
            extra_env={
                "JITPAM_CONNECTORS_DIR": str(tmp / "connectors"),
                "JITPAM_CONNECTOR_INTERVAL_MS": str(3_600_000),
                "PG_DSN": dsn(connector_role, password),
            },
        )
        try:
            _first_pass_done(server)
            yield ConnectorScene(server, prefix, connector_role, search)
        finally:
            server.stop()
