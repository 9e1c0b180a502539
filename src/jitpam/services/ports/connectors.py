"""Connectors: their target systems (adapters/connectors/ implement them: PostgreSQL roles, LDAP
groups), where their configurations come from, and the store of what jitpam applied."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol
from uuid import UUID

from jitpam.domain.connectors import (
    ChangeOutcome,
    ConnectorConfig,
    ConnectorSet,
    ConnectorState,
    Membership,
    Plan,
    Recorded,
)


class ConnectorTarget(Protocol):
    config: ConnectorConfig

    def present(self, targets: Iterable[str] = ()) -> dict[str, frozenset[str]]:
        """The members of each target the configuration binds, and of each of ``targets`` (those
        jitpam's records name); a target that does not exist has none. Raises
        ConnectorUnavailable when the system cannot be read."""
        ...

    def apply(self, plan: Plan) -> list[ChangeOutcome]:
        """Make each of ``plan.adds`` and ``plan.removes``: one outcome each, adds first; making
        a change that is already in place succeeds. Raises ConnectorUnavailable when the system
        cannot be reached at all (changes made before that stand)."""
        ...


class ConnectorSource(Protocol):
    """The server's connector configurations (server-side files), and the way to reach each."""

    def configured(self, org_name: str) -> ConnectorSet:
        """The organization's connectors as configured now (read again when the files change)."""
        ...

    def open(self, config: ConnectorConfig) -> ConnectorTarget:
        """The target system of ``config``; raises SecretUnavailable-like JitpamErrors when its
        secret cannot be read, ConnectorUnavailable when it cannot be used at all."""
        ...


class ConnectorRepository(Protocol):
    """What jitpam applied through each connector, and each connector's state."""

    def records(self, org_id: UUID, connector: str) -> list[Recorded]: ...
    def put(self, org_id: UUID, connector: str, record: Recorded) -> None:
        """Record (or re-record) a membership."""
        ...

    def drop(self, org_id: UUID, connector: str, membership: Membership) -> None: ...
    def records_on(self, org_id: UUID, targets: Iterable[str]) -> list[tuple[str, Recorded]]:
        """Every connector's records of the organization on ``targets``, with the connector."""
        ...

    def state(self, org_id: UUID, connector: str, *, for_update: bool = False) -> ConnectorState:
        """The connector's state (a fresh one if it never ran)."""
        ...

    def states(self, org_id: UUID) -> list[ConnectorState]:
        """Every connector of the organization that ran or holds records, by name."""
        ...

    def save_state(self, state: ConnectorState) -> None: ...
    def holding(self) -> dict[UUID, frozenset[str]]:
        """Installation-wide: each organization's connectors that hold memberships jitpam added."""
        ...

    def counts(self, org_id: UUID) -> dict[str, dict[str, int]]:
        """Per connector, how many records of each origin (``added``, ``pre_existing``)."""
        ...
