"""The SQLAlchemy unit of work: one session, one transaction, audit written at commit."""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Self

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from jitpam.adapters.sql.repositories import (
    SqlAssignments,
    SqlAudit,
    SqlCatalog,
    SqlCredentials,
    SqlGroups,
    SqlOrganizations,
    SqlOutbox,
    SqlPolicies,
    SqlRequests,
    SqlUsers,
    SqlWebhooks,
)
from jitpam.domain.audit import AuditEvent
from jitpam.domain.errors import AuditUnavailable, ConcurrentChange
from jitpam.services.ports import (
    AssignmentRepository,
    AuditRepository,
    CatalogRepository,
    CredentialRepository,
    GroupRepository,
    OrganizationRepository,
    OutboxRepository,
    PolicyRepository,
    RequestRepository,
    UserRepository,
    WebhookRepository,
)


class SqlUnitOfWork:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._events: list[AuditEvent] = []

    def __enter__(self) -> Self:
        self.session = self._sessions()
        self.orgs: OrganizationRepository = SqlOrganizations(self.session)
        self.users: UserRepository = SqlUsers(self.session)
        self.groups: GroupRepository = SqlGroups(self.session)
        self.catalog: CatalogRepository = SqlCatalog(self.session)
        self.assignments: AssignmentRepository = SqlAssignments(self.session)
        self.policies: PolicyRepository = SqlPolicies(self.session)
        self.requests: RequestRepository = SqlRequests(self.session)
        self.audit: AuditRepository = SqlAudit(self.session)
        self.credentials: CredentialRepository = SqlCredentials(self.session)
        self.outbox: OutboxRepository = SqlOutbox(self.session)
        self.webhooks: WebhookRepository = SqlWebhooks(self.session)
        self._events = []
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.rollback()
        self.session.close()
        if isinstance(exc, IntegrityError | OperationalError):
            # A uniqueness race lost inside the use case (two creations of the same user at once,
            # say): report it as the conflict it is, not as a database failure.
            raise _domain_error(exc) from exc

    def record(self, event: AuditEvent) -> None:
        self._events.append(event)

    def record_all(self, events: Iterable[AuditEvent]) -> None:
        self._events.extend(events)

    def commit(self) -> None:
        """Chain the recorded audit events and commit them with the change, or commit nothing."""
        try:
            if self._events:
                self.audit.append(self._events)
            self.session.commit()
        except AuditUnavailable:
            self.rollback()
            raise
        except (IntegrityError, OperationalError) as exc:
            self.rollback()
            raise _domain_error(exc) from exc
        finally:
            self._events = []

    def rollback(self) -> None:
        self._events = []
        self.session.rollback()


def _domain_error(exc: DBAPIError) -> AuditUnavailable | ConcurrentChange:
    """What a refused write means to the user: the audit log failed, or someone was first."""
    if "audit" in str(exc.orig).lower():
        return AuditUnavailable("the audit log could not be written, so nothing was changed")
    return ConcurrentChange(
        "another change to the same data was made at the same time; nothing was changed, try again"
    )


def unit_of_work_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)
