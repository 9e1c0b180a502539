"""The writer queue: use cases that write run one at a time, in the order they came, off the
event loop; each gets its own answer, and one use case's error is only its own."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from jitpam.runtime.writer_queue import WriterQueue
from tests.loops import on_a_loop

DEADLINE = 30.0


class Writes:
    """Use cases that note when they start and end; the first holds until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.log: list[str] = []
        self.running = 0
        self.most_at_once = 0
        self.threads: set[int] = set()
        self._lock = threading.Lock()

    def use_case(self, n: int) -> Callable[[], int]:
        def run() -> int:
            with self._lock:
                self.running += 1
                self.most_at_once = max(self.most_at_once, self.running)
                self.threads.add(threading.get_ident())
            try:
                self.log.append(f"start {n}")
                if n == 0:
                    self.started.set()
                    self.release.wait(DEADLINE)
                if n == 3:
                    raise ValueError("write 3 refused")
                self.log.append(f"end {n}")
                return n * 10
            finally:
                with self._lock:
                    self.running -= 1

        return run


def test_writes_run_one_at_a_time_in_the_order_they_came_and_fail_only_themselves() -> None:
    queue = WriterQueue(per_turn=64)
    writes = Writes()
    loop_thread: list[int] = []

    async def scenario() -> list[int | BaseException]:
        loop_thread.append(threading.get_ident())
        first = asyncio.ensure_future(queue.run(writes.use_case(0)))
        await asyncio.to_thread(writes.started.wait, DEADLINE)  # the first holds the writer
        rest = [asyncio.ensure_future(queue.run(writes.use_case(n))) for n in range(1, 6)]
        await asyncio.sleep(0)
        writes.release.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    answers = on_a_loop(scenario)
    assert [a if isinstance(a, int) else str(a) for a in answers] == [
        0,
        10,
        20,
        "write 3 refused",
        40,
        50,
    ]
    assert writes.log == [
        "start 0",
        "end 0",
        "start 1",
        "end 1",
        "start 2",
        "end 2",
        "start 3",
        "start 4",
        "end 4",
        "start 5",
        "end 5",
    ]
    assert writes.most_at_once == 1
    assert len(writes.threads) == 1  # one writer thread, not the event loop's
    assert loop_thread[0] not in writes.threads


def test_a_turn_takes_at_most_per_turn_writes() -> None:
    queue = WriterQueue(per_turn=2)
    writes = Writes()

    async def scenario() -> list[int]:
        first = asyncio.ensure_future(queue.run(writes.use_case(0)))
        await asyncio.to_thread(writes.started.wait, DEADLINE)
        rest = [asyncio.ensure_future(queue.run(writes.use_case(n))) for n in (1, 2, 4, 5)]
        await asyncio.sleep(0)
        writes.release.set()
        return list(await asyncio.gather(first, *rest))

    assert on_a_loop(scenario) == [0, 10, 20, 40, 50]
    assert queue.turns == 3  # the held write alone, then two turns of two
