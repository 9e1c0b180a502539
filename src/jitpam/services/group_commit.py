"""Group commit: calls that arrive together share one transaction.

A caller hands in its job and waits. If no group is being written, the caller becomes the leader:
it takes every job waiting (up to a bound), runs them as one group, hands each job its own
result, then passes the lead to the oldest job still waiting. Nobody waits on purpose for more
jobs to arrive: a group is whatever came in while the previous group was being written, so a
lone call pays nothing and a crowd pays one transaction per group instead of one per call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

J = TypeVar("J")
R = TypeVar("R")


@dataclass(eq=False)
class _Slot(Generic[J, R]):
    job: J
    size: int
    woken: threading.Event = field(default_factory=threading.Event)
    done: bool = False
    result: R | None = None
    error: BaseException | None = None


class GroupCommit(Generic[J, R]):
    """Shared by the threads of one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: list[_Slot[J, R]] = []
        self._leading = False
        self.groups = 0  # groups written, for tests and metrics

    def waiting(self) -> int:
        """Jobs handed in and not yet taken into a group."""
        with self._lock:
            return len(self._waiting)

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
        slot: _Slot[J, R] = _Slot(job, size)
        with self._lock:
            self._waiting.append(slot)
            lead = not self._leading
            self._leading = True
        if not lead:
            slot.woken.wait()
        if not slot.done:  # handed the lead (or took it): our job is the first waiting
            self._lead(run, max_size)
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]  # done without error: a result

    def _lead(
        self, run: Callable[[Sequence[J]], Sequence[R | BaseException]], max_size: int
    ) -> None:
        with self._lock:
            group: list[_Slot[J, R]] = []
            total = 0
            for slot in self._waiting:
                if group and total + slot.size > max_size:
                    break
                group.append(slot)
                total += slot.size
            del self._waiting[: len(group)]
        try:
            outcomes: Sequence[R | BaseException] = run([s.job for s in group])
            if len(outcomes) != len(group):
                raise RuntimeError("a group's run returned the wrong number of outcomes")
        except BaseException as exc:  # every job of the group fails as the group did
            outcomes = [exc] * len(group)
        self.groups += 1
        for slot, outcome in zip(group, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                slot.error = outcome
            else:
                slot.result = outcome
            slot.done = True
        with self._lock:
            if self._waiting:
                self._waiting[0].woken.set()  # not done: it leads the next group
            else:
                self._leading = False
        for slot in group:
            slot.woken.set()
