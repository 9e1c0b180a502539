"""Ports of Customer Lockbox: the lockbox requests, and which organization is the operator."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from jitpam.domain.lockbox import LockboxRequest
from jitpam.domain.requests import RequestStatus
from jitpam.services.ports.common import Page


@dataclass(frozen=True)
class Operator:
    """The installation's operator organization, and since when it is."""

    org_id: UUID
    since: datetime


@dataclass(frozen=True)
class LockboxFilter:
    """Which lockbox requests a listing shows. Exactly one side is given: a customer sees the
    requests addressed to it, the operator those it filed (``requester_id``: one engineer's)."""

    customer_org_id: UUID | None = None
    operator_org_id: UUID | None = None
    requester_id: UUID | None = None
    statuses: frozenset[RequestStatus] | None = None  # stored statuses (pending: not yet due)
    created_after: datetime | None = None
    request_id: UUID | None = None


class LockboxRepository(Protocol):
    def operator(self) -> Operator | None:
        """The installation's operator organization, if one is designated."""
        ...

    def set_operator(self, org_id: UUID | None, *, at: datetime) -> None:
        """Designate the operator (None: none), replacing any earlier one."""
        ...

    def add(self, request: LockboxRequest) -> None: ...

    def get(self, request_id: UUID, *, for_update: bool = False) -> LockboxRequest | None:
        """The request; ``for_update`` locks it until commit (decisions, revocations)."""
        ...

    def save(self, request: LockboxRequest) -> None:
        """Write back a request read in this transaction."""
        ...

    def page(
        self, flt: LockboxFilter, *, at: datetime, cursor: str | None, limit: int
    ) -> Page[LockboxRequest]:
        """Newest first, one page of ``limit`` after ``cursor``. ``flt.statuses`` are matched
        against each request's status at ``at`` (a pending request past its deadline is expired);
        raises InvalidInput for a cursor this adapter did not make."""
        ...

    def approved(self, customer_org_id: UUID, user_id: UUID) -> list[LockboxRequest]:
        """The user's requests to this customer whose stored status is approved (the check reads
        their windows)."""
        ...

    def due(self, at: datetime, *, limit: int) -> list[LockboxRequest]:
        """Requests whose stored status the clock has overtaken (pending past the deadline,
        approved past the end), oldest first: the sweeper writes them down."""
        ...
