"""Approval policies: which targets need approval, by whom, for how long."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from jitpam.domain.errors import InvalidInput, RequesterNotEligible
from jitpam.domain.names import QualifiedName

MAX_APPROVALS_REQUIRED = 10
# No policy maximum still means a finite window: ten years keeps every date representable.
ABSOLUTE_MAX_HOURS = 24 * 365 * 10
DEFAULT_DURATION_HOURS = 4


class PolicyType(StrEnum):
    """What a policy covers and a request asks for. ``DATA_ACCESS`` is a data scope of a
    service (``Office365\\Mail.Read``), asked for an application when it is installed."""

    TASK = "task"
    ROLE = "role"
    ROLE_GROUP = "role_group"
    DATA_ACCESS = "data_access"

    @property
    def label(self) -> str:
        """M365's RequestedAccess for the kind."""
        return _LABELS[self]


_LABELS = {
    PolicyType.TASK: "Task",
    PolicyType.ROLE: "Role",
    PolicyType.ROLE_GROUP: "RoleGroup",
    PolicyType.DATA_ACCESS: "Data Access Request",
}


class ApprovalType(StrEnum):
    MANUAL = "manual"
    AUTO = "auto"


@dataclass(frozen=True)
class Policy:
    id: UUID
    org_id: UUID
    type: PolicyType
    target: QualifiedName
    approval_type: ApprovalType
    approver_group_id: UUID | None
    created_at: datetime
    approvals_required: int = 1
    max_duration_hours: int | None = None
    require_ticket: bool = False
    eligible_user_ids: frozenset[UUID] = field(default_factory=frozenset)
    eligible_group_ids: frozenset[UUID] = field(default_factory=frozenset)
    # Who last set the settings that decide whose votes count (None: before this was recorded);
    # read by the separation-of-duties rule (domain/separation.py).
    approver_group_set_by: UUID | None = None
    approval_type_set_by: UUID | None = None
    approvals_required_set_by: UUID | None = None
    # Who last set the eligible requesters: on an Auto policy they are the whole approval.
    eligible_set_by: UUID | None = None

    def describe(self) -> str:
        return f"{self.type.label} '{self.target}'"

    @property
    def restricts_requesters(self) -> bool:
        return bool(self.eligible_user_ids or self.eligible_group_ids)

    def is_eligible(self, user_id: UUID, group_ids: frozenset[UUID]) -> bool:
        """Whether the user may ask: the policy names no requesters, or names them or a group."""
        return (
            not self.restricts_requesters
            or user_id in self.eligible_user_ids
            or bool(group_ids & self.eligible_group_ids)
        )

    def ensure_eligible(self, user_id: UUID, group_ids: frozenset[UUID]) -> None:
        """Raises RequesterNotEligible when the policy names requesters and the user is not one."""
        if self.is_eligible(user_id, group_ids):
            return
        raise RequesterNotEligible(
            f"you are not among the eligible requesters of {self.describe()}"
        )

    def check_duration(self, hours: int) -> int:
        """Return the duration if the policy allows it; raises InvalidInput naming the bound."""
        if isinstance(hours, bool) or not isinstance(hours, int):
            raise InvalidInput("duration must be a whole number of hours")
        if hours <= 0:
            raise InvalidInput("duration must be more than 0 hours")
        limit = self.max_duration_hours or ABSOLUTE_MAX_HOURS
        if hours > limit:
            raise InvalidInput(
                f"duration {hours} h is more than the {limit} h allowed by {self.describe()}"
            )
        return hours

    def can_be_met(self, ticket_pattern: str | None) -> bool:
        """False when no request could satisfy it: it asks for a ticket reference, and the
        organization has no ticket pattern to recognize one."""
        return not self.require_ticket or ticket_pattern is not None

    def check_reason(self, reason: str, ticket_pattern: str | None) -> None:
        if not self.require_ticket:
            return
        if not self.can_be_met(ticket_pattern) or ticket_pattern is None:
            raise InvalidInput(
                f"{self.describe()} requires a ticket, but the organization has no ticket pattern"
            )
        if not re.search(ticket_pattern, reason):
            raise InvalidInput(
                f"{self.describe()} requires a ticket reference in the reason "
                f"(pattern {ticket_pattern})"
            )


def check_approvals_required(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput("approvals required must be a whole number")
    if not 1 <= value <= MAX_APPROVALS_REQUIRED:
        raise InvalidInput(f"approvals required must be from 1 to {MAX_APPROVALS_REQUIRED}")
    return value


def check_max_duration(value: int | None) -> int | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 1 <= value <= ABSOLUTE_MAX_HOURS
    ):
        raise InvalidInput(f"max duration must be from 1 to {ABSOLUTE_MAX_HOURS} hours")
    return value
