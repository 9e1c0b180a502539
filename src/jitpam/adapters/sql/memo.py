"""What a transaction has read already, kept for the rest of it: the one place that says what
the repositories remember and which change makes them forget what.

A use case meets the same rows more than once (the caller, the requester and the approvers; its
policy for the rules, the approvers and the notices; its organization's settings everywhere), so
the repositories read each once per transaction. What is remembered is declared here as a
``Slot``; what a write invalidates is declared here as a ``Change`` and its ``FORGETS`` entry, so a
repository that changes a group makes the users' and the policies' repositories forget what the
change touches without either knowing the other. The memo lives in the session and is dropped
when another transaction begins (a commit or a rollback ends what it vouches for).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from uuid import UUID

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from jitpam.domain.control import AccessControl
    from jitpam.domain.directory import Group, User
    from jitpam.domain.policy import Policy

K = TypeVar("K")
V = TypeVar("V")


class Slot(Generic[K, V]):
    """One kind of value remembered per transaction, ``V`` by ``K``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Slot({self.name!r})"


@dataclass(frozen=True, slots=True)
class RequestAsRead:
    """What the database held of a request when this transaction read (or wrote) it: compared
    and carried forward when the request is saved, so that only what changed is written."""

    version: int  # compared and set: a row that moved since it was read is a lost race
    reviews: int  # reviews stored; those after them are new
    revocation: tuple[Any, ...] | None  # the grant's revocation as stored (None: no grant)


USERS: Slot[UUID, User] = Slot("users")
GROUPS_OF_USER: Slot[UUID, frozenset[UUID]] = Slot("users.group_ids")
GROUPS: Slot[UUID, Group] = Slot("groups")
# (group, user) -> (a member, read under a lock that holds to the transaction's end)
MEMBERSHIP: Slot[tuple[UUID, UUID], tuple[bool, bool]] = Slot("groups.members")
POLICIES: Slot[UUID, Policy] = Slot("policies")
# (org, type, target key) -> the policy's id (its policy in POLICIES)
POLICY_FOR: Slot[tuple[UUID, str, str], UUID] = Slot("policies.for")
ORG_ROWS: Slot[UUID, Any] = Slot("orgs.row")
ORG_CONTROLS: Slot[UUID, AccessControl] = Slot("orgs.control")
# Audit chain heads this transaction has locked, as they stand: no one else can move them until
# it ends, so the lock taken before deciding serves the append too.
AUDIT_HEADS: Slot[UUID, tuple[int, str]] = Slot("audit.heads")
REQUESTS: Slot[UUID, RequestAsRead] = Slot("requests.as_read")
# The version of each lockbox request as this transaction read (or wrote) it: compared and set.
LOCKBOX_VERSIONS: Slot[UUID, int] = Slot("lockbox.version")
# The dialect and DBAPI connection of the transaction (found once for it, see prepared.py).
DRIVER: Slot[None, tuple[Any, Any]] = Slot("driver")


class Change(Enum):
    """A write whose effect other slots must not hide; its key is the changed row's id."""

    USER = auto()
    GROUP = auto()  # its row or its members
    GROUP_REMOVED = auto()
    POLICY = auto()
    ORG_CONTROL = auto()


@dataclass(frozen=True, slots=True)
class Forget:
    slot: Slot[Any, Any]
    everything: bool = False  # every value of the slot, not only the changed key's


FORGETS: dict[Change, tuple[Forget, ...]] = {
    Change.USER: (Forget(USERS),),
    # A member added or removed changes the user's groups and any membership read.
    Change.GROUP: (
        Forget(GROUPS),
        Forget(MEMBERSHIP, everything=True),
        Forget(GROUPS_OF_USER, everything=True),
    ),
    # A group removed also leaves the policies that named it eligible.
    Change.GROUP_REMOVED: (
        Forget(GROUPS),
        Forget(MEMBERSHIP, everything=True),
        Forget(GROUPS_OF_USER, everything=True),
        Forget(POLICIES, everything=True),
    ),
    Change.POLICY: (Forget(POLICIES),),
    Change.ORG_CONTROL: (Forget(ORG_CONTROLS), Forget(ORG_ROWS)),
}

_KEY = "jitpam.memo"


class Memo:
    """The values one transaction of a session has read (see module)."""

    __slots__ = ("_session", "_transaction", "_values")

    def __init__(self, session: Session) -> None:
        self._session = session
        self._transaction: object | None = None
        self._values: dict[Slot[Any, Any], dict[Any, Any]] = {}

    @staticmethod
    def of(session: Session) -> Memo:
        """The session's memo (made on first use, shared by all its repositories)."""
        memo = session.info.get(_KEY)
        if memo is None:
            memo = session.info[_KEY] = Memo(session)
        assert isinstance(memo, Memo)
        return memo

    def _current(self, slot: Slot[K, V]) -> dict[K, V]:
        transaction = self._session.get_transaction()
        if transaction is not self._transaction:
            self._transaction, self._values = transaction, {}
        values: dict[K, V] | None = self._values.get(slot)
        if values is None:
            values = self._values[slot] = {}
        return values

    def get(self, slot: Slot[K, V], key: K) -> V | None:
        return self._current(slot).get(key)

    def put(self, slot: Slot[K, V], key: K, value: V) -> None:
        """Remember ``value``; outside a transaction there is nothing it would hold for."""
        if self._session.get_transaction() is not None:
            self._current(slot)[key] = value

    def changed(self, change: Change, key: Any) -> None:
        """Forget what ``change`` of the row ``key`` makes stale (see ``FORGETS``)."""
        for forget in FORGETS[change]:
            values = self._current(forget.slot)
            if forget.everything:
                values.clear()
            else:
                values.pop(key, None)
