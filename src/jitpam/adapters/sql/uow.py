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
from jitpam.adapters.sql.credentials import SqlCredentials
from jitpam.adapters.sql.groups import SqlGroups
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
        """Chain the recorded audit events and commit them with the change, or commit nothing."""
        try:
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


# Refusals that mean "someone else was first": serialization failure, deadlock, lock not taken.
_RACES = {"40001", "40P01", "55P03"}


def _domain_error(
    exc: DBAPIError,
) -> AuditUnavailable | ConcurrentChange | DatabaseUnavailable | InvalidInput:
    """What a failed database call means to the user: the audit log refused the write, someone
    else was first, the database could not be reached, or it refused a value it cannot store."""
    if isinstance(exc, DataError):
        return InvalidInput("a value given cannot be stored (too long, or not valid text)")
    message = str(exc.orig).lower()
    if "audit" in message:
        return AuditUnavailable("the audit log could not be written, so nothing was changed")
    state = getattr(exc.orig, "sqlstate", None)
    if isinstance(exc, IntegrityError) or state in _RACES or "database is locked" in message:
        return ConcurrentChange(
            "another change to the same data was made at the same time; nothing was changed, "
            "try again"
        )
    return DatabaseUnavailable("the database could not be reached or failed; try again")


def unit_of_work_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)
