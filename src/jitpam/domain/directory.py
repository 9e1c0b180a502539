"""Organizations, users and groups: who exists and who may act."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from uuid import UUID

from jitpam.domain.errors import InvalidInput

_LOCAL = r"[A-Za-z0-9._%+'-]+"
_DOMAIN = r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
# A member's UPN, or a guest's in Entra's form: the home address with "@" made "_", then
# "#EXT#@" and a domain of the organization that invited them (gus_fabrikam.com#EXT#@contoso.com).
_UPN = re.compile(rf"^{_LOCAL}(?:_{_DOMAIN}#EXT#)?@{_DOMAIN}$", re.IGNORECASE)
_GUEST = re.compile(rf"^({_LOCAL})_({_DOMAIN})#EXT#@({_DOMAIN})$", re.IGNORECASE)
GUEST_MARK = "#EXT#"
_ORG_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
MAX_TEXT = 256


class Source(StrEnum):
    """Who manages a user or a group: jitpam's own use cases, or the organization's identity
    provider through SCIM (which created it, or took it over)."""

    JITPAM = "jitpam"
    SCIM = "scim"


class UserKind(StrEnum):
    PERSON = "person"
    SERVICE = "service"
    APPLICATION = "application"
    GUEST = "guest"


@dataclass(frozen=True)
class User:
    id: UUID
    org_id: UUID
    upn: str
    display_name: str
    email: str
    kind: UserKind
    enabled: bool = True
    # SCIM: the identity provider's id for the user, who manages it, and whether SCIM deleted
    # it (then disabled, hidden from SCIM, kept for the audit log).
    external_id: str | None = None
    source: Source = Source.JITPAM
    scim_deleted: bool = False
    # An administrator disabled the user by hand: SCIM does not enable them again.
    disabled_by_hand: bool = False

    @property
    def can_approve(self) -> bool:
        """Only enabled people vote: never a guest, never a service or application account
        (whose tokens an administrator can mint), whatever groups they are in."""
        return self.enabled and self.kind is UserKind.PERSON


@dataclass(frozen=True)
class Group:
    id: UUID
    org_id: UUID
    name: str
    email: str
    description: str = ""
    member_ids: frozenset[UUID] = field(default_factory=frozenset)
    external_id: str | None = None
    source: Source = Source.JITPAM


def managed_elsewhere(what: str, source: Source) -> str | None:
    """Why a hand edit of ``what`` (a user or a group, named) is refused, or None: what the
    identity provider manages is changed there (disabling a user is the one exception, made by
    the caller's rule)."""
    if source is Source.SCIM:
        return f"{what} is managed by the identity provider (SCIM); change it there"
    return None


def normalize_upn(upn: str) -> str:
    """UPNs are email-shaped and compared without case: lower case, except a guest's mark,
    kept as Entra writes it (``#EXT#``); raises InvalidInput."""
    text = (upn or "").strip()
    if len(text) > MAX_TEXT or not _UPN.match(text):
        raise InvalidInput(
            f"user name {upn!r} must be an email-style UPN such as alice@contoso.com"
        )
    return fold_upn(text)


def fold_upn(upn: str) -> str:
    """The form a UPN is stored, looked up and compared in: lower case, except a guest's mark,
    kept as Entra writes it (``#EXT#``)."""
    local, at, domain = upn.lower().rpartition("@")
    return f"{local.replace(GUEST_MARK.lower(), GUEST_MARK)}{at}{domain}"


def guest_upn(home: str, domain: str) -> str:
    """The name a guest whose own address is ``home`` is stored under in an organization that
    owns ``domain`` (Entra's form: ``gus@fabrikam.com`` in contoso.com is
    ``gus_fabrikam.com#EXT#@contoso.com``); raises InvalidInput for an address that is not a
    plain UPN (a guest's name is not a home address) or a name too long to store."""
    address = normalize_upn(home)
    if home_address(address) is not None:
        raise InvalidInput(f"{home!r} is a guest's name, not an address of their own")
    local, _, home_domain = address.rpartition("@")
    return normalize_upn(f"{local}_{home_domain}{GUEST_MARK}@{check_domain(domain)}")


def home_address(upn: str) -> str | None:
    """A guest's own address from the name they are stored under (None: not a guest's name)."""
    found = _GUEST.match((upn or "").strip())
    if found is None:
        return None
    local, home_domain, _ = found.groups()
    return f"{local}@{home_domain}".lower()


def upn_domain(upn: str) -> str:
    return upn.rsplit("@", 1)[-1].lower()


def check_domain(domain: str) -> str:
    text = (domain or "").strip().lower()
    if not _UPN.match(f"x@{text}") or len(text) > 253:
        raise InvalidInput(f"{domain!r} is not a domain name")
    return text


def check_org_name(name: str) -> str:
    text = (name or "").strip()
    if not _ORG_NAME.match(text):
        raise InvalidInput(
            f"organization name {name!r} must be 1-63 lowercase letters, digits or dashes"
        )
    return text


def check_text(value: str, *, field_name: str, required: bool = True, limit: int = MAX_TEXT) -> str:
    text = (value or "").strip()
    if required and not text:
        raise InvalidInput(f"{field_name} is required")
    if len(text) > limit:
        raise InvalidInput(f"{field_name} is longer than {limit} characters")
    if any((ord(c) < 32 and c not in "\n\t") or 0xD800 <= ord(c) <= 0xDFFF for c in text):
        raise InvalidInput(f"{field_name} holds control characters or broken text")
    return text


@dataclass(frozen=True)
class Organization:
    id: UUID
    name: str


class PrincipalKind(StrEnum):
    USER = "user"
    GROUP = "group"


@dataclass(frozen=True)
class Assignment:
    """A standing assignment of a role or role group to a user or a group."""

    id: UUID
    org_id: UUID
    principal_kind: PrincipalKind
    principal_id: UUID
    target_kind: str  # "role" or "role_group" (PolicyType values without "task")
    target: str  # canonical Scope\Name
