"""How the API and the web pages run a use case: always off the event loop, and a write on the
process's queue of writes where the context keeps one.

A use case is synchronous: it opens a transaction and waits for the database. On the event loop
it would stop every other request for as long as it took, so an entry point never calls one
there; it hands ``run_use_case`` a function that does the whole of its work (authenticate the
caller, run the use case, shape the answer), and awaits it. The one exception is the check API
(``access.check_with_token_awaited``), whose callers await the checks' group commit without
taking a thread at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread
from anyio import CapacityLimiter

from jitpam.services.context import ServiceContext

T = TypeVar("T")


async def run_use_case(
    ctx: ServiceContext,
    work: Callable[[], T],
    *,
    writes: bool = False,
    limiter: CapacityLimiter | None = None,
) -> T:
    """``work``'s result (or its exception), run on a thread: the writers' queue when ``writes``
    and the context keeps one (``ServiceContext.writes``: on SQLite, where one writer at a time
    is all the database allows, a queue costs less than a crowd of threads taking turns at its
    lock), else a thread of the pool (``limiter``'s, when given).

    ``writes`` is for work that is one short write transaction. Work that waits on something
    slow besides the database (a password hash, an identity provider, a task run) is not
    queued, so that it never holds up the writes behind it."""
    if writes and ctx.writes is not None:
        return await ctx.writes.run(work)
    return await anyio.to_thread.run_sync(work, limiter=limiter)
