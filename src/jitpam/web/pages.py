"""The pages of the web admin center. Each route reads through a service function, renders a
template, or hands a form to a use case and redirects back with what happened (post/redirect/get).
Every route that reaches the services does it through ``session.page`` or ``session.form``: off
the event loop, in one trip (``api.running.run_use_case``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, unquote, urlencode
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from jitpam.api import views
from jitpam.api.deps import client_address
from jitpam.api.routes.audit import export_response
from jitpam.api.running import run_use_case
from jitpam.domain.audit import ChainReport, Outcome
from jitpam.domain.errors import InvalidInput, JitpamError, NotFound, NotPermitted, NotSignedIn
from jitpam.domain.lockbox import MAX_ACCESS_HOURS, REQUESTED_ACCESS, SERVICES
from jitpam.domain.policy import DEFAULT_DURATION_HOURS, ApprovalType, PolicyType
from jitpam.domain.requests import RequestStatus
from jitpam.domain.timeutil import iso
from jitpam.services import (
    audit_log,
    auth,
    connectors,
    directory,
    lockbox,
    organizations,
    policies,
    requests,
)
from jitpam.services.context import ServiceContext
from jitpam.services.inputs import parse_enum
from jitpam.services.ports import SEARCH_WINDOW, AuditFilter
from jitpam.web.session import (
    FLASH,
    OIDC_PENDING,
    SESSION,
    SIGN_IN_CSRF,
    Form,
    Session,
    WebUser,
    checked_form,
    decode_pending,
    drop_cookie,
    encode_pending,
    flash,
    form,
    new_sign_in_csrf,
    page,
    posted,
    read_cookie,
    read_form,
    runtime,
    safe_next,
    same,
    same_origin,
    set_cookie,
    signed_in_or_none,
    web_user,
)

router = APIRouter(include_in_schema=False)
TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
PAGE = 50
STATUSES = [s.value for s in RequestStatus]
# The View list offers the statuses, then the lockbox requests (as the seeds' admin center does).
LOCKBOX_VIEW = "customer_lockbox"
KINDS = {t.value: t.label for t in PolicyType}
# What a person asks for on the new-request page: data access is asked by installing an
# application (jitpam app install, POST /api/v1/applications), not for oneself.
REQUEST_KINDS = {k: label for k, label in KINDS.items() if k != PolicyType.DATA_ACCESS.value}


def _take_flash(request: Request) -> tuple[str, bool] | None:
    raw = read_cookie(request, FLASH)
    if not raw:
        return None
    text = unquote(raw)
    return text[1:], text.startswith("!")


def render(
    request: Request,
    name: str,
    user: WebUser | None,
    status_code: int = 200,
    **values: Any,
) -> HTMLResponse:
    """The page ``name``: reads nothing from the services (``user`` carries what it shows of the
    signed-in user, the count of requests waiting for their vote included)."""
    message = _take_flash(request)
    html = TEMPLATES.get_template(name).render(
        user=user,
        me=user.abilities if user else None,
        csrf=user.csrf if user else "",
        pending=user.pending if user else 0,
        message=message,
        path=request.url.path,
        **values,
    )
    response = HTMLResponse(html, status_code=status_code)
    if message is not None:
        drop_cookie(request, response, FLASH)
    return response


def back(request: Request, url: str, message: str, *, error: bool = False) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303)
    flash(request, response, message, error=error)
    return response


def act(request: Request, done: str, failed: str, run: Callable[[], str]) -> RedirectResponse:
    """Run a use case for a form: on success go to ``done`` saying what it did; on a refusal go
    back to ``failed`` with the refusal's own words. Nothing is half done: the use case is one
    transaction."""
    try:
        message = run()
    except JitpamError as exc:
        return back(request, failed, exc.message, error=True)
    return back(request, done, message)


def text(values: Form, key: str) -> str:
    value = values.get(key, "")
    return value if isinstance(value, str) else (value[0] if value else "")


def whole_number(values: Form, key: str, label: str) -> int | None:
    raw = text(values, key).strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9):
        raise InvalidInput(f"{label} must be a whole number")
    return int(raw)


# -- sign in and out -----------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    token = new_sign_in_csrf()
    response = render(
        request,
        "login.html",
        None,
        next=safe_next(next),
        sign_in_csrf=token,
        oidc=runtime(request).oidc_sign_in is not None,
    )
    set_cookie(request, response, SIGN_IN_CSRF, token, max_age=3600)
    return response


@router.post("/login", response_model=None)
async def login(request: Request) -> Response:
    values = await posted(request)
    upn, password, token, nxt = (text(values, k) for k in ("user", "password", "csrf", "next"))
    if not same(token, read_cookie(request, SIGN_IN_CSRF)) or not same_origin(request):
        return await run_use_case(runtime(request).ctx, lambda: forbidden_form(request))
    ctx = runtime(request).ctx
    client = client_address(request)

    def work() -> Response:
        try:
            issued = auth.sign_in(ctx, upn=upn, password=password, client=client)
        except JitpamError as exc:
            fresh = new_sign_in_csrf()
            response: Response = render(
                request,
                "login.html",
                None,
                status_code=429 if exc.code == "too_many_attempts" else 401,
                next=safe_next(nxt),
                sign_in_csrf=fresh,
                error=exc.message,
                typed_user=upn,
                oidc=runtime(request).oidc_sign_in is not None,
            )
            set_cookie(request, response, SIGN_IN_CSRF, fresh, max_age=3600)
            return response
        response = RedirectResponse(safe_next(nxt), status_code=303)
        set_cookie(request, response, SESSION, issued.secret, max_age=ctx.session_hours * 3600)
        drop_cookie(request, response, SIGN_IN_CSRF)
        return response

    # Not queued with the writes: the password is checked first, and that is slow on purpose.
    return await run_use_case(ctx, work)


@router.get("/login/oidc")
def oidc_start(request: Request, next: str = "/") -> RedirectResponse:
    flow = runtime(request).oidc_sign_in
    if flow is None:
        raise NotFound("sign-in with an identity provider is not configured on this server")
    url, pending = flow.start(
        redirect_uri=str(request.url_for("oidc_callback")), next_path=safe_next(next)
    )
    response = RedirectResponse(url, status_code=303)
    set_cookie(request, response, OIDC_PENDING, encode_pending(pending), max_age=600)
    return response


@router.get("/login/oidc/callback", name="oidc_callback", response_model=None)
async def oidc_callback(
    request: Request,
    code: str = Query(default="", max_length=2048),
    state: str = Query(default="", max_length=512),
    error: str = Query(default="", max_length=256),
) -> Response:
    ctx = runtime(request).ctx

    def work() -> Response:
        flow = runtime(request).oidc_sign_in
        pending = decode_pending(read_cookie(request, OIDC_PENDING))
        identity = None
        if flow is not None and pending is not None and code and not error:
            identity = flow.finish(
                code=code,
                state=state,
                pending=pending,
                redirect_uri=str(request.url_for("oidc_callback")),
            )
        try:
            if identity is None:
                raise NotSignedIn("the identity provider did not sign you in; try again")
            issued = auth.sign_in_oidc(
                ctx,
                issuer=identity.issuer,
                subject=identity.subject,
                email=identity.email,
                email_verified=identity.email_verified,
                client=client_address(request),
                groups=identity.groups,
            )
        except JitpamError as exc:
            response: Response = render(
                request,
                "error.html",
                None,
                status_code=401,
                title="Not signed in",
                detail=exc.message
                if identity is None
                else "No jitpam user matches the account you signed in with.",
            )
            drop_cookie(request, response, OIDC_PENDING)
            return response
        assert pending is not None
        response = RedirectResponse(pending.next_path, status_code=303)
        set_cookie(request, response, SESSION, issued.secret, max_age=ctx.session_hours * 3600)
        drop_cookie(request, response, OIDC_PENDING)
        return response

    # Not queued with the writes: the code is exchanged at the identity provider first.
    return await run_use_case(ctx, work)


@router.post("/logout")
async def logout(request: Request) -> RedirectResponse:
    def work(ctx: ServiceContext, user: Session, values: Form) -> RedirectResponse:
        del values
        auth.sign_out(ctx, secret=user.secret)
        response = RedirectResponse("/login", status_code=303)
        drop_cookie(request, response, SESSION)
        return response

    return await form(request, work)


def forbidden_form(request: Request) -> HTMLResponse:
    """The answer to a form without its page's CSRF token. Blocks: call it off the event loop."""
    return render(
        request,
        "error.html",
        signed_in_or_none(request),
        status_code=403,
        title="Form refused",
        detail="This form did not carry the security token of the page it came from. "
        "Reload the page and send it again.",
    )


# -- my access and requests ----------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> RedirectResponse:
    return await page(request, lambda ctx, user: RedirectResponse("/my-access", status_code=303))


@router.get("/my-access", response_class=HTMLResponse)
async def my_access(request: Request) -> HTMLResponse:
    def work(ctx: ServiceContext, user: WebUser) -> HTMLResponse:
        active = requests.my_authorizations(ctx, caller=user.caller)
        now = ctx.clock.now()
        grants = []
        for v in active:
            auth_ = v.request.authorization
            assert auth_ is not None
            left = max(0, int((auth_.end - now).total_seconds()))
            grants.append(
                {
                    "request_id": str(v.request.id),
                    "type": KINDS[v.request.type.value],
                    "target": str(v.request.target),
                    "end": iso(auth_.end),
                    "left": f"{left // 3600} h {left % 3600 // 60:02d} min",
                }
            )
        mine = requests.list_requests(ctx, caller=user.caller, mine=True, limit=PAGE)
        return render(
            request,
            "my_access.html",
            user,
            grants=grants,
            mine=[views.request(v) for v in mine.items],
            kinds=KINDS,
        )

    return await page(request, work)


@router.get("/requests", response_class=HTMLResponse)
async def request_list(
    request: Request,
    status: str = "",
    q: str = Query(default="", max_length=260),
    sort: Literal["newest", "oldest"] = "newest",
    cursor: str = Query(default="", max_length=500),
) -> HTMLResponse:
    def work(ctx: ServiceContext, user: WebUser) -> HTMLResponse:
        if status == LOCKBOX_VIEW:
            return _lockbox_list(request, ctx, user, cursor)
        found = requests.list_requests(
            ctx,
            caller=user.caller,
            status=RequestStatus(status) if status in STATUSES else None,
            search=q or None,
            oldest_first=sort == "oldest",
            cursor=cursor or None,
            limit=PAGE,
        )
        more = None
        if found.next_cursor:
            more = "/requests?" + urlencode(
                {"status": status, "q": q, "sort": sort, "cursor": found.next_cursor}
            )
        return render(
            request,
            "requests.html",
            user,
            items=[views.request(v) for v in found.items],
            statuses=STATUSES,
            lockbox_view=LOCKBOX_VIEW,
            lockbox_label=REQUESTED_ACCESS,
            status=status,
            q=q,
            sort=sort,
            more=more,
            partial=len(found.items) < PAGE,
            window=f"{SEARCH_WINDOW:,}",
            kinds=KINDS,
        )

    return await page(request, work)


@router.get("/requests/new", response_class=HTMLResponse)
async def new_request_page(request: Request) -> HTMLResponse:
    def work(ctx: ServiceContext, user: WebUser) -> HTMLResponse:
        offered, more = requests.requestable(ctx, caller=user.caller)
        return render(
            request,
            "new_request.html",
            user,
            more=more,
            kinds=REQUEST_KINDS,
            targets=[
                {
                    "value": f"{p.type.value}|{p.target}",
                    "label": f"{p.target} ({p.type.label}, {p.approval_type.value})",
                    "max_hours": p.max_duration_hours,
                }
                for p in offered
            ],
            control=organizations.get_access_control(ctx, caller=user.caller).control,
            default_hours=DEFAULT_DURATION_HOURS,
        )

    return await page(request, work)


@router.post("/requests")
async def new_request(request: Request) -> RedirectResponse:
    def work(ctx: ServiceContext, user: Session, values: Form) -> RedirectResponse:
        kind, _, target = text(values, "target").partition("|")
        if kind == "other":  # not among those listed: typed
            kind, target = text(values, "other_type"), text(values, "other_target")
        try:
            if kind not in REQUEST_KINDS or not target:
                raise InvalidInput("choose what to request")
            hours = whole_number(values, "hours", "duration")
            ask = partial(
                requests.new_request,
                ctx,
                caller=user.caller,
                type=PolicyType(kind),
                target=target,
                reason=text(values, "reason"),
            )
            # Left empty, the duration is the use case's own default.
            v = ask() if hours is None else ask(duration_hours=hours)
        except JitpamError as exc:
            return back(request, "/requests/new", exc.message, error=True)
        return back(
            request,
            f"/requests/{v.request.id}",
            f"Request for {v.request.target}: {v.status.value}",
        )

    return await form(request, work)


@router.get("/requests/{request_id}", response_class=HTMLResponse)
async def request_detail(request: Request, request_id: UUID) -> HTMLResponse:
    def work(ctx: ServiceContext, user: WebUser) -> HTMLResponse:
        shown = requests.request_page(ctx, caller=user.caller, request_id=request_id)
        return render(
            request,
            "request.html",
            user,
            r=views.request(shown.view),
            actions=shown.actions,
            signature_ok=shown.signature_valid,
            kinds=KINDS,
        )

    return await page(request, work)


@router.post("/requests/{request_id}/{action}")
async def decide_request(
    request: Request,
    request_id: UUID,
    action: Literal["approve", "deny", "cancel", "revoke"],
) -> RedirectResponse:
    here = f"/requests/{request_id}"

    def work(ctx: ServiceContext, user: Session, values: Form) -> RedirectResponse:
        comment = text(values, "comment") or None

        def run() -> str:
            if action == "approve":
                v = requests.approve_request(
                    ctx, caller=user.caller, request_id=request_id, comment=comment
                )
            elif action == "deny":
                v = requests.deny_request(
                    ctx, caller=user.caller, request_id=request_id, comment=comment
                )
            elif action == "cancel":
                v = requests.cancel_request(ctx, caller=user.caller, request_id=request_id)
            else:
                v = requests.revoke_authorization(
                    ctx, caller=user.caller, request_id=request_id, comment=comment
                )
            return f"The request is now {v.status.value}"

        return act(request, here, here, run)

    return await form(request, work)


# -- Customer Lockbox -----------------------------------------------------------------------------


def _when(moment: datetime | None) -> str:
    return iso(moment) if moment is not None else ""


def _lockbox(v: lockbox.LockboxView, organization: str) -> dict[str, Any]:
    """A lockbox request as a page shows it; ``organization`` is the viewer's, so the page names
    the other side (the operator to a customer, the customer to the operator)."""
    r = v.request
    customer_side = organization == v.customer
    return {
        "id": str(r.id),
        "service": r.service,
        "requester": r.requester_upn,
        "customer": v.customer,
        "operator": v.operator,
        "other": v.operator if customer_side else v.customer,
        "other_label": "Operator" if customer_side else "Customer",
        "case": r.case_reference,
        "reason": r.reason,
        "duration_hours": r.duration_hours,
        "status": v.status.value,
        "created_at": iso(r.created_at),
        "pending_until": iso(r.pending_until),
        "decided_at": _when(r.decided_at),
        "decided_by": v.decided_by or "",
        "comment": r.decision_comment,
        "start": _when(r.start),
        "end": _when(r.end),
        "revoked_at": _when(r.revoked_at),
        "revoked_by": v.revoked_by or "",
        "revocation_comment": r.revocation_comment or "",
    }


def _lockbox_list(
    request: Request, ctx: ServiceContext, user: WebUser, cursor: str
) -> HTMLResponse:
    """The Requests page's "Customer Lockbox" view: the caller's lockbox requests (for a
    customer's approver those addressed to the organization, for the operator its own)."""
    found = lockbox.list_requests(ctx, caller=user.caller, cursor=cursor or None, limit=PAGE)
    more = None
    if found.next_cursor:
        more = "/requests?" + urlencode({"status": LOCKBOX_VIEW, "cursor": found.next_cursor})
    return render(
        request,
        "requests.html",
        user,
        lockbox_items=[_lockbox(v, user.abilities.organization) for v in found.items],
        statuses=STATUSES,
        lockbox_view=LOCKBOX_VIEW,
        lockbox_label=REQUESTED_ACCESS,
        status=LOCKBOX_VIEW,
        q="",
        sort="newest",
        more=more,
        kinds=KINDS,
    )


@router.get("/lockbox/new", response_class=HTMLResponse)
async def new_lockbox_page(request: Request) -> HTMLResponse:
    def work(ctx: ServiceContext, user: WebUser) -> HTMLResponse:
        del ctx
        if not user.abilities.file_lockbox:
            return not_permitted(request, user, "jitpam\\Lockbox Requester role")
        return render(
            request,
            "new_lockbox.html",
            user,
            services=SERVICES,
            max_hours=MAX_ACCESS_HOURS,
        )

    return await page(request, work)


@router.post("/lockbox")
async def new_lockbox_request(request: Request) -> RedirectResponse:
    def work(ctx: ServiceContext, user: Session, values: Form) -> RedirectResponse:
        try:
            hours = whole_number(values, "hours", "duration")
            if hours is None:
                raise InvalidInput("the duration is required")
            v = lockbox.file_request(
                ctx,
                caller=user.caller,
                customer=text(values, "customer"),
                service=text(values, "service"),
                reason=text(values, "reason"),
                case_reference=text(values, "case"),
                duration_hours=hours,
            )
        except JitpamError as exc:
            return back(request, "/lockbox/new", exc.message, error=True)
        return back(
            request,
            f"/lockbox/{v.request.id}",
            f"Lockbox request to {v.customer} for {v.request.service}: {v.status.value}",
        )

    return await form(request, work)


@router.get("/lockbox/{request_id}", response_class=HTMLResponse)
async def lockbox_detail(request: Request, request_id: UUID) -> HTMLResponse:
    def work(ctx: ServiceContext, user: WebUser) -> HTMLResponse:
        shown = lockbox.request_page(ctx, caller=user.caller, request_id=request_id)
        return render(
            request,
            "lockbox.html",
            user,
            r=_lockbox(shown.view, user.abilities.organization),
            actions=shown.actions,
        )

    return await page(request, work)


@router.post("/lockbox/{request_id}/{action}")
async def decide_lockbox_request(
    request: Request,
    request_id: UUID,
    action: Literal["approve", "deny", "cancel", "revoke"],
) -> RedirectResponse:
    here = f"/lockbox/{request_id}"

    def work(ctx: ServiceContext, user: Session, values: Form) -> RedirectResponse:
        comment = text(values, "comment") or None

        def run() -> str:
            if action == "revoke":
                v = lockbox.revoke_request(
                    ctx, caller=user.caller, request_id=request_id, comment=comment
                )
            else:
                v = lockbox.set_request(
                    ctx,
                    caller=user.caller,
                    request_id=request_id,
                    decision=action,  # Approve, Deny or Cancel, in any case
                    comment=comment,
                )
            return f"The lockbox request is now {v.status.value}"

        return act(request, here, here, run)

    return await form(request, work)


# -- privileged access settings ------------------------------------------------------------------


@router.get("/settings", response_class=HTMLResponse)
async def settings_page(request: Request) -> HTMLResponse:
    def work(ctx: ServiceContext, user: WebUser) -> HTMLResponse:
        try:
            settings = organizations.access_control_settings(ctx, caller=user.caller)
        except NotPermitted:  # refused by the use case, and audited there
            return not_permitted(request, user, "privileged access settings")
        shown = views.control(settings)
        return render(
            request,
            "settings.html",
            user,
            control=settings.control,
            default_group=shown["default_approver_group"] or "",
            system_accounts=shown["system_accounts"],
            groups=_group_choices(ctx, user),
            lockbox_max=MAX_ACCESS_HOURS,
        )

    return await page(request, work)


@router.post("/settings")
async def save_settings(request: Request) -> RedirectResponse:
    def work(ctx: ServiceContext, user: Session, values: Form) -> RedirectResponse:
        def run() -> str:
            if text(values, "enabled") != "on":
                organizations.disable_access_control(ctx, caller=user.caller)
                return "Approvals for privileged access are no longer required"
            accounts = [
                a.strip() for a in text(values, "system_accounts").replace(",", "\n").split() if a
            ]
            organizations.enable_access_control(
                ctx,
                caller=user.caller,
                admin_group=text(values, "admin_group"),
                system_accounts=accounts,
            )
            return "Approvals for privileged access are required"

        return act(request, "/settings", "/settings", run)

    return await form(request, work)


@router.post("/settings/lockbox")
async def save_lockbox_settings(request: Request) -> RedirectResponse:
    """The Customer Lockbox settings: a form of their own on the settings page, one use case."""

    def work(ctx: ServiceContext, user: Session, values: Form) -> RedirectResponse:
        def run() -> str:
            hours = whole_number(values, "lockbox_max_hours", "the longest lockbox access")
            if hours is None:
                raise InvalidInput("the longest lockbox access is required")
            required = text(values, "lockbox_approval_required") == "on"
            organizations.set_organization_config(
                ctx,
                caller=user.caller,
                lockbox_approval_required=required,
                lockbox_max_hours=hours,
            )
            return (
                "Customer Lockbox: "
                + ("approval required" if required else "approved automatically")
                + f", access at most {hours} h"
            )

        return act(request, "/settings", "/settings", run)

    return await form(request, work)


# -- connectors ----------------------------------------------------------------------------------

HEALTH_CLASS = {"ok": "approved", "not run yet": "pending"}  # else: shown as a failure


@router.get("/connectors", response_class=HTMLResponse)
async def connector_list(request: Request) -> HTMLResponse:
    def work(ctx: ServiceContext, user: WebUser) -> HTMLResponse:
        try:
            found = connectors.list_connectors(ctx, caller=user.caller)
        except NotPermitted:  # refused by the use case, and audited there
            return not_permitted(request, user, "connectors")
        return render(
            request,
            "connectors.html",
            user,
            connectors=[views.connector(v) for v in found],
            health_class=HEALTH_CLASS,
        )

    return await page(request, work)


def _connector_page(
    request: Request,
    ctx: ServiceContext,
    user: WebUser,
    name: str,
    report: dict[str, Any] | None = None,
) -> HTMLResponse:
    try:
        shown = connectors.connector_status(ctx, caller=user.caller, name=name)
    except NotPermitted:
        return not_permitted(request, user, "connectors")
    return render(
        request,
        "connector.html",
        user,
        c=views.connector(shown, records=True),
        health_class=HEALTH_CLASS,
        report=report,
    )


@router.get("/connectors/{name}", response_class=HTMLResponse)
async def connector_detail(request: Request, name: str) -> HTMLResponse:
    return await page(request, lambda ctx, user: _connector_page(request, ctx, user, name))


def _pass_summary(report: dict[str, Any]) -> str:
    done = [o for o in report["outcomes"] if o["done"]]
    failed = len(report["outcomes"]) - len(done)
    added = sum(o["change"] == "add" for o in done)
    removed = len(done) - added
    if report["error"] is not None:
        return f"The pass failed: {report['error']}"
    summary = f"Pass done: {added} added, {removed} removed"
    return summary + (f", {failed} failed" if failed else "")


@router.post("/connectors/{name}/reconcile", response_model=None)
async def reconcile_connector(request: Request, name: str) -> Response:
    """Reconcile now (a pass, then back to the page with what it did), or a dry run: the page
    again with the plan, nothing changed."""
    here = "/connectors/" + quote(name, safe="")

    def work(ctx: ServiceContext, user: Session, values: Form) -> Response:
        dry_run = text(values, "dry_run") == "on"
        try:
            report = views.pass_report(
                connectors.reconcile(ctx, caller=user.caller, name=name, dry_run=dry_run)
            )
        except JitpamError as exc:
            return back(request, here, exc.message, error=True)
        if dry_run:
            viewer = web_user(request)
            return _connector_page(request, ctx, viewer, name, report)
        failed = report["error"] is not None or any(not o["done"] for o in report["outcomes"])
        return back(request, here, _pass_summary(report), error=failed)

    # Not queued with the writes: a pass talks to the target system, which may be slow.
    return await form(request, work, writes=False)


# -- access policies -----------------------------------------------------------------------------

GROUP_CHOICES = 500  # approver groups offered in a form's list, by name


def _group_choices(ctx: ServiceContext, user: WebUser) -> list[str]:
    found = directory.group_summaries(ctx, caller=user.caller, cursor=None, limit=GROUP_CHOICES)
    return [g.name for g in found.items]


def _target_suggestions(
    ctx: ServiceContext, user: WebUser, kind: PolicyType, text: str
) -> list[str]:
    found = organizations.catalog_lookup(
        ctx, caller=user.caller, kind=kind, text=text, limit=SUGGESTIONS
    )
    return [str(n) for n in found]


SUGGESTIONS = 50  # names offered while typing a policy's target


@router.get("/policies", response_class=HTMLResponse)
async def policy_list(
    request: Request,
    type: str = "",
    approval: str = "",
    q: str = Query(default="", max_length=260),
    cursor: str = Query(default="", max_length=500),
) -> HTMLResponse:
    def work(ctx: ServiceContext, user: WebUser) -> HTMLResponse:
        found = policies.policy_page(
            ctx,
            caller=user.caller,
            type=PolicyType(type) if type in KINDS else None,
            approval_type=ApprovalType(approval) if approval in {"auto", "manual"} else None,
            search=q or None,
            cursor=cursor or None,
            limit=PAGE,
        )
        more = None
        if found.next_cursor:
            more = "/policies?" + urlencode(
                {"type": type, "approval": approval, "q": q, "cursor": found.next_cursor}
            )
        manage = user.abilities.manage_policies
        return render(
            request,
            "policies.html",
            user,
            items=[views.policy(p) for p in found.items],
            type=type,
            approval=approval,
            q=q,
            more=more,
            kinds=KINDS,
            suggestions=_target_suggestions(ctx, user, PolicyType.TASK, "") if manage else [],
            groups=_group_choices(ctx, user) if manage else [],
        )

    return await page(request, work)


@router.get("/policies/targets")
async def policy_targets(
    request: Request,
    type: str = "task",
    q: str = Query(default="", max_length=260),
) -> dict[str, list[str]]:
    """Names for the new-policy form's target while it is typed: at most SUGGESTIONS."""
    kind = PolicyType(type) if type in KINDS else PolicyType.TASK
    return await page(request, lambda ctx, user: {"names": _target_suggestions(ctx, user, kind, q)})


def _or_default(value: int | None, default: int) -> int:
    return default if value is None else value


def _policy_approver_group(values: Form) -> str | None:
    return text(values, "approver_group").strip() or None


@router.post("/policies")
async def add_policy(request: Request) -> RedirectResponse:
    def work(ctx: ServiceContext, user: Session, values: Form) -> RedirectResponse:
        def run() -> str:
            kind = text(values, "type")
            if kind not in KINDS:
                raise InvalidInput("choose the policy's type")
            target = text(values, "target")
            if not target:
                raise InvalidInput("choose the policy's target")
            p = policies.new_policy(
                ctx,
                caller=user.caller,
                type=PolicyType(kind),
                target=target,
                approval_type=parse_enum(
                    ApprovalType, text(values, "approval_type"), "approval type"
                ),
                approver_group=_policy_approver_group(values),
                approvals_required=_or_default(
                    whole_number(values, "approvals_required", "approvals required"), 1
                ),
                max_duration_hours=whole_number(values, "max_duration_hours", "maximum duration"),
            )
            return f"Policy added for {p.policy.describe()}"

        return act(request, "/policies", "/policies", run)

    return await form(request, work)


@router.get("/policies/{policy_id}", response_class=HTMLResponse)
async def policy_detail(request: Request, policy_id: UUID) -> HTMLResponse:
    def work(ctx: ServiceContext, user: WebUser) -> HTMLResponse:
        p = policies.get_policy(ctx, caller=user.caller, policy_id=policy_id)
        return render(
            request,
            "policy.html",
            user,
            p=views.policy(p),
            kinds=KINDS,
            groups=_group_choices(ctx, user) if user.abilities.manage_policies else [],
        )

    return await page(request, work)


@router.post("/policies/{policy_id}")
async def change_policy(request: Request, policy_id: UUID) -> RedirectResponse:
    here = f"/policies/{policy_id}"

    def work(ctx: ServiceContext, user: Session, values: Form) -> RedirectResponse:
        def run() -> str:
            p = policies.set_policy(
                ctx,
                caller=user.caller,
                policy_id=policy_id,
                approval_type=parse_enum(
                    ApprovalType, text(values, "approval_type"), "approval type"
                ),
                approver_group=_policy_approver_group(values),
                approvals_required=whole_number(values, "approvals_required", "approvals required"),
            )
            return f"Policy for {p.policy.describe()} changed"

        return act(request, here, here, run)

    return await form(request, work)


@router.post("/policies/{policy_id}/remove")
async def remove_policy(request: Request, policy_id: UUID) -> RedirectResponse:
    def work(ctx: ServiceContext, user: Session, values: Form) -> RedirectResponse:
        def run() -> str:
            p = policies.remove_policy(ctx, caller=user.caller, policy_id=policy_id)
            return f"Policy for {p.policy.describe()} removed"

        return act(request, "/policies", f"/policies/{policy_id}", run)

    return await form(request, work)


# -- audit log -----------------------------------------------------------------------------------


def _moment(raw: str, label: str) -> datetime | None:
    """A time typed in a filter: ISO 8601, taken as UTC when it names no offset (the page says so
    beside the fields)."""
    if not raw.strip():
        return None
    try:
        moment = datetime.fromisoformat(raw.strip())
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidInput(f"'{label}' is not a date and time") from None


AUDIT_FILTERS = ("since", "until", "actor", "operation", "outcome")


def _audit_filter(since: str, until: str, actor: str, operation: str, outcome: str) -> AuditFilter:
    return AuditFilter(
        since=_moment(since, "from"),
        until=_moment(until, "until"),
        actor=actor.strip() or None,
        operation=operation.strip() or None,
        outcome=parse_enum(Outcome, outcome, "outcome") if outcome else None,
    )


def audit_filters(
    since: str = Query(default="", max_length=40),
    until: str = Query(default="", max_length=40),
    actor: str = Query(default="", max_length=256),
    operation: str = Query(default="", max_length=64),
    outcome: str = Query(default="", max_length=16),
) -> dict[str, str]:
    """The audit filters as typed (keys: AUDIT_FILTERS), for the page and its export alike."""
    return {
        "since": since,
        "until": until,
        "actor": actor,
        "operation": operation,
        "outcome": outcome,
    }


AuditFilters = Annotated[dict[str, str], Depends(audit_filters)]


@router.get("/audit", response_class=HTMLResponse)
async def audit_page(
    request: Request,
    filters: AuditFilters,
    cursor: str = Query(default="", max_length=200),
) -> HTMLResponse:
    return await page(request, lambda ctx, user: _audit_view(request, user, ctx, filters, cursor))


@router.post("/audit/verify", response_class=HTMLResponse)
async def audit_verify(request: Request) -> HTMLResponse:
    """The integrity check walks the whole chain: a posted form, so no link elsewhere starts it."""
    raw = await read_form(request)

    def work(ctx: ServiceContext, user: WebUser) -> HTMLResponse:
        checked_form(request, user, raw)
        report = audit_log.verify_audit(ctx, caller=user.caller).report
        return _audit_view(request, user, ctx, {}, "", integrity=report)

    return await page(request, work)


def _audit_view(
    request: Request,
    user: WebUser,
    ctx: ServiceContext,
    filters: dict[str, str],
    cursor: str,
    integrity: ChainReport | None = None,
) -> HTMLResponse:
    if not user.abilities.read_audit:
        # Refused by the use case, and audited there as the API's refusal is.
        audit_log.search_audit(ctx, caller=user.caller, limit=1)
    error = None
    items: list[dict[str, Any]] = []
    more = None
    try:
        flt = _audit_filter(**{k: filters.get(k, "") for k in AUDIT_FILTERS})
        found = audit_log.search_audit(
            ctx, caller=user.caller, flt=flt, cursor=cursor or None, limit=PAGE
        )
        items = [views.audit_record(r) for r in found.items]
        if found.next_cursor:
            more = "/audit?" + urlencode({**filters, "cursor": found.next_cursor})
    except InvalidInput as exc:
        error = exc.message
    return render(
        request,
        "audit.html",
        user,
        status_code=422 if error else 200,  # the page, with the filters it could not read
        items=items,
        more=more,
        error=error,
        integrity=integrity,
        outcomes=[o.value for o in Outcome],
        export=urlencode({k: v for k, v in filters.items() if v}),
        f={k: filters.get(k, "") for k in AUDIT_FILTERS},
    )


@router.get("/audit/export.{fmt}", response_model=None)
async def audit_export(
    request: Request,
    fmt: Literal["jsonl", "csv"],
    filters: AuditFilters,
) -> StreamingResponse:
    def work(ctx: ServiceContext, user: WebUser) -> StreamingResponse:
        flt = _audit_filter(**filters)
        return export_response(ctx, user.caller, flt, fmt)

    return await page(request, work)


# -- directory -----------------------------------------------------------------------------------


GROUP_MEMBERS_SHOWN = 20  # members named per group on the directory page


@router.get("/directory", response_class=HTMLResponse)
async def directory_page(
    request: Request,
    groups_cursor: str = Query(default="", max_length=500),
    roles_cursor: str = Query(default="", max_length=500),
    role_groups_cursor: str = Query(default="", max_length=500),
) -> HTMLResponse:
    here = {
        "groups_cursor": groups_cursor,
        "roles_cursor": roles_cursor,
        "role_groups_cursor": role_groups_cursor,
    }

    def next_link(key: str, cursor: str | None) -> str | None:
        return "/directory?" + urlencode({**here, key: cursor}) if cursor else None

    def work(ctx: ServiceContext, user: WebUser) -> HTMLResponse:
        groups = directory.group_summaries(
            ctx,
            caller=user.caller,
            cursor=groups_cursor or None,
            limit=PAGE,
            members=GROUP_MEMBERS_SHOWN,
        )
        sections = []
        for kind, key, cursor in (
            (PolicyType.ROLE_GROUP, "role_groups_cursor", role_groups_cursor),
            (PolicyType.ROLE, "roles_cursor", roles_cursor),
        ):
            _, found = organizations.catalog_page(
                ctx, caller=user.caller, kind=kind, cursor=cursor or None, limit=PAGE
            )
            sections.append(
                {
                    "kind": kind.value,
                    "label": kind.label,
                    "names": [
                        {
                            "name": str(n),
                            "href": "/directory/role?"
                            + urlencode({"kind": kind.value, "name": str(n)}),
                        }
                        for n in found.items
                    ],
                    "more": next_link(key, found.next_cursor),
                }
            )
        return render(
            request,
            "directory.html",
            user,
            groups=[
                {
                    "name": g.name,
                    "email": g.email,
                    "count": g.member_count,
                    "members": g.members,
                }
                for g in groups.items
            ],
            groups_more=next_link("groups_cursor", groups.next_cursor),
            sections=sections,
        )

    return await page(request, work)


@router.get("/directory/role", response_class=HTMLResponse)
async def role_page(
    request: Request,
    name: str = Query(max_length=260),
    kind: Literal["role", "role_group"] = "role",
    tasks_cursor: str = Query(default="", max_length=500),
    members_cursor: str = Query(default="", max_length=500),
) -> HTMLResponse:
    def work(ctx: ServiceContext, user: WebUser) -> HTMLResponse:
        resolved, members = directory.role_members_page(
            ctx,
            caller=user.caller,
            role=name,
            role_group=kind == "role_group",
            cursor=members_cursor or None,
            limit=PAGE,
        )
        tasks: list[str] = []
        tasks_next = None
        if kind == "role":
            _, found = organizations.catalog_page(
                ctx,
                caller=user.caller,
                kind=PolicyType.TASK,
                role=resolved,
                cursor=tasks_cursor or None,
                limit=PAGE,
            )
            tasks, tasks_next = [str(t) for t in found.items], found.next_cursor
        here = {"kind": kind, "name": resolved}

        def link(**cursors: str | None) -> str:
            shown = {k: v for k, v in cursors.items() if v}
            return "/directory/role?" + urlencode({**here, **shown})

        return render(
            request,
            "role.html",
            user,
            role_name=resolved,
            label=PolicyType(kind).label,
            tasks=tasks,
            tasks_more=link(tasks_cursor=tasks_next, members_cursor=members_cursor)
            if tasks_next
            else None,
            members=[
                {
                    "name": m.name,
                    "kind": m.principal_kind.value,
                    "via": "" if m.via == resolved else m.via,
                    "jit": m.just_in_time,
                    "until": iso(m.until) if m.until else "",
                }
                for m in members.items
            ],
            members_more=link(tasks_cursor=tasks_cursor, members_cursor=members.next_cursor)
            if members.next_cursor
            else None,
        )

    return await page(request, work)


def not_permitted(request: Request, user: WebUser, what: str) -> HTMLResponse:
    return render(
        request,
        "error.html",
        user,
        status_code=403,
        title="Not permitted",
        detail=f"Your roles do not include the {what}. If you need it, request the role that "
        "holds it for as long as you need it.",
    )
