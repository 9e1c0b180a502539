"""Running a coroutine from a synchronous test: on an event loop of its own thread, since the
test's thread may already run a loop (the browser tests' Playwright does, for the rest of the
session once started)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

DEADLINE = 30.0
T = TypeVar("T")


def on_a_loop(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``scenario()``'s result (or its exception, raised here), run on a new thread's loop."""
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
