"""Sign-in, the signed-in user, and API tokens."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from pydantic import Field

from jitpam.api import views
from jitpam.api.deps import AsCaller, client_address, get_runtime
from jitpam.api.inputs import Body
from jitpam.api.openapi import PUBLIC
from jitpam.api.running import run_use_case
from jitpam.domain.timeutil import iso
from jitpam.services import auth, directory
from jitpam.services.context import Caller, ServiceContext

router = APIRouter(tags=["sign-in and tokens"])


class Login(Body):
    user: str = Field(max_length=256)
    password: str = Field(max_length=1024)


class NewPassword(Body):
    password: str = Field(max_length=1024)
    current_password: str | None = Field(default=None, max_length=1024)


class NewToken(Body):
    user: str | None = Field(default=None, max_length=256)
    name: str = Field(default="api", max_length=128)
    expires_in_days: int = Field(default=90, ge=1, le=366)


def issued(t: auth.IssuedToken, upn: str) -> dict[str, Any]:
    return {
        "token": t.secret,
        "id": str(t.token.id),
        "user": upn,
        "expires_at": iso(t.token.expires_at),
    }


@router.post(
    "/auth/login",
    summary="Sign in with a local password; returns a bearer token",
    openapi_extra=PUBLIC,
    responses={
        401: {"description": "Unknown user, wrong password or disabled user (one answer)"},
        429: {"description": "Too many failed sign-ins for the user or the client: wait"},
    },
)
async def login(body: Login, request: Request) -> dict[str, Any]:
    ctx = get_runtime(request).ctx
    client = client_address(request)

    def work() -> dict[str, Any]:
        # Not queued with the writes: the password is checked first, and that is slow on purpose.
        token = auth.sign_in(ctx, upn=body.user, password=body.password, client=client)
        return issued(token, body.user.strip().lower())

    return await run_use_case(ctx, work)


@router.post("/auth/logout", status_code=204, summary="Revoke the token this call is made with")
async def logout(calls: AsCaller) -> None:
    def work(ctx: ServiceContext, caller: Caller) -> None:
        del caller  # authenticated already; the credential itself is revoked below
        auth.sign_out(ctx, secret=calls.credential)

    if calls.credential.count(".") == 2:
        # An OIDC token: its issuer decides how long it lives, there is nothing to revoke.
        await calls.run(lambda ctx, caller: None)
        return
    await calls.run(work, writes=True)


@router.get("/me", summary="The signed-in user")
async def me(calls: AsCaller) -> dict[str, Any]:
    return await calls.run(
        lambda ctx, caller: views.user(directory.get_user(ctx, caller=caller, upn=None))
    )


@router.put("/me/password", status_code=204, summary="Change one's own password")
async def change_own_password(body: NewPassword, calls: AsCaller) -> None:
    # Not queued with the writes: a password is hashed (slow on purpose) before the transaction.
    await calls.run(
        lambda ctx, caller: auth.set_password(
            ctx,
            caller=caller,
            upn=None,
            password=body.password,
            current_password=body.current_password,
        )
    )


@router.put("/users/{upn}/password", status_code=204, summary="Set a user's password")
async def set_password(upn: str, body: NewPassword, calls: AsCaller) -> None:
    await calls.run(
        lambda ctx, caller: auth.set_password(
            ctx,
            caller=caller,
            upn=upn,
            password=body.password,
            current_password=body.current_password,
        )
    )


@router.post("/tokens", status_code=201, summary="Create an API token (shown once)")
async def create_token(body: NewToken, calls: AsCaller) -> dict[str, Any]:
    def work(ctx: ServiceContext, caller: Caller) -> dict[str, Any]:
        t = auth.create_token(
            ctx,
            caller=caller,
            user=body.user,
            name=body.name,
            expires_in_days=body.expires_in_days,
        )
        return issued(t, t.upn)

    return await calls.run(work, writes=True)


@router.get("/tokens", summary="List API tokens (never their secrets)")
async def list_tokens(
    calls: AsCaller, user: str | None = None, all: bool = False
) -> dict[str, Any]:
    def work(ctx: ServiceContext, caller: Caller) -> dict[str, Any]:
        found = auth.list_tokens(ctx, caller=caller, user=user, everyone=all)
        return views.page([views.token(v) for v in found])

    return await calls.run(work)


@router.delete("/tokens/{token_id}", summary="Revoke an API token")
async def revoke_token(token_id: UUID, calls: AsCaller) -> dict[str, Any]:
    t = await calls.run(
        lambda ctx, caller: auth.revoke_token(ctx, caller=caller, token_id=token_id), writes=True
    )
    return {"id": str(t.id), "revoked": True}
