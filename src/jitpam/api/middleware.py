"""What wraps every route, as plain ASGI.

Starlette's ``@app.middleware("http")`` runs each request through a task, a stream and a second
Request per layer: with three layers that cost more than a bare route itself. These see the
request's scope and the response's first message, and otherwise pass everything through.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jitpam.api.metrics import Metrics


class BodyTooLarge(HTTPException):
    """A body grew past the limit as it arrived: 413, through the app's own error pages (an
    HTTPException, so that FastAPI's body parsing passes it on rather than calling it a 400)."""

    def __init__(self, max_body: int) -> None:
        super().__init__(413, f"request bodies are limited to {max_body} bytes")


class BodyLimit:
    """Refuse a request whose body is larger than ``max_body`` bytes (413), whatever its
    framing: a declared length is judged before anything is read (the server delivers no more
    than it declares); a chunked body is counted as it arrives, and refused the moment it passes
    the limit, so no route ever holds more than ``max_body`` of it. A refusal closes the
    connection, and so does any answer given before a chunked body's end."""

    def __init__(self, app: ASGIApp, *, max_body: int, refusal: Callable[[str], Response]) -> None:
        self.app = app
        self.max_body = max_body
        self.refuse = refusal

    def refusal(self, scope: Scope) -> Response:
        """The refusal (``refusal`` is given the request's path: SCIM answers in its own
        format), closing the connection: the rest of the body is never read (kept open, the
        server would read on, and drop, all the client cares to send)."""
        response = self.refuse(scope["path"])
        response.headers["connection"] = "close"
        return response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.max_body:
                await self.refusal(scope)(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if "chunked" not in headers.get("transfer-encoding", "").lower():
            await self.app(scope, receive, send)  # no body at all
            return
        received = 0
        ended = started = False

        async def counting() -> Message:
            nonlocal received, ended
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                ended = not message.get("more_body", False)
                if received > self.max_body:
                    raise BodyTooLarge(self.max_body)
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if not ended:
                    # Answered before the body's end (refused, or not read): the connection
                    # closes, or the server would read on, and drop, all the client sends.
                    MutableHeaders(scope=message)["connection"] = "close"
            await send(message)

        try:
            await self.app(scope, counting, sending)
        except BodyTooLarge:
            if started:  # (a route that answered before reading all of its body)
                raise
            await self.refusal(scope)(scope, receive, send)


class Measure:
    """Count each request by method, route template and status, time it, and count the check
    decisions a response reports in its headers."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, api: str) -> None:
        self.app = app
        self.metrics = metrics
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        answered: list[Message] = []

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                answered.append(message)
            await send(message)

        await self.app(scope, receive, sending)
        if not answered:
            return
        status = answered[0]["status"]
        headers = Headers(raw=answered[0].get("headers", []))
        # The route's template, not the URL, so ids do not make a label each.
        path = getattr(scope.get("route"), "path", "unmatched")
        if scope["path"].startswith(self.api) and not path.startswith(self.api):
            path = self.api + path
        mounted = scope.get("root_path", "")  # a mounted application's routes (SCIM's)
        if mounted and path != "unmatched" and not path.startswith(mounted):
            path = mounted + path
        m = self.metrics
        m.requests.labels(scope["method"], path, str(status)).inc()
        m.latency.labels(path).observe(time.perf_counter() - start)
        if (allowed := headers.get("x-jitpam-allowed")) is not None:
            m.decisions.labels(allowed).inc()
        if (counts := headers.get("x-jitpam-decisions")) is not None:
            yes, no = counts.split(",")
            m.decisions.labels("true").inc(int(yes))
            m.decisions.labels("false").inc(int(no))


class DefaultHeaders:
    """Add ``headers`` to the responses of the paths ``wanted`` says yes to, where the response
    has not set them itself."""

    def __init__(
        self, app: ASGIApp, *, headers: dict[str, str], wanted: Callable[[str], bool]
    ) -> None:
        self.app = app
        self.headers = headers
        self.wanted = wanted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.wanted(scope["path"]):
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, sending)
