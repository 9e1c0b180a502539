"""The port of access requests, with the filter their listings take."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from jitpam.domain.check import Grant
from jitpam.domain.connectors import HeldGrant
from jitpam.domain.policy import PolicyType
from jitpam.domain.requests import AccessRequest, RequestStatus
from jitpam.services.ports.common import Page


@dataclass(frozen=True)
class Reviewer:
    """Who reviews through their groups: the requests under policies whose approver group is one
    of ``groups``, and under policies without a group of their own when the organization's
    default approver group (``default_group``) is one of them."""

    groups: frozenset[UUID]
    default_group: UUID | None


@dataclass(frozen=True)
class RequestFilter:
    requester_id: UUID | None = None
    # The requests of one application account (data access requests filed for it).
    subject_id: UUID | None = None
    status: RequestStatus | None = None
    reviewer: Reviewer | None = None  # visible to this reviewer through their policies ...
    or_requester_id: UUID | None = None  # ... or because the caller asked for it
    # Pending requests this user neither asked for, nor is the application of, nor reviewed
    # yet, in whose vote the requester has no hand, and whose application (a data access
    # request's subject) the user does not steer (review_refusal's SQL twin, separation of
    # duties included).
    awaiting_vote_of: UUID | None = None
    target_contains: str | None = None
    search: str | None = None  # in the requester's UPN or the target, any case
    oldest_first: bool = False
    # Only requests of these kinds (None: every kind; an empty set: none at all, as for a kind
    # that no access request is, like a data access request).
    types: frozenset[PolicyType] | None = None


# A search by substring cannot use an index: each page examines at most this many requests (the
# newest first, under the other filters) and says where it stopped, so a page stays fast at any
# size; the next cursor goes on from there, and following every cursor finds every match.
SEARCH_WINDOW = 10_000


class RequestRepository(Protocol):
    def add(self, request: AccessRequest) -> None: ...
    def get(self, request_id: UUID, *, for_update: bool = False) -> AccessRequest | None: ...
    def save(self, request: AccessRequest) -> None:
        """Write status, reviews and authorization; raises RequestNotPending if the row moved."""
        ...

    def open_for(
        self,
        org_id: UUID,
        requester_id: UUID,
        type: PolicyType,
        target: str,
        at: datetime,
        *,
        subject_id: UUID | None = None,
    ) -> AccessRequest | None:
        """The pending-and-not-expired or approved-and-active request for the target: the
        requester's own; or, given ``subject_id`` (a data access request), the application's,
        whoever filed it (``requester_id`` is then not compared): one open request per
        application and data scope."""
        ...

    def page(
        self, org_id: UUID, flt: RequestFilter, *, at: datetime, cursor: str | None, limit: int
    ) -> Page[AccessRequest]:
        """One keyset page by creation time. With a search, a page may hold fewer than ``limit``
        items (even none) and still name a next cursor: see SEARCH_WINDOW."""
        ...

    def count(self, org_id: UUID, flt: RequestFilter, *, at: datetime, limit: int) -> int:
        """How many requests match ``flt`` (no search), counted up to ``limit``."""
        ...

    def grants(self, org_id: UUID, user_id: UUID, at: datetime) -> tuple[Grant, ...]:
        """The user's authorizations that are not yet over at ``at``."""
        ...

    def active_for_user(self, org_id: UUID, user_id: UUID, at: datetime) -> list[AccessRequest]:
        """The approved requests whose grant ``user_id`` holds and that have not ended: the
        requester's own, and an application's data access (not its installer's), soonest
        ending first."""
        ...

    def pending_for_user(self, org_id: UUID, user_id: UUID, at: datetime) -> list[AccessRequest]:
        """The pending, not expired requests ``user_id`` filed or, an application, is the
        subject of."""
        ...

    def jit_holders(
        self, org_id: UUID, type: PolicyType, target: str, at: datetime
    ) -> list[AccessRequest]: ...
    def role_grants(self, org_id: UUID, at: datetime) -> list[HeldGrant]:
        """The role and role-group grants active at ``at`` of the organization's enabled users
        (what connectors make real)."""
        ...

    def to_settle(
        self, org_id: UUID, at: datetime, limit: int, *, lock: bool = True
    ) -> list[AccessRequest]:
        """Requests whose stored status the clock has overtaken (lapsed pending, ended grants);
        ``lock`` takes them (skipping rows another sweep holds)."""
        ...

    def granted(
        self,
        org_id: UUID,
        user_id: UUID | None,
        *,
        active_at: datetime | None,
        cursor: str | None,
        limit: int,
    ) -> Page[AccessRequest]:
        """Requests that were granted (one user's or everyone's): newest grant first; or, with
        ``active_at``, only the grants active then, soonest ending first."""
        ...

    def ending(self, org_id: UUID, after: datetime, until: datetime) -> list[tuple[UUID, UUID]]:
        """(request id, authorization id) of the grants active at ``after`` that end by
        ``until``, soonest ending first."""
        ...

    def id_for_authorization(self, authorization_id: UUID) -> UUID | None: ...
    def lock_grant(self, authorization_id: UUID) -> Grant | None:
        """The authorization as committed now, locked against revocation until commit."""
        ...
