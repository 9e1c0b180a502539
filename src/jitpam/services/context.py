"""What every use case receives: how to open a transaction, the clock, the signer."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from uuid import UUID

from jitpam.domain.group_claims import GroupClaimMap
from jitpam.services.ports import (
    AsyncGroupCommit,
    Clock,
    ConnectorSource,
    DecisionIndex,
    GroupCommit,
    LoginThrottle,
    PasswordHasher,
    Signer,
    UnitOfWork,
    UnitOfWorkFactory,
    WriteQueue,
)


@dataclass(frozen=True)
class ServiceContext:
    uow: UnitOfWorkFactory
    clock: Clock
    signer: Signer
    passwords: PasswordHasher | None = None  # sign-in use cases need them; the core does not
    throttle: LoginThrottle | None = None
    session_hours: int = 12
    public_url: str = "http://127.0.0.1:8000"  # links in notifications point here
    # OIDC sign-in: the claim that lists groups, and the jitpam groups it decides.
    groups_claim: str = ""
    group_claims: GroupClaimMap = field(default_factory=GroupClaimMap)
    # The runtime's machinery, behind ports: ``bootstrap`` (or a test) chooses the classes of
    # ``jitpam.runtime``; nothing here picks one.
    # Checks decide from memory, kept exact by the audit chain (None: read the database each time).
    index: DecisionIndex | None = None
    # Checks arriving together share one transaction (None: one transaction per call); the
    # second serves callers on an event loop (the check API).
    checks: GroupCommit[Any, Any] | None = None
    async_checks: AsyncGroupCommit[Any, Any] | None = None
    # Use cases that write, for callers on an event loop: run one after another on a thread of
    # their own, or None to run each on a thread of the pool. Where the database takes one
    # writer at a time (SQLite), a queue costs less than a crowd of threads taking turns at its
    # lock.
    writes: WriteQueue | None = None
    # Transactions that only read (None: the same as ``uow``). On SQLite they run beside a
    # writer instead of queueing for the write lock.
    read: UnitOfWorkFactory | None = None
    # The server's connectors (server-side configuration files), None when it has none.
    connectors: ConnectorSource | None = None

    def reader(self) -> UnitOfWork:
        """A unit of work for a use case that changes nothing and records nothing."""
        return (self.read or self.uow)()


@dataclass(frozen=True)
class Caller:
    """Who is calling: a user of one organization, as established by the entry point."""

    org_id: UUID
    user_id: UUID


class Keep(Enum):
    """For optional settings where None means "none": leave the setting as it is."""

    KEEP = "keep"


KEEP = Keep.KEEP
