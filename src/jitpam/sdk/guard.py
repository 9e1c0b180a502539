"""Protect code with a check: ``guard(client, task)`` as a decorator or a ``with`` block.

    with guard(client, "Exchange\\New-MoveRequest"):
        move_mailbox(...)

    @guard(client, "Exchange\\New-MoveRequest")
    def move_mailbox(...): ...

It asks the server before the code runs and raises ``AccessDenied`` (with the reason) instead
of running it when the check denies, or when the server cannot be asked. Each use asks again:
nothing is cached, so a revocation stops the next call. With an ``AsyncClient`` it is used with
``async with`` and on ``async def`` functions.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

from jitpam.sdk.client import AsyncClient, Client
from jitpam.sdk.models import Decision

P = ParamSpec("P")
R = TypeVar("R")


class AccessDenied(PermissionError):
    """The check did not allow the task: ``reason`` is the server's reason code (or
    ``server_unreachable``), ``decision`` the whole answer."""

    def __init__(self, task: str, decision: Decision) -> None:
        detail = f": {decision.detail}" if decision.detail else ""
        super().__init__(f"access to {task} denied ({decision.reason}){detail}")
        self.task = task
        self.reason = decision.reason
        self.decision = decision


class guard:  # noqa: N801 - used like a function: guard(client, task)
    def __init__(self, client: Client | AsyncClient, task: str, *, user: str | None = None):
        self.client = client
        self.task = task
        self.user = user
        self.decision: Decision | None = None

    def _require(self, decision: Decision) -> Decision:
        self.decision = decision
        if not decision.allowed:
            raise AccessDenied(self.task, decision)
        return decision

    def __enter__(self) -> Decision:
        if not isinstance(self.client, Client):
            raise TypeError("use 'async with' with an AsyncClient")
        return self._require(self.client.check(self.task, self.user))

    def __exit__(self, *_: object) -> None:
        return None

    async def __aenter__(self) -> Decision:
        if not isinstance(self.client, AsyncClient):
            raise TypeError("use 'with' with a Client")
        return self._require(await self.client.check(self.task, self.user))

    async def __aexit__(self, *_: object) -> None:
        return None

    def __call__(self, function: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(function):
            coroutine = cast(Callable[P, Awaitable[Any]], function)

            @functools.wraps(function)
            async def checked_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                async with guard(self.client, self.task, user=self.user):
                    return await coroutine(*args, **kwargs)

            return cast(Callable[P, R], checked_async)

        @functools.wraps(function)
        def checked(*args: P.args, **kwargs: P.kwargs) -> R:
            with guard(self.client, self.task, user=self.user):
                return function(*args, **kwargs)

        return checked
