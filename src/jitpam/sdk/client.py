"""HTTP client for the jitpam REST API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx

API = "/api/v1"


class ApiError(Exception):
    """The server refused: ``status`` is the HTTP status, ``code`` jitpam's error code."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


class Unreachable(Exception):
    """The server could not be reached (nothing was decided)."""


class Client:
    """A client for one server and one bearer token. Retries connection failures only."""

    def __init__(
        self, url: str, token: str | None = None, *, timeout: float = 15.0, retries: int = 2
    ) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
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
        timeout: httpx.Timeout | None = None,
    ) -> Any:
        """Send one API call; return its JSON (or text) body. Raises ApiError or Unreachable.

        Only a call that never reached the server (no connection) is retried: one that was sent
        and then lost its answer may have happened, and sending it again could do it twice."""
        clean = {k: v for k, v in (params or {}).items() if v is not None and v is not False}
        for attempt in range(self.retries + 1):
            try:
                response = self._http.request(
                    method,
                    API + path,
                    json=json,
                    params=clean,
                    timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                )
                break
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt == self.retries:
                    raise Unreachable(
                        f"cannot reach the jitpam server at {self.url}: {exc}"
                    ) from None
            except httpx.TransportError as exc:
                raise Unreachable(
                    f"the jitpam server at {self.url} did not answer: {exc}; the call may or "
                    "may not have been carried out"
                ) from None
        if response.status_code >= 400:
            try:
                body = response.json()
                raise ApiError(
                    response.status_code,
                    str(body.get("code", "error")),
                    str(body.get("detail", "")),
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

    # The calls a protected system or a requester makes most.
    def check(self, task: str, user: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.call("POST", "/check", json={"task": task, "user": user})
        return result

    def run_task(self, task: str, parameters: dict[str, str | int | bool]) -> dict[str, Any]:
        """Run a task through the server; waits for it to end (however long its definition
        lets it run), since a run is never sent twice."""
        result: dict[str, Any] = self.call(
            "POST",
            f"/tasks/{quote(task, safe='')}/run",
            json={"parameters": parameters},
            timeout=httpx.Timeout(self._http.timeout.connect, read=None, write=None, pool=None),
        )
        return result

    def request_access(
        self, *, type: str, target: str, reason: str, duration_hours: int = 4
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.call(
            "POST",
            "/requests",
            json={
                "type": type,
                "target": target,
                "reason": reason,
                "duration_hours": duration_hours,
            },
        )
        return result

    def approve(self, request_id: str, comment: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.call(
            "POST", f"/requests/{request_id}/approve", json={"comment": comment}
        )
        return result

    def deny(self, request_id: str, comment: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.call(
            "POST", f"/requests/{request_id}/deny", json={"comment": comment}
        )
        return result
