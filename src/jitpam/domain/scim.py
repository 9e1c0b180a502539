"""SCIM 2.0 (RFC 7643/7644) as jitpam reads it: what a User or Group resource, a filter and a
PATCH request mean for the fields jitpam keeps. Pure rules: the services load and store.

jitpam keeps, of a User: ``userName`` (the UPN), ``displayName``, one email (``emails``: the
primary one, or the first; returned as the primary work email), ``active`` and ``externalId``;
of a Group: ``displayName``, ``externalId`` and ``members`` (users, by id). Other attributes an
identity provider sends (``name``, ``title``, ``locale``, ...) are accepted and not kept: SCIM
lets a service provider ignore what its schemas do not publish, and Entra ID and Okta send them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from jitpam.domain.errors import ErrorKind, JitpamError
from jitpam.domain.text import unstorable

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
MAX_RESULTS = 200  # the largest page (ServiceProviderConfig's filter.maxResults)
MAX_OPERATIONS = 1000  # operations in one PATCH request
MAX_MEMBERS = 10_000  # members in one Group body
MAX_START = 2**31 - 1  # a startIndex beyond every listing (and within every database's integers)


class ScimInvalid(JitpamError):
    """Input SCIM refuses with a 400 and a ``scimType`` of RFC 7644 §3.12."""

    code = "invalid_input"
    kind = ErrorKind.INVALID

    def __init__(self, message: str, scim_type: str = "invalidValue") -> None:
        super().__init__(message)
        self.scim_type = scim_type


@dataclass(frozen=True)
class UserFields:
    """What SCIM sets on a user."""

    user_name: str
    display_name: str
    email: str | None = None  # None: the user name
    active: bool = True
    external_id: str | None = None


@dataclass(frozen=True)
class GroupFields:
    """What SCIM sets on a group; ``members`` are user ids as the identity provider wrote them."""

    display_name: str
    external_id: str | None = None
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class Filter:
    """``attribute eq "value"``: the one filter form jitpam answers (attribute in lowercase)."""

    attribute: str
    value: str


_FILTER = re.compile(r'^\s*([A-Za-z][\w.:-]*)\s+eq\s+("(?:[^"\\]|\\.)*")\s*$', re.IGNORECASE)
_PATH = re.compile(
    r'^(?P<attr>[A-Za-z$][\w$-]*)(?:\[(?P<sub>[A-Za-z$][\w$-]*)\s+eq\s+(?P<val>"(?:[^"\\]|\\.)*")\]'
    r")?(?:\.(?P<then>[A-Za-z$][\w$-]*))?$",
    re.IGNORECASE,
)
FILTERABLE = {
    "users": {"username", "displayname", "externalid", "id"},
    "groups": {"displayname", "externalid", "id"},
}


def _local(name: str, schema: str) -> str:
    """An attribute name without its schema's URN prefix, in lowercase."""
    text = name.strip()
    if text.lower().startswith(schema.lower() + ":"):
        text = text[len(schema) + 1 :]
    return text.lower()


def parse_filter(text: str, *, resource: str) -> Filter:
    """``filter`` of a listing; raises ScimInvalid (``invalidFilter``) for any other form."""
    match = _FILTER.match(text or "")
    if match is None:
        raise ScimInvalid(
            'only filters of the form ATTRIBUTE eq "VALUE" are supported', "invalidFilter"
        )
    schema = USER_SCHEMA if resource == "users" else GROUP_SCHEMA
    attribute = _local(match.group(1), schema)
    if attribute not in FILTERABLE[resource]:
        raise ScimInvalid(
            f"{resource.title()} cannot be filtered by {match.group(1)!r} (filterable: "
            f"{', '.join(sorted(FILTERABLE[resource]))})",
            "invalidFilter",
        )
    return Filter(attribute, _quoted(match.group(2), "invalidFilter"))


def _quoted(text: str, scim_type: str) -> str:
    """The value of a quoted string in a filter or path (JSON's escapes); raises ScimInvalid
    with ``scim_type`` for a bad escape, and for a value no database can store (a NUL, a lone
    surrogate: what an escape can make of text that was storable as typed)."""
    try:
        value = json.loads(text)
    except ValueError:
        raise ScimInvalid(f"{text} is not a valid quoted string", scim_type) from None
    if not isinstance(value, str):  # the patterns admit only a quoted string
        raise ScimInvalid(f"{text} is not a quoted string", scim_type)
    problem = unstorable(value)
    if problem is not None:
        raise ScimInvalid(f"{text} contains {problem}, which jitpam does not accept", scim_type)
    return value


def parse_bool(value: Any, *, field: str) -> bool:
    """A SCIM boolean: JSON true/false, or the strings "True"/"False" Entra ID sends."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ScimInvalid(f"{field} must be a boolean")


def _text(value: Any, *, field: str, required: bool = False) -> str | None:
    if value is None or value == "":
        if required:
            raise ScimInvalid(f"{field} is required")
        return None
    if not isinstance(value, str):
        raise ScimInvalid(f"{field} must be a string")
    return value


def _email(value: Any) -> str | None:
    """The email of an ``emails`` value: the primary one, else the first (None: none)."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise ScimInvalid("emails must be a list of objects with a value")
    if not value:
        return None
    chosen = next((v for v in value if v.get("primary") in (True, "true", "True")), value[0])
    return _text(chosen.get("value"), field="emails.value", required=True)


def _display_from_name(name: Any) -> str | None:
    if not isinstance(name, Mapping):
        return None
    formatted = name.get("formatted")
    if isinstance(formatted, str) and formatted.strip():
        return formatted
    parts = [name.get("givenName"), name.get("familyName")]
    text = " ".join(p for p in parts if isinstance(p, str) and p.strip())
    return text or None


def _keys(body: Mapping[str, Any], schema: str) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise ScimInvalid("the body must be a JSON object", "invalidSyntax")
    return {_local(str(k), schema): v for k, v in body.items()}


def user_from_resource(body: Mapping[str, Any]) -> UserFields:
    """A User body of a POST or PUT. Without ``displayName``, the name (formatted, or given and
    family) or the user name's local part; without ``emails``, the user name; without
    ``active``, active."""
    fields = _keys(body, USER_SCHEMA)
    user_name = _text(fields.get("username"), field="userName", required=True) or ""
    display = _text(fields.get("displayname"), field="displayName") or _display_from_name(
        fields.get("name")
    )
    active = fields.get("active")
    return UserFields(
        user_name=user_name,
        display_name=display or user_name.split("@")[0],
        email=_email(fields.get("emails")),
        active=True if active is None else parse_bool(active, field="active"),
        external_id=_text(fields.get("externalid"), field="externalId"),
    )


def _member_ids(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list) or len(value) > MAX_MEMBERS:
        raise ScimInvalid(f"members must be a list of at most {MAX_MEMBERS} objects")
    out: list[str] = []
    for member in value:
        if not isinstance(member, Mapping):
            raise ScimInvalid("each member must be an object with a value")
        ref = _text(member.get("value"), field="members.value", required=True) or ""
        if member.get("type") not in (None, "User", "user"):
            raise ScimInvalid("members must be users: jitpam has no nested groups")
        if ref not in out:
            out.append(ref)
    return tuple(out)


def group_from_resource(body: Mapping[str, Any]) -> GroupFields:
    """A Group body of a POST or PUT."""
    fields = _keys(body, GROUP_SCHEMA)
    return GroupFields(
        display_name=_text(fields.get("displayname"), field="displayName", required=True) or "",
        external_id=_text(fields.get("externalid"), field="externalId"),
        members=_member_ids(fields.get("members")),
    )


@dataclass(frozen=True)
class Operation:
    """One PATCH operation: ``op`` in lowercase, the path's attribute (lowercase, no URN),
    its value filter (``members[value eq "id"]``: ("value", "id")) and sub-attribute."""

    op: str
    attribute: str | None
    where: tuple[str, str] | None
    sub: str | None
    value: Any


def parse_patch(body: Mapping[str, Any], *, schema: str) -> list[Operation]:
    """The operations of a PatchOp body, in order; raises ScimInvalid."""
    if not isinstance(body, Mapping):
        raise ScimInvalid("the body must be a JSON object", "invalidSyntax")
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or PATCH_SCHEMA not in schemas:
        raise ScimInvalid(f"a PATCH body names the schema {PATCH_SCHEMA}", "invalidSyntax")
    ops = body.get("Operations", body.get("operations"))
    if not isinstance(ops, list) or not ops or len(ops) > MAX_OPERATIONS:
        raise ScimInvalid(
            f"Operations must be a list of 1 to {MAX_OPERATIONS} operations", "invalidSyntax"
        )
    out = []
    for raw in ops:
        if not isinstance(raw, Mapping):
            raise ScimInvalid("each operation must be an object", "invalidSyntax")
        op = str(raw.get("op", "")).lower()
        if op not in ("add", "replace", "remove"):
            raise ScimInvalid(
                f"op {raw.get('op')!r} must be add, replace or remove", "invalidSyntax"
            )
        path = raw.get("path")
        if path is None or path == "":
            if op == "remove":
                raise ScimInvalid("a remove operation needs a path", "noTarget")
            if not isinstance(raw.get("value"), Mapping):
                raise ScimInvalid(f"an {op} without a path takes an object as value")
            out.append(Operation(op, None, None, None, raw.get("value")))
            continue
        if not isinstance(path, str):
            raise ScimInvalid("path must be a string", "invalidPath")
        local = path.strip()
        if local.lower().startswith(schema.lower() + ":"):
            local = local[len(schema) + 1 :]
        match = _PATH.match(local)
        if match is None:
            raise ScimInvalid(f"path {path!r} is not a path jitpam understands", "invalidPath")
        where = None
        if match.group("sub"):
            where = (match.group("sub").lower(), _quoted(match.group("val"), "invalidPath"))
        then = match.group("then")
        out.append(
            Operation(
                op,
                match.group("attr").lower(),
                where,
                then.lower() if then else None,
                raw.get("value"),
            )
        )
    return out


def _set_user(fields: UserFields, name: str, value: Any, *, op: str) -> UserFields:
    """``fields`` with the attribute ``name`` (lowercase, maybe dotted) set to ``value``."""
    if name == "username":
        return replace(fields, user_name=_text(value, field="userName", required=True) or "")
    if name == "displayname":
        return replace(fields, display_name=_text(value, field="displayName", required=True) or "")
    if name == "active":
        return replace(fields, active=parse_bool(value, field="active"))
    if name == "externalid":
        return replace(fields, external_id=_text(value, field="externalId"))
    if name == "emails":
        return replace(fields, email=_email(value) or fields.email)
    if name in ("emails.value",):
        return replace(fields, email=_text(value, field="emails.value", required=True))
    if name == "name" and isinstance(value, Mapping) and op == "replace":
        return fields  # name is not kept; displayName is set on its own
    return fields  # an attribute jitpam does not keep (name.*, title, locale, ...)


def patch_user(fields: UserFields, operations: Sequence[Operation]) -> UserFields:
    """``fields`` after the operations, applied in order (all or none: the caller stores the
    result once)."""
    for o in operations:
        if o.attribute is None:
            for key, value in _keys(o.value, USER_SCHEMA).items():
                fields = _set_user(fields, key, value, op=o.op)
            continue
        name = o.attribute if o.sub is None or o.where else f"{o.attribute}.{o.sub}"
        if o.op == "remove":
            if name in ("emails", "emails.value"):
                fields = replace(fields, email=None)
            elif name == "externalid":
                fields = replace(fields, external_id=None)
            elif name in ("username", "displayname", "active"):
                raise ScimInvalid(f"{o.attribute} is required and cannot be removed", "mutability")
            continue
        if o.attribute == "emails" and o.where is not None:
            # emails[type eq "work"].value (Entra ID): the one email jitpam keeps
            value = o.value if o.sub == "value" else _email(o.value)
            fields = replace(fields, email=_text(value, field="emails.value", required=True))
            continue
        fields = _set_user(fields, name, o.value, op=o.op)
    return fields


def patch_group(fields: GroupFields, operations: Sequence[Operation]) -> GroupFields:
    """``fields`` after the operations, applied in order."""
    for o in operations:
        if o.attribute is None:
            for key, value in _keys(o.value, GROUP_SCHEMA).items():
                fields = _set_group(fields, key, value, op=o.op)
            continue
        if o.attribute == "members":
            if o.where is not None:
                if o.where[0] != "value" or o.op != "remove":
                    raise ScimInvalid(
                        'only remove takes a filtered members path (members[value eq "id"])',
                        "invalidPath",
                    )
                fields = replace(
                    fields, members=tuple(m for m in fields.members if m != o.where[1])
                )
                continue
            if o.op == "remove":
                # Without a value, every member; with one (Entra ID's form), those listed.
                leaving = set(_member_ids(o.value)) if o.value is not None else set(fields.members)
                fields = replace(
                    fields, members=tuple(m for m in fields.members if m not in leaving)
                )
                continue
        if o.op == "remove":
            if o.attribute == "externalid":
                fields = replace(fields, external_id=None)
            elif o.attribute == "displayname":
                raise ScimInvalid("displayName is required and cannot be removed", "mutability")
            continue
        fields = _set_group(fields, o.attribute, o.value, op=o.op)
    return fields


def _set_group(fields: GroupFields, name: str, value: Any, *, op: str) -> GroupFields:
    if name == "displayname":
        return replace(fields, display_name=_text(value, field="displayName", required=True) or "")
    if name == "externalid":
        return replace(fields, external_id=_text(value, field="externalId"))
    if name == "members":
        given = _member_ids(value)
        if op == "add":
            return replace(
                fields, members=fields.members + tuple(m for m in given if m not in fields.members)
            )
        return replace(fields, members=given)
    return fields


def page_bounds(start_index: int | None, count: int | None) -> tuple[int, int]:
    """RFC 7644 §3.4.2.4: a 1-based ``startIndex`` (below 1: 1; at most ``MAX_START``) and a
    ``count`` (negative: 0, above ``MAX_RESULTS``: ``MAX_RESULTS``), as an offset and a limit."""
    start = 1 if start_index is None or start_index < 1 else min(start_index, MAX_START)
    limit = MAX_RESULTS if count is None else max(0, min(count, MAX_RESULTS))
    return start - 1, limit
