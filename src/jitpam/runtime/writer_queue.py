"""The writer queue: use cases that write, for callers on an event loop, run one after another on
a thread of their own.

Where the database takes one writer at a time (SQLite), a queue costs less than a crowd of pool
threads taking turns at its lock. Each use case keeps its own transaction: the queue only orders
them, it never shares a transaction between them (group commit does that for checks only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from jitpam.runtime.group_commit import LoopGroupCommit

T = TypeVar("T")
WRITES_PER_TURN = 64  # queued writes taken at once by the writer thread (each its own transaction)


class WriterQueue:
    """The services' ``WriteQueue`` port: one thread runs the queued use cases in the order they
    came (started by the first, lingering ``linger`` seconds for the next)."""

    def __init__(self, *, per_turn: int = WRITES_PER_TURN, linger: float = 1.0) -> None:
        self._per_turn = per_turn
        self._queue: LoopGroupCommit[Callable[[], Any], Any] = LoopGroupCommit(linger=linger)

    @property
    def turns(self) -> int:
        """Turns of the writer thread so far (each ran up to ``per_turn`` use cases)."""
        return self._queue.groups

    async def run(self, work: Callable[[], T]) -> T:
        """Run ``work`` after the writes queued before it; return its result or raise its
        error (which fails no other write)."""
        result: T = await self._queue.submit(work, one_by_one, max_size=self._per_turn)
        return result


def one_by_one(jobs: Sequence[Callable[[], T]]) -> list[T | BaseException]:
    """Run each job in turn (each its own use case, its own transaction); one job's error is
    that job's outcome only."""
    outcomes: list[T | BaseException] = []
    for job in jobs:
        try:
            outcomes.append(job())
        except Exception as exc:
            outcomes.append(exc)
    return outcomes
