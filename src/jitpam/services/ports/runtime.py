"""The runtime's machinery, as the use cases see it. ``jitpam.runtime`` implements these and
``bootstrap`` chooses the implementations; a context without them (None) reads the database
at each check and runs each call in its own transaction."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol, TypeVar
from uuid import UUID

from jitpam.domain.check import CheckFacts
from jitpam.domain.directory import User
from jitpam.services.ports.common import T
from jitpam.services.ports.unit_of_work import UnitOfWork

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
