"""Request-scoped dependencies: the runtime and the signed-in caller."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from jitpam.bootstrap import Runtime
from jitpam.domain.check import Decision
from jitpam.domain.errors import NotSignedIn
from jitpam.services import access, auth
from jitpam.services.context import Caller, ServiceContext

T = TypeVar("T")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_ctx(request: Request) -> ServiceContext:
    # async: nothing to wait for, so no trip to the thread pool for it
    return get_runtime(request).ctx


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise NotSignedIn(auth.NOT_SIGNED_IN)
    return credential.strip()


def _is_oidc(request: Request, credential: str) -> bool:
    return credential.count(".") == 2 and get_runtime(request).oidc is not None


def get_caller(request: Request) -> Caller:
    """The caller behind ``Authorization: Bearer ...``: a jitpam token, or an OIDC JWT."""
    credential = _bearer(request)
    runtime = get_runtime(request)
    if _is_oidc(request, credential) and runtime.oidc is not None:
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


async def as_writer(request: Request, work: Callable[[ServiceContext, Caller], T]) -> T:
    """As ``as_caller``, for a use case that writes: queued behind the process's other writes
    when the context keeps them in one queue (``ServiceContext.writes``)."""
    ctx = get_runtime(request).ctx
    if ctx.writes is None or _is_oidc(request, _bearer(request)):
        # (an OIDC token's keys may be fetched over the network: not in the writers' queue)
        return await as_caller(request, work)

    def both() -> T:
        return work(ctx, get_caller(request))

    return await ctx.writes.run(both)


async def check_as_caller(
    request: Request, pairs: Sequence[tuple[str | None, str]]
) -> list[Decision]:
    """The checks, asked by the request's caller. A jitpam token is resolved inside the checks'
    own transaction, and once seen costs no trip to the thread pool
    (``access.check_with_token_awaited``)."""
    credential = _bearer(request)
    ctx = get_runtime(request).ctx
    if _is_oidc(request, credential):
        return await as_caller(
            request, lambda ctx, caller: access.check_access_batch(ctx, caller=caller, pairs=pairs)
        )
    return await access.check_with_token_awaited(ctx, secret=credential, pairs=pairs)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


Ctx = Annotated[ServiceContext, Depends(get_ctx)]
CurrentCaller = Annotated[Caller, Depends(get_caller)]
