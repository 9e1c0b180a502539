"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from jitpam.api import problems
from jitpam.api.inputs import storable_parameters
from jitpam.api.metrics import Metrics
from jitpam.api.middleware import BodyLimit, Measure
from jitpam.api.openapi import DocumentedAPI
from jitpam.api.routes import (
    access,
    applications,
    audit,
    auth,
    connectors,
    directory,
    health,
    lockbox,
    notifications,
    tasks,
)
from jitpam.api.scim import PREFIX as SCIM
from jitpam.api.scim import create_scim_app
from jitpam.api.scim import error as scim_error
from jitpam.bootstrap import Runtime
from jitpam.domain.errors import JitpamError
from jitpam.services.connectors import connector_gauges
from jitpam.worker import Worker

API = "/api/v1"
MAX_BODY = 4 * 1024 * 1024  # a catalog import is the largest body: 2 MB of TOML


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

    app = DocumentedAPI(
        api=API,
        lifespan=lifespan,
        title="jitpam",
        version="0.1.0",
        description="Just-in-time privileged access management. Every error is a Problem "
        "(application/problem+json); every operation but sign-in and the health probes needs "
        "a bearer token.",
        # Every route, the pages' too: no parameter may hold what the databases cannot store.
        dependencies=[Depends(storable_parameters)],
    )
    app.state.runtime = runtime
    ctx = runtime.ctx
    app.state.metrics = Metrics(
        connectors=(lambda: connector_gauges(ctx)) if ctx.connectors is not None else None
    )
    app.add_exception_handler(JitpamError, problems.on_domain_error)
    app.add_exception_handler(RequestValidationError, problems.on_validation_error)
    app.add_exception_handler(HTTPException, problems.on_http_error)
    app.add_exception_handler(Exception, problems.on_unexpected_error)
    for router in (
        auth.router,
        directory.router,
        access.router,
        applications.router,
        lockbox.router,
        audit.router,
        notifications.router,
        connectors.router,
        tasks.router,
    ):
        app.include_router(router, prefix=API)
    app.include_router(health.router)
    # SCIM speaks its own protocol, errors included: an application of its own, mounted.
    scim_app = create_scim_app()
    scim_app.state.runtime = runtime
    app.mount(SCIM, scim_app)

    # The outermost last: the metrics see the body limit's refusals too.
    app.add_middleware(
        BodyLimit,
        max_body=MAX_BODY,
        refusal=lambda path: (
            scim_error(413, f"request bodies are limited to {MAX_BODY} bytes")
            if path == SCIM or path.startswith(SCIM + "/")
            else problems.problem(
                413, f"request bodies are limited to {MAX_BODY} bytes", "too_large"
            )
        ),
    )
    app.add_middleware(Measure, metrics=app.state.metrics, api=API)
    return app
