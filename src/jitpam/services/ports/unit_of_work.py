"""The unit of work: one transaction, holding every repository.

Repositories return and accept domain objects. Every method runs inside the unit of work's
transaction; nothing is visible to others until ``commit``.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Protocol, Self

from jitpam.domain.audit import AuditEvent
from jitpam.services.ports.audit import AuditRepository
from jitpam.services.ports.catalog import AssignmentRepository, CatalogRepository
from jitpam.services.ports.connectors import ConnectorRepository
from jitpam.services.ports.delivery import OutboxRepository, WebhookRepository
from jitpam.services.ports.directory import (
    CredentialRepository,
    GroupRepository,
    OrganizationRepository,
    UserRepository,
)
from jitpam.services.ports.lockbox import LockboxRepository
from jitpam.services.ports.policies import PolicyRepository
from jitpam.services.ports.requests import RequestRepository


class UnitOfWork(Protocol):
    """One transaction. Leaving the ``with`` block without ``commit`` rolls everything back.

    Audit events given to ``record`` are chained and written by ``commit`` in the same transaction
    as the change: if they cannot be written, nothing is committed (AuditUnavailable).
    """

    orgs: OrganizationRepository
    users: UserRepository
    groups: GroupRepository
    catalog: CatalogRepository
    assignments: AssignmentRepository
    policies: PolicyRepository
    requests: RequestRepository
    lockbox: LockboxRepository
    connectors: ConnectorRepository
    audit: AuditRepository
    credentials: CredentialRepository
    outbox: OutboxRepository
    webhooks: WebhookRepository

    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    def record(self, event: AuditEvent) -> None: ...
    def record_all(self, events: Iterable[AuditEvent]) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...
