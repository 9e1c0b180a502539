"""Entry points run use cases off the event loop: a short write on the writers' queue when the
context keeps one, anything else on a thread of the pool; a use case's error reaches its caller."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from jitpam.api.running import run_use_case
from jitpam.runtime.writer_queue import WriterQueue
from jitpam.services.context import ServiceContext
from tests.loops import on_a_loop


def context(*, queue: bool) -> ServiceContext:
    """A context with nothing behind it: the work below reaches no database."""
    unused: Any = None
    return ServiceContext(
        uow=unused, clock=unused, signer=unused, writes=WriterQueue() if queue else None
    )


def thread_of(ctx: ServiceContext, *, writes: bool) -> tuple[str, bool]:
    """The thread the work ran on, and whether it was the event loop's."""

    async def scenario() -> tuple[str, bool]:
        loop_thread = threading.current_thread()
        ran = await run_use_case(ctx, threading.current_thread, writes=writes)
        return ran.name, ran is loop_thread

    return on_a_loop(scenario)


@pytest.mark.parametrize(("queue", "writes"), [(True, False), (False, False), (False, True)])
def test_reads_and_writes_without_a_queue_run_on_the_pool(queue: bool, writes: bool) -> None:
    name, on_loop = thread_of(context(queue=queue), writes=writes)
    assert not on_loop
    assert name != "jitpam-group-commit"


def test_a_write_runs_on_the_writers_queue_when_the_context_keeps_one() -> None:
    name, on_loop = thread_of(context(queue=True), writes=True)
    assert not on_loop
    assert name == "jitpam-group-commit"


@pytest.mark.parametrize("queue", [True, False])
def test_the_use_cases_error_reaches_its_caller(queue: bool) -> None:
    def refused() -> None:
        raise PermissionError("no")

    async def scenario() -> None:
        await run_use_case(context(queue=queue), refused, writes=True)

    with pytest.raises(PermissionError, match="no"):
        on_a_loop(scenario)
