"""The whole server application: the REST API with the web admin center on top of it."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from jitpam.api import problems
from jitpam.api.app import API, create_app
from jitpam.api.middleware import DefaultHeaders
from jitpam.api.running import run_use_case
from jitpam.bootstrap import Runtime
from jitpam.domain.errors import JitpamError
from jitpam.web import pages
from jitpam.web.session import BadCsrf, SignInNeeded, signed_in_or_none
from jitpam.web.session import runtime as runtime_of
from jitpam.worker import Worker

# Pages load nothing from elsewhere, run no inline script and cannot be framed.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
NOT_PAGES = (API + "/", "/docs", "/openapi.json", "/healthz", "/readyz", "/metrics")


def is_page_path(path: str) -> bool:
    return not any(path == p.rstrip("/") or path.startswith(p) for p in NOT_PAGES)


def is_page(request: Request) -> bool:
    return is_page_path(request.url.path)


async def error_page(request: Request, status: int, title: str, detail: str) -> Response:
    """The error page, for whoever is signed in (or nobody), rendered off the event loop: finding
    out who is signed in reads the database."""

    def work() -> Response:
        user = signed_in_or_none(request)
        return pages.render(
            request, "error.html", user, status_code=status, title=title, detail=detail
        )

    return await run_use_case(runtime_of(request).ctx, work)


def create_server(runtime: Runtime, *, background: Worker | None = None) -> FastAPI:
    app = create_app(runtime, background=background)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")

    async def on_domain_error(request: Request, exc: Exception) -> Response:
        if not is_page(request):
            return await problems.on_domain_error(request, exc)
        assert isinstance(exc, JitpamError)
        status = problems.STATUS[exc.kind]
        return await error_page(request, status, problems.TITLES.get(status, "Error"), exc.message)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        if not is_page(request):
            return await problems.on_http_error(request, exc)
        assert isinstance(exc, HTTPException)
        return await error_page(
            request,
            exc.status_code,
            problems.TITLES.get(exc.status_code, "Error"),
            "There is no such page." if exc.status_code == 404 else str(exc.detail),
        )

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        if not is_page(request):
            return await problems.on_validation_error(request, exc)
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        if not errors or any(e.get("loc", ("path",))[0] == "path" for e in errors):
            return await error_page(request, 404, "Not found", "There is no such page.")
        first = errors[0]
        field = str(first.get("loc", ("", "value"))[-1])
        return await error_page(
            request, 422, "Invalid request", f"{field}: {first.get('msg', 'invalid')}"
        )

    async def on_unexpected_error(request: Request, exc: Exception) -> Response:
        if not is_page(request):
            return await problems.on_unexpected_error(request, exc)
        return await error_page(
            request,
            500,
            "Something went wrong",
            "The server failed to handle this page; the failure is in its log.",
        )

    async def on_sign_in_needed(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInNeeded)
        return RedirectResponse("/login?" + urlencode({"next": exc.next_path}), status_code=303)

    async def on_bad_csrf(request: Request, exc: Exception) -> Response:
        del exc
        return await run_use_case(runtime_of(request).ctx, lambda: pages.forbidden_form(request))

    app.add_exception_handler(JitpamError, on_domain_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_unexpected_error)
    app.add_exception_handler(SignInNeeded, on_sign_in_needed)
    app.add_exception_handler(BadCsrf, on_bad_csrf)

    app.add_middleware(DefaultHeaders, headers=PAGE_HEADERS, wanted=is_page_path)
    return app
