"""The port of approval policies."""

from __future__ import annotations

from typing import Protocol
from uuid import UUID

from jitpam.domain.names import QualifiedName
from jitpam.domain.policy import ApprovalType, Policy, PolicyType
from jitpam.services.ports.common import Page


class PolicyRepository(Protocol):
    def add(self, policy: Policy) -> None: ...
    def get(self, policy_id: UUID) -> Policy | None: ...
    def for_target(
        self, org_id: UUID, type: PolicyType, target: QualifiedName
    ) -> Policy | None: ...
    def save(self, policy: Policy) -> None: ...
    def remove(self, policy_id: UUID) -> None: ...
    def count(self, org_id: UUID) -> int: ...
    def matching(
        self,
        org_id: UUID,
        *,
        type: PolicyType | None = None,
        approval_type: ApprovalType | None = None,
        after: tuple[str, str] | None = None,
        limit: int | None = None,
        scope: str | None = None,
    ) -> list[Policy]:
        """Policies by (type, target); with ``after``/``limit``, one keyset page; with
        ``scope``, only targets in that scope."""
        ...

    def page(
        self,
        org_id: UUID,
        *,
        type: PolicyType | None,
        approval_type: ApprovalType | None,
        search: str | None,
        cursor: str | None,
        limit: int,
    ) -> Page[Policy]:
        """One keyset page by (type, target). With a search (a substring of the target), a page
        may hold fewer than ``limit`` items and still name a next cursor: see SEARCH_WINDOW."""
        ...
