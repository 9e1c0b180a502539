"""Domain errors to HTTP, in one place, as problem+json (RFC 9457)."""

from __future__ import annotations

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from jitpam.domain.errors import ErrorKind, JitpamError

STATUS = {
    ErrorKind.INVALID: 422,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.CONFLICT: 409,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.UNAUTHENTICATED: 401,
    ErrorKind.RATE_LIMITED: 429,
}
TITLES = {
    400: "Bad request",
    401: "Not signed in",
    403: "Not permitted",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    422: "Invalid request",
    413: "Request too large",
    429: "Too many attempts",
    503: "Unavailable",
}


class Problem(BaseModel):
    """Every error answer of the API (RFC 9457), as the OpenAPI document describes it."""

    type: str = Field(description="https://jitpam.dev/problems/{code}")
    title: str = Field(description="The status in words")
    status: int = Field(description="The HTTP status")
    detail: str = Field(description="What went wrong, for a person; names the field at fault")
    code: str = Field(description="Stable, for programs (docs/reference.md#errors)")


def problem(
    status: int, detail: str, code: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        Problem(
            type=f"https://jitpam.dev/problems/{code}",
            title=TITLES.get(status, "Error"),
            status=status,
            detail=detail,
            code=code,
        ).model_dump(),
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


async def on_domain_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, JitpamError)
    status = STATUS[exc.kind]
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return problem(status, exc.message, exc.code, headers)


async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    return problem(
        422,
        f"{where}: {first.get('msg', 'invalid')}" if where else "invalid request",
        "invalid_input",
    )


async def on_unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    """A bug: answer like every other error, and say nothing about its inside."""
    del exc
    return problem(500, "the server failed to handle this request", "internal_error")


async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
        # FastAPI's answer to a body it cannot decode (not UTF-8): invalid JSON, as any other.
        return problem(422, "body: not valid JSON", "invalid_input")
    code = "too_large" if exc.status_code == 413 else "http_error"
    return problem(exc.status_code, str(exc.detail), code)
