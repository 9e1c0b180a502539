"""A connector's target system, as the connector pass sees it (adapters/connectors/ implement
it: PostgreSQL roles, LDAP groups)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from jitpam.domain.connectors import ChangeOutcome, ConnectorConfig, Plan


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
