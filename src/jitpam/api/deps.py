"""Request-scoped dependencies: the runtime, and the caller a route runs its use case as."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Request

from jitpam.api.running import run_use_case
from jitpam.bootstrap import Runtime
from jitpam.domain.check import Decision
from jitpam.domain.errors import NotSignedIn
from jitpam.services import access, auth
from jitpam.services.context import Caller, ServiceContext

T = TypeVar("T")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise NotSignedIn(auth.NOT_SIGNED_IN)
    return credential.strip()


def _is_oidc(runtime: Runtime, credential: str) -> bool:
    return credential.count(".") == 2 and runtime.oidc is not None


def get_caller(runtime: Runtime, credential: str) -> Caller:
    """The caller behind a bearer credential: a jitpam token, or an OIDC JWT. Blocks (it reads
    the database, and may fetch the issuer's keys): call it off the event loop."""
    if _is_oidc(runtime, credential) and runtime.oidc is not None:
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


@dataclass(frozen=True)
class Calls:
    """A request's way to its use cases, as the caller its bearer credential stands for."""

    request: Request
    credential: str

    @property
    def runtime(self) -> Runtime:
        return get_runtime(self.request)

    @property
    def oidc(self) -> bool:
        return _is_oidc(self.runtime, self.credential)

    async def run(self, work: Callable[[ServiceContext, Caller], T], *, writes: bool = False) -> T:
        """Authenticate the caller and do ``work`` as them, in one trip off the event loop
        (``run_use_case``); ``writes`` for a use case that is one short write transaction
        (queued behind the process's other writes where the context keeps them in a queue)."""
        runtime = self.runtime
        ctx = runtime.ctx

        def as_caller() -> T:
            return work(ctx, get_caller(runtime, self.credential))

        # An OIDC token's keys may be fetched over the network: never in the writers' queue.
        return await run_use_case(ctx, as_caller, writes=writes and not self.oidc)

    async def check(self, pairs: Sequence[tuple[str | None, str]]) -> list[Decision]:
        """The checks, asked by the caller: the one path that takes no thread. A jitpam token is
        resolved inside the checks' own transaction and, once seen, the caller awaits the
        checks' group commit (``access.check_with_token_awaited``); an OIDC token goes as any
        other use case does."""
        if self.oidc:
            return await self.run(
                lambda ctx, caller: access.check_access_batch(ctx, caller=caller, pairs=pairs)
            )
        return await access.check_with_token_awaited(
            self.runtime.ctx, secret=self.credential, pairs=pairs
        )


async def calls(request: Request) -> Calls:
    """The request's ``Calls``. A request with no bearer credential at all is refused here, before
    its input is read, so that every operation answers 401 first to an anonymous caller; the
    credential itself is checked with the use case, in the same trip off the event loop."""
    return Calls(request, _bearer(request))


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


AsCaller = Annotated[Calls, Depends(calls)]
