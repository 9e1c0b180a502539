"""The decision index: what ``decide`` needs, kept in memory per organization, exact at every check.

Every change that can alter a decision is a use case that writes an audit record in its own
transaction, and the audit chain of an organization is gap-free and ordered (its head is locked by
each writer). So the chain is the change feed: the index remembers the sequence number it is
current at, and a check, holding the chain's head for its own audit record, first applies whatever
records came after (from this process or any other), then decides from memory. Nothing can commit
a change between that catch-up and the check's own record, so a decision is never made on stale
data; expiry is a clock comparison at check time.

What is kept: per organization, its access control (on/off, the system accounts whose exemption
counts under separation of duties), and for each task
asked about, the roles holding it, whether it exists and whether a task policy covers it; per user
asked about, whether they exist and are enabled, their standing roles (directly, through role
groups, through groups) and their grants; and the API tokens checks came with, with their users,
so the check API authenticates from memory too (token revocations, sign-outs and password changes
drop them; expiry is a clock comparison). It is filled on first use and dropped, for one user,
the tokens or the whole organization, by the changes that touch it (a password or token set for
another account drops the organization: its setter now steers it, which can end an exemption).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from uuid import UUID

from jitpam.domain.check import CheckFacts, Grant
from jitpam.domain.directory import User
from jitpam.domain.names import QualifiedName
from jitpam.domain.operations import REQUESTER, AuditOperation, DecisionEffect, record_effect
from jitpam.domain.policy import PolicyType
from jitpam.domain.tokens import ApiToken
from jitpam.services.directory import lookup_user
from jitpam.services.ports import UnitOfWork
from jitpam.services.separation import exempt_accounts

# What each operation's records can change is stated by the operation itself (``effect``):
# records of those that change no decision are skipped in the catch-up's query. A name this
# version does not know (another version wrote it) is read, and reloads the organization.
SKIPPED = frozenset(op.value for op in AuditOperation if op.effect is DecisionEffect.NONE)
MAX_NAMES = 10_000
MAX_TOKENS = 100_000


@dataclass
class _User:
    user: User | None  # None: no such user in the organization
    groups: frozenset[UUID] = frozenset()
    standing_roles: frozenset[str] = frozenset()
    grants: tuple[Grant, ...] = ()  # every grant not ended or revoked at ``loaded_at``
    loaded_at: datetime | None = None
    facts: dict[str, CheckFacts] = field(default_factory=dict)  # by task, as asked


@dataclass
class _Task:
    exists: bool
    roles: frozenset[str]
    policy: bool


@dataclass
class _Org:
    seq: int
    enabled: bool
    system_accounts: frozenset[UUID]  # those whose exemption counts (services/separation.py)
    role_group_roles: dict[str, frozenset[str]] | None = None
    users: dict[str, _User] = field(default_factory=dict)  # by UPN (lower case)
    tasks: dict[str, _Task] = field(default_factory=dict)  # by canonical name
    names: dict[str, str] = field(default_factory=dict)  # typed task name -> canonical
    tokens: dict[str, tuple[ApiToken, User]] = field(default_factory=dict)  # by digest
    # Another name a user was asked about by (a guest's own address, a case of "#EXT#") -> the
    # UPN of ``users`` it means: a change to the user drops their entry under their UPN only.
    # Only a change that reloads the organization (a user created) can make a name mean another.
    aliases: dict[str, str] = field(default_factory=dict)


class MemoryDecisionIndex:
    """The ``DecisionIndex`` port, in this process's memory. Shared by the threads of one
    process; each organization's state is replaced whole."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._orgs: dict[UUID, _Org] = {}
        self._token_orgs: dict[str, UUID] = {}  # token digest -> its organization (never moves)
        self.reloads = 0  # organizations (re)built, for tests and metrics

    def catch_up(self, uow: UnitOfWork, org_id: UUID, head: int) -> None:
        """Bring the organization up to audit record ``head``; call while holding the chain's
        head (``uow.audit.head(org_id, lock=True)``)."""
        with self._lock:
            state = self._orgs.get(org_id)
        if state is not None and state.seq == head:
            return
        if state is not None and state.seq < head:
            changes = uow.audit.changes(org_id, after=state.seq, ignore=SKIPPED)
            effects = [record_effect(c.operation, c.details) for c in changes]
            if DecisionEffect.ORGANIZATION not in effects:
                users, tokens = dict(state.users), state.tokens
                for change, effect in zip(changes, effects, strict=True):
                    if effect is DecisionEffect.GRANTS:
                        users.pop(str(change.details.get(REQUESTER, "")).lower(), None)
                    elif effect is DecisionEffect.TOKENS:
                        tokens = {}
                fresh = _Org(
                    head,
                    state.enabled,
                    state.system_accounts,
                    state.role_group_roles,
                    users,
                    state.tasks,
                    state.names,
                    tokens,
                    state.aliases,
                )
                with self._lock:
                    self._orgs[org_id] = fresh
                return
        control = uow.orgs.control(org_id)
        exempt = exempt_accounts(uow, control)
        with self._lock:
            self._orgs[org_id] = _Org(head, control.enabled, exempt)
            self.reloads += 1

    def skip(self, org_id: UUID, head: int, new_head: int) -> None:
        """Records ``head`` + 1 to ``new_head`` are known to change no decision (a check's own,
        appended while it held the head): move past them without reading them."""
        with self._lock:
            state = self._orgs.get(org_id)
            if state is not None and state.seq == head:
                self._orgs[org_id] = replace(state, seq=new_head)

    def token_org(self, digest: str) -> UUID | None:
        """The organization of a token seen before (None: not seen; authenticate it first)."""
        return self._token_orgs.get(digest)

    def remember_token_org(self, digest: str, org_id: UUID) -> None:
        """Note an authenticated token's organization, so its next checks group by it."""
        with self._lock:
            if len(self._token_orgs) >= MAX_TOKENS:
                self._token_orgs.clear()
            self._token_orgs[digest] = org_id

    def token_holder(self, uow: UnitOfWork, org_id: UUID, digest: str, at: datetime) -> User | None:
        """The enabled user of the organization a usable (not expired, not revoked) token stands
        for at ``at``, or None. Call after ``catch_up``, in the same transaction."""
        state = self._orgs[org_id]  # one key read: atomic, needs no lock
        held = state.tokens.get(digest)
        if held is None:
            token = uow.credentials.token_by_digest(digest)
            user = uow.users.get(token.user_id) if token is not None else None
            if token is None or user is None:
                return None
            held = (token, user)
            if len(state.tokens) >= MAX_TOKENS:
                state.tokens.clear()
            state.tokens[digest] = held
        token, user = held
        if (
            token.org_id != org_id
            or user.org_id != org_id
            or not token.usable_at(at)
            or not user.enabled
        ):
            # Never usable again here (revocation and expiry are for good; a user enabled
            # again is a change that reloads the organization): the token's next check goes
            # back to a read-only authentication, not to a write transaction.
            self._token_orgs.pop(digest, None)
            return None
        return user

    def task_name(self, org_id: UUID, typed: str, resolve: Callable[[str], str]) -> str:
        """The canonical name of a typed task name, resolved once per catalog version."""
        state = self._orgs[org_id]  # one key read: atomic, needs no lock
        name = state.names.get(typed)
        if name is None:
            name = resolve(typed)
            if len(state.names) >= MAX_NAMES:  # typed text is anyone's: never let it pile up
                state.names.clear()
            state.names[typed] = name
        return name

    def user(self, uow: UnitOfWork, org_id: UUID, upn: str, at: datetime) -> User | None:
        return self._user(uow, org_id, upn.strip().lower(), at).user

    def _user(self, uow: UnitOfWork, org_id: UUID, upn: str, at: datetime) -> _User:
        state = self._orgs[org_id]  # one key read: atomic, needs no lock
        u = state.users.get(state.aliases.get(upn, upn))
        if u is None or (u.loaded_at is not None and at < u.loaded_at):
            # Loaded for a later instant (a check whose clock was read earlier came second, or
            # the clock stepped back): grants that ended in between would be missing.
            u = _load_user(uow, org_id, upn, at)
            if u.user is not None:  # unknown names are not kept: anyone can type them
                key = u.user.upn.lower()
                state.users[key] = u
                if key != upn:
                    if len(state.aliases) >= MAX_NAMES:
                        state.aliases.clear()
                    state.aliases[upn] = key
        return u

    def facts(
        self, uow: UnitOfWork, org_id: UUID, upn: str, task: str, at: datetime
    ) -> tuple[User | None, CheckFacts]:
        """The facts ``decide`` needs, from memory where known, loaded once where not."""
        state = self._orgs[org_id]  # one key read: atomic, needs no lock
        upn = upn.strip().lower()
        u = state.users.get(state.aliases.get(upn, upn))
        if u is not None and (u.loaded_at is None or u.loaded_at <= at):
            known = u.facts.get(task)  # the common case, without a call more
            if known is not None:
                return u.user, known
        u = self._user(uow, org_id, upn, at)
        known = u.facts.get(task)
        if known is not None:
            return u.user, known
        t = state.tasks.get(task)
        if t is None:
            t = _load_task(uow, org_id, task)
            if t.exists:  # unknown names are not kept: anyone can type them
                state.tasks[task] = t
        needs_groups = any(g.type is PolicyType.ROLE_GROUP for g in u.grants)
        if needs_groups and state.role_group_roles is None:
            state.role_group_roles = dict(uow.catalog.role_group_roles(org_id))
        user = u.user
        facts = CheckFacts(
            task=task,
            user_exists=user is not None,
            user_enabled=user is not None and user.enabled,
            task_exists=t.exists,
            task_roles=t.roles,
            standing_roles=u.standing_roles,
            grants=u.grants,
            role_group_roles=state.role_group_roles or {},
            control_enabled=state.enabled,
            system_account=user is not None and user.id in state.system_accounts,
            task_policy=t.policy,
        )
        if user is not None and t.exists:
            # Nothing in them moves with the clock (grants are judged at each check), and any
            # change they depend on replaces this user's entry or the whole organization.
            u.facts[task] = facts
        return user, facts


def _load_task(uow: UnitOfWork, org_id: UUID, task: str) -> _Task:
    exists = uow.catalog.task_exists(org_id, task)
    if not exists:
        return _Task(False, frozenset(), False)
    policy = uow.policies.for_target(org_id, PolicyType.TASK, QualifiedName.parse(task))
    return _Task(True, uow.catalog.roles_holding(org_id, task), policy is not None)


def _load_user(uow: UnitOfWork, org_id: UUID, upn: str, at: datetime) -> _User:
    user = lookup_user(uow, org_id, upn)
    if user is None:
        return _User(None)
    groups = uow.users.group_ids(user.id)
    # Grants still to come or running at ``at``; each is judged by the clock at check time.
    return _User(
        user,
        groups,
        uow.assignments.standing_roles(org_id, user.id, groups),
        uow.requests.grants(org_id, user.id, at),
        at,
    )
