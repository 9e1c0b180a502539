"""The PostgreSQL connector's adapter: reads the members of the bound roles, and grants and
revokes them as a plan (domain/connectors.py) says.

The connector's own role needs no more than LOGIN, ``ADMIN OPTION`` on each bound role, and
``pg_signal_backend`` (inherited) when ``terminate_sessions`` is on. Every identifier goes into
SQL through ``sql.Identifier``; every value as a parameter. Each statement is its own transaction,
so one change that fails leaves the others standing. A message that leaves this module never holds
the DSN or its password.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow

from jitpam.adapters.executors import resolve_secret
from jitpam.domain.connectors import (
    Change,
    ChangeOutcome,
    ConnectorConfig,
    Membership,
    Plan,
    PostgresqlTarget,
)
from jitpam.domain.errors import ConnectorUnavailable

REDACTED = "[redacted]"

_MEMBERS = """
SELECT r.rolname, m.rolname
FROM pg_auth_members am
JOIN pg_roles r ON r.oid = am.roleid
JOIN pg_roles m ON m.oid = am.member
WHERE r.rolname = ANY(%s) AND m.rolname <> session_user
"""
_IS_MEMBER = """
SELECT 1
FROM pg_auth_members am
JOIN pg_roles r ON r.oid = am.roleid
JOIN pg_roles m ON m.oid = am.member
WHERE r.rolname = %s AND m.rolname = %s
"""
# Who may be granted a role: a login role, never the connector's own.
_GRANTEE = "SELECT rolcanlogin, rolname = session_user FROM pg_roles WHERE rolname = %s"
# Statements wait at most this long for a lock, and run at most this long: a pass never hangs
# the worker (it fails, and is retried).
_LIMITS = "-c lock_timeout=10000 -c statement_timeout=30000"
# A session that ran SET ROLE keeps the role after REVOKE: only ending it takes the role away.
_TERMINATE = """
SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
FROM pg_stat_activity
WHERE usename = %s AND pid <> pg_backend_pid()
"""


class PostgresqlConnector:
    def __init__(
        self, config: ConnectorConfig, dsn: str, *, connect_timeout_seconds: int = 10
    ) -> None:
        if not isinstance(config.target, PostgresqlTarget):
            raise ValueError(f"connector {config.name} is not of kind postgresql")
        self.config = config
        self._target = config.target
        self._dsn = dsn
        self._timeout = connect_timeout_seconds
        self._secrets = [dsn]
        try:
            password = conninfo_to_dict(dsn).get("password")
        except psycopg.Error:
            raise self._unavailable("its DSN is not a PostgreSQL connection string") from None
        if password:
            self._secrets.append(str(password))

    @classmethod
    def from_config(
        cls,
        config: ConnectorConfig,
        *,
        secrets_dir: Path | None,
        environ: Mapping[str, str] | None = None,
    ) -> PostgresqlConnector:
        """The connector with its DSN read from the secret its configuration names."""
        if not isinstance(config.target, PostgresqlTarget):
            raise ValueError(f"connector {config.name} is not of kind postgresql")
        dsn = resolve_secret(
            config.target.dsn,
            environ=environ if environ is not None else os.environ,
            secrets_dir=secrets_dir,
        )
        return cls(config, dsn)

    def present(self, targets: Iterable[str] = ()) -> dict[str, frozenset[str]]:
        """The members of each bound role, and of each role in ``targets`` (those jitpam's
        records name); a role that does not exist has none. The connector's own role, a member
        through its ADMIN OPTION, is left out: it is never jitpam's to grant or take away."""
        wanted = sorted(self.config.targets | set(targets))
        found: dict[str, set[str]] = {t: set() for t in wanted}
        with self._connect() as conn:
            try:
                rows = conn.execute(_MEMBERS, (wanted,)).fetchall()
            except psycopg.Error as exc:
                raise self._unavailable(
                    f"reading role members failed: {self._scrub(exc)}"
                ) from None
        for role, member in rows:
            found[role].add(member)
        return {t: frozenset(m) for t, m in found.items()}

    def apply(self, plan: Plan) -> list[ChangeOutcome]:
        """Grant each of ``plan.adds``, revoke each of ``plan.removes``: one outcome each, adds
        first. Granting a member again, or revoking a non-member, succeeds (idempotent)."""
        outcomes: list[ChangeOutcome] = []
        with self._connect() as conn:
            for m in sorted(plan.adds):
                outcomes.append(self._change(conn, Change.ADD, m))
            for m in sorted(plan.removes):
                outcomes.append(self._change(conn, Change.REMOVE, m))
        return outcomes

    def _change(
        self, conn: psycopg.Connection[TupleRow], change: Change, m: Membership
    ) -> ChangeOutcome:
        role, member = sql.Identifier(m.target), sql.Identifier(m.member)
        ended = 0
        try:
            if change is Change.ADD:
                found = conn.execute(_GRANTEE, (m.member,)).fetchone()
                if found is not None and not found[0]:
                    return ChangeOutcome(
                        change, m, "is a role without LOGIN, not a login: not granted"
                    )
                if found is not None and found[1]:
                    return ChangeOutcome(change, m, "is the connector's own login: not granted")
                conn.execute(sql.SQL("GRANT {} TO {}").format(role, member))
                return ChangeOutcome(change, m)
            conn.execute(sql.SQL("REVOKE {} FROM {}").format(role, member))
            if conn.execute(_IS_MEMBER, (m.target, m.member)).fetchone() is not None:
                # REVOKE only warns when the membership was granted in a way it cannot undo
                return ChangeOutcome(change, m, "still a member after REVOKE")
            if self._target.terminate_sessions:
                try:
                    ended = self._terminate(conn, m.member)
                except psycopg.Error as exc:
                    if conn.broken:
                        raise
                    why = self._scrub(exc) or type(exc).__name__
                    return ChangeOutcome(
                        change, m, f"revoked, but the login's sessions were not ended: {why}"
                    )
        except psycopg.Error as exc:
            if conn.broken:
                raise self._unavailable(f"the connection broke: {self._scrub(exc)}") from None
            return ChangeOutcome(change, m, self._scrub(exc) or type(exc).__name__)
        return ChangeOutcome(change, m, sessions_ended=ended)

    def _terminate(self, conn: psycopg.Connection[TupleRow], login: str) -> int:
        """End ``login``'s sessions: through pg_signal_backend's privileges, inherited, or taken
        with SET ROLE when the connector's role does not inherit."""
        try:
            row = conn.execute(_TERMINATE, (login,)).fetchone()
        except psycopg.errors.InsufficientPrivilege as denied:
            try:
                conn.execute("SET ROLE pg_signal_backend")
            except psycopg.Error:
                raise denied from None  # not a member of pg_signal_backend at all
            try:
                row = conn.execute(_TERMINATE, (login,)).fetchone()
            finally:
                conn.execute("RESET ROLE")
        return int(row[0]) if row is not None else 0

    def _connect(self) -> psycopg.Connection[TupleRow]:
        try:
            return psycopg.connect(
                self._dsn, autocommit=True, connect_timeout=self._timeout, options=_LIMITS
            )
        except psycopg.Error as exc:
            raise self._unavailable(f"cannot connect: {self._scrub(exc)}") from None

    def _scrub(self, exc: BaseException) -> str:
        message = str(exc).strip()
        for secret in self._secrets:
            message = message.replace(secret, REDACTED)
        return message

    def _unavailable(self, why: str) -> ConnectorUnavailable:
        return ConnectorUnavailable(f"connector {self.config.name}: {why}")
