"""Ports of the directory: organizations, users, groups (and how listings show groups and
role holders), and the users' credentials."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar
from uuid import UUID

from jitpam.domain.control import AccessControl
from jitpam.domain.directory import Group, Organization, PrincipalKind, User
from jitpam.domain.scim import Filter
from jitpam.domain.separation import Stewardship
from jitpam.domain.tokens import ApiToken
from jitpam.services.ports.common import Page

T = TypeVar("T")


@dataclass(frozen=True)
class Stamped(Generic[T]):
    """A user or group as SCIM shows it: with when it was created and last changed (None: not
    since it was created, or before this was recorded)."""

    item: T
    created: datetime
    modified: datetime | None


class OrganizationRepository(Protocol):
    def add(self, org: Organization, control: AccessControl, *, at: datetime) -> None: ...
    def get(self, org_id: UUID) -> Organization | None: ...
    def get_by_name(self, name: str) -> Organization | None: ...
    def all(self) -> list[Organization]: ...
    def domain_owner(self, domain: str) -> UUID | None: ...
    def add_domain(self, org_id: UUID, domain: str) -> None: ...
    def domains(self, org_id: UUID) -> list[str]: ...
    def control(self, org_id: UUID, *, for_update: bool = False) -> AccessControl:
        """The organization's settings; ``for_update`` locks them until commit."""
        ...

    def save_control(self, control: AccessControl) -> None: ...


class UserRepository(Protocol):
    def add(self, user: User, *, at: datetime) -> None: ...
    def get(self, user_id: UUID, *, for_update: bool = False) -> User | None: ...
    def get_by_upn(self, upn: str) -> User | None:
        """Look up across the installation (UPNs are unique everywhere)."""
        ...

    def save(self, user: User, *, at: datetime | None = None) -> None:
        """Store the user's name, display name, email, state and SCIM marks; ``at`` records
        when (SCIM's ``meta.lastModified``)."""
        ...

    def scim_page(
        self, org_id: UUID, *, where: Filter | None, offset: int, limit: int
    ) -> tuple[int, list[Stamped[User]]]:
        """The people and guests of the organization SCIM sees (not deleted through SCIM), by
        UPN: how many match ``where`` (``username``/``displayname`` without case,
        ``externalid`` exactly, ``id``), and ``limit`` of them after the first ``offset``."""
        ...

    def in_org(
        self, org_id: UUID, *, cursor: str | None = None, limit: int | None = None
    ) -> Page[User]:
        """Users by UPN, one page of ``limit`` after ``cursor`` (without ``limit``, all
        of them); raises InvalidInput for a cursor this adapter did not make."""
        ...

    def group_ids(self, user_id: UUID) -> frozenset[UUID]: ...
    def add_steward(self, user: User, steward_id: UUID, how: Stewardship, *, at: datetime) -> None:
        """Record for good that ``steward_id`` created ``user``'s account or set a credential of
        it (separation of duties); recording the same (steward, how) again changes nothing."""
        ...

    def stewards(self, user_ids: Iterable[UUID]) -> dict[UUID, frozenset[UUID]]:
        """For each of ``user_ids``, everyone who ever created the account or set a credential
        of it (an empty set when nobody but the installation did)."""
        ...

    def steered_by(self, steward_ids: frozenset[UUID]) -> frozenset[UUID]:
        """The accounts one of ``steward_ids`` created or set a credential of."""
        ...

    def every_upn(self, org_id: UUID) -> list[str]:
        """The names of all the organization's users, enabled or not (a connector checks that
        no two of them map to one login)."""
        ...

    def upns(self, org_id: UUID, ids: Iterable[UUID]) -> dict[UUID, str]:
        """The UPNs of those of ``ids`` that are users of the organization: those read in this
        transaction already from memory, the others in one query."""
        ...

    def scim_visible(self, org_id: UUID, ids: Iterable[UUID]) -> frozenset[UUID]:
        """Those of ``ids`` that SCIM sees: people and guests of the organization it did not
        delete (one query per thousand ids)."""
        ...


@dataclass(frozen=True)
class GroupSummary:
    """A group as a listing shows it: its size and its first members by UPN."""

    name: str
    email: str
    member_count: int
    members: list[str]


@dataclass(frozen=True)
class RoleMember:
    """A holder of a role: ``just_in_time`` members carry the end of their window."""

    principal_kind: PrincipalKind
    name: str
    via: str  # the role itself, or the role group that holds it
    just_in_time: bool
    until: datetime | None = None
    authorization_id: UUID | None = None


class GroupRepository(Protocol):
    def add(self, group: Group, *, at: datetime) -> None: ...
    def get(self, group_id: UUID) -> Group | None: ...
    def find(self, org_id: UUID, name_or_email: str) -> Group | None: ...
    def remove(self, group_id: UUID) -> None: ...
    def save(self, group: Group, *, at: datetime) -> None:
        """Store the group's name, email, description and SCIM marks (not its members)."""
        ...

    def scim_page(
        self, org_id: UUID, *, where: Filter | None, offset: int, limit: int
    ) -> tuple[int, list[Stamped[Group]]]:
        """The organization's groups, by name, with their members: how many match ``where``
        (``displayname`` without case, ``externalid`` exactly, ``id``), and ``limit`` of them
        after the first ``offset``."""
        ...

    def add_member(self, group_id: UUID, user_id: UUID, *, added_by: UUID | None) -> bool:
        """False when the user was already a member."""
        ...

    def remove_member(self, group_id: UUID, user_id: UUID) -> bool: ...
    def member_paths(
        self, group_id: UUID, user_ids: Iterable[UUID]
    ) -> dict[UUID, list[tuple[UUID | None, ...]]]:
        """For each of ``user_ids``, the paths of memberships that make them a member of the
        group, each as who added its links (None: the installation); no path: not a member."""
        ...

    def is_member(self, group_id: UUID, user_id: UUID, *, lock: bool = False) -> bool:
        """Whether the user is in the group; ``lock`` holds the membership until commit."""
        ...

    def in_org(
        self, org_id: UUID, *, cursor: str | None = None, limit: int | None = None
    ) -> Page[Group]:
        """Groups by name (case-folded), one page of ``limit`` after ``cursor`` (without
        ``limit``, all of them); raises InvalidInput for a cursor this adapter did not make."""
        ...

    def summaries(
        self, org_id: UUID, *, cursor: str | None, limit: int, members: int
    ) -> Page[GroupSummary]:
        """One keyset page of groups by name, each with its member count and its first
        ``members`` members (a fixed number of queries per page, whatever the sizes)."""
        ...

    def names(self, org_id: UUID, ids: Iterable[UUID]) -> dict[UUID, str]:
        """The names of those of ``ids`` that are groups of the organization: those read in this
        transaction already from memory, the others in one query."""
        ...

    def approves(self, group_id: UUID) -> bool:
        """Whether the group is a policy's approver group or the organization's default one."""
        ...

    def in_use(self, group_id: UUID) -> str | None:
        """What still refers to the group (a policy as approvers or eligible requesters, access
        control, a standing assignment), or None."""
        ...


class CredentialRepository(Protocol):
    def password_hash(self, user_id: UUID) -> str | None: ...
    def set_password_hash(self, user_id: UUID, hash: str, *, at: datetime) -> None: ...
    def add_token(self, token: ApiToken) -> None: ...
    def token_by_digest(self, digest: str) -> ApiToken | None: ...
    def token(self, token_id: UUID) -> ApiToken | None: ...
    def tokens(self, org_id: UUID, user_id: UUID | None) -> list[ApiToken]:
        """The organization's tokens (one user's when ``user_id`` is given), newest first."""
        ...

    def revoke_token(self, token_id: UUID, *, at: datetime) -> None: ...
    def revoke_all_tokens(self, user_id: UUID, *, at: datetime) -> int: ...
    def oidc_user(self, issuer: str, subject: str) -> UUID | None: ...
    def link_oidc(self, issuer: str, subject: str, user_id: UUID, *, at: datetime) -> None: ...
    def unlink_oidc(self, user_id: UUID) -> int:
        """Drops the user's OIDC links (their next sign-in is linked anew, by its email);
        returns how many there were."""
        ...
