"""HTTP clients for the jitpam REST API: ``Client`` (blocking) and ``AsyncClient`` (asyncio).

Both retry a call only when it never reached the server (no connection): a call that was sent and
then lost its answer may have happened, and sending it again could do it twice. A check that gets
no answer is a denial (``Decision.reason == "server_unreachable"``), never an allow.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from jitpam.sdk.models import UNREACHABLE, AccessRequest, Authorization, Decision, TaskRun

API = "/api/v1"
T = TypeVar("T")


class ApiError(Exception):
    """The server refused: ``status`` is the HTTP status, ``code`` jitpam's error code."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


class Unreachable(Exception):
    """The server could not be reached, or its answer was lost."""


@dataclass(frozen=True)
class _Call(Generic[T]):
    """One typed API call: what to send, and how to read the answer."""

    method: str
    path: str
    parse: Callable[[Any], T]
    json: Any = None
    unbounded: bool = False  # wait for the answer however long it takes (a task run)


def _answer(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            body = response.json()
            raise ApiError(
                response.status_code, str(body.get("code", "error")), str(body.get("detail", ""))
            )
        except ValueError:
            raise ApiError(
                response.status_code, "error", response.text[:200] or response.reason_phrase
            ) from None
    if response.status_code == 204 or not response.content:
        return None
    kind = response.headers.get("content-type", "")
    if kind.startswith(("application/json", "application/problem+json")):
        return response.json()
    return response.text


def _params(params: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (params or {}).items() if v is not None and v is not False}


def _lost(url: str, exc: Exception) -> Unreachable:
    return Unreachable(
        f"the jitpam server at {url} did not answer: {exc}; the call may or may not have "
        "been carried out"
    )


def _refused(url: str, exc: Exception) -> Unreachable:
    return Unreachable(f"cannot reach the jitpam server at {url}: {exc}")


NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)


# The typed calls, shared by both clients.
def _check(task: str, user: str | None) -> _Call[Decision]:
    return _Call("POST", "/check", Decision.from_json, {"task": task, "user": user})


def _check_batch(checks: list[tuple[str, str | None]]) -> _Call[list[Decision]]:
    body = {"checks": [{"task": task, "user": user} for task, user in checks]}
    return _Call(
        "POST",
        "/check/batch",
        lambda doc: [Decision.from_json(d) for d in doc["results"]],
        body,
    )


def _new_request(type: str, target: str, reason: str, duration_hours: int) -> _Call[AccessRequest]:
    body = {"type": type, "target": target, "reason": reason, "duration_hours": duration_hours}
    return _Call("POST", "/requests", AccessRequest.from_json, body)


def _get_request(request_id: str) -> _Call[AccessRequest]:
    return _Call("GET", f"/requests/{quote(request_id, safe='')}", AccessRequest.from_json)


def _review(request_id: str, verb: str, comment: str | None) -> _Call[AccessRequest]:
    path = f"/requests/{quote(request_id, safe='')}/{verb}"
    return _Call("POST", path, AccessRequest.from_json, {"comment": comment})


def _revoke(request_id: str, comment: str | None) -> _Call[Authorization]:
    path = f"/authorizations/{quote(request_id, safe='')}/revoke"
    return _Call("POST", path, Authorization.from_json, {"comment": comment})


def _run(task: str, parameters: dict[str, str | int | bool]) -> _Call[TaskRun]:
    path = f"/tasks/{quote(task, safe='')}/run"
    return _Call("POST", path, TaskRun.from_json, {"parameters": parameters}, unbounded=True)


def _denied(url: str, exc: Exception) -> Decision:
    return Decision(False, UNREACHABLE, detail=str(exc) or f"no answer from {url}")


class Client:
    """A blocking client for one server and one bearer token."""

    def __init__(
        self, url: str, token: str | None = None, *, timeout: float = 15.0, retries: int = 2
    ) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self.timeout = timeout
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        unbounded: bool = False,
    ) -> Any:
        """Send one API call; return its JSON (or text) body. Raises ApiError or Unreachable."""
        timeout = httpx.Timeout(self.timeout, read=None) if unbounded else self.timeout
        for attempt in range(self.retries + 1):
            try:
                response = self._http.request(
                    method, API + path, json=json, params=_params(params), timeout=timeout
                )
                return _answer(response)
            except NOT_SENT as exc:
                if attempt == self.retries:
                    raise _refused(self.url, exc) from None
            except httpx.TransportError as exc:
                raise _lost(self.url, exc) from None
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _do(self, call: _Call[T]) -> T:
        return call.parse(
            self.call(call.method, call.path, json=call.json, unbounded=call.unbounded)
        )

    def items(
        self, path: str, params: dict[str, Any] | None = None, *, limit: int | None = None
    ) -> Iterator[Any]:
        """Every item of a listing, following ``next_cursor``; stops after ``limit`` items."""
        params = dict(params or {})
        seen = 0
        while True:
            page = self.call("GET", path, params=params)
            for item in page["items"]:
                if limit is not None and seen >= limit:
                    return
                seen += 1
                yield item
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]

    def check(self, task: str, user: str | None = None) -> Decision:
        """May ``user`` (default: the caller) run ``task`` now? No answer is a denial."""
        try:
            return self._do(_check(task, user))
        except Unreachable as exc:
            return _denied(self.url, exc)

    def check_batch(self, checks: list[tuple[str, str | None]]) -> list[Decision]:
        """Up to 1,000 (task, user) checks at one instant; answers in the same order. No answer
        denies them all."""
        try:
            return self._do(_check_batch(checks))
        except Unreachable as exc:
            return [_denied(self.url, exc) for _ in checks]

    def request_access(
        self, *, type: str, target: str, reason: str, duration_hours: int = 4
    ) -> AccessRequest:
        return self._do(_new_request(type, target, reason, duration_hours))

    def get_request(self, request_id: str) -> AccessRequest:
        return self._do(_get_request(request_id))

    def approve(self, request_id: str, comment: str | None = None) -> AccessRequest:
        return self._do(_review(request_id, "approve", comment))

    def deny(self, request_id: str, comment: str | None = None) -> AccessRequest:
        return self._do(_review(request_id, "deny", comment))

    def cancel(self, request_id: str) -> AccessRequest:
        return self._do(_review(request_id, "cancel", None))

    def revoke(self, request_id: str, comment: str | None = None) -> Authorization:
        """End a grant now (the request's id or the authorization's own)."""
        return self._do(_revoke(request_id, comment))

    def run_task(self, task: str, parameters: dict[str, str | int | bool]) -> TaskRun:
        """Run a task through the server; waits for it to end (however long its definition
        lets it run), since a run is never sent twice."""
        return self._do(_run(task, parameters))


class AsyncClient:
    """The same calls for asyncio code."""

    def __init__(
        self, url: str, token: str | None = None, *, timeout: float = 15.0, retries: int = 2
    ) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self.timeout = timeout
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        unbounded: bool = False,
    ) -> Any:
        timeout = httpx.Timeout(self.timeout, read=None) if unbounded else self.timeout
        for attempt in range(self.retries + 1):
            try:
                response = await self._http.request(
                    method, API + path, json=json, params=_params(params), timeout=timeout
                )
                return _answer(response)
            except NOT_SENT as exc:
                if attempt == self.retries:
                    raise _refused(self.url, exc) from None
            except httpx.TransportError as exc:
                raise _lost(self.url, exc) from None
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def _do(self, call: _Call[T]) -> T:
        return call.parse(
            await self.call(call.method, call.path, json=call.json, unbounded=call.unbounded)
        )

    async def items(
        self, path: str, params: dict[str, Any] | None = None, *, limit: int | None = None
    ) -> AsyncIterator[Any]:
        params = dict(params or {})
        seen = 0
        while True:
            page = await self.call("GET", path, params=params)
            for item in page["items"]:
                if limit is not None and seen >= limit:
                    return
                seen += 1
                yield item
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]

    async def check(self, task: str, user: str | None = None) -> Decision:
        try:
            return await self._do(_check(task, user))
        except Unreachable as exc:
            return _denied(self.url, exc)

    async def check_batch(self, checks: list[tuple[str, str | None]]) -> list[Decision]:
        try:
            return await self._do(_check_batch(checks))
        except Unreachable as exc:
            return [_denied(self.url, exc) for _ in checks]

    async def request_access(
        self, *, type: str, target: str, reason: str, duration_hours: int = 4
    ) -> AccessRequest:
        return await self._do(_new_request(type, target, reason, duration_hours))

    async def get_request(self, request_id: str) -> AccessRequest:
        return await self._do(_get_request(request_id))

    async def approve(self, request_id: str, comment: str | None = None) -> AccessRequest:
        return await self._do(_review(request_id, "approve", comment))

    async def deny(self, request_id: str, comment: str | None = None) -> AccessRequest:
        return await self._do(_review(request_id, "deny", comment))

    async def cancel(self, request_id: str) -> AccessRequest:
        return await self._do(_review(request_id, "cancel", None))

    async def revoke(self, request_id: str, comment: str | None = None) -> Authorization:
        return await self._do(_revoke(request_id, comment))

    async def run_task(self, task: str, parameters: dict[str, str | int | bool]) -> TaskRun:
        return await self._do(_run(task, parameters))
