"""Every endpoint of jitpam's API, each declared once: its method and path, what it sends and how
its answer is read. ``Client`` and ``AsyncClient`` send these and offer each as a typed method of
the same name; nothing else in jitpam's client side (the ``jitpam`` command included) names a URL.

A page cursor is the server's: a listing passes ``next_cursor`` back as it came, never reading or
making one.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Generic, ParamSpec, TypeVar
from urllib.parse import quote

from jitpam.sdk.models import (
    AccessControl,
    AccessRequest,
    ApiToken,
    Assignment,
    AuditRecord,
    Authorization,
    CatalogEntry,
    CatalogImported,
    ChainReport,
    Checkpoint,
    Connector,
    ConnectorPass,
    Decision,
    Group,
    InstalledApplication,
    IssuedToken,
    LockboxRequest,
    OutboxMessage,
    Policy,
    RequestSignature,
    RevokedToken,
    RolePage,
    TaskDefinition,
    TaskRun,
    User,
    Webhook,
)

API = "/api/v1"
AUDIT_PAGE = 1000  # the most the server returns in one page of /audit
ROLE_PAGE = 500  # the most the server returns in one page of a role's tasks or members

T = TypeVar("T")
P = ParamSpec("P")


@dataclass(frozen=True, kw_only=True)
class Route:
    """Where a call goes: ``@endpoint`` fills in the method and the path, its ``segments``
    (the path's ``{names}``) encoded."""

    segments: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    method: str = ""
    path: str = ""


@dataclass(frozen=True, kw_only=True)
class Call(Route, Generic[T]):
    """One call and how to read its answer (``parse`` gets the JSON, the text, or None)."""

    parse: Callable[[Any], T]
    json: Any = None
    unbounded: bool = False  # wait for the answer however long it takes (a task run)


@dataclass(frozen=True, kw_only=True)
class Listing(Route, Generic[T]):
    """A listing: its pages are followed by ``next_cursor`` until the end, or ``limit`` items."""

    item: Callable[[Any], T]
    limit: int | None = None


R = TypeVar("R", bound=Route)

ENDPOINTS: dict[tuple[str, str], Callable[..., Route]] = {}
"""(method, path template as the server's OpenAPI document names it) -> the call's builder."""


def endpoint(
    method: str, template: str, *, under_api: bool = True
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Declare a builder as the one call of ``method`` on ``template`` (under ``/api/v1``
    unless ``under_api`` is False)."""
    full = (API if under_api else "") + template

    def declare(build: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(build)
        def routed(*args: P.args, **kwargs: P.kwargs) -> R:
            route = build(*args, **kwargs)
            path = full.format_map({k: segment(v) for k, v in route.segments.items()})
            return replace(route, method=method, path=path)

        ENDPOINTS[(method, full)] = routed
        return routed

    return declare


def segment(value: str) -> str:
    """One path segment: percent-encoded (``/``, ``?``, ``#`` too), never empty or a dot segment,
    so a name can never reach another route. Raises ValueError for an empty one."""
    if not value:
        raise ValueError("a name or id in a URL path must not be empty")
    encoded = quote(value, safe="")
    return encoded.replace(".", "%2E") if encoded in (".", "..") else encoded


def _none(_: Any) -> None:
    return None


def _text(body: Any) -> str:
    if body is None:
        return ""
    return body if isinstance(body, str) else json.dumps(body)


def _given(**values: Any) -> dict[str, Any]:
    """A change's body: only the fields given (None keeps what the server has)."""
    return {k: v for k, v in values.items() if v is not None}


def _instant(value: str | datetime | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


# ---------------------------------------------------------------- sign-in and tokens
@endpoint("POST", "/auth/login")
def login(user: str, password: str) -> Call[IssuedToken]:
    """Sign in with a local password: a bearer token for ``Client(url, token)``. Raises ApiError
    401 for an unknown user, a wrong password or a disabled user alike, 429 after too many."""
    return Call(parse=IssuedToken.from_json, json={"user": user, "password": password})


@endpoint("POST", "/auth/logout")
def logout() -> Call[None]:
    """Revoke the token this client signs its calls with."""
    return Call(parse=_none)


@endpoint("GET", "/me")
def me() -> Call[User]:
    """The signed-in user."""
    return Call(parse=User.from_json)


@endpoint("PUT", "/me/password")
def change_password(*, password: str, current_password: str) -> Call[None]:
    """Change one's own password (the current one is required)."""
    body = {"password": password, "current_password": current_password}
    return Call(parse=_none, json=body)


@endpoint("PUT", "/users/{upn}/password")
def set_password(upn: str, *, password: str) -> Call[None]:
    """Set another user's password (jitpam\\Set-Password)."""
    return Call(parse=_none, segments={"upn": upn}, json={"password": password})


@endpoint("POST", "/tokens")
def create_token(
    *, user: str | None = None, name: str = "api", expires_in_days: int = 90
) -> Call[IssuedToken]:
    """A new API token for oneself, or for a service or application account (``user``)."""
    body = {"user": user, "name": name, "expires_in_days": expires_in_days}
    return Call(parse=IssuedToken.from_json, json=body)


@endpoint("GET", "/tokens")
def tokens(
    *, user: str | None = None, everyone: bool = False, limit: int | None = None
) -> Listing[ApiToken]:
    """One's tokens, another user's, or everyone's (never their secrets)."""
    return Listing(item=ApiToken.from_json, params={"user": user, "all": everyone}, limit=limit)


@endpoint("DELETE", "/tokens/{token_id}")
def revoke_token(token_id: str) -> Call[RevokedToken]:
    return Call(parse=RevokedToken.from_json, segments={"token_id": token_id})


# ---------------------------------------------------------------- users and groups
@endpoint("GET", "/users")
def users(*, limit: int | None = None, page_size: int | None = None) -> Listing[User]:
    """The organization's users, by UPN."""
    return Listing(item=User.from_json, params={"limit": page_size}, limit=limit)


@endpoint("POST", "/users")
def new_user(
    upn: str, *, display_name: str | None = None, email: str | None = None, kind: str = "person"
) -> Call[User]:
    """New-User; ``kind`` is person, service, application or guest."""
    body = {"upn": upn, "display_name": display_name, "email": email, "kind": kind}
    return Call(parse=User.from_json, json=body)


@endpoint("GET", "/users/{upn}")
def get_user(upn: str) -> Call[User]:
    return Call(parse=User.from_json, segments={"upn": upn})


@endpoint("PATCH", "/users/{upn}")
def set_user(
    upn: str,
    *,
    display_name: str | None = None,
    email: str | None = None,
    enabled: bool | None = None,
) -> Call[User]:
    """Set-User: what is given changes. Disabling revokes the user's grants and tokens and
    cancels their pending requests."""
    body = _given(display_name=display_name, email=email, enabled=enabled)
    return Call(parse=User.from_json, segments={"upn": upn}, json=body)


@endpoint("GET", "/groups")
def groups(*, limit: int | None = None, page_size: int | None = None) -> Listing[Group]:
    """The organization's groups with their members, by name."""
    return Listing(item=Group.from_json, params={"limit": page_size}, limit=limit)


@endpoint("POST", "/groups")
def new_group(
    name: str, *, email: str | None = None, description: str = "", members: Iterable[str] = ()
) -> Call[Group]:
    """New-Group (approver groups are groups); ``members`` are UPNs."""
    body = {"name": name, "email": email, "description": description, "members": list(members)}
    return Call(parse=Group.from_json, json=body)


@endpoint("GET", "/groups/{name}")
def get_group(name: str) -> Call[Group]:
    return Call(parse=Group.from_json, segments={"name": name})


@endpoint("DELETE", "/groups/{name}")
def remove_group(name: str) -> Call[None]:
    return Call(parse=_none, segments={"name": name})


@endpoint("PUT", "/groups/{name}/members/{upn}")
def add_group_member(name: str, upn: str) -> Call[Group]:
    return Call(parse=Group.from_json, segments={"name": name, "upn": upn})


@endpoint("DELETE", "/groups/{name}/members/{upn}")
def remove_group_member(name: str, upn: str) -> Call[Group]:
    return Call(parse=Group.from_json, segments={"name": name, "upn": upn})


# ---------------------------------------------------------------- roles and the catalog
@endpoint("GET", "/roles")
def roles(
    *, kind: str = "role", limit: int | None = None, page_size: int | None = None
) -> Listing[CatalogEntry]:
    """Roles (``kind="role"``) or role groups (``kind="role_group"``), by name."""
    params = {"kind": kind, "limit": page_size}
    return Listing(item=CatalogEntry.from_json, params=params, limit=limit)


@endpoint("GET", "/roles/{name}")
def role_page(
    name: str,
    *,
    kind: str = "role",
    members_cursor: str | None = None,
    page_size: int | None = None,
) -> Call[RolePage]:
    """A role (or role group) with its first page of tasks and a page of its members, from
    ``members_cursor`` on. ``Client.role`` follows both to the end."""
    params = {"kind": kind, "limit": page_size, "members_cursor": members_cursor}
    return Call(parse=RolePage.from_json, segments={"name": name}, params=params)


def _assignment(
    role: str | None, role_group: str | None, user: str | None, group: str | None
) -> dict[str, Any]:
    return {"role": role, "role_group": role_group, "user": user, "group": group}


@endpoint("POST", "/assignments")
def assign(
    *,
    role: str | None = None,
    role_group: str | None = None,
    user: str | None = None,
    group: str | None = None,
) -> Call[Assignment]:
    """New-ManagementRoleAssignment: a role or a role group, to a user or a group."""
    body = _assignment(role, role_group, user, group)
    return Call(parse=Assignment.from_json, json=body)


@endpoint("POST", "/assignments/remove")
def unassign(
    *,
    role: str | None = None,
    role_group: str | None = None,
    user: str | None = None,
    group: str | None = None,
) -> Call[Assignment]:
    """Remove-ManagementRoleAssignment."""
    body = _assignment(role, role_group, user, group)
    return Call(parse=Assignment.from_json, json=body)


@endpoint("GET", "/catalog/tasks")
def catalog_tasks(
    *,
    role: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
    page_size: int | None = None,
) -> Listing[CatalogEntry]:
    """The organization's tasks (or a role's), by name, from ``cursor`` (a ``next_cursor``
    the server gave) on."""
    params = {"role": role, "cursor": cursor, "limit": page_size}
    return Listing(item=CatalogEntry.from_json, params=params, limit=limit)


@endpoint("POST", "/catalog/import")
def import_catalog(text: str, *, source: str = "catalog.toml") -> Call[CatalogImported]:
    """Import-TaskCatalog: add or update a workload's tasks, roles and role groups from TOML."""
    return Call(parse=CatalogImported.from_json, json={"source": source, "text": text})


# ---------------------------------------------------------------- access control and policies
@endpoint("GET", "/control")
def access_control() -> Call[AccessControl]:
    return Call(parse=AccessControl.from_json)


@endpoint("POST", "/control/enable")
def enable_control(*, admin_group: str, system_accounts: Iterable[str] = ()) -> Call[AccessControl]:
    """Enable-ElevatedAccessControl: ``admin_group`` is the default approver group."""
    body = {"admin_group": admin_group, "system_accounts": list(system_accounts)}
    return Call(parse=AccessControl.from_json, json=body)


@endpoint("POST", "/control/disable")
def disable_control() -> Call[AccessControl]:
    """Disable-ElevatedAccessControl (policies and requests are kept)."""
    return Call(parse=AccessControl.from_json)


@endpoint("PATCH", "/control/config")
def set_organization_config(
    *,
    ticket_pattern: str | None = None,
    max_policies: int | None = None,
    pending_hours: int | None = None,
    clear_ticket_pattern: bool = False,
    clear_max_policies: bool = False,
    lockbox_approval_required: bool | None = None,
    lockbox_max_hours: int | None = None,
    scim_approver_groups: list[str] | None = None,
    clear_scim_approver_groups: bool = False,
) -> Call[AccessControl]:
    """Set-OrganizationConfig: what is given changes; ``clear_*`` removes a setting.
    ``lockbox_approval_required``: whether the organization's approvers must approve every
    Customer Lockbox request; ``lockbox_max_hours``: the longest lockbox access (1 to 4);
    ``scim_approver_groups``: the approver groups whose memberships SCIM may set (the whole
    set)."""
    body = {
        **_given(
            ticket_pattern=ticket_pattern,
            max_policies=max_policies,
            pending_hours=pending_hours,
            lockbox_approval_required=lockbox_approval_required,
            lockbox_max_hours=lockbox_max_hours,
        ),
        "clear_ticket_pattern": clear_ticket_pattern,
        "clear_max_policies": clear_max_policies,
    }
    if clear_scim_approver_groups:
        body["scim_approver_groups"] = []
    elif scim_approver_groups:
        body["scim_approver_groups"] = list(scim_approver_groups)
    return Call(parse=AccessControl.from_json, json=body)


@endpoint("GET", "/policies")
def policies(
    *,
    type: str | None = None,
    approval_type: str | None = None,
    limit: int | None = None,
    page_size: int | None = None,
) -> Listing[Policy]:
    """Approval policies by type and target; ``type`` is task, role, role_group or
    data_access."""
    params = {"type": type, "approval_type": approval_type, "limit": page_size}
    return Listing(item=Policy.from_json, params=params, limit=limit)


@endpoint("POST", "/policies")
def new_policy(
    *,
    type: str,
    target: str,
    approval_type: str,
    approver_group: str | None = None,
    eligible_users: Iterable[str] = (),
    eligible_groups: Iterable[str] = (),
    approvals_required: int = 1,
    max_duration_hours: int | None = None,
    require_ticket: bool = False,
) -> Call[Policy]:
    """New-ElevatedAccessApprovalPolicy; ``type`` task, role, role_group, or data_access for a
    data scope (``Office365\\Mail.Read``)."""
    body = {
        "type": type,
        "target": target,
        "approval_type": approval_type,
        "approver_group": approver_group,
        "eligible_users": list(eligible_users),
        "eligible_groups": list(eligible_groups),
        "approvals_required": approvals_required,
        "max_duration_hours": max_duration_hours,
        "require_ticket": require_ticket,
    }
    return Call(parse=Policy.from_json, json=body)


@endpoint("GET", "/policies/{policy_id}")
def get_policy(policy_id: str) -> Call[Policy]:
    return Call(parse=Policy.from_json, segments={"policy_id": policy_id})


@endpoint("PATCH", "/policies/{policy_id}")
def set_policy(
    policy_id: str,
    *,
    approval_type: str | None = None,
    approver_group: str | None = None,
    use_default_approver_group: bool = False,
    eligible_users: Iterable[str] | None = None,
    eligible_groups: Iterable[str] | None = None,
    approvals_required: int | None = None,
    max_duration_hours: int | None = None,
    no_max_duration: bool = False,
    require_ticket: bool | None = None,
) -> Call[Policy]:
    """Set-ElevatedAccessApprovalPolicy: what is given changes (None keeps it)."""
    body = _given(
        approval_type=approval_type,
        approver_group=approver_group,
        use_default_approver_group=use_default_approver_group or None,
        eligible_users=None if eligible_users is None else list(eligible_users),
        eligible_groups=None if eligible_groups is None else list(eligible_groups),
        approvals_required=approvals_required,
        max_duration_hours=max_duration_hours,
        no_max_duration=no_max_duration or None,
        require_ticket=require_ticket,
    )
    return Call(parse=Policy.from_json, segments={"policy_id": policy_id}, json=body)


@endpoint("DELETE", "/policies/{policy_id}")
def remove_policy(policy_id: str) -> Call[Policy]:
    """Remove-ElevatedAccessApprovalPolicy: the policy as it was."""
    return Call(parse=Policy.from_json, segments={"policy_id": policy_id})


# ---------------------------------------------------------------- requests and grants
def _request_of_kind(doc: Any) -> AccessRequest | LockboxRequest:
    if doc.get("requested_access") == "Customer Lockbox":
        return LockboxRequest.from_json(doc)
    return AccessRequest.from_json(doc)


@endpoint("GET", "/requests")
def requests(
    *,
    status: str | None = None,
    mine: bool = False,
    requester: str | None = None,
    target: str | None = None,
    access: str | None = None,
    limit: int | None = None,
    page_size: int | None = None,
) -> Listing[AccessRequest | LockboxRequest]:
    """The requests the caller may see, newest first; ``target`` searches the target.
    ``access`` keeps one kind (RequestedAccess): task, role, role_group, data_access or
    customer_lockbox (then the items are ``LockboxRequest``\\s, the caller's lockbox requests,
    and only ``status`` applies besides)."""
    params = {
        "status": status,
        "mine": mine,
        "requester": requester,
        "target": target,
        "access": access,
        "limit": page_size,
    }
    return Listing(item=_request_of_kind, params=params, limit=limit)


@endpoint("POST", "/requests")
def request_access(
    *, type: str, target: str, reason: str, duration_hours: int = 4
) -> Call[AccessRequest]:
    """New-ElevatedAccessRequest; ``type`` is task, role or role_group."""
    body = {"type": type, "target": target, "reason": reason, "duration_hours": duration_hours}
    return Call(parse=AccessRequest.from_json, json=body)


@endpoint("GET", "/requests/{request_id}")
def get_request(request_id: str) -> Call[AccessRequest]:
    return Call(parse=AccessRequest.from_json, segments={"request_id": request_id})


@endpoint("POST", "/requests/{request_id}/approve")
def approve(request_id: str, comment: str | None = None) -> Call[AccessRequest]:
    """Approve-ElevatedAccessRequest: one vote; the request as it is after it."""
    body = {"comment": comment}
    return Call(parse=AccessRequest.from_json, segments={"request_id": request_id}, json=body)


@endpoint("POST", "/requests/{request_id}/deny")
def deny(request_id: str, comment: str | None = None) -> Call[AccessRequest]:
    """Deny-ElevatedAccessRequest."""
    body = {"comment": comment}
    return Call(parse=AccessRequest.from_json, segments={"request_id": request_id}, json=body)


@endpoint("POST", "/requests/{request_id}/cancel")
def cancel(request_id: str) -> Call[AccessRequest]:
    """Withdraw one's own pending request."""
    return Call(parse=AccessRequest.from_json, segments={"request_id": request_id})


@endpoint("GET", "/requests/{request_id}/verify")
def verify_request(request_id: str) -> Call[RequestSignature]:
    """Check a request against the signature made when it was submitted."""
    return Call(parse=RequestSignature.from_json, segments={"request_id": request_id})


@endpoint("GET", "/authorizations")
def authorizations(
    *,
    user: str | None = None,
    active: bool = False,
    limit: int | None = None,
    page_size: int | None = None,
) -> Listing[Authorization]:
    """Get-ElevatedAccessAuthorization: one's grants (``user``'s, or everyone's with ``"*"``),
    newest first; with ``active`` the grants active now, soonest ending first."""
    params = {"user": user, "active": active, "limit": page_size}
    return Listing(item=Authorization.from_json, params=params, limit=limit)


@endpoint("POST", "/authorizations/{authorization_id}/revoke")
def revoke(request_id: str, comment: str | None = None) -> Call[Authorization]:
    """Revoke-ElevatedAccessAuthorization: end a grant now (the request's id or the
    authorization's own)."""
    return Call(
        parse=Authorization.from_json,
        segments={"authorization_id": request_id},
        json={"comment": comment},
    )


@endpoint("POST", "/check")
def check(
    task: str | None = None,
    user: str | None = None,
    *,
    organization: str | None = None,
    service: str | None = None,
    scope: str | None = None,
    resource: str | None = None,
) -> Call[Decision]:
    """May ``user`` (default: the caller) run ``task`` now? Or, with ``organization`` and
    ``service`` instead of a task (Customer Lockbox), may the operator's engineer ``user`` reach
    this service of this customer's data now (``authorization_id``: the lockbox request that
    allows it)? Or, with ``service``, ``scope`` and ``resource`` (a data access check), may the
    application ``user`` use the data scope on the resource now? Audited."""
    if task is not None:
        return Call(parse=Decision.from_json, json={"task": task, "user": user})
    if scope is not None or resource is not None:
        body = {"service": service, "scope": scope, "resource": resource, "user": user}
        return Call(parse=Decision.from_json, json=body)
    body = {"organization": organization, "service": service, "user": user}
    return Call(parse=Decision.from_json, json=body)


def _decisions(doc: Any) -> list[Decision]:
    return [Decision.from_json(d) for d in doc["results"]]


@endpoint("POST", "/check/batch")
def check_batch(checks: list[tuple[str, str | None]]) -> Call[list[Decision]]:
    """Up to 1,000 (task, user) checks at one instant; the answers in the same order."""
    body = {"checks": [{"task": task, "user": user} for task, user in checks]}
    return Call(parse=_decisions, json=body)


# ---------------------------------------------------------------- applications
@endpoint("POST", "/applications")
def install_application(
    name: str,
    *,
    service: str,
    scopes: Iterable[str],
    resources: Iterable[str],
    reason: str,
    duration_hours: int | None = None,
) -> Call[InstalledApplication]:
    """Install-Application (jitpam\\Application Installer): register the application ``name``
    (its account is made in the installer's domain, or takes ``name`` when it is a UPN) and file
    a data access request for each of ``service``'s ``scopes`` (Mail.Read) on ``resources``
    (group:Sales, mailbox:ceo@contoso.com), in the installer's name. All or nothing."""
    body = {
        "name": name,
        "service": service,
        "scopes": list(scopes),
        "resources": list(resources),
        "reason": reason,
        **_given(duration_hours=duration_hours),
    }
    return Call(parse=InstalledApplication.from_json, json=body)


# ---------------------------------------------------------------- Customer Lockbox
@endpoint("POST", "/lockbox/requests")
def file_lockbox_request(
    customer: str, *, service: str, reason: str, case_reference: str, duration_hours: int
) -> Call[LockboxRequest]:
    """New-AccessToCustomerDataRequest: the operator's engineer (jitpam\\Lockbox Requester)
    asks ``customer`` for ``service`` (Exchange, SharePoint, Teams, EOP or a workload scope of
    the customer's catalog) for 1 to 4 hours. Approved at once unless the customer requires
    approval."""
    body = {
        "customer": customer,
        "service": service,
        "reason": reason,
        "case_reference": case_reference,
        "duration_hours": duration_hours,
    }
    return Call(parse=LockboxRequest.from_json, json=body)


@endpoint("GET", "/lockbox/requests")
def lockbox_requests(
    *,
    status: str | None = None,
    created_after: str | datetime | None = None,
    request_id: str | None = None,
    limit: int | None = None,
    page_size: int | None = None,
) -> Listing[LockboxRequest]:
    """Get-AccessToCustomerDataRequest: the lockbox requests addressed to the caller's
    organization (for the operator: those it filed), newest first."""
    params = {
        "status": status,
        "created_after": _instant(created_after),
        "request_id": request_id,
        "limit": page_size,
    }
    return Listing(item=LockboxRequest.from_json, params=params, limit=limit)


@endpoint("GET", "/lockbox/requests/{request_id}")
def lockbox_request(request_id: str) -> Call[LockboxRequest]:
    return Call(parse=LockboxRequest.from_json, segments={"request_id": request_id})


@endpoint("POST", "/lockbox/requests/{request_id}/decision")
def decide_lockbox_request(
    request_id: str, decision: str, *, comment: str | None = None, service: str | None = None
) -> Call[LockboxRequest]:
    """Set-AccessToCustomerDataRequest: ``decision`` Approve or Deny (the customer's
    approvers), Cancel (the engineer who filed it)."""
    body = {"decision": decision, "comment": comment, "service": service}
    return Call(parse=LockboxRequest.from_json, segments={"request_id": request_id}, json=body)


@endpoint("POST", "/lockbox/requests/{request_id}/revoke")
def revoke_lockbox_request(request_id: str, comment: str | None = None) -> Call[LockboxRequest]:
    """Revoke-AccessToCustomerDataRequest: end approved lockbox access now."""
    body = {"comment": comment}
    return Call(parse=LockboxRequest.from_json, segments={"request_id": request_id}, json=body)


# ---------------------------------------------------------------- the audit log
def _audit_filter(
    since: str | datetime | None,
    until: str | datetime | None,
    actor: str | None,
    operation: str | None,
    outcome: str | None,
) -> dict[str, Any]:
    return {
        "since": _instant(since),
        "until": _instant(until),
        "actor": actor,
        "operation": operation,
        "outcome": outcome,
    }


@endpoint("GET", "/audit")
def audit(
    *,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    actor: str | None = None,
    operation: str | None = None,
    target: str | None = None,
    outcome: str | None = None,
    limit: int | None = None,
    page_size: int | None = None,
) -> Listing[AuditRecord]:
    """Search-AuditLog, newest first (times in ISO 8601; ``outcome`` success or refused). Pages
    are as large as the server allows unless ``page_size`` (or a smaller ``limit``) says."""
    size = page_size or (min(limit, AUDIT_PAGE) if limit else AUDIT_PAGE)
    params = {**_audit_filter(since, until, actor, operation, outcome), "target": target}
    return Listing(item=AuditRecord.from_json, params={**params, "limit": size}, limit=limit)


@endpoint("GET", "/audit/export")
def export_audit(
    *,
    format: str = "jsonl",
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    actor: str | None = None,
    operation: str | None = None,
    outcome: str | None = None,
) -> Call[str]:
    """The matching records as JSON lines or CSV (``format``), newest first."""
    params = {"format": format, **_audit_filter(since, until, actor, operation, outcome)}
    return Call(parse=_text, params=params)


@endpoint("POST", "/audit/checkpoint")
def audit_checkpoint() -> Call[Checkpoint]:
    """Sign the chain head; keep ``raw`` outside the database to detect truncation later."""
    return Call(parse=Checkpoint.from_json)


@endpoint("POST", "/audit/verify")
def verify_audit(*, checkpoint: Checkpoint | Mapping[str, Any] | None = None) -> Call[ChainReport]:
    """Verify the whole chain, and a checkpoint when given (a ``Checkpoint`` or its JSON)."""
    if isinstance(checkpoint, Checkpoint):
        checkpoint = checkpoint.raw
    body = {} if checkpoint is None else {"checkpoint": checkpoint}
    return Call(parse=ChainReport.from_json, json=body)


# ---------------------------------------------------------------- webhooks and the outbox
@endpoint("GET", "/webhooks")
def webhooks(*, limit: int | None = None) -> Listing[Webhook]:
    return Listing(item=Webhook.from_json, limit=limit)


@endpoint("POST", "/webhooks")
def add_webhook(url: str, *, events: Iterable[str], format: str = "json") -> Call[Webhook]:
    """Add an endpoint for these event types (``format`` json or slack); its signing secret is
    in this answer only."""
    body = {"url": url, "events": list(events), "format": format}
    return Call(parse=Webhook.from_json, json=body)


@endpoint("DELETE", "/webhooks/{webhook_id}")
def remove_webhook(webhook_id: str) -> Call[Webhook]:
    return Call(parse=Webhook.from_json, segments={"webhook_id": webhook_id})


@endpoint("POST", "/webhooks/{webhook_id}/test")
def test_webhook(webhook_id: str) -> Call[OutboxMessage]:
    """Queue a signed test delivery to the endpoint: the message queued."""
    return Call(parse=OutboxMessage.from_json, segments={"webhook_id": webhook_id})


@endpoint("GET", "/outbox")
def outbox(
    *, state: str | None = None, limit: int | None = None, page_size: int | None = None
) -> Listing[OutboxMessage]:
    """Notifications pending, delivered or dead (``state``), newest first."""
    params = {"state": state, "limit": page_size}
    return Listing(item=OutboxMessage.from_json, params=params, limit=limit)


@endpoint("POST", "/outbox/{message_id}/retry")
def retry_message(message_id: str) -> Call[OutboxMessage]:
    """Put a message back in line now."""
    return Call(parse=OutboxMessage.from_json, segments={"message_id": message_id})


# ---------------------------------------------------------------- connectors
@endpoint("GET", "/connectors")
def connectors(*, limit: int | None = None) -> Listing[Connector]:
    """The organization's connectors and their health. Raises ApiError 404 when the server has
    no connectors configured."""
    return Listing(item=Connector.from_json, limit=limit)


@endpoint("GET", "/connectors/{name}")
def connector(name: str) -> Call[Connector]:
    """One connector, with what jitpam recorded in it (``records``)."""
    return Call(parse=Connector.from_json, segments={"name": name})


@endpoint("POST", "/connectors/{name}/reconcile")
def reconcile_connector(name: str, *, dry_run: bool = False) -> Call[ConnectorPass]:
    """A pass of the connector now, audited as the caller's; ``dry_run`` shows the plan and
    changes nothing. Raises ApiError 409 while another pass of it runs."""
    return Call(parse=ConnectorPass.from_json, segments={"name": name}, json={"dry_run": dry_run})


# ---------------------------------------------------------------- the task runner
@endpoint("GET", "/tasks")
def task_definitions(*, limit: int | None = None) -> Listing[TaskDefinition]:
    """The tasks this organization's server runs."""
    return Listing(item=TaskDefinition.from_json, limit=limit)


@endpoint("GET", "/tasks/{task}")
def get_task_definition(task: str) -> Call[TaskDefinition]:
    return Call(parse=TaskDefinition.from_json, segments={"task": task})


@endpoint("POST", "/tasks/{task}/run")
def run_task(task: str, parameters: Mapping[str, str | int | bool]) -> Call[TaskRun]:
    """Run a task through the server; the answer comes when it ends (however long its
    definition lets it run), since a run is never sent twice. Raises ApiError 403 when the
    caller's check denies it (it never starts)."""
    return Call(
        parse=TaskRun.from_json,
        segments={"task": task},
        json={"parameters": dict(parameters)},
        unbounded=True,
    )


# ---------------------------------------------------------------- operations
def _status(expected: str) -> Callable[[Any], bool]:
    return lambda doc: isinstance(doc, dict) and doc.get("status") == expected


@endpoint("GET", "/healthz", under_api=False)
def alive() -> Call[bool]:
    """Whether the server process answers."""
    return Call(parse=_status("ok"))


@endpoint("GET", "/readyz", under_api=False)
def ready() -> Call[bool]:
    """Whether the server's database answers; raises ApiError 503 (``not_ready``) when not."""
    return Call(parse=_status("ready"))


@endpoint("GET", "/metrics", under_api=False)
def metrics() -> Call[str]:
    """The server's Prometheus metrics, as text."""
    return Call(parse=_text)
