"""Connectors: a just-in-time grant made real in a target system, and taken away again.

This module is the pure core: the configuration format, the mapping of users to logins and DNs,
what the grants need (``wanted``), the rule (``plan``) that decides what a connector adds and
removes, and the state kept between passes. The adapters (adapters/connectors/) talk to
PostgreSQL and LDAP; the pass (services/connectors.py) runs them; README.md tells an
administrator how to configure them.

One TOML file per connector, in the organization's folder of the server's connector directory
(``<connectors_dir>/<organization>/<name>.toml``; the file's name is the connector's)::

    kind = "postgresql"
    dsn = "env:ANALYTICS_DSN"          # a secret reference, never a DSN written here
    login = "{local_lower}"            # {upn}, {local} (before the @), {local_lower}
    terminate_sessions = true          # end the login's sessions on removal (SET ROLE stays)
    reconcile = "report"               # or "repair": drift is removed too
    max_failures_before_alert = 5

    [[bindings]]
    role = "Data\\Analytics Admin"     # or role_group = "Scope\\Name"
    grant = "analytics_admin"          # the PostgreSQL role the holder's login is granted

or::

    kind = "ldap"
    url = "ldaps://ldap.example.test"
    bind_dn = "cn=jitpam,ou=services,dc=example,dc=test"
    password = "file:ldap-password"
    user_dn = "uid={local},ou=people,dc=example,dc=test"   # each value escaped (RFC 4514)
    placeholder_member = "cn=nobody,dc=example,dc=test"   # default: the group's own DN

    [[bindings]]
    role_group = "Data\\Operators"
    group_dn = "cn=operators,ou=groups,dc=example,dc=test"

Parsing reports every problem with file, line and field (ConnectorInvalid).

An LDAP connector compares DNs in one form only, ``normalize_dn``'s: the groups' DNs and the
placeholder are normalized when the file is read, a user's DN by ``member_for``, and the adapter
normalizes what it reads from the directory, so ``plan`` sees each entry under one name however it
was written (``CN=Operators, OU=Groups`` is ``cn=operators,ou=groups``).

The rule, ``plan``: a member a binding needs is added unless present; jitpam records what it
added, and removes only what it added and no binding needs any more (so a member needed by two
bindings, or two grants, stays until the last ends). A member that was already present when
jitpam first needed it is recorded as pre-existing (``adopt``) and never removed. Members present
that jitpam did not add and nobody needs are drift: reported, and removed only when the
connector says ``reconcile = "repair"``. Repair never removes a pre-existing member, and nothing
ever removes a group's placeholder member (``groupOfNames`` keeps at least one member).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import tomllib
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import PurePath
from typing import Any
from uuid import UUID

from jitpam.domain.config_files import Problems, secret_reference_problem
from jitpam.domain.errors import ConnectorInvalid, InvalidInput
from jitpam.domain.names import QualifiedName

CONNECTOR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAPPING_PLACEHOLDER = re.compile(r"\{([A-Za-z_]+)\}")
MAPPING_NAMES = frozenset({"upn", "local", "local_lower"})
MAX_IDENTIFIER_BYTES = 63  # PostgreSQL cuts longer names short: two users could meet
# Names PostgreSQL reads as something else even when quoted: GRANT r TO "public" is everyone.
RESERVED_ROLES = frozenset({"public", "current_user", "current_role", "session_user", "none"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ATTRIBUTE_TYPE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)$")
_LDAP_URL = re.compile(r"^ldaps?://[^/?#\s]+/?$")
MAX_FAILURES = 1000


class ConnectorKind(StrEnum):
    POSTGRESQL = "postgresql"
    LDAP = "ldap"


class Reconcile(StrEnum):
    REPORT = "report"  # drift is reported only
    REPAIR = "repair"  # drift is reported and removed


class BoundKind(StrEnum):
    ROLE = "role"
    ROLE_GROUP = "role_group"


@dataclass(frozen=True)
class Bound:
    """A jitpam role or role group whose holders a binding makes members of its target."""

    kind: BoundKind
    name: QualifiedName

    @property
    def key(self) -> tuple[BoundKind, str]:
        return self.kind, self.name.key


@dataclass(frozen=True)
class Binding:
    bound: Bound
    target: str  # the PostgreSQL role granted, or the LDAP group's DN


@dataclass(frozen=True)
class PostgresqlTarget:
    dsn: str  # a secret reference: "env:NAME" or "file:NAME"
    login: str  # the mapping template
    terminate_sessions: bool = True


@dataclass(frozen=True)
class LdapTarget:
    url: str
    bind_dn: str
    password: str  # a secret reference
    user_dn: str  # the mapping template; each substituted value escaped as an RDN value
    placeholder_member: str | None = None  # None: each group's own DN


@dataclass(frozen=True)
class ConnectorConfig:
    name: str
    source: str
    target: PostgresqlTarget | LdapTarget
    bindings: tuple[Binding, ...]
    reconcile: Reconcile = Reconcile.REPORT
    max_failures_before_alert: int = 5

    @property
    def kind(self) -> ConnectorKind:
        if isinstance(self.target, PostgresqlTarget):
            return ConnectorKind.POSTGRESQL
        return ConnectorKind.LDAP

    @property
    def targets(self) -> frozenset[str]:
        return frozenset(b.target for b in self.bindings)

    def member_for(self, upn: str) -> str:
        """The login (PostgreSQL) or DN (LDAP, normalized: ``normalize_dn``) of the jitpam user
        ``upn``; raises InvalidInput when the mapping refuses that user (the name it gives is
        not one the target may hold, or is the LDAP connector's own bind DN)."""
        if isinstance(self.target, PostgresqlTarget):
            login = fill_mapping(self.target.login, upn, escape=lambda v: v)
            problem = role_name_problem(login)
            if problem is None and login in self.targets:
                problem = "is one of the roles this connector grants"
            if problem is not None:
                raise InvalidInput(
                    f"connector {self.name}: {upn} maps to login {login!r}: {problem}"
                )
            return login
        dn = fill_mapping(self.target.user_dn, upn, escape=escape_rdn_value)
        try:
            member = normalize_dn(dn)
        except InvalidInput:
            raise InvalidInput(
                f"connector {self.name}: {upn} maps to {dn!r}, which is not a DN"
            ) from None
        if member == normalize_dn(self.target.bind_dn):
            raise InvalidInput(
                f"connector {self.name}: {upn} maps to the connector's own bind DN {member!r}"
            )
        return member

    def protected(self, target: str) -> frozenset[str]:
        """Members of ``target`` that nothing ever removes: an LDAP group's placeholder."""
        if isinstance(self.target, LdapTarget):
            return frozenset({self.target.placeholder_member or target})
        return frozenset()

    def needed(self, holders: Mapping[Bound, frozenset[str]]) -> dict[str, frozenset[str]]:
        """Each target's members from the holders of each bound role or role group now (their
        members, already mapped): a member stays needed while any binding to the target needs
        them. Bound roles nobody holds may be left out of ``holders``."""
        by_key: dict[tuple[BoundKind, str], set[str]] = {}
        for bound, members in holders.items():
            by_key.setdefault(bound.key, set()).update(members)
        out: dict[str, frozenset[str]] = {t: frozenset() for t in self.targets}
        for b in self.bindings:
            out[b.target] = out[b.target] | by_key.get(b.bound.key, set())
        return out


# -- mapping a jitpam user --------------------------------------------------------------------


def mapping_values(upn: str) -> dict[str, str]:
    if "\x00" in upn:
        raise InvalidInput("a user name with a NUL character cannot be mapped")
    local = upn.rsplit("@", 1)[0] if "@" in upn else upn
    return {"upn": upn, "local": local, "local_lower": local.lower()}


def fill_mapping(template: str, upn: str, *, escape: Callable[[str], str]) -> str:
    values = mapping_values(upn)
    return MAPPING_PLACEHOLDER.sub(lambda m: escape(values[m.group(1)]), template)


def role_name_problem(name: str, *, login: bool = True) -> str | None:
    """Why ``name`` cannot be a PostgreSQL login (``login``) or a role granted, or None; it is
    always quoted. PostgreSQL's own pg_ roles may be granted, never be a user's login."""
    if not name:
        return "is empty"
    if len(name.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        return f"is longer than {MAX_IDENTIFIER_BYTES} bytes"
    if _CONTROL.search(name):
        return "contains a control character"
    if name.lower() in RESERVED_ROLES:
        return "is a name PostgreSQL reserves"
    if login and name.lower().startswith("pg_"):
        return "starts with pg_ (PostgreSQL's own roles)"
    return None


def escape_rdn_value(value: str) -> str:
    """``value`` escaped to stand as an attribute value in a DN (RFC 4514, section 2.4):
    ``"+,;<>\\`` and ``=`` always, a leading space or ``#``, a trailing space, and control
    characters as hex pairs. A NUL is refused: no directory name holds one."""
    if "\x00" in value:
        raise InvalidInput("a value with a NUL character cannot stand in a DN")
    out = []
    for i, ch in enumerate(value):
        at_edge = (ch == " " and i in (0, len(value) - 1)) or (ch == "#" and i == 0)
        if ch in '"+,;<>\\=' or at_edge:
            out.append("\\" + ch)
        elif _CONTROL.match(ch):
            out.append(f"\\{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def split_dn(dn: str) -> list[list[tuple[str, str]]] | None:
    """The RDNs of ``dn`` as (attribute type, raw value) pairs, or None when it is not a DN
    (string form, RFC 4514): every unescaped ``,`` ends an RDN, ``+`` an attribute of it."""
    rdns: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    part = ""
    i = 0

    def close() -> bool:
        name, eq, value = part.partition("=")
        if not eq or not _ATTRIBUTE_TYPE.match(name.strip()) or not value.strip(" "):
            return False
        current.append((name.strip(), value))
        return True

    while i < len(dn):
        ch = dn[i]
        if ch == "\\":
            if i + 1 >= len(dn):
                return None
            part += dn[i : i + 2]
            i += 2
            continue
        if ch in ",+":
            if not close():
                return None
            if ch == ",":
                rdns.append(current)
                current = []
            part = ""
        elif ch == "\x00":
            return None
        else:
            part += ch
        i += 1
    if not close():
        return None
    rdns.append(current)
    return rdns


# Attribute types whose values a directory compares ignoring case (caseIgnoreMatch or
# caseIgnoreIA5Match in core.schema and cosine.schema), under their short name: every name and
# OID of one type gives the same normalized DN.
_CASE_IGNORE_TYPES: dict[str, str] = {}
for _names in (
    ("cn", "commonname", "2.5.4.3"),
    ("sn", "surname", "2.5.4.4"),
    ("serialnumber", "2.5.4.5"),
    ("c", "countryname", "2.5.4.6"),
    ("l", "localityname", "2.5.4.7"),
    ("st", "stateorprovincename", "2.5.4.8"),
    ("street", "streetaddress", "2.5.4.9"),
    ("o", "organizationname", "2.5.4.10"),
    ("ou", "organizationalunitname", "2.5.4.11"),
    ("title", "2.5.4.12"),
    ("description", "2.5.4.13"),
    ("businesscategory", "2.5.4.15"),
    ("postalcode", "2.5.4.17"),
    ("name", "2.5.4.41"),
    ("givenname", "gn", "2.5.4.42"),
    ("initials", "2.5.4.43"),
    ("generationqualifier", "2.5.4.44"),
    ("dnqualifier", "2.5.4.46"),
    ("uid", "userid", "0.9.2342.19200300.100.1.1"),
    ("mail", "rfc822mailbox", "0.9.2342.19200300.100.1.3"),
    ("dc", "domaincomponent", "0.9.2342.19200300.100.1.25"),
):
    for _name in _names:
        _CASE_IGNORE_TYPES[_name] = _names[0]
_HEX_PAIR = re.compile(r"^[0-9A-Fa-f]{2}$")


def normalize_dn(dn: str) -> str:
    r"""``dn`` in the one form connectors compare, so that two spellings of the same entry's
    name (RFC 4517 distinguishedNameMatch, as far as this goes) give the same text; raises
    InvalidInput when it is not a DN (``split_dn``).

    Each attribute type is lower-cased, and a known one (cn, uid, ou, dc, o, mail and the other
    caseIgnore types of core.schema and cosine.schema) written by its short name, whichever name
    or OID it was given by. Each value is read (escapes, ``\xx`` hex pairs as UTF-8, spaces
    around ``=``, ``,`` and ``+`` dropped) and written again as ``escape_rdn_value`` escapes it.
    A known type's value is compared as caseIgnoreMatch prepares it (RFC 4518): NFKC, case
    folded, each run of white space one space, none at either end (so ``uid=\ bob`` is
    ``uid=bob``, as the directory finds it). Any other type's value is kept as written: the
    directory stores what jitpam wrote, and a hand-written member of such a type differing only
    in case shows as drift. A ``#`` hex value (BER) is kept, its hex lower-cased. A multi-valued
    RDN's parts are sorted."""
    try:
        dn.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no directory holds one
        raise InvalidInput(f"{dn!r} is not a DN") from None
    rdns = split_dn(dn)
    if rdns is None:
        raise InvalidInput(f"{dn!r} is not a DN")
    out = []
    for rdn in rdns:
        parts = []
        for attribute, raw in rdn:
            kind = attribute.lower()
            known = _CASE_IGNORE_TYPES.get(kind)
            value = _rdn_value(raw)
            if value is None:
                raise InvalidInput(f"{dn!r} is not a DN")
            if isinstance(value, bytes):  # the #hex form
                parts.append(f"{known or kind}=#{value.hex()}")
                continue
            if known is not None:
                value = _case_ignore(value)
            parts.append(f"{known or kind}={escape_rdn_value(value)}")
        out.append("+".join(sorted(parts)))
    return ",".join(out)


def _rdn_value(raw: str) -> str | bytes | None:
    """An attribute value as RFC 4514 writes it, read: the text, the bytes of a ``#`` hex
    value, or None when it is neither."""
    raw = raw.lstrip(" ")  # a leading space that counts is escaped
    if raw.startswith("#"):
        digits = raw[1:].rstrip(" ")
        try:
            return bytes.fromhex(digits) if digits and " " not in digits else None
        except ValueError:
            return None
    data = bytearray()
    end = 0  # the length of data up to its last byte that is not an unescaped trailing space
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\":
            pair = raw[i + 1 : i + 3]
            if _HEX_PAIR.match(pair):
                data += bytes.fromhex(pair)
                i += 3
            else:
                data += raw[i + 1].encode()
                i += 2
            end = len(data)
            continue
        data += ch.encode()
        if ch != " ":
            end = len(data)
        i += 1
    try:
        value = bytes(data[:end]).decode("utf-8")
    except UnicodeDecodeError:
        return None
    return value if value and "\x00" not in value else None


def _case_ignore(value: str) -> str:
    """``value`` as caseIgnoreMatch compares it: NFKC and case folded until neither changes it
    (folding can undo NFKC, and NFKC folding), white space runs one space, trimmed. A value of
    white space only is one space, as RFC 4518 keeps it."""
    for _ in range(4):
        folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).casefold())
        if folded == value:
            break
        value = folded
    words = value.split()
    return " ".join(words) if words else " "


# -- parsing ----------------------------------------------------------------------------------

_COMMON = {"kind", "reconcile", "max_failures_before_alert", "bindings"}
_FIELDS = {
    ConnectorKind.POSTGRESQL: _COMMON | {"dsn", "login", "terminate_sessions"},
    ConnectorKind.LDAP: _COMMON | {"url", "bind_dn", "password", "user_dn", "placeholder_member"},
}
_TARGET_FIELD = {ConnectorKind.POSTGRESQL: "grant", ConnectorKind.LDAP: "group_dn"}


def _loopback(url: str) -> bool:
    host = url.split("://", 1)[1].rstrip("/")
    host = host[1 : host.find("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _text(doc: dict[str, Any], key: str, problems: Problems, required: bool = True) -> str | None:
    value = doc.get(key)
    if value is None:
        if required:
            problems.add((key,), "is required")
        return None
    if not isinstance(value, str) or not value.strip():
        problems.add((key,), "must be non-empty text")
        return None
    return value


def _secret(doc: dict[str, Any], key: str, problems: Problems) -> str | None:
    if key not in doc:
        problems.add((key,), "is required")
        return None
    problem = secret_reference_problem(doc[key])
    if problem is not None:
        problems.add((key,), problem)
        return None
    return str(doc[key])


def _dn(doc: dict[str, Any], path: tuple[str | int, ...], problems: Problems) -> str | None:
    """The DN at ``path``, as written (a DN the connector binds as) or None."""
    value = doc.get(str(path[-1]))
    if value is None:
        problems.add(path, "is required")
        return None
    try:
        if not isinstance(value, str):
            raise InvalidInput("not text")
        normalize_dn(value)
    except InvalidInput:
        problems.add(path, "must be a DN such as cn=name,dc=example,dc=test")
        return None
    return value


def _member_dn(doc: dict[str, Any], path: tuple[str | int, ...], problems: Problems) -> str | None:
    """The DN at ``path`` normalized (a group or a member, which ``plan`` compares) or None."""
    value = _dn(doc, path, problems)
    return normalize_dn(value) if value is not None else None


def _template(doc: dict[str, Any], key: str, problems: Problems, *, dn: bool) -> str | None:
    template = _text(doc, key, problems)
    if template is None:
        return None
    names = MAPPING_PLACEHOLDER.findall(template)
    unknown = sorted({n for n in names if n not in MAPPING_NAMES})
    if unknown:
        named = ", ".join("{" + n + "}" for n in unknown)
        problems.add((key,), f"knows only {{upn}}, {{local}} and {{local_lower}}, not {named}")
        return None
    if not names:
        problems.add((key,), "must hold {upn}, {local} or {local_lower}: each user needs a name")
        return None
    rest = MAPPING_PLACEHOLDER.sub("", template)
    if "{" in rest or "}" in rest:
        problems.add((key,), "a { or } outside a placeholder")
        return None
    if dn:
        sentinel = "\ue000"
        rdns = split_dn(MAPPING_PLACEHOLDER.sub(sentinel, template))
        if rdns is None or any(sentinel in t for rdn in rdns for t, _ in rdn):
            problems.add(
                (key,), "must be a DN whose placeholders stand in values: uid={local},dc=..."
            )
            return None
    elif _CONTROL.search(template):
        problems.add((key,), "contains a control character")
        return None
    return template


def _bindings(doc: Any, kind: ConnectorKind, problems: Problems) -> tuple[Binding, ...]:
    if doc is None:
        problems.add(("bindings",), "a connector needs at least one [[bindings]]")
        return ()
    if not isinstance(doc, list) or not all(isinstance(b, dict) for b in doc):
        problems.add(("bindings",), "must be [[bindings]] tables")
        return ()
    if not doc:
        problems.add(("bindings",), "a connector needs at least one [[bindings]]")
    target_field = _TARGET_FIELD[kind]
    found: list[Binding] = []
    for index, spec in enumerate(doc):
        path: tuple[str | int, ...] = ("bindings", index)
        for key in sorted(set(spec) - {"role", "role_group", target_field}):
            problems.add((*path, key), f"is not a field of a binding (kind = {kind})")
        given = [k for k in ("role", "role_group") if k in spec]
        bound: Bound | None = None
        if len(given) != 1:
            problems.add((*path, "role"), "give exactly one of role and role_group")
        else:
            raw = spec[given[0]]
            try:
                if not isinstance(raw, str):
                    raise InvalidInput("must be text, written Scope\\Name")
                bound = Bound(BoundKind(given[0]), QualifiedName.parse(raw))
            except InvalidInput as exc:
                problems.add((*path, given[0]), exc.message)
        target: str | None
        if kind is ConnectorKind.POSTGRESQL:
            target = spec.get(target_field)
            if target is None:
                problems.add((*path, target_field), "is required")
            elif not isinstance(target, str):
                problems.add((*path, target_field), "must be text")
                target = None
            elif (problem := role_name_problem(target, login=False)) is not None:
                problems.add((*path, target_field), f"is not a role jitpam may grant: {problem}")
                target = None
        else:
            target = _member_dn(spec, (*path, target_field), problems)
        if bound is None or target is None:
            continue
        binding = Binding(bound, target)
        if any(b.bound.key == bound.key and b.target == target for b in found):
            problems.add(path, "repeats an earlier binding")
            continue
        found.append(binding)
    return tuple(found)


def parse_connector(text: str, *, source: str) -> ConnectorConfig:
    """One connector's configuration; its name is the file's. Raises ConnectorInvalid listing
    every problem as ``file:line: field: message``."""
    problems = Problems(source, text)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConnectorInvalid([f"{source}: not valid TOML: {exc}"]) from None
    name = PurePath(source).stem
    if not CONNECTOR_NAME.match(name):
        problems.found.append(
            f"{source}:1: name: the file's name {name!r} is the connector's: letters, digits, "
            "'.', '_' or '-', up to 64"
        )
    kind: ConnectorKind | None = None
    try:
        kind = ConnectorKind(str(doc.get("kind")))
    except ValueError:
        problems.add(("kind",), 'must be "postgresql" or "ldap"')
    allowed = _FIELDS[kind] if kind is not None else set().union(*_FIELDS.values())
    for key in sorted(set(doc) - allowed):
        if key == "name":
            problems.add((key,), "is not a field: a connector is named by its file")
        else:
            problems.add((key,), f"is not a field of a connector (kind = {kind or '?'})")
    try:
        reconcile = Reconcile(doc.get("reconcile", "report"))
    except ValueError:
        problems.add(("reconcile",), 'must be "report" or "repair"')
        reconcile = Reconcile.REPORT
    failures = doc.get("max_failures_before_alert", 5)
    if isinstance(failures, bool) or not isinstance(failures, int):
        failures = None
    if failures is None or not 1 <= failures <= MAX_FAILURES:
        problems.add(
            ("max_failures_before_alert",), f"must be a whole number from 1 to {MAX_FAILURES}"
        )
        failures = 5
    target: PostgresqlTarget | LdapTarget | None = None
    if kind is ConnectorKind.POSTGRESQL:
        dsn = _secret(doc, "dsn", problems)
        login = _template(doc, "login", problems, dn=False)
        terminate = doc.get("terminate_sessions", True)
        if not isinstance(terminate, bool):
            problems.add(("terminate_sessions",), "must be true or false")
            terminate = True
        if dsn is not None and login is not None:
            target = PostgresqlTarget(dsn, login, terminate)
    elif kind is ConnectorKind.LDAP:
        url = _text(doc, "url", problems)
        if url is not None and not _LDAP_URL.match(url):
            problems.add(("url",), "must be ldap://host[:port] or ldaps://host[:port]")
            url = None
        elif url is not None and url.startswith("ldap://") and not _loopback(url):
            problems.add(
                ("url",),
                "must be ldaps:// (ldap:// only to this machine: the bind password would cross "
                "the network in clear)",
            )
            url = None
        bind_dn = _dn(doc, ("bind_dn",), problems)
        password = _secret(doc, "password", problems)
        user_dn = _template(doc, "user_dn", problems, dn=True)
        placeholder = None
        if "placeholder_member" in doc:
            placeholder = _member_dn(doc, ("placeholder_member",), problems)
        if url and bind_dn and password and user_dn:
            target = LdapTarget(url, bind_dn, password, user_dn, placeholder)
    bindings = _bindings(doc.get("bindings"), kind, problems) if kind is not None else ()
    if problems.found or target is None:
        raise ConnectorInvalid(problems.found or [f"{source}: not a connector"])
    return ConnectorConfig(
        name=name,
        source=source,
        target=target,
        bindings=bindings,
        reconcile=reconcile,
        max_failures_before_alert=failures,
    )


# -- the rule ---------------------------------------------------------------------------------


class Origin(StrEnum):
    ADDED = "added"  # jitpam added it: jitpam removes it when no binding needs it
    PRE_EXISTING = "pre_existing"  # present before jitpam first needed it: never removed


@dataclass(frozen=True, order=True)
class Membership:
    target: str  # the PostgreSQL role, or the LDAP group's DN
    member: str  # the login, or the user's DN


@dataclass(frozen=True, order=True)
class Applied:
    """The adapter's record of one membership jitpam knows it did not find by chance."""

    membership: Membership
    origin: Origin


@dataclass(frozen=True)
class Plan:
    """What to change, applied in this order: ``adds`` (each then recorded as ADDED), ``removes``
    (each record then dropped), ``adopt`` (record as PRE_EXISTING), ``forget`` (drop the
    record). ``drift`` is reported; under repair it is in ``removes`` too."""

    adds: frozenset[Membership]
    removes: frozenset[Membership]
    adopt: frozenset[Membership]
    forget: frozenset[Membership]
    drift: frozenset[Membership]

    @property
    def empty(self) -> bool:
        return not (self.adds or self.removes or self.adopt or self.forget or self.drift)


def plan(
    config: ConnectorConfig,
    *,
    holders: Mapping[str, frozenset[str]],
    applied: frozenset[Applied],
    present: Mapping[str, frozenset[str]],
) -> Plan:
    """What the connector must change in its target system now.

    ``holders``: each target's members needed now (``ConnectorConfig.needed``); ``applied``: the
    adapter's records; ``present``: each target's members now, for every configured target and
    every target a record names (a target whose binding was removed is emptied of what jitpam
    added, and nothing else there is touched)."""
    origins: dict[Membership, Origin] = {}
    for record in applied:
        if origins.setdefault(record.membership, record.origin) is not record.origin:
            raise ValueError(f"two records of {record.membership}")
    targets = config.targets | {m.target for m in origins}
    missing = sorted(targets - set(present))
    if missing:
        raise ValueError(f"what is present is not known for {missing}")
    adds: set[Membership] = set()
    removes: set[Membership] = set()
    adopt: set[Membership] = set()
    forget: set[Membership] = set()
    drift: set[Membership] = set()
    for target in sorted(targets):
        needed = holders.get(target, frozenset()) if target in config.targets else frozenset()
        here = present[target]
        protected = config.protected(target)
        for member in needed - here:
            adds.add(Membership(target, member))
        for member in needed & here:
            if Membership(target, member) not in origins:
                adopt.add(Membership(target, member))
        for member in here - needed - protected:
            m = Membership(target, member)
            origin = origins.get(m)
            if origin is Origin.ADDED:
                removes.add(m)
            elif origin is None and target in config.targets:
                drift.add(m)
                if config.reconcile is Reconcile.REPAIR:
                    removes.add(m)
        if target in config.targets and isinstance(config.target, LdapTarget):
            left = (here | {m.member for m in adds if m.target == target}) - {
                m.member for m in removes if m.target == target
            }
            if not left and here:
                # groupOfNames keeps a member: the placeholder goes in before the last leaves
                adds.update(Membership(target, p) for p in protected)
    for m, _origin in origins.items():
        if m.member not in present[m.target] and m not in adds:
            forget.add(m)
    return Plan(
        frozenset(adds), frozenset(removes), frozenset(adopt), frozenset(forget), frozenset(drift)
    )


# -- what an adapter reports ------------------------------------------------------------------


class Change(StrEnum):
    ADD = "add"  # the member goes into the target (GRANT, or the DN into the group's member)
    REMOVE = "remove"  # the member leaves it (and, PostgreSQL, their sessions end if configured)


@dataclass(frozen=True)
class ChangeOutcome:
    """One change an adapter made or failed to make. ``error`` holds the target's message with
    secrets taken out; None when the change is in place (also when it already was)."""

    change: Change
    membership: Membership
    error: str | None = None
    sessions_ended: int = 0

    @property
    def done(self) -> bool:
        return self.error is None


# -- what the grants need -----------------------------------------------------------------------


@dataclass(frozen=True)
class HeldGrant:
    """An active role or role-group grant, as the connector pass reads it."""

    upn: str
    kind: BoundKind
    target: str  # canonical "Scope\Name"


@dataclass(frozen=True)
class Wanted:
    """What a connector's bindings need now: each target's members, whom each member stands for,
    and the holders the mapping refuses (they are reported, never given access)."""

    needed: Mapping[str, frozenset[str]]
    upns: Mapping[str, str]  # member → the jitpam user it was mapped from
    unmappable: tuple[str, ...] = ()

    @property
    def digest(self) -> str:
        """Changes whenever what is needed changes: the pass runs again."""
        lines = sorted(f"{t}\x00{m}" for t, members in self.needed.items() for m in members)
        return hashlib.sha256("\x01".join(lines).encode("utf-8")).hexdigest()


def wanted(
    config: ConnectorConfig,
    grants: Iterable[HeldGrant],
    role_group_roles: Mapping[str, frozenset[str]],
) -> Wanted:
    """The members ``config`` needs for ``grants``. A role is held through a grant of the role
    itself or of a role group that holds it (``role_group_roles``: each role group's roles, by
    canonical name); a role group only through a grant of it."""
    groups_holding: dict[str, set[str]] = {}
    for group, roles in role_group_roles.items():
        for role in roles:
            groups_holding.setdefault(role.casefold(), set()).add(group.casefold())
    users: dict[Bound, set[str]] = {}
    by_key = {b.bound.key: b.bound for b in config.bindings}
    for grant in grants:
        key = grant.target.casefold()
        keys = [(grant.kind, key)]
        if grant.kind is BoundKind.ROLE_GROUP:
            keys += [
                (BoundKind.ROLE, role) for role, groups in groups_holding.items() if key in groups
            ]
        for k in keys:
            if k in by_key:
                users.setdefault(by_key[k], set()).add(grant.upn)
    upns: dict[str, str] = {}
    refused: list[str] = []
    holders: dict[Bound, frozenset[str]] = {}
    for bound, names in users.items():
        members = set()
        for upn in sorted(names):
            try:
                member = config.member_for(upn)
            except InvalidInput as exc:
                refused.append(exc.message)
                continue
            if upns.setdefault(member, upn) != upn:
                refused.append(
                    f"connector {config.name}: {upns[member]} and {upn} both map to {member!r}"
                )
            members.add(member)
        holders[bound] = frozenset(members)
    return Wanted(config.needed(holders), upns, tuple(sorted(set(refused))))


def withhold_clashes(config: ConnectorConfig, want: Wanted, upns: Iterable[str]) -> Wanted:
    """``want`` without the members another user of the organization (``upns``: all of them)
    maps to as well: granting one would give the other the access too. Both are reported."""
    holders = dict(want.upns)
    names = set(holders.values())
    clashes: dict[str, set[str]] = {}
    for other in upns:
        if other in names:
            continue
        try:
            member = config.member_for(other)
        except InvalidInput:
            continue
        if member in holders:
            clashes.setdefault(member, {holders[member]}).add(other)
    if not clashes:
        return want
    refused = [
        f"connector {config.name}: {', '.join(sorted(names))} all map to {member!r}: none of "
        "them is given access until the mapping tells them apart"
        for member, names in sorted(clashes.items())
    ]
    needed = {t: frozenset(m for m in ms if m not in clashes) for t, ms in want.needed.items()}
    kept = {m: u for m, u in want.upns.items() if m not in clashes}
    return Wanted(needed, kept, tuple(sorted({*want.unmappable, *refused})))


def shared_targets(configs: Mapping[str, ConnectorConfig]) -> dict[str, str]:
    """Connectors of one organization that bind a target another connector of the same kind
    binds already (by name order): each with why it cannot be used. jitpam's records say which
    connector added a member; two connectors on one target would each take the other's
    members for drift or for pre-existing ones."""
    owners: dict[tuple[ConnectorKind, str], str] = {}
    problems: dict[str, str] = {}
    for name in sorted(configs):
        config = configs[name]
        for target in sorted(config.targets):
            owner = owners.setdefault((config.kind, target), name)
            if owner != name and name not in problems:
                problems[name] = (
                    f"{config.source}: binds {target!r}, which connector {owner} binds already: "
                    "one connector per role or group"
                )
    return problems


def config_digest(config: ConnectorConfig) -> str:
    """Changes whenever the configuration's meaning changes: the pass runs again."""
    return hashlib.sha256(repr(config).encode("utf-8")).hexdigest()


# -- the connector's state between passes -----------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """A membership jitpam recorded, with the user it was added for (None: a user no longer
    known). ``pending``: the change jitpam is making to it, marked just before it is made and
    cleared by the pass that made it (a pass cut short leaves the mark; the next one finds out
    what happened, and audits it)."""

    applied: Applied
    upn: str | None
    at: datetime
    pending: Change | None = None


@dataclass(frozen=True)
class FailedChange:
    change: Change
    membership: Membership
    upn: str | None
    error: str
    since: datetime


@dataclass(frozen=True)
class ConnectorSet:
    """An organization's connectors as configured now: the valid ones, and why each of the
    others cannot be used (a connector whose file is wrong is left as it is until fixed)."""

    configs: Mapping[str, ConnectorConfig]
    problems: Mapping[str, str]


RETRY_FIRST = timedelta(seconds=1)


@dataclass
class ConnectorState:
    """How a connector's last passes went: what the status shows and what decides the next."""

    org_id: UUID
    name: str
    lease_until: datetime | None = None
    lease_owner: str | None = None  # the pass holding the lease
    wanted_digest: str = ""
    config_digest: str = ""
    last_run_at: datetime | None = None
    last_success_at: datetime | None = None
    failures: int = 0  # passes in a row that failed, whole or in part
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    alerted_at: datetime | None = None
    failing: tuple[FailedChange, ...] = ()
    drift: tuple[Membership, ...] = ()

    def due(
        self, at: datetime, *, wanted_digest: str, config_digest: str, every: timedelta
    ) -> bool:
        """Whether a pass should run now: what is needed or the configuration changed, a failed
        pass's retry is due, or the periodic reconciliation is."""
        if self.lease_until is not None and self.lease_until > at:
            return False  # another worker is at it
        if config_digest != self.config_digest or wanted_digest != self.wanted_digest:
            # A new configuration may be the fix, and a grant that ended must not wait out the
            # retry of something else that failed.
            return True
        if self.failures and self.next_attempt_at is not None:
            return self.next_attempt_at <= at
        return self.last_run_at is None or self.last_run_at + every <= at

    def passed(
        self,
        at: datetime,
        *,
        wanted_digest: str,
        config_digest: str,
        failing: tuple[FailedChange, ...],
        drift: tuple[Membership, ...],
        error: str | None,
        retry_cap: timedelta,
    ) -> None:
        """Note a pass: a success when nothing failed, else one more failure and a retry
        later (1 s, doubling up to ``retry_cap``). Keeps the first moment of each failure."""
        since = {(f.change, f.membership): f.since for f in self.failing}
        self.failing = tuple(
            replace(f, since=since.get((f.change, f.membership), f.since)) for f in failing
        )
        self.drift = drift
        self.last_run_at = at
        self.lease_until = None
        self.lease_owner = None
        self.wanted_digest = wanted_digest
        self.config_digest = config_digest
        if error is None and not failing:
            self.failures = 0
            self.next_attempt_at = None
            self.last_error = None
            self.alerted_at = None
            self.last_success_at = at
            return
        self.failures += 1
        self.last_error = error or failing[0].error
        wait = min(RETRY_FIRST * 2 ** min(self.failures - 1, 30), retry_cap)
        self.next_attempt_at = at + wait

    def alert_due(self, limit: int) -> bool:
        """Whether this failure streak has reached ``limit`` passes and was not alerted yet."""
        return self.failures >= limit and self.alerted_at is None

    @property
    def still_present(self) -> tuple[FailedChange, ...]:
        """Removals that failed: access that should be gone and is not."""
        return tuple(f for f in self.failing if f.change is Change.REMOVE)
