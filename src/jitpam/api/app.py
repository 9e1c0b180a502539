"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.exceptions import HTTPException

from jitpam.api import problems
from jitpam.api.routes import access, audit, auth, directory, health, notifications, tasks
from jitpam.bootstrap import Runtime
from jitpam.domain.errors import JitpamError
from jitpam.worker import Worker

API = "/api/v1"
MAX_BODY = 4 * 1024 * 1024  # a catalog import is the largest body: 2 MB of TOML


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "jitpam_http_requests_total",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "jitpam_http_request_seconds", "HTTP request latency", ["route"], registry=self.registry
        )
        self.decisions = Counter(
            "jitpam_check_decisions_total", "Access checks", ["allowed"], registry=self.registry
        )


def create_app(runtime: Runtime, *, background: Worker | None = None) -> FastAPI:
    """The API; ``background`` (the notification worker) runs as long as the app does and is
    stopped, and waited for, when the server shuts down (SIGTERM included)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        thread = background.start_thread() if background is not None else None
        try:
            yield
        finally:
            if background is not None and thread is not None:
                background.stop()
                await asyncio.to_thread(thread.join, 30)

    app = FastAPI(
        lifespan=lifespan,
        title="jitpam",
        version="0.1.0",
        description="Just-in-time privileged access management; errors are problem+json.",
    )
    app.state.runtime = runtime
    app.state.metrics = Metrics()
    app.add_exception_handler(JitpamError, problems.on_domain_error)
    app.add_exception_handler(RequestValidationError, problems.on_validation_error)
    app.add_exception_handler(HTTPException, problems.on_http_error)
    app.add_exception_handler(Exception, problems.on_unexpected_error)
    for router in (
        auth.router,
        directory.router,
        access.router,
        audit.router,
        notifications.router,
        tasks.router,
    ):
        app.include_router(router, prefix=API)
    app.include_router(health.router)

    @app.middleware("http")
    async def limit_body(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return problems.problem(
                413, f"request bodies are limited to {MAX_BODY} bytes", "too_large"
            )
        return await call_next(request)

    @app.middleware("http")
    async def measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        start = time.perf_counter()
        response = await call_next(request)
        # The route's template, not the URL, so ids do not make a label each.
        path = getattr(request.scope.get("route"), "path", "unmatched")
        if request.url.path.startswith(API) and not path.startswith(API):
            path = API + path
        metrics: Metrics = app.state.metrics
        metrics.requests.labels(request.method, path, str(response.status_code)).inc()
        metrics.latency.labels(path).observe(time.perf_counter() - start)
        if "x-jitpam-allowed" in response.headers:
            metrics.decisions.labels(response.headers["x-jitpam-allowed"]).inc()
        if "x-jitpam-decisions" in response.headers:
            allowed, denied = response.headers["x-jitpam-decisions"].split(",")
            metrics.decisions.labels("true").inc(int(allowed))
            metrics.decisions.labels("false").inc(int(denied))
        return response

    return app
