"""The LDAP connector's adapter: reads the ``member`` values of the bound groups, and adds and
deletes them as a plan (domain/connectors.py) says.

The connector's bind account needs no more than to read the groups and to write their ``member``
attribute. Each change is one LDAP modify of one value, so one that fails leaves the others
standing. DNs leave ``present`` normalized (``normalize_dn``), the form ``plan`` compares, and go
back to the directory in that form; the directory finds the same entry under it. ``ldaps://``
verifies the server's certificate and name against the system's certificate authorities. A
message that leaves this module never holds the password.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jitpam.adapters.executors import resolve_secret
from jitpam.domain.connectors import (
    Change,
    ChangeOutcome,
    ConnectorConfig,
    LdapTarget,
    Membership,
    Plan,
    normalize_dn,
)
from jitpam.domain.errors import ConnectorUnavailable, InvalidInput

with warnings.catch_warnings():
    # ldap3 2.9.1, its last release, reads two of pyasn1's encoder tables by their old names,
    # which pyasn1 0.6 warns about once, on import; the tables are the same.
    warnings.filterwarnings("ignore", r"(tagMap|typeMap) is deprecated", DeprecationWarning)
    import ldap3
    from ldap3.core.exceptions import LDAPException

REDACTED = "[redacted]"
MEMBER = "member"
SUCCESS = 0
NO_SUCH_ATTRIBUTE = 16  # deleting a value that is not there
ATTRIBUTE_OR_VALUE_EXISTS = 20  # adding a value that is there
NO_SUCH_OBJECT = 32
# Results that say the connection, not the change, failed: the rest of the plan would fail too.
_UNAVAILABLE_RESULTS = frozenset(
    {1, 2, 51, 52, 80}
)  # operations, protocol, busy, unavailable, other


class LdapConnector:
    def __init__(
        self,
        config: ConnectorConfig,
        password: str,
        *,
        connect_timeout_seconds: float = 10,
        receive_timeout_seconds: float = 30,
    ) -> None:
        if not isinstance(config.target, LdapTarget):
            raise ValueError(f"connector {config.name} is not of kind ldap")
        self.config = config
        self._target = config.target
        self._password = password
        self._bind_dn = normalize_dn(config.target.bind_dn)
        self._connect_timeout = connect_timeout_seconds
        self._receive_timeout = receive_timeout_seconds

    @classmethod
    def from_config(
        cls,
        config: ConnectorConfig,
        *,
        secrets_dir: Path | None,
        environ: Mapping[str, str] | None = None,
    ) -> LdapConnector:
        """The connector with its bind password read from the secret its configuration
        names."""
        if not isinstance(config.target, LdapTarget):
            raise ValueError(f"connector {config.name} is not of kind ldap")
        password = resolve_secret(
            config.target.password,
            environ=environ if environ is not None else os.environ,
            secrets_dir=secrets_dir,
        )
        return cls(config, password)

    def present(self, targets: Iterable[str] = ()) -> dict[str, frozenset[str]]:
        """The ``member`` values of each bound group, and of each group in ``targets`` (those
        jitpam's records name), normalized; a group that does not exist has none. The
        connector's own bind DN is left out: it is never jitpam's to add or take away."""
        wanted = sorted(self.config.targets | set(targets))
        found: dict[str, frozenset[str]] = {}
        conn = self._connect()
        try:
            for group in wanted:
                found[group] = self._members(conn, group)
        finally:
            self._close(conn)
        return found

    def apply(self, plan: Plan) -> list[ChangeOutcome]:
        """Add each of ``plan.adds`` to its group's ``member``, then delete each of
        ``plan.removes`` (adds first: a ``groupOfNames`` keeps at least one member, and the plan
        puts the placeholder in before the last member leaves). One outcome each; adding a
        member again, or deleting a non-member, succeeds (idempotent)."""
        outcomes: list[ChangeOutcome] = []
        conn = self._connect()
        try:
            for m in sorted(plan.adds):
                outcomes.append(self._change(conn, Change.ADD, m))
            for m in sorted(plan.removes):
                outcomes.append(self._change(conn, Change.REMOVE, m))
        finally:
            self._close(conn)
        return outcomes

    def _members(self, conn: ldap3.Connection, group: str) -> frozenset[str]:
        try:
            conn.search(group, "(objectClass=*)", search_scope=ldap3.BASE, attributes=[MEMBER])
        except LDAPException as exc:
            raise self._unavailable(f"reading {group} failed: {self._scrub(exc)}") from None
        result = conn.result
        if result["result"] == NO_SUCH_OBJECT:
            return frozenset()
        if result["result"] != SUCCESS:
            raise self._unavailable(f"reading {group} failed: {self._describe(result)}")
        members: set[str] = set()
        for entry in conn.response or []:
            if entry.get("type") != "searchResEntry":
                continue
            for value in entry["attributes"].get(MEMBER, []):
                members.add(self._normalized(str(value)))
        members.discard(self._bind_dn)
        return frozenset(members)

    def _change(self, conn: ldap3.Connection, change: Change, m: Membership) -> ChangeOutcome:
        operation = ldap3.MODIFY_ADD if change is Change.ADD else ldap3.MODIFY_DELETE
        try:
            # types-ldap3 leaves modify's parameters untyped
            conn.modify(m.target, {MEMBER: [(operation, [m.member])]})  # type: ignore[no-untyped-call]
        except LDAPException as exc:
            if conn.closed:
                raise self._unavailable(f"the connection broke: {self._scrub(exc)}") from None
            return ChangeOutcome(change, m, self._scrub(exc) or type(exc).__name__)
        result = conn.result
        code = result["result"]
        already = ATTRIBUTE_OR_VALUE_EXISTS if change is Change.ADD else NO_SUCH_ATTRIBUTE
        if code in (SUCCESS, already):
            return ChangeOutcome(change, m)
        if code in _UNAVAILABLE_RESULTS:
            raise self._unavailable(f"the server stopped answering: {self._describe(result)}")
        if code == NO_SUCH_OBJECT:
            return ChangeOutcome(
                change, m, f"the group {m.target} does not exist: {self._describe(result)}"
            )
        return ChangeOutcome(change, m, self._describe(result))

    def _normalized(self, dn: str) -> str:
        try:
            return normalize_dn(dn)
        except InvalidInput:
            return dn  # not a DN: shown as it is, drift that only its own value removes

    def _connect(self) -> ldap3.Connection:
        url = urlsplit(self._target.url)
        tls = None
        if url.scheme == "ldaps":
            tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, sni=url.hostname)
        server = ldap3.Server(
            self._target.url, tls=tls, connect_timeout=self._connect_timeout, get_info=ldap3.NONE
        )
        conn = ldap3.Connection(
            server,
            user=self._target.bind_dn,
            password=self._password,
            receive_timeout=self._receive_timeout,
            raise_exceptions=False,
        )
        try:
            bound = conn.bind()
        except LDAPException as exc:
            self._close(conn)
            raise self._unavailable(f"cannot connect: {self._scrub(exc)}") from None
        if not bound:
            why = self._describe(conn.result)
            self._close(conn)
            raise self._unavailable(f"bind as {self._target.bind_dn} refused: {why}")
        return conn

    def _close(self, conn: ldap3.Connection) -> None:
        with contextlib.suppress(LDAPException):  # gone already: only its socket may be left
            conn.unbind()
        # ldap3 keeps the socket of a connect that failed without closing it
        sock = conn.socket
        if sock is not None:
            sock.close()

    def _describe(self, result: Mapping[str, Any]) -> str:
        text = f"{result.get('description') or 'error'} ({result.get('result')})"
        message = str(result.get("message") or "").strip()
        return self._scrub_text(f"{text}: {message}" if message else text)

    def _scrub(self, exc: BaseException) -> str:
        return self._scrub_text(str(exc).strip())

    def _scrub_text(self, message: str) -> str:
        return message.replace(self._password, REDACTED) if self._password else message

    def _unavailable(self, why: str) -> ConnectorUnavailable:
        return ConnectorUnavailable(f"connector {self.config.name}: {why}")
