"""Browser sessions: a session cookie, CSRF tokens bound to it, and one-time flash messages.

The session cookie carries the secret of a sign-in token (the same kind the API's sign-in issues),
HttpOnly, SameSite=Lax, Secure whenever the server is reached over HTTPS; nothing secret ever
goes in a URL. Every form posts a CSRF token: for a signed-in user an HMAC of their session secret
(so it dies with the session), and on the sign-in form a random value also set as a cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import quote, urlsplit

from fastapi import Request
from starlette.datastructures import FormData
from starlette.responses import Response

from jitpam.api.app import MAX_BODY
from jitpam.api.inputs import unstorable_parameter
from jitpam.api.running import run_use_case
from jitpam.bootstrap import PendingSignIn, Runtime
from jitpam.domain.errors import JitpamError, NotSignedIn
from jitpam.domain.text import unstorable
from jitpam.services import auth
from jitpam.services.abilities import Abilities, page_viewer
from jitpam.services.context import Caller, ServiceContext

T = TypeVar("T")

SESSION = "jitpam_session"
SIGN_IN_CSRF = "jitpam_signin"
FLASH = "jitpam_flash"
OIDC_PENDING = "jitpam_oidc"
FLASH_LIMIT = 300


class SignInNeeded(Exception):
    """The page needs a signed-in user; the app answers with the sign-in page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class BadCsrf(Exception):
    """A form came without the token its page gave it; the app answers 403."""


def runtime(request: Request) -> Runtime:
    found: Runtime = request.app.state.runtime
    return found


def secure(request: Request) -> bool:
    """Whether cookies get the Secure flag: the browser reached us over HTTPS (directly or, with
    trusted proxies, as the proxy says), or the configured public address is HTTPS."""
    public = runtime(request).ctx.public_url
    return request.url.scheme == "https" or public.startswith("https://")


def cookie_name(request: Request, name: str) -> str:
    """Over HTTPS the ``__Host-`` prefix: the browser then takes the cookie only from this host,
    Secure and for every path, so a sibling domain cannot plant one (cookie tossing)."""
    return f"__Host-{name}" if secure(request) else name


def read_cookie(request: Request, name: str) -> str:
    return request.cookies.get(cookie_name(request, name), "")


def set_cookie(
    request: Request, response: Response, name: str, value: str, max_age: int | None = None
) -> None:
    response.set_cookie(
        cookie_name(request, name),
        value,
        max_age=max_age,
        httponly=True,
        secure=secure(request),
        samesite="lax",
        path="/",
    )


def drop_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(
        cookie_name(request, name), path="/", secure=secure(request), httponly=True
    )


def same_origin(request: Request) -> bool:
    """Whether a form post comes from our own pages, as the browser tells: ``Sec-Fetch-Site``
    when it sends one, and ``Origin`` naming this host (or the configured public address). A
    post that names another site is refused even with a token: a sign-in form's token can be
    fetched by anyone, so this is what stops signing a victim in to an attacker's account."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser, or an old one: the CSRF token still decides
    public = urlsplit(runtime(request).ctx.public_url)
    if origin == f"{public.scheme}://{public.netloc}":
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "") != ""


def csrf_token(secret: str) -> str:
    return hmac.new(secret.encode(), b"jitpam web form", hashlib.sha256).hexdigest()


def same(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


def safe_next(path: str | None) -> str:
    """Where to go after signing in: only a path on this server, never another site."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def new_sign_in_csrf() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Session:
    """The signed-in user a form is posted by: enough to check its CSRF token and act."""

    caller: Caller
    secret: str

    @property
    def csrf(self) -> str:
        return csrf_token(self.secret)


@dataclass(frozen=True)
class WebUser(Session):
    """The signed-in user of one page view, with what the page shows of them."""

    abilities: Abilities
    pending: int  # requests waiting for their vote (at most PENDING_SHOWN)


def _here(request: Request) -> str:
    path = request.url.path
    return path + ("?" + request.url.query if request.url.query else "")


def web_user(request: Request) -> WebUser:
    """The user behind the session cookie (one transaction); sends anyone else to the sign-in
    page. Blocks: call it off the event loop."""
    secret = read_cookie(request, SESSION)
    try:
        viewer = page_viewer(runtime(request).ctx, secret=secret)
    except NotSignedIn:
        raise SignInNeeded(_here(request) if request.method == "GET" else "/") from None
    except JitpamError:
        # A disabled user's session, say: they are signed out as anyone else would be.
        raise SignInNeeded("/") from None
    return WebUser(viewer.caller, secret, viewer.abilities, viewer.pending_reviews)


def _session(request: Request) -> Session:
    """The user behind the session cookie, for a form (no more than signing in reads)."""
    secret = read_cookie(request, SESSION)
    try:
        return Session(auth.authenticate(runtime(request).ctx, secret=secret), secret)
    except JitpamError:
        raise SignInNeeded("/") from None


def signed_in_or_none(request: Request) -> WebUser | None:
    """The signed-in user, for pages anyone may get (errors): None rather than a redirect, and
    None when even finding out fails (the page reporting a failure must not fail itself).
    Blocks: call it off the event loop."""
    try:
        return web_user(request)
    except Exception:
        return None


Form = dict[str, str | list[str]]


async def read_form(request: Request) -> FormData:
    """The posted form as it came; ``checked_form`` says whether it may be used."""
    return await request.form(max_part_size=MAX_BODY)


def storable(form: FormData) -> Form:
    """The form's text fields; a field holding what cannot be stored is refused (422). A field
    may be as large as a body may be: the body limit answers 413 for anything larger."""
    values: Form = {}
    for key in form:
        items = [v for v in form.getlist(key) if isinstance(v, str)]
        for item in (key, *items):
            if (problem := unstorable(item)) is not None:
                raise unstorable_parameter("body", key, item, problem)
        values[key] = items if len(items) > 1 else (items[0] if items else "")
    return values


async def posted(request: Request) -> Form:
    """The posted form's text fields, refused (422) as ``storable`` says."""
    return storable(await read_form(request))


def checked_form(request: Request, user: Session, form: FormData) -> Form:
    """The posted form, once its text is storable and its CSRF token matches the session;
    raises BadCsrf."""
    values = storable(form)
    token = values.get("csrf", "")
    if not isinstance(token, str) or not same(token, user.csrf) or not same_origin(request):
        raise BadCsrf()
    return values


async def page(request: Request, work: Callable[[ServiceContext, WebUser], T]) -> T:
    """A page: its viewer found (or the sign-in page) and ``work`` done as them, in one trip off
    the event loop (``run_use_case``)."""
    ctx = runtime(request).ctx
    return await run_use_case(ctx, lambda: work(ctx, web_user(request)))


async def form(
    request: Request,
    work: Callable[[ServiceContext, Session, Form], T],
    *,
    writes: bool = True,
) -> T:
    """A posted form: read here, then in one trip off the event loop its poster found (or the
    sign-in page), the form checked (``checked_form``) and ``work`` done as them. ``writes`` as
    for ``run_use_case``: a form whose use case is one short write is queued with the writes."""
    ctx = runtime(request).ctx
    raw = await read_form(request)

    def job() -> T:
        user = _session(request)
        return work(ctx, user, checked_form(request, user, raw))

    return await run_use_case(ctx, job, writes=writes)


def flash(request: Request, response: Response, message: str, *, error: bool = False) -> None:
    text = ("!" if error else "+") + message[:FLASH_LIMIT]
    set_cookie(request, response, FLASH, quote(text), max_age=60)


def encode_pending(pending: PendingSignIn) -> str:
    fields = [pending.state, pending.nonce, pending.verifier, pending.next_path]
    return base64.urlsafe_b64encode(json.dumps(fields).encode()).decode()


def decode_pending(raw: str) -> PendingSignIn | None:
    """The OIDC sign-in this browser started, or None when the cookie is missing or mangled."""
    try:
        fields = json.loads(base64.urlsafe_b64decode(raw.encode()))
    except ValueError:
        return None
    if (
        not isinstance(fields, list)
        or len(fields) != 4
        or not all(isinstance(f, str) for f in fields)
    ):
        return None
    state, nonce, verifier, next_path = fields
    if not (state and nonce and verifier):
        return None
    return PendingSignIn(state, nonce, verifier, safe_next(next_path))
