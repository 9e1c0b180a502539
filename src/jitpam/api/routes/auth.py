"""Sign-in, the signed-in user, and API tokens."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from pydantic import Field

from jitpam.api import views
from jitpam.api.deps import Ctx, CurrentCaller, client_address
from jitpam.api.inputs import Body
from jitpam.api.openapi import PUBLIC
from jitpam.domain.timeutil import iso
from jitpam.services import auth, directory

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
def login(body: Login, ctx: Ctx, request: Request) -> dict[str, Any]:
    token = auth.sign_in(ctx, upn=body.user, password=body.password, client=client_address(request))
    return issued(token, body.user.strip().lower())


@router.post("/auth/logout", status_code=204, summary="Revoke the token this call is made with")
def logout(ctx: Ctx, caller: CurrentCaller, request: Request) -> None:
    del caller  # authenticated already; the credential itself is revoked below
    credential = request.headers["authorization"].partition(" ")[2].strip()
    if credential.count(".") == 2:
        return  # an OIDC token: its issuer decides how long it lives, there is nothing to revoke
    auth.sign_out(ctx, secret=credential)


@router.get("/me", summary="The signed-in user")
def me(ctx: Ctx, caller: CurrentCaller) -> dict[str, Any]:
    names = directory.names_of(ctx, caller=caller, ids={caller.user_id})
    return views.user(directory.get_user(ctx, caller=caller, upn=names[caller.user_id]))


@router.put("/me/password", status_code=204, summary="Change one's own password")
def change_own_password(body: NewPassword, ctx: Ctx, caller: CurrentCaller) -> None:
    names = directory.names_of(ctx, caller=caller, ids={caller.user_id})
    auth.set_password(
        ctx,
        caller=caller,
        upn=names[caller.user_id],
        password=body.password,
        current_password=body.current_password,
    )


@router.put("/users/{upn}/password", status_code=204, summary="Set a user's password")
def set_password(upn: str, body: NewPassword, ctx: Ctx, caller: CurrentCaller) -> None:
    auth.set_password(
        ctx, caller=caller, upn=upn, password=body.password, current_password=body.current_password
    )


@router.post("/tokens", status_code=201, summary="Create an API token (shown once)")
def create_token(body: NewToken, ctx: Ctx, caller: CurrentCaller) -> dict[str, Any]:
    t = auth.create_token(
        ctx, caller=caller, user=body.user, name=body.name, expires_in_days=body.expires_in_days
    )
    return issued(t, t.upn)


@router.get("/tokens", summary="List API tokens (never their secrets)")
def list_tokens(
    ctx: Ctx, caller: CurrentCaller, user: str | None = None, all: bool = False
) -> dict[str, Any]:
    tokens = auth.list_tokens(ctx, caller=caller, user=user, everyone=all)
    names = directory.names_of(
        ctx, caller=caller, ids={t.user_id for t in tokens} | {t.created_by for t in tokens}
    )
    return views.page([views.token(t, names) for t in tokens])


@router.delete("/tokens/{token_id}", summary="Revoke an API token")
def revoke_token(token_id: UUID, ctx: Ctx, caller: CurrentCaller) -> dict[str, Any]:
    t = auth.revoke_token(ctx, caller=caller, token_id=token_id)
    return {"id": str(t.id), "revoked": True}
