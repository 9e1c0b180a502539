"""Per-organization access control: the switch, its default approvers and its exemptions."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from uuid import UUID

from jitpam.domain.errors import InvalidInput

DEFAULT_PENDING_HOURS = 24
_NESTED_REPEAT = re.compile(r"\([^()]*[+*}][^()]*\)\s*[+*{]")


@dataclass(frozen=True)
class AccessControl:
    """The organization's settings that every request and check reads.

    ``max_policies`` is None for "no limit"; ``ticket_pattern`` is the regular expression a
    reason must contain when a policy requires a ticket. ``system_account_designators`` names who
    designated each system account and ``default_approver_group_set_by`` who last set the
    default approver group (None: the installation, or before this was recorded): the
    separation-of-duties rule reads them.
    """

    org_id: UUID
    enabled: bool = False
    default_approver_group_id: UUID | None = None
    system_account_ids: frozenset[UUID] = field(default_factory=frozenset)
    ticket_pattern: str | None = None
    max_policies: int | None = None
    pending_hours: int = DEFAULT_PENDING_HOURS
    default_approver_group_set_by: UUID | None = None
    system_account_designators: Mapping[UUID, UUID | None] = field(
        default_factory=dict, compare=False
    )
    # Customer Lockbox (domain/lockbox.py): whether the organization's approvers must approve
    # every data access request of the operator's engineers, and the longest access it allows.
    lockbox_approval_required: bool = False
    lockbox_max_hours: int = 4
    # SCIM: the approver groups whose memberships may arrive from the identity provider (the
    # organization opted each in); changes to any other approver group's members are refused.
    synced_approver_group_ids: frozenset[UUID] = field(default_factory=frozenset)


def check_ticket_pattern(pattern: str | None) -> str | None:
    if pattern is None or pattern == "":
        return None
    if len(pattern) > 200:
        raise InvalidInput("ticket pattern is longer than 200 characters")
    problem = pattern_problem(pattern)
    if problem is not None:
        raise InvalidInput(f"ticket pattern {pattern!r} {problem}")
    return pattern


def pattern_problem(pattern: str) -> str | None:
    """Why a regular expression that users' input is matched against must be refused: invalid,
    or a repeated group that repeats (``(a+)+`` backtracks exponentially and holds the whole
    server on one long value). None when it is fine."""
    if _NESTED_REPEAT.search(pattern):
        return "repeats a group that repeats: write it without nesting"
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"is not a valid regular expression: {exc}"
    return None


def check_pending_hours(hours: int) -> int:
    if isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= 24 * 30:
        raise InvalidInput("pending hours must be a whole number from 1 to 720")
    return hours


def check_max_policies(limit: int | None) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000_000:
        raise InvalidInput("the policy limit must be a whole number from 1 to 10,000,000, or none")
    return limit
