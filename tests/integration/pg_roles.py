"""PostgreSQL roles for the connector tests, on the server of JITPAM_TEST_DATABASE_URL (or the
local one). Roles are cluster-wide: every test makes its own under a unique prefix and drops
them afterwards, whatever happened."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

SERVER = re.sub(
    r"^postgresql\+\w+://",
    "postgresql://",
    os.environ.get("JITPAM_TEST_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/test",
)


def admin() -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(SERVER, autocommit=True, connect_timeout=5)


def dsn(user: str, password: str) -> str:
    return make_conninfo(SERVER, user=user, password=password)


def exists(role: str) -> bool:
    with admin() as conn:
        return (
            conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            is not None
        )


def members(role: str, *, admins: bool = True) -> list[str]:
    """The role's members; without ``admins``, those holding ADMIN OPTION (the connector's own
    role) left out."""
    admin_option = "" if admins else " AND NOT am.admin_option"
    with admin() as conn:
        rows = conn.execute(
            "SELECT m.rolname FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid "
            "JOIN pg_roles m ON m.oid = am.member WHERE r.rolname = %s"
            + admin_option
            + " ORDER BY 1",
            (role,),
        ).fetchall()
    return [str(r[0]) for r in rows]


@contextmanager
def made_roles(
    *, connector: str, password: str, bound: Iterable[str], logins: Iterable[str]
) -> Iterator[None]:
    """A least-privilege connector role (LOGIN, ADMIN OPTION on each ``bound`` role,
    pg_signal_backend), the bound roles and the logins; all dropped at the end."""
    bound, logins = list(bound), list(logins)
    everyone = [*logins, *bound, connector]
    ident = sql.Identifier
    try:
        with admin() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEROLE PASSWORD {}").format(
                    ident(connector), sql.Literal(password)
                )
            )
            for role in bound:
                conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(ident(role)))
                conn.execute(
                    sql.SQL("GRANT {} TO {} WITH ADMIN OPTION").format(
                        ident(role), ident(connector)
                    )
                )
            conn.execute(sql.SQL("GRANT pg_signal_backend TO {}").format(ident(connector)))
            for login in logins:
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident(login)))
        yield
    finally:
        with admin() as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ANY(%s)",
                (everyone,),
            )
            for name in everyone:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(ident(name)))


def session_as(login: str, role: str) -> psycopg.Connection[tuple[object, ...]]:
    """A session of ``login`` that ran SET ROLE ``role``."""
    conn = psycopg.connect(make_conninfo(SERVER, user=login), autocommit=True, connect_timeout=5)
    try:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        assert conn.execute("SELECT current_user").fetchone() == (role,)
    except BaseException:
        conn.close()
        raise
    return conn
