"""Ports of the task catalog (tasks, roles, role groups) and of standing assignments."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Protocol
from uuid import UUID

from jitpam.domain.catalog import Catalog
from jitpam.domain.directory import Assignment, PrincipalKind
from jitpam.domain.names import QualifiedName
from jitpam.domain.policy import PolicyType
from jitpam.services.ports.common import Page
from jitpam.services.ports.directory import RoleMember


class CatalogRepository(Protocol):
    def store(self, org_id: UUID, catalog: Catalog) -> int:
        """Add or update the catalog's tasks, roles, role groups and data scopes (entries of
        kind PolicyType.DATA_ACCESS; nothing is deleted); returns how many entries and
        memberships were added or changed."""
        ...

    def names(self, org_id: UUID, kind: PolicyType, bare_name: str) -> list[QualifiedName]:
        """Every task, role, role group or data scope whose name (without scope) is
        ``bare_name``."""
        ...

    def task_exists(self, org_id: UUID, task: str) -> bool: ...
    def tasks_held(
        self, org_id: UUID, roles: frozenset[str], tasks: Sequence[str]
    ) -> frozenset[str]:
        """Which of ``tasks`` one of ``roles`` holds, as casefolded ``Scope\\Name`` keys."""
        ...

    def roles_holding(self, org_id: UUID, task: str) -> frozenset[str]: ...
    def role_group_roles(
        self, org_id: UUID, only: Iterable[str] | None = None
    ) -> dict[str, frozenset[str]]:
        """Each role group's roles (``only``: those role groups, by name)."""
        ...

    def tasks_of_role(self, org_id: UUID, role: str) -> list[str]: ...
    def entries(self, org_id: UUID, kind: PolicyType) -> list[QualifiedName]: ...
    def page(
        self, org_id: UUID, kind: PolicyType, *, cursor: str | None, limit: int
    ) -> Page[QualifiedName]:
        """One keyset page of the tasks, roles or role groups, by ``Scope\\Name`` (any case)."""
        ...

    def role_tasks_page(
        self, org_id: UUID, role: str, *, cursor: str | None, limit: int
    ) -> Page[QualifiedName]:
        """One keyset page of the tasks a role (``Scope\\Name``) holds, by name."""
        ...

    def lookup(self, org_id: UUID, kind: PolicyType, text: str, limit: int) -> list[QualifiedName]:
        """At most ``limit`` entries from ``text`` on in name order: by ``Scope\\Name`` when
        ``text`` names a scope, otherwise by bare name. For suggestions while typing."""
        ...


class AssignmentRepository(Protocol):
    def add(self, assignment: Assignment, *, at: datetime) -> bool:
        """False when the same assignment already exists."""
        ...

    def remove(self, assignment: Assignment) -> bool: ...
    def standing_roles(
        self, org_id: UUID, user_id: UUID, group_ids: frozenset[UUID]
    ) -> frozenset[str]:
        """Roles held without approval: directly, through role groups, through groups."""
        ...

    def of_target(self, org_id: UUID, target_kind: str, target: str) -> list[Assignment]: ...
    def of_principal(
        self, org_id: UUID, kind: PrincipalKind, principal_id: UUID
    ) -> list[Assignment]: ...
    def holders(
        self,
        org_id: UUID,
        targets: Sequence[tuple[PolicyType, str]],
        *,
        at: datetime,
        cursor: str | None,
        limit: int | None,
    ) -> Page[RoleMember]:
        """Who holds these roles or role groups at ``at``, target after target: the standing
        assignments (oldest first), then the active just-in-time grants (soonest ending first).
        One keyset page; ``limit`` None reads them all."""
        ...
