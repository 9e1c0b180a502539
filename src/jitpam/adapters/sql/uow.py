"""The SQLAlchemy unit of work: one session, one transaction, audit written at commit."""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Self

from sqlalchemy import Engine
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from jitpam.adapters.sql.assignments import SqlAssignments
from jitpam.adapters.sql.audit import SqlAudit
from jitpam.adapters.sql.catalog import SqlCatalog
from jitpam.adapters.sql.connectors import SqlConnectors
from jitpam.adapters.sql.credentials import SqlCredentials
from jitpam.adapters.sql.db import is_race
from jitpam.adapters.sql.groups import SqlGroups
from jitpam.adapters.sql.lockbox import SqlLockbox
from jitpam.adapters.sql.organizations import SqlOrganizations
from jitpam.adapters.sql.outbox import SqlOutbox
from jitpam.adapters.sql.policies import SqlPolicies
from jitpam.adapters.sql.requests import SqlRequests
from jitpam.adapters.sql.users import SqlUsers
from jitpam.adapters.sql.webhooks import SqlWebhooks
from jitpam.domain.audit import AuditEvent
from jitpam.domain.errors import (
    AuditUnavailable,
    ConcurrentChange,
    DatabaseUnavailable,
    InvalidInput,
)
from jitpam.services.ports import (
    AssignmentRepository,
    AuditRepository,
    CatalogRepository,
    ConnectorRepository,
    CredentialRepository,
    GroupRepository,
    LockboxRepository,
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
        self.lockbox: LockboxRepository = SqlLockbox(self.session)
        self.connectors: ConnectorRepository = SqlConnectors(self.session)
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
        self._abandon()
        self.session.close()
        if isinstance(exc, IntegrityError | OperationalError | DataError):
            # A uniqueness race lost inside the use case (two creations of the same user at once,
            # say) is the conflict it is; a lost connection is the outage it is; a value the
            # database refuses (what the entry points did not catch) is the caller's bad input.
            raise _domain_error(exc) from exc

    def record(self, event: AuditEvent) -> None:
        self._events.append(event)

    def record_all(self, events: Iterable[AuditEvent]) -> None:
        self._events.extend(events)

    def commit(self) -> None:
        """Chain the recorded audit events and commit them with the change, or commit nothing.

        The change is written first, so that its own failure (a uniqueness race, a value the
        database refuses) is reported as what it is; only a failure of the audit write itself
        is AuditUnavailable (the audit repository raises it)."""
        try:
            self.session.flush()
            if self._events:
                self.audit.append(self._events)
            self.session.commit()
        except AuditUnavailable:
            self._abandon()
            raise
        except (IntegrityError, OperationalError, DataError) as exc:
            self._abandon()
            raise _domain_error(exc) from exc
        finally:
            self._events = []

    def rollback(self) -> None:
        self._events = []
        self.session.rollback()

    def _abandon(self) -> None:
        """Roll back whatever is open. If the connection died (after the work was done, or as
        the reason it failed), the pool drops it and the database ends the transaction."""
        try:
            self.rollback()
        except DBAPIError:
            self.session.invalidate()


def _domain_error(exc: DBAPIError) -> ConcurrentChange | DatabaseUnavailable | InvalidInput:
    """What a failed database call means to the user: someone else was first, the database
    could not be reached, or it refused a value it cannot store. Told apart by the error's
    class and the driver's code, never by its message. (A failed audit write is not among
    them: the audit repository reports it as AuditUnavailable where it happens.)"""
    if isinstance(exc, DataError):
        return InvalidInput("a value given cannot be stored (too long, or not valid text)")
    if isinstance(exc, IntegrityError) or is_race(exc.orig):
        return ConcurrentChange(
            "another change to the same data was made at the same time; nothing was changed, "
            "try again"
        )
    return DatabaseUnavailable("the database could not be reached or failed; try again")


def unit_of_work_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)
