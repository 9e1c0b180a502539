"""Request-scoped dependencies: the runtime and the signed-in caller."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from jitpam.bootstrap import Runtime
from jitpam.domain.errors import NotSignedIn
from jitpam.services import auth
from jitpam.services.context import Caller, ServiceContext

T = TypeVar("T")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_ctx(request: Request) -> ServiceContext:
    # async: nothing to wait for, so no trip to the thread pool for it
    return get_runtime(request).ctx


def get_caller(request: Request) -> Caller:
    """The caller behind ``Authorization: Bearer ...``: a jitpam token, or an OIDC JWT."""
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise NotSignedIn(auth.NOT_SIGNED_IN)
    credential = credential.strip()
    runtime = get_runtime(request)
    if credential.count(".") == 2 and runtime.oidc is not None:
        identity = runtime.oidc.verify(credential)
        if identity is None:
            raise NotSignedIn(auth.NOT_SIGNED_IN)
        return auth.authenticate_oidc(
            runtime.ctx,
            issuer=identity.issuer,
            subject=identity.subject,
            email=identity.email,
            email_verified=identity.email_verified,
        )
    return auth.authenticate(runtime.ctx, secret=credential)


async def as_caller(request: Request, work: Callable[[ServiceContext, Caller], T]) -> T:
    """Authenticate and do ``work`` in one trip to the thread pool (for the hot paths: a
    dependency and a route that both block would make two trips)."""

    def both() -> T:
        return work(get_runtime(request).ctx, get_caller(request))

    return await run_in_threadpool(both)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


Ctx = Annotated[ServiceContext, Depends(get_ctx)]
CurrentCaller = Annotated[Caller, Depends(get_caller)]
