"""Group commit: jobs that arrive while a group is written form the next group; each caller
gets its own answer, and one job's failure is only its own."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import pytest

from jitpam.runtime.group_commit import LoopGroupCommit, ThreadGroupCommit

DEADLINE = 30.0


def wait_for(condition: Callable[[], bool]) -> None:
    end = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.001)


class Recorder:
    """A ``run`` that doubles each job, remembers its groups, and can hold the first group
    until a number of jobs are waiting behind it."""

    def __init__(self, gc: ThreadGroupCommit[int, int], hold_until_waiting: int = 0) -> None:
        self.gc = gc
        self.hold = hold_until_waiting
        self.groups: list[list[int]] = []

    def __call__(self, jobs: Sequence[int]) -> list[int | BaseException]:
        if not self.groups and self.hold:
            wait_for(lambda: self.gc.waiting() >= self.hold)
        self.groups.append(list(jobs))
        return [ValueError(f"odd {j}") if j % 2 else j * 2 for j in jobs]


def submit_all(
    gc: ThreadGroupCommit[int, int],
    run: Callable[[Sequence[int]], Sequence[int | BaseException]],
    jobs: Sequence[int],
    *,
    max_size: int = 100,
    first_alone: bool = True,
) -> dict[int, int | BaseException]:
    """Each job from a thread of its own; the first is handed in before the others start."""
    answers: dict[int, int | BaseException] = {}

    def one(job: int) -> None:
        try:
            answers[job] = gc.submit(job, run, max_size=max_size)
        except ValueError as exc:
            answers[job] = exc

    threads = [threading.Thread(target=one, args=(j,)) for j in jobs]
    threads[0].start()
    if first_alone:
        wait_for(lambda: gc.waiting() == 0)  # the first job is being run, alone
    for t in threads[1:]:
        t.start()
    for t in threads:
        t.join(DEADLINE)
        assert not t.is_alive(), "a caller was never answered"
    return answers


def test_a_lone_job_runs_at_once_in_a_group_of_its_own() -> None:
    gc: ThreadGroupCommit[int, int] = ThreadGroupCommit()
    run = Recorder(gc)
    assert gc.submit(4, run) == 8
    assert run.groups == [[4]]
    assert gc.groups == 1


def test_jobs_arriving_while_a_group_runs_share_the_next_group() -> None:
    gc: ThreadGroupCommit[int, int] = ThreadGroupCommit()
    jobs = [0, *range(2, 42, 2)]  # 21 even jobs
    run = Recorder(gc, hold_until_waiting=len(jobs) - 1)
    answers = submit_all(gc, run, jobs)
    assert answers == {j: j * 2 for j in jobs}
    assert run.groups[0] == [0]
    assert sorted(run.groups[1]) == jobs[1:]
    assert gc.groups == 2


def test_a_failing_job_fails_alone() -> None:
    gc: ThreadGroupCommit[int, int] = ThreadGroupCommit()
    jobs = list(range(10))
    run = Recorder(gc, hold_until_waiting=len(jobs) - 1)
    answers = submit_all(gc, run, jobs)
    for job, answer in answers.items():
        if job % 2:
            assert isinstance(answer, ValueError)
            assert str(answer) == f"odd {job}"
        else:
            assert answer == job * 2
    assert len(run.groups) == 2


def test_a_group_that_fails_as_a_whole_fails_each_of_its_jobs_and_the_next_group_still_runs() -> (
    None
):
    gc: ThreadGroupCommit[int, int] = ThreadGroupCommit()
    holding = threading.Event()
    release = threading.Event()
    groups: list[list[int]] = []

    def run(jobs: Sequence[int]) -> list[int | BaseException]:
        groups.append(list(jobs))
        if len(groups) == 1:
            holding.set()
            release.wait(DEADLINE)
            return list(jobs)
        if len(groups) == 2:
            raise ValueError("the transaction failed")
        return list(jobs)

    answers: dict[int, int | BaseException] = {}

    def one(job: int) -> None:
        try:
            answers[job] = gc.submit(job, run, max_size=3)
        except ValueError as exc:
            answers[job] = exc

    threads = [threading.Thread(target=one, args=(j,)) for j in range(7)]
    threads[0].start()
    assert holding.wait(DEADLINE)
    for t in threads[1:]:
        t.start()
    wait_for(lambda: gc.waiting() == 6)
    release.set()
    for t in threads:
        t.join(DEADLINE)
        assert not t.is_alive()
    assert [len(g) for g in groups] == [1, 3, 3]  # bounded by max_size
    failed = set(groups[1])
    for job, answer in answers.items():
        if job in failed:
            assert isinstance(answer, ValueError)
        else:
            assert answer == job


def test_a_job_larger_than_the_bound_runs_alone() -> None:
    gc: ThreadGroupCommit[int, int] = ThreadGroupCommit()
    seen: list[list[int]] = []

    def run(jobs: Sequence[int]) -> list[int | BaseException]:
        seen.append(list(jobs))
        return list(jobs)

    assert gc.submit(8, run, size=50, max_size=10) == 8
    assert seen == [[8]]


def test_run_giving_the_wrong_number_of_answers_fails_the_group_instead_of_misanswering() -> None:
    gc: ThreadGroupCommit[int, int] = ThreadGroupCommit()
    with pytest.raises(RuntimeError, match="wrong number"):
        gc.submit(1, lambda jobs: [])


def test_many_callers_each_get_their_own_answer() -> None:
    gc: ThreadGroupCommit[int, int] = ThreadGroupCommit()
    answers: dict[int, int] = {}
    lock = threading.Lock()

    def run(jobs: Sequence[int]) -> list[int | BaseException]:
        return [j * 3 for j in jobs]

    def caller(base: int) -> None:
        for i in range(200):
            job = base * 1000 + i
            got = gc.submit(job, run, max_size=7)
            with lock:
                answers[job] = got

    threads = [threading.Thread(target=caller, args=(b,)) for b in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
        assert not t.is_alive()
    assert len(answers) == 12 * 200
    assert all(v == k * 3 for k, v in answers.items())
    assert gc.waiting() == 0


# The event-loop form: the same grouping, with callers awaiting instead of blocking.

T = TypeVar("T")


def on_a_loop(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``scenario`` on an event loop of its own, in a thread of its own (the test's thread
    may already run a loop: the browser tests' Playwright does)."""
    out: list[T] = []
    errors: list[BaseException] = []

    def main() -> None:
        try:
            out.append(asyncio.run(scenario()))
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    thread = threading.Thread(target=main)
    thread.start()
    thread.join(DEADLINE)
    assert not thread.is_alive(), "the scenario never finished"
    if errors:
        raise errors[0]
    return out[0]


def test_awaited_jobs_arriving_while_a_group_runs_share_the_next_group_in_order() -> None:
    gc: LoopGroupCommit[int, int] = LoopGroupCommit()
    release = threading.Event()
    groups: list[list[int]] = []

    def run(jobs: Sequence[int]) -> list[int | BaseException]:
        if not groups:
            release.wait(DEADLINE)  # the first group holds until the others are waiting
        groups.append(list(jobs))
        return [ValueError(f"odd {j}") if j % 2 else j * 2 for j in jobs]

    async def scenario() -> list[int | BaseException]:
        first = asyncio.ensure_future(gc.submit(0, run, max_size=10))
        await asyncio.sleep(0)  # let the first start its group
        wait_for(lambda: gc.waiting() == 0)  # the writer took it
        rest = [asyncio.ensure_future(gc.submit(j, run, max_size=10)) for j in range(1, 6)]
        await asyncio.sleep(0)
        release.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    answers = on_a_loop(scenario)
    assert answers[0] == 0
    assert [a if isinstance(a, int) else str(a) for a in answers[1:]] == [
        "odd 1",
        4,
        "odd 3",
        8,
        "odd 5",
    ]
    assert groups == [[0], [1, 2, 3, 4, 5]]
    assert gc.groups == 2


def test_an_awaited_caller_that_stops_waiting_does_not_stall_the_others() -> None:
    gc: LoopGroupCommit[int, int] = LoopGroupCommit()
    release = threading.Event()
    ran: list[int] = []

    def run(jobs: Sequence[int]) -> list[int | BaseException]:
        if not ran:
            release.wait(DEADLINE)
        ran.extend(jobs)
        return [j + 100 for j in jobs]

    async def scenario() -> list[int]:
        first = asyncio.ensure_future(gc.submit(1, run))
        await asyncio.sleep(0)
        wait_for(lambda: gc.waiting() == 0)  # the writer took it
        dropped = asyncio.ensure_future(gc.submit(2, run))
        kept = asyncio.ensure_future(gc.submit(3, run))
        await asyncio.sleep(0)
        dropped.cancel()  # a client that went away
        release.set()
        out = [await first, await kept]
        # Later callers are answered too: the writer moved on.
        out.append(await asyncio.wait_for(gc.submit(4, run), DEADLINE))
        return out

    assert on_a_loop(scenario) == [101, 103, 104]
    assert sorted(ran) == [1, 2, 3, 4]  # the dropped caller's job still ran


def test_awaited_callers_on_another_loop_after_the_first_closed_are_answered() -> None:
    gc: LoopGroupCommit[int, int] = LoopGroupCommit()

    def run(jobs: Sequence[int]) -> list[int | BaseException]:
        return [j * 3 for j in jobs]

    async def ask(n: int) -> int:
        return await gc.submit(n, run)

    assert on_a_loop(lambda: ask(2)) == 6
    assert on_a_loop(lambda: ask(5)) == 15


def test_awaited_callers_are_failed_not_left_waiting_when_no_writer_can_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gc: LoopGroupCommit[int, int] = LoopGroupCommit()

    def run(jobs: Sequence[int]) -> list[int | BaseException]:
        return [j + 1 for j in jobs]

    def no_thread(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    real_start = threading.Thread.start

    async def scenario() -> int:
        monkeypatch.setattr(threading.Thread, "start", no_thread)
        try:
            with pytest.raises(RuntimeError, match="can't start new thread"):
                await gc.submit(1, run)
        finally:
            monkeypatch.setattr(threading.Thread, "start", real_start)
        return await asyncio.wait_for(gc.submit(2, run), DEADLINE)  # a writer starts again

    assert on_a_loop(scenario) == 3
