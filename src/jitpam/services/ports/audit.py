"""The port of the audit chain, with the filter its search takes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from jitpam.domain.audit import AuditEvent, AuditRecord, Outcome
from jitpam.services.ports.common import Page


@dataclass(frozen=True)
class AuditFilter:
    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None
    operation: str | None = None
    target: str | None = None
    outcome: Outcome | None = None


class AuditRepository(Protocol):
    def append(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        """Chain the events after the organization's head, under its lock.

        Raises AuditUnavailable when they cannot be written.
        """
        ...

    def head(self, org_id: UUID, *, lock: bool = False) -> tuple[int, str]:
        """(seq, hash) of the organization's last record; ``lock`` holds the head until commit,
        so no other change can join the chain (or commit a change) in between."""
        ...

    def changes(self, org_id: UUID, *, after: int, ignore: frozenset[str]) -> list[AuditRecord]:
        """Successful records after ``after``, in order, leaving out ``ignore``'s operations."""
        ...

    def records(self, org_id: UUID, *, after: int = 0) -> Iterator[AuditRecord]:
        """The organization's records after sequence number ``after``, in sequence order."""
        ...

    def search(
        self, org_id: UUID, flt: AuditFilter, *, cursor: str | None, limit: int
    ) -> Page[AuditRecord]: ...
