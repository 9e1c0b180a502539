"""The ports the use cases need; adapters (and ``jitpam.runtime``) implement them, ``bootstrap``
wires them.

Repositories return and accept domain objects. Every method runs inside the unit of work's
transaction; nothing is visible to others until ``commit``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Generic, Protocol, Self, TypeVar
from uuid import UUID

from jitpam.domain.audit import AuditEvent, AuditRecord, Outcome
from jitpam.domain.catalog import Catalog
from jitpam.domain.check import CheckFacts, Grant
from jitpam.domain.control import AccessControl
from jitpam.domain.directory import Assignment, Group, Organization, PrincipalKind, User
from jitpam.domain.names import QualifiedName
from jitpam.domain.notifications import Channel, DeliveryState, OutboxMessage, WebhookEndpoint
from jitpam.domain.policy import ApprovalType, Policy, PolicyType
from jitpam.domain.requests import AccessRequest, RequestStatus
from jitpam.domain.separation import Stewardship
from jitpam.domain.tokens import ApiToken


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...


class Signer(Protocol):
    """Signs request content with the server's key; verifies with any key it has known."""

    @property
    def key_id(self) -> str: ...

    def sign(self, payload: bytes) -> str:
        """Return the signature, base64-encoded."""
        ...

    def verify(self, *, key_id: str, payload: bytes, signature: str) -> bool:
        """True only when ``signature`` is valid for ``payload`` under the key ``key_id``."""
        ...


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


class OrganizationRepository(Protocol):
    def add(self, org: Organization, control: AccessControl, *, at: datetime) -> None: ...
    def get(self, org_id: UUID) -> Organization | None: ...
    def get_by_name(self, name: str) -> Organization | None: ...
    def all(self) -> list[Organization]: ...
    def domain_owner(self, domain: str) -> UUID | None: ...
    def add_domain(self, org_id: UUID, domain: str) -> None: ...
    def domains(self, org_id: UUID) -> list[str]: ...
    def control(self, org_id: UUID, *, for_update: bool = False) -> AccessControl:
        """The organization's settings; ``for_update`` locks them until commit."""
        ...

    def save_control(self, control: AccessControl) -> None: ...


class UserRepository(Protocol):
    def add(self, user: User, *, at: datetime) -> None: ...
    def get(self, user_id: UUID, *, for_update: bool = False) -> User | None: ...
    def get_by_upn(self, upn: str) -> User | None:
        """Look up across the installation (UPNs are unique everywhere)."""
        ...

    def save(self, user: User) -> None: ...
    def in_org(
        self, org_id: UUID, *, cursor: str | None = None, limit: int | None = None
    ) -> Page[User]:
        """Users by UPN, one page of ``limit`` after ``cursor`` (without ``limit``, all
        of them); raises InvalidInput for a cursor this adapter did not make."""
        ...

    def group_ids(self, user_id: UUID) -> frozenset[UUID]: ...
    def add_steward(self, user: User, steward_id: UUID, how: Stewardship, *, at: datetime) -> None:
        """Record for good that ``steward_id`` created ``user``'s account or set a credential of
        it (separation of duties); recording the same (steward, how) again changes nothing."""
        ...

    def stewards(self, user_ids: Iterable[UUID]) -> dict[UUID, frozenset[UUID]]:
        """For each of ``user_ids``, everyone who ever created the account or set a credential
        of it (an empty set when nobody but the installation did)."""
        ...

    def steered_by(self, steward_ids: frozenset[UUID]) -> frozenset[UUID]:
        """The accounts one of ``steward_ids`` created or set a credential of."""
        ...

    def upns(self, org_id: UUID, ids: Iterable[UUID]) -> dict[UUID, str]:
        """The UPNs of those of ``ids`` that are users of the organization: those read in this
        transaction already from memory, the others in one query."""
        ...


@dataclass(frozen=True)
class GroupSummary:
    """A group as a listing shows it: its size and its first members by UPN."""

    name: str
    email: str
    member_count: int
    members: list[str]


@dataclass(frozen=True)
class RoleMember:
    """A holder of a role: ``just_in_time`` members carry the end of their window."""

    principal_kind: PrincipalKind
    name: str
    via: str  # the role itself, or the role group that holds it
    just_in_time: bool
    until: datetime | None = None
    authorization_id: UUID | None = None


class GroupRepository(Protocol):
    def add(self, group: Group, *, at: datetime) -> None: ...
    def get(self, group_id: UUID) -> Group | None: ...
    def find(self, org_id: UUID, name_or_email: str) -> Group | None: ...
    def remove(self, group_id: UUID) -> None: ...
    def add_member(self, group_id: UUID, user_id: UUID, *, added_by: UUID | None) -> bool:
        """False when the user was already a member."""
        ...

    def remove_member(self, group_id: UUID, user_id: UUID) -> bool: ...
    def member_paths(
        self, group_id: UUID, user_ids: Iterable[UUID]
    ) -> dict[UUID, list[tuple[UUID | None, ...]]]:
        """For each of ``user_ids``, the paths of memberships that make them a member of the
        group, each as who added its links (None: the installation); no path: not a member."""
        ...

    def is_member(self, group_id: UUID, user_id: UUID, *, lock: bool = False) -> bool:
        """Whether the user is in the group; ``lock`` holds the membership until commit."""
        ...

    def in_org(
        self, org_id: UUID, *, cursor: str | None = None, limit: int | None = None
    ) -> Page[Group]:
        """Groups by name (case-folded), one page of ``limit`` after ``cursor`` (without
        ``limit``, all of them); raises InvalidInput for a cursor this adapter did not make."""
        ...

    def summaries(
        self, org_id: UUID, *, cursor: str | None, limit: int, members: int
    ) -> Page[GroupSummary]:
        """One keyset page of groups by name, each with its member count and its first
        ``members`` members (a fixed number of queries per page, whatever the sizes)."""
        ...

    def names(self, org_id: UUID, ids: Iterable[UUID]) -> dict[UUID, str]:
        """The names of those of ``ids`` that are groups of the organization: those read in this
        transaction already from memory, the others in one query."""
        ...

    def in_use(self, group_id: UUID) -> str | None:
        """What still refers to the group (a policy as approvers or eligible requesters, access
        control, a standing assignment), or None."""
        ...


class CatalogRepository(Protocol):
    def store(self, org_id: UUID, catalog: Catalog) -> int:
        """Add or update the catalog's tasks, roles and role groups (nothing is deleted); returns
        how many entries and memberships were added or changed."""
        ...

    def names(self, org_id: UUID, kind: PolicyType, bare_name: str) -> list[QualifiedName]:
        """Every task, role or role group whose name (without scope) is ``bare_name``."""
        ...

    def task_exists(self, org_id: UUID, task: str) -> bool: ...
    def tasks_held(
        self, org_id: UUID, roles: frozenset[str], tasks: Sequence[str]
    ) -> frozenset[str]:
        """Which of ``tasks`` one of ``roles`` holds, as casefolded ``Scope\\Name`` keys."""
        ...

    def roles_holding(self, org_id: UUID, task: str) -> frozenset[str]: ...
    def role_group_roles(
        self, org_id: UUID, only: Iterable[str] | None = None
    ) -> dict[str, frozenset[str]]:
        """Each role group's roles (``only``: those role groups, by name)."""
        ...

    def tasks_of_role(self, org_id: UUID, role: str) -> list[str]: ...
    def entries(self, org_id: UUID, kind: PolicyType) -> list[QualifiedName]: ...
    def page(
        self, org_id: UUID, kind: PolicyType, *, cursor: str | None, limit: int
    ) -> Page[QualifiedName]:
        """One keyset page of the tasks, roles or role groups, by ``Scope\\Name`` (any case)."""
        ...

    def role_tasks_page(
        self, org_id: UUID, role: str, *, cursor: str | None, limit: int
    ) -> Page[QualifiedName]:
        """One keyset page of the tasks a role (``Scope\\Name``) holds, by name."""
        ...

    def lookup(self, org_id: UUID, kind: PolicyType, text: str, limit: int) -> list[QualifiedName]:
        """At most ``limit`` entries from ``text`` on in name order: by ``Scope\\Name`` when
        ``text`` names a scope, otherwise by bare name. For suggestions while typing."""
        ...


class AssignmentRepository(Protocol):
    def add(self, assignment: Assignment, *, at: datetime) -> bool:
        """False when the same assignment already exists."""
        ...

    def remove(self, assignment: Assignment) -> bool: ...
    def standing_roles(
        self, org_id: UUID, user_id: UUID, group_ids: frozenset[UUID]
    ) -> frozenset[str]:
        """Roles held without approval: directly, through role groups, through groups."""
        ...

    def of_target(self, org_id: UUID, target_kind: str, target: str) -> list[Assignment]: ...
    def of_principal(
        self, org_id: UUID, kind: PrincipalKind, principal_id: UUID
    ) -> list[Assignment]: ...
    def holders(
        self,
        org_id: UUID,
        targets: Sequence[tuple[PolicyType, str]],
        *,
        at: datetime,
        cursor: str | None,
        limit: int | None,
    ) -> Page[RoleMember]:
        """Who holds these roles or role groups at ``at``, target after target: the standing
        assignments (oldest first), then the active just-in-time grants (soonest ending first).
        One keyset page; ``limit`` None reads them all."""
        ...


class PolicyRepository(Protocol):
    def add(self, policy: Policy) -> None: ...
    def get(self, policy_id: UUID) -> Policy | None: ...
    def for_target(
        self, org_id: UUID, type: PolicyType, target: QualifiedName
    ) -> Policy | None: ...
    def save(self, policy: Policy) -> None: ...
    def remove(self, policy_id: UUID) -> None: ...
    def count(self, org_id: UUID) -> int: ...
    def matching(
        self,
        org_id: UUID,
        *,
        type: PolicyType | None = None,
        approval_type: ApprovalType | None = None,
        after: tuple[str, str] | None = None,
        limit: int | None = None,
        scope: str | None = None,
    ) -> list[Policy]:
        """Policies by (type, target); with ``after``/``limit``, one keyset page; with
        ``scope``, only targets in that scope."""
        ...

    def page(
        self,
        org_id: UUID,
        *,
        type: PolicyType | None,
        approval_type: ApprovalType | None,
        search: str | None,
        cursor: str | None,
        limit: int,
    ) -> Page[Policy]:
        """One keyset page by (type, target). With a search (a substring of the target), a page
        may hold fewer than ``limit`` items and still name a next cursor: see SEARCH_WINDOW."""
        ...


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
    status: RequestStatus | None = None
    reviewer: Reviewer | None = None  # visible to this reviewer through their policies ...
    or_requester_id: UUID | None = None  # ... or because the caller asked for it
    # Pending requests this user neither asked for nor reviewed yet, and in whose vote the
    # requester has no hand (review_refusal's SQL twin, separation of duties included).
    awaiting_vote_of: UUID | None = None
    target_contains: str | None = None
    search: str | None = None  # in the requester's UPN or the target, any case
    oldest_first: bool = False


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
        self, org_id: UUID, requester_id: UUID, type: PolicyType, target: str, at: datetime
    ) -> AccessRequest | None:
        """The requester's pending-and-not-expired or approved-and-active request for the target."""
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

    def active_for_user(self, org_id: UUID, user_id: UUID, at: datetime) -> list[AccessRequest]: ...
    def pending_for_user(
        self, org_id: UUID, user_id: UUID, at: datetime
    ) -> list[AccessRequest]: ...
    def jit_holders(
        self, org_id: UUID, type: PolicyType, target: str, at: datetime
    ) -> list[AccessRequest]: ...
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


class CredentialRepository(Protocol):
    def password_hash(self, user_id: UUID) -> str | None: ...
    def set_password_hash(self, user_id: UUID, hash: str, *, at: datetime) -> None: ...
    def add_token(self, token: ApiToken) -> None: ...
    def token_by_digest(self, digest: str) -> ApiToken | None: ...
    def token(self, token_id: UUID) -> ApiToken | None: ...
    def tokens(self, org_id: UUID, user_id: UUID | None) -> list[ApiToken]:
        """The organization's tokens (one user's when ``user_id`` is given), newest first."""
        ...

    def revoke_token(self, token_id: UUID, *, at: datetime) -> None: ...
    def revoke_all_tokens(self, user_id: UUID, *, at: datetime) -> int: ...
    def oidc_user(self, issuer: str, subject: str) -> UUID | None: ...
    def link_oidc(self, issuer: str, subject: str, user_id: UUID, *, at: datetime) -> None: ...


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...
    def verify(self, hash: str, password: str) -> bool:
        """True when ``password`` matches; False otherwise (never raises for a wrong one)."""
        ...


class LoginThrottle(Protocol):
    """Counts failed sign-ins per account and per client address."""

    def attempt(self, *, account: str, client: str, at: datetime) -> float:
        """Count an attempt before its password is checked, atomically; returns 0 when it may
        go ahead, else the seconds to wait (and then it is not counted)."""
        ...

    def succeeded(self, *, account: str, client: str) -> None:
        """The attempt was right: forget the account's failures and this attempt."""
        ...


class OutboxRepository(Protocol):
    def add(self, message: OutboxMessage) -> bool:
        """Queue a message; False (and nothing queued) when its idempotency key is taken."""
        ...

    def taken(self, keys: Sequence[str]) -> frozenset[str]:
        """Which of these idempotency keys a queued message has."""
        ...

    def claim(
        self, *, at: datetime, lease_until: datetime, limit: int, channels: frozenset[Channel]
    ) -> list[OutboxMessage]:
        """Take up to ``limit`` due messages for delivery until ``lease_until``: another worker
        skips them (FOR UPDATE SKIP LOCKED on PostgreSQL); a crashed worker's lease runs out.
        Counts the attempt."""
        ...

    def save(self, message: OutboxMessage, *, lease_until: datetime | None = None) -> bool:
        """Write the outcome of a delivery attempt and release the lease. With ``lease_until``,
        only while that lease is still this worker's: False (nothing written) when it ran out
        and another worker took the message over."""
        ...

    def get(self, message_id: UUID) -> OutboxMessage | None: ...
    def listing(
        self, org_id: UUID, *, state: DeliveryState | None, cursor: str | None, limit: int
    ) -> Page[OutboxMessage]:
        """Newest first, one page of ``limit`` after ``cursor``; raises InvalidInput for a
        cursor this adapter did not make."""
        ...


class WebhookRepository(Protocol):
    def add(self, endpoint: WebhookEndpoint) -> None: ...
    def get(self, endpoint_id: UUID) -> WebhookEndpoint | None: ...
    def remove(self, endpoint_id: UUID) -> None: ...
    def in_org(self, org_id: UUID) -> list[WebhookEndpoint]: ...


class UnitOfWork(Protocol):
    """One transaction. Leaving the ``with`` block without ``commit`` rolls everything back.

    Audit events given to ``record`` are chained and written by ``commit`` in the same transaction
    as the change: if they cannot be written, nothing is committed (AuditUnavailable).
    """

    orgs: OrganizationRepository
    users: UserRepository
    groups: GroupRepository
    catalog: CatalogRepository
    assignments: AssignmentRepository
    policies: PolicyRepository
    requests: RequestRepository
    audit: AuditRepository
    credentials: CredentialRepository
    outbox: OutboxRepository
    webhooks: WebhookRepository

    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    def record(self, event: AuditEvent) -> None: ...
    def record_all(self, events: Iterable[AuditEvent]) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...


# The runtime's machinery, as the use cases see it. ``jitpam.runtime`` implements these and
# ``bootstrap`` chooses the implementations; a context without them (None) reads the database
# at each check and runs each call in its own transaction.

J = TypeVar("J")
R = TypeVar("R")


class DecisionIndex(Protocol):
    """The facts ``decide`` needs, kept in memory per organization and exact at every check by
    following the organization's audit chain. Shared by the threads of one process.

    Use within one transaction, in this order: ``catch_up`` while holding the chain's head, then
    the look-ups, then, once the check's own records committed, ``skip`` past them."""

    def catch_up(self, uow: UnitOfWork, org_id: UUID, head: int) -> None:
        """Apply what audit records up to ``head`` changed (reading them through ``uow``);
        call while holding the chain's head (``uow.audit.head(org_id, lock=True)``)."""
        ...

    def skip(self, org_id: UUID, head: int, new_head: int) -> None:
        """Records ``head`` + 1 to ``new_head`` are known to change no decision (a check's own,
        appended while it held the head): move past them without reading them."""
        ...

    def token_org(self, digest: str) -> UUID | None:
        """The organization of an API token seen before (None: not seen; authenticate it)."""
        ...

    def remember_token_org(self, digest: str, org_id: UUID) -> None:
        """Note an authenticated token's organization, so its next checks group by it."""
        ...

    def token_holder(self, uow: UnitOfWork, org_id: UUID, digest: str, at: datetime) -> User | None:
        """The enabled user of the organization a usable (not expired, not revoked) token stands
        for at ``at``, or None. Call after ``catch_up``, in the same transaction."""
        ...

    def task_name(self, org_id: UUID, typed: str, resolve: Callable[[str], str]) -> str:
        """The canonical name of a typed task name (``resolve`` called when not known)."""
        ...

    def user(self, uow: UnitOfWork, org_id: UUID, upn: str, at: datetime) -> User | None:
        """The organization's user with this UPN, or None."""
        ...

    def facts(
        self, uow: UnitOfWork, org_id: UUID, upn: str, task: str, at: datetime
    ) -> tuple[User | None, CheckFacts]:
        """The user a UPN names (None: none) and the facts ``decide`` needs for them and the
        task (a canonical name), as of ``at``."""
        ...


class GroupCommit(Protocol[J, R]):
    """Calls from threads that arrive together run as one group (one transaction)."""

    def submit(
        self,
        job: J,
        run: Callable[[Sequence[J]], Sequence[R | BaseException]],
        *,
        size: int = 1,
        max_size: int = 1,
    ) -> R:
        """Run ``job`` in the next group and return its result (or raise its exception).
        ``run`` gets a group's jobs and returns one outcome per job, in order; a group holds
        jobs whose sizes add up to at most ``max_size`` (a larger job runs alone)."""
        ...


class AsyncGroupCommit(Protocol[J, R]):
    """``GroupCommit`` for callers on an event loop: awaiting a call holds no thread."""

    async def submit(
        self,
        job: J,
        run: Callable[[Sequence[J]], Sequence[R | BaseException]],
        *,
        size: int = 1,
        max_size: int = 1,
    ) -> R:
        """As ``GroupCommit.submit``, awaited."""
        ...


class WriteQueue(Protocol):
    """Use cases that write, for callers on an event loop, run one after another off the loop,
    each in its own transaction (where the database takes one writer at a time)."""

    async def run(self, work: Callable[[], T]) -> T:
        """Run ``work`` after the writes queued before it; return its result or raise its
        error (which fails no other write)."""
        ...
