"""Group commit: calls that arrive together share one transaction.

A caller hands in its job and waits. If no group is being written, the caller becomes the leader:
it takes every job waiting (up to a bound), runs them as one group, hands each job its own
result, then passes the lead to the oldest job still waiting. Nobody waits on purpose for more
jobs to arrive: a group is whatever came in while the previous group was being written, so a
lone call pays nothing and a crowd pays one transaction per group instead of one per call.

ThreadGroupCommit serves callers on threads (a caller may lead) and LoopGroupCommit callers on an
event loop, whose groups a thread of its own writes, so an awaited call needs no thread: the
services' ``GroupCommit`` and ``AsyncGroupCommit`` ports. The writer queue (``writer_queue.py``)
is a LoopGroupCommit whose jobs are whole use cases.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

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


class ThreadGroupCommit(Generic[J, R]):
    """Group commit for callers on threads: the first caller to find no group being written
    leads. Shared by the threads of one process."""

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
            group = _take(self._waiting, max_size)
        outcomes = _run(run, [s.job for s in group])
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


class _Sized(Protocol):
    size: int


S = TypeVar("S", bound=_Sized)


def _take(waiting: list[S], max_size: int) -> list[S]:
    """Remove and return the next group: the oldest entries whose sizes add up to at most
    ``max_size`` (a larger entry alone)."""
    group: list[S] = []
    total = 0
    for entry in waiting:
        if group and total + entry.size > max_size:
            break
        group.append(entry)
        total += entry.size
    del waiting[: len(group)]
    return group


def _run(
    run: Callable[[Sequence[J]], Sequence[R | BaseException]], jobs: Sequence[J]
) -> Sequence[R | BaseException]:
    try:
        outcomes = run(jobs)
        if len(outcomes) != len(jobs):
            raise RuntimeError("a group's run returned the wrong number of outcomes")
    except BaseException as exc:  # every job of the group fails as the group did
        return [exc] * len(jobs)
    return outcomes


@dataclass(eq=False)
class _Waiter(Generic[J, R]):
    job: J
    size: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[R]


class LoopGroupCommit(Generic[J, R]):
    """Group commit for callers on event loops, so a call costs no trip to a thread of its own.

    Jobs wait as futures; a thread (started when the first job finds none running) writes group
    after group while jobs keep coming, and settles the futures of a group on each loop at once
    (one wake-up of the loop per group, not per job) once the group has run. Idle, the thread
    stays ``linger`` seconds for the next job (a new one wakes it at once), then ends: a steady
    stream of calls pays for no thread start, whose handshake would stall the event loop. A
    caller that stops waiting (a dropped connection) leaves its job to run anyway."""

    def __init__(self, *, linger: float = 1.0) -> None:
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._waiting: list[_Waiter[J, R]] = []
        self._leading = False
        self._idle = False  # the writer waits for jobs
        self._linger = linger
        self.groups = 0  # groups written, for tests and metrics

    def waiting(self) -> int:
        """Jobs handed in and not yet taken into a group."""
        with self._lock:
            return len(self._waiting)

    async def submit(
        self,
        job: J,
        run: Callable[[Sequence[J]], Sequence[R | BaseException]],
        *,
        size: int = 1,
        max_size: int = 1,
    ) -> R:
        """As ThreadGroupCommit.submit, awaited."""
        loop = asyncio.get_running_loop()
        waiter: _Waiter[J, R] = _Waiter(job, size, loop, loop.create_future())
        with self._lock:
            self._waiting.append(waiter)
            start = not self._leading
            self._leading = True
            if self._idle:
                self._arrived.notify()
        if start:
            writer = threading.Thread(
                target=self._lead, args=(run, max_size), name="jitpam-group-commit", daemon=True
            )
            try:
                writer.start()
            except BaseException as exc:  # no thread: nobody would ever answer the waiters
                waiter.future.cancel()  # this caller gets the error raised; the others, theirs
                self._fail_waiting(exc)
                raise
        return await waiter.future

    def _fail_waiting(self, exc: BaseException) -> None:
        with self._lock:
            waiting, self._waiting = self._waiting, []
            self._leading = False
        for waiter in waiting:
            with contextlib.suppress(RuntimeError):
                waiter.loop.call_soon_threadsafe(_settle, waiter.future, exc)

    def _lead(
        self, run: Callable[[Sequence[J]], Sequence[R | BaseException]], max_size: int
    ) -> None:
        try:
            while True:
                with self._lock:
                    if not self._waiting:
                        self._idle = True
                        self._arrived.wait(self._linger)
                        self._idle = False
                    group = _take(self._waiting, max_size)
                    if not group:
                        self._leading = False
                        return
                outcomes = _run(run, [w.job for w in group])
                self.groups += 1
                by_loop: dict[asyncio.AbstractEventLoop, list[_Settled[R]]] = {}
                for waiter, outcome in zip(group, outcomes, strict=True):
                    by_loop.setdefault(waiter.loop, []).append((waiter.future, outcome))
                for loop, settled in by_loop.items():
                    with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits
                        loop.call_soon_threadsafe(_settle_all, settled)
        except BaseException as exc:  # the writer itself failed: fail those still waiting
            self._fail_waiting(exc)
            raise


_Settled = tuple[asyncio.Future[R], R | BaseException]


def _settle_all(settled: list[_Settled[R]]) -> None:
    for future, outcome in settled:
        _settle(future, outcome)


def _settle(future: asyncio.Future[R], outcome: R | BaseException) -> None:
    if future.done():  # the caller stopped waiting
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
