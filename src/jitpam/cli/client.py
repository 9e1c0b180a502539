"""Client commands: they talk to a jitpam server through the typed calls of ``jitpam.sdk`` (no
URL of the API is written here). What they print is the server's own document for what they
asked (the answers' ``raw``), so a field the server adds shows without a change here."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Protocol

import typer

from jitpam.cli import output
from jitpam.cli.output import show
from jitpam.cli.session import client
from jitpam.sdk import Client

Json = Annotated[bool, typer.Option("--json", help="Print one JSON document and nothing else.")]
Server = Annotated[str | None, typer.Option("--server", help="Server URL (default: $JITPAM_URL).")]

REQUEST_COLUMNS = ["id", "status", "requester", "type", "target", "duration_hours", "created_at"]
DATA_REQUEST_COLUMNS = [
    "id",
    "status",
    "requester",
    "application",
    "target",
    "resources",
    "duration_hours",
    "created_at",
]
POLICY_COLUMNS = ["id", "type", "target", "approval_type", "approver_group", "approvals_required"]
AUTH_COLUMNS = ["id", "request_id", "user", "type", "target", "status", "valid_until", "revoked_at"]
LOCKBOX_COLUMNS = [
    "id",
    "status",
    "customer",
    "requester",
    "service",
    "case_reference",
    "duration_hours",
    "created_at",
]


KINDS = ("person", "service", "application", "guest")
POLICY_TYPES = ("task", "role", "role-group", "data-access")
APPROVAL_TYPES = ("manual", "auto")
STATUSES = ("pending", "approved", "denied", "expired", "cancelled", "revoked", "completed")
EXPORT_FORMATS = ("jsonl", "csv")
OUTCOMES = ("success", "refused")
# The kinds of request (RequestedAccess) as ``--access`` names them; the API's are the same with
# an underscore.
ACCESS_KINDS = ("task", "role", "role-group", "data-access", "customer-lockbox")


def _choice(*values: str) -> Callable[[str | None], str | None]:
    """An option callback: the value, lowercased, must be one of ``values`` (usage error, 2)."""

    def check(value: str | None) -> str | None:
        if value is None:
            return None
        if value.lower() not in values:
            raise typer.BadParameter(f"{value!r} is not one of: {', '.join(values)}")
        return value.lower()

    return check


def _instant(value: str | None) -> str | None:
    """An option callback: an ISO 8601 date and time, as UTC with Z (a naive one is UTC)."""
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO 8601 date and time (e.g. 2026-03-01T09:00:00Z)"
        ) from None
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return at.isoformat().replace("+00:00", "Z")


def _named(value: str, what: str) -> str:
    """A name (a user, a group, a role, a task), refused when empty before anything is sent (the
    SDK encodes it as one path segment)."""
    if not value:
        output.fail(f"the {what} must not be empty", output.USAGE)
    return value


def _id(value: str, what: str) -> str:
    """A request, policy, token or authorization id: a UUID, checked before anything is sent."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        output.fail(f"the {what} must be a UUID, not {value!r}", output.USAGE)


Limit = Annotated[int | None, typer.Option(min=1, help="Stop after N items.")]


def _read_secret(from_stdin: bool, prompt: str) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\n")
    return str(typer.prompt(prompt, hide_input=True))


def _one_of(**named: str | None) -> tuple[str, str]:
    given = [(k, v) for k, v in named.items() if v]
    if len(given) != 1:
        options = ", ".join("--" + k.replace("_", "-") for k in named)
        output.fail(f"give exactly one of {options}", output.USAGE)
    return given[0][0], str(given[0][1])


class Answer(Protocol):
    """An SDK answer: the server's document for it is ``raw``."""

    @property
    def raw(self) -> dict[str, Any]: ...


def _list(server: str | None, listing: Callable[[Client], Iterable[Answer]]) -> list[Any]:
    """Every item of a listing (its pages followed), as the server sent them."""
    with client(server) as api:
        return [item.raw for item in listing(api)]


# ---------------------------------------------------------------- users
user_app = typer.Typer(help="Users of the organization.", no_args_is_help=True)


@user_app.command("create")
def user_create(
    upn: str,
    display_name: Annotated[str | None, typer.Option()] = None,
    email: Annotated[str | None, typer.Option()] = None,
    kind: Annotated[
        str, typer.Option(help="person, service, application or guest", callback=_choice(*KINDS))
    ] = "person",
    password_stdin: Annotated[
        bool, typer.Option(help="Read an initial password from stdin.")
    ] = False,
    server: Server = None,
    as_json: Json = False,
) -> None:
    """Add a user (New-User)."""
    with client(server) as api:
        made = api.new_user(upn, display_name=display_name, email=email, kind=kind)
        if password_stdin:
            api.set_password(made.upn, password=_read_secret(True, ""))
    show(made.raw, as_json)
    if not as_json and made.upn.lower() != upn.strip().lower():
        # A guest named by their own address: say under which name they are stored.
        typer.echo(f"{upn.strip()} is stored as {made.upn}; either name finds them here")


@user_app.command("list")
def user_list(
    server: Server = None,
    as_json: Json = False,
    limit: Limit = None,
) -> None:
    show(
        _list(server, lambda api: api.users(limit=limit)),
        as_json,
        columns=["upn", "display_name", "kind", "enabled"],
    )


@user_app.command("show")
def user_show(upn: str, server: Server = None, as_json: Json = False) -> None:
    upn = _named(upn, "user")
    with client(server) as api:
        show(api.get_user(upn).raw, as_json)


def _set_enabled(upn: str, enabled: bool, server: str | None, as_json: bool) -> None:
    upn = _named(upn, "user")
    with client(server) as api:
        show(api.set_user(upn, enabled=enabled).raw, as_json)


@user_app.command("disable")
def user_disable(upn: str, server: Server = None, as_json: Json = False) -> None:
    """Disable a user: revokes their grants and tokens and cancels their pending requests."""
    _set_enabled(upn, False, server, as_json)


@user_app.command("enable")
def user_enable(upn: str, server: Server = None, as_json: Json = False) -> None:
    _set_enabled(upn, True, server, as_json)


@user_app.command("set-password")
def user_set_password(
    upn: str,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from stdin.")] = False,
    server: Server = None,
    as_json: Json = False,
) -> None:
    """Set another user's password (jitpam\\Set-Password)."""
    password = _read_secret(password_stdin, "New password")
    upn = _named(upn, "user")
    with client(server) as api:
        api.set_password(upn, password=password)
    show({"user": upn, "password_set": True}, as_json)


# ---------------------------------------------------------------- groups
group_app = typer.Typer(help="Groups (approver groups are groups).", no_args_is_help=True)


@group_app.command("create")
def group_create(
    name: str,
    email: Annotated[str | None, typer.Option()] = None,
    member: Annotated[list[str] | None, typer.Option(help="A member's UPN (repeatable).")] = None,
    server: Server = None,
    as_json: Json = False,
) -> None:
    with client(server) as api:
        show(api.new_group(name, email=email, members=member or []).raw, as_json)


@group_app.command("add-member")
def group_add_member(name: str, upn: str, server: Server = None, as_json: Json = False) -> None:
    name, upn = _named(name, "group"), _named(upn, "user")
    with client(server) as api:
        show(api.add_group_member(name, upn).raw, as_json)


@group_app.command("remove-member")
def group_remove_member(name: str, upn: str, server: Server = None, as_json: Json = False) -> None:
    name, upn = _named(name, "group"), _named(upn, "user")
    with client(server) as api:
        show(api.remove_group_member(name, upn).raw, as_json)


@group_app.command("list")
def group_list(
    server: Server = None,
    as_json: Json = False,
    limit: Limit = None,
) -> None:
    groups = _list(server, lambda api: api.groups(limit=limit))
    show(groups, as_json, columns=["name", "email", "members"])


@group_app.command("show")
def group_show(name: str, server: Server = None, as_json: Json = False) -> None:
    name = _named(name, "group")
    with client(server) as api:
        show(api.get_group(name).raw, as_json)


# ---------------------------------------------------------------- roles and role groups
def _role_app(kind: str) -> typer.Typer:
    label = "role" if kind == "role" else "role group"
    app = typer.Typer(
        help=f"{label.capitalize()}s: standing and just-in-time members.", no_args_is_help=True
    )

    @app.command("list")
    def role_list(server: Server = None, as_json: Json = False, limit: Limit = None) -> None:
        show(
            _list(server, lambda api: api.roles(kind=kind, limit=limit)), as_json, columns=["name"]
        )

    @app.command("show")
    def role_show(name: str, server: Server = None, as_json: Json = False) -> None:
        name = _named(name, label)
        with client(server) as api:
            doc = api.role(name, kind=kind).raw  # every page of its tasks and members
        if as_json:
            output.emit_json(doc)
            return
        typer.echo(f"{label}: {doc['name']}")
        if doc["tasks"]:
            typer.echo("tasks: " + ", ".join(doc["tasks"]))
        output.table(doc["members"], ["name", "kind", "via", "just_in_time", "until"])

    def _assign(
        name: str, user: str | None, group: str | None, server: str | None, as_json: bool, add: bool
    ) -> None:
        _one_of(user=user, group=group)
        role, role_group = (name, None) if kind == "role" else (None, name)
        with client(server) as api:
            change = api.assign if add else api.unassign
            show(change(role=role, role_group=role_group, user=user, group=group).raw, as_json)

    @app.command("assign")
    def role_assign(
        name: str,
        user: Annotated[str | None, typer.Option()] = None,
        group: Annotated[str | None, typer.Option()] = None,
        server: Server = None,
        as_json: Json = False,
    ) -> None:
        _assign(name, user, group, server, as_json, True)

    @app.command("unassign")
    def role_unassign(
        name: str,
        user: Annotated[str | None, typer.Option()] = None,
        group: Annotated[str | None, typer.Option()] = None,
        server: Server = None,
        as_json: Json = False,
    ) -> None:
        _assign(name, user, group, server, as_json, False)

    return app


role_app = _role_app("role")
role_group_app = _role_app("role_group")

catalog_app = typer.Typer(help="Task catalogs.", no_args_is_help=True)


@catalog_app.command("import")
def catalog_import(file: Path, server: Server = None, as_json: Json = False) -> None:
    """Import a workload's tasks, roles and role groups from a TOML file."""
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        output.fail(f"cannot read {file}: {exc.strerror}", output.USAGE)
    with client(server) as api:
        show(api.import_catalog(text, source=file.name).raw, as_json)


@catalog_app.command("tasks")
def catalog_tasks(server: Server = None, as_json: Json = False) -> None:
    show(_list(server, lambda api: api.catalog_tasks()), as_json, columns=["name"])


# ---------------------------------------------------------------- tokens
token_app = typer.Typer(help="Personal and service API tokens.", no_args_is_help=True)


@token_app.command("create")
def token_create(
    user: Annotated[str | None, typer.Option(help="A service or application account.")] = None,
    name: Annotated[str, typer.Option()] = "api",
    expires_in_days: Annotated[int, typer.Option(min=1, max=366)] = 90,
    server: Server = None,
    as_json: Json = False,
) -> None:
    """Create a token; its secret is printed once."""
    with client(server) as api:
        made = api.create_token(user=user, name=name, expires_in_days=expires_in_days)
    show(made.raw, as_json)


@token_app.command("list")
def token_list(
    user: Annotated[str | None, typer.Option()] = None,
    all_users: Annotated[bool, typer.Option("--all")] = False,
    limit: Limit = None,
    server: Server = None,
    as_json: Json = False,
) -> None:
    rows = _list(server, lambda api: api.tokens(user=user, everyone=all_users, limit=limit))
    show(rows, as_json, columns=["id", "user", "name", "expires_at", "revoked_at"])


@token_app.command("revoke")
def token_revoke(token_id: str, server: Server = None, as_json: Json = False) -> None:
    token_id = _id(token_id, "token id")
    with client(server) as api:
        show(api.revoke_token(token_id).raw, as_json)


# ---------------------------------------------------------------- access control
control_app = typer.Typer(
    help="Access control (Enable-/Disable-ElevatedAccessControl).", no_args_is_help=True
)


@control_app.command("enable")
def control_enable(
    admin_group: Annotated[str, typer.Option(help="The default approver group.")],
    system_account: Annotated[
        list[str] | None, typer.Option(help="Exempt account (repeatable).")
    ] = None,
    server: Server = None,
    as_json: Json = False,
) -> None:
    with client(server) as api:
        enabled = api.enable_control(admin_group=admin_group, system_accounts=system_account or [])
        show(enabled.raw, as_json)


@control_app.command("disable")
def control_disable(server: Server = None, as_json: Json = False) -> None:
    with client(server) as api:
        show(api.disable_control().raw, as_json)


@control_app.command("show")
def control_show(server: Server = None, as_json: Json = False) -> None:
    with client(server) as api:
        show(api.access_control().raw, as_json)


# ---------------------------------------------------------------- policies
policy_app = typer.Typer(help="Approval policies.", no_args_is_help=True)
TaskOpt = Annotated[str | None, typer.Option("--task")]
RoleOpt = Annotated[str | None, typer.Option("--role")]
RoleGroupOpt = Annotated[str | None, typer.Option("--role-group")]
DataScopeOpt = Annotated[
    str | None,
    typer.Option(
        "--data-scope",
        help="A data scope, Service\\Scope (Office365\\Mail.Read): a data access "
        "policy, for the requests applications file when installed.",
    ),
]


def _target(
    task: str | None, role: str | None, role_group: str | None, data_scope: str | None = None
) -> tuple[str, str]:
    if data_scope is None:
        return _one_of(task=task, role=role, role_group=role_group)
    kind, target = _one_of(task=task, role=role, role_group=role_group, data_scope=data_scope)
    return ("data_access" if kind == "data_scope" else kind), target


def _eligible(server: str | None, names: list[str]) -> tuple[list[str], list[str]]:
    users = [n for n in names if "@" in n]
    return users, [n for n in names if "@" not in n]


@policy_app.command("new")
def policy_new(
    approval_type: Annotated[
        str, typer.Option(help="manual or auto", callback=_choice(*APPROVAL_TYPES))
    ],
    task: TaskOpt = None,
    role: RoleOpt = None,
    role_group: RoleGroupOpt = None,
    data_scope: DataScopeOpt = None,
    approver_group: Annotated[str | None, typer.Option()] = None,
    eligible: Annotated[
        list[str] | None,
        typer.Option(help="Eligible UPN or group (repeatable; a data scope's: its installers)."),
    ] = None,
    approvals_required: Annotated[int, typer.Option(min=1, max=10)] = 1,
    max_duration_hours: Annotated[int | None, typer.Option(min=1)] = None,
    require_ticket: Annotated[bool, typer.Option()] = False,
    server: Server = None,
    as_json: Json = False,
) -> None:
    """New-ElevatedAccessApprovalPolicy: for one of --task, --role, --role-group or
    --data-scope."""
    kind, target = _target(task, role, role_group, data_scope)
    users, groups = _eligible(server, eligible or [])
    with client(server) as api:
        made = api.new_policy(
            type=kind,
            target=target,
            approval_type=approval_type,
            approver_group=approver_group,
            eligible_users=users,
            eligible_groups=groups,
            approvals_required=approvals_required,
            max_duration_hours=max_duration_hours,
            require_ticket=require_ticket,
        )
    show(made.raw, as_json)


@policy_app.command("list")
def policy_list(
    type: Annotated[
        str | None,
        typer.Option(
            "--type", help="task, role, role-group or data-access", callback=_choice(*POLICY_TYPES)
        ),
    ] = None,
    approval_type: Annotated[
        str | None, typer.Option(help="manual or auto", callback=_choice(*APPROVAL_TYPES))
    ] = None,
    limit: Limit = None,
    server: Server = None,
    as_json: Json = False,
) -> None:
    kind = type.replace("-", "_") if type else None
    rows = _list(
        server, lambda api: api.policies(type=kind, approval_type=approval_type, limit=limit)
    )
    show(rows, as_json, columns=POLICY_COLUMNS)


@policy_app.command("show")
def policy_show(policy_id: str, server: Server = None, as_json: Json = False) -> None:
    policy_id = _id(policy_id, "policy id")
    with client(server) as api:
        show(api.get_policy(policy_id).raw, as_json)


@policy_app.command("set")
def policy_set(
    policy_id: str,
    approval_type: Annotated[
        str | None, typer.Option(help="manual or auto", callback=_choice(*APPROVAL_TYPES))
    ] = None,
    approver_group: Annotated[str | None, typer.Option()] = None,
    eligible: Annotated[list[str] | None, typer.Option()] = None,
    approvals_required: Annotated[int | None, typer.Option(min=1, max=10)] = None,
    max_duration_hours: Annotated[int | None, typer.Option(min=1)] = None,
    require_ticket: Annotated[
        bool | None, typer.Option("--require-ticket/--no-require-ticket")
    ] = None,
    server: Server = None,
    as_json: Json = False,
) -> None:
    """Set-ElevatedAccessApprovalPolicy."""
    users, groups = _eligible(server, eligible) if eligible is not None else (None, None)
    policy_id = _id(policy_id, "policy id")
    with client(server) as api:
        changed = api.set_policy(
            policy_id,
            approval_type=approval_type,
            approver_group=approver_group,
            eligible_users=users,
            eligible_groups=groups,
            approvals_required=approvals_required,
            max_duration_hours=max_duration_hours,
            require_ticket=require_ticket,
        )
    show(changed.raw, as_json)


@policy_app.command("remove")
def policy_remove(policy_id: str, server: Server = None, as_json: Json = False) -> None:
    """Remove-ElevatedAccessApprovalPolicy -Identity ID."""
    policy_id = _id(policy_id, "policy id")
    with client(server) as api:
        show(api.remove_policy(policy_id).raw, as_json)


# ---------------------------------------------------------------- requests
request_app = typer.Typer(help="Access requests.", no_args_is_help=True)


@request_app.command("new")
def request_new(
    reason: Annotated[str, typer.Option()],
    task: TaskOpt = None,
    role: RoleOpt = None,
    role_group: RoleGroupOpt = None,
    duration_hours: Annotated[int, typer.Option(min=1)] = 4,
    server: Server = None,
    as_json: Json = False,
) -> None:
    """New-ElevatedAccessRequest."""
    kind, target = _target(task, role, role_group)
    with client(server) as api:
        doc = api.request_access(
            type=kind, target=target, reason=reason, duration_hours=duration_hours
        ).raw
    show(
        doc,
        as_json,
        fields=[
            "id",
            "status",
            "type",
            "target",
            "duration_hours",
            "pending_until",
            "valid_until",
            "authorization_id",
        ],
    )


@request_app.command("list")
def request_list(
    status: Annotated[
        str | None, typer.Option(help=", ".join(STATUSES), callback=_choice(*STATUSES))
    ] = None,
    mine: Annotated[bool, typer.Option()] = False,
    requester: Annotated[str | None, typer.Option()] = None,
    target: Annotated[str | None, typer.Option(help="Search the target.")] = None,
    access: Annotated[
        str | None,
        typer.Option(
            help="Only this kind of request: " + ", ".join(ACCESS_KINDS),
            callback=_choice(*ACCESS_KINDS),
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Stop after N requests.")] = None,
    server: Server = None,
    as_json: Json = False,
) -> None:
    """Get-ElevatedAccessRequest (--access customer-lockbox: your Customer Lockbox requests)."""
    kind = access.replace("-", "_") if access else None
    rows = _list(
        server,
        lambda api: api.requests(
            status=status, mine=mine, requester=requester, target=target, access=kind, limit=limit
        ),
    )
    columns = {"customer_lockbox": LOCKBOX_COLUMNS, "data_access": DATA_REQUEST_COLUMNS}
    show(rows, as_json, columns=columns.get(kind or "", REQUEST_COLUMNS))


@request_app.command("show")
def request_show(request_id: str, server: Server = None, as_json: Json = False) -> None:
    request_id = _id(request_id, "request id")
    with client(server) as api:
        doc = api.get_request(request_id).raw
    if as_json:
        output.emit_json(doc)
        return
    shown = ("reviews", "signature", "still_present_in")
    output.record({k: v for k, v in doc.items() if k not in shown})
    # The grant is over, yet a connector could not take the access away.
    _alarm(f"still present in {where}" for where in doc.get("still_present_in", ()))
    if doc["reviews"]:
        typer.echo("reviews:")
        output.table(doc["reviews"], ["approver", "decision", "comment", "at"])


def _decide(
    request_id: str, verb: str, comment: str | None, server: str | None, as_json: bool
) -> None:
    request_id = _id(request_id, "request id")
    with client(server) as api:
        if verb == "approve":
            decided = api.approve(request_id, comment)
        elif verb == "deny":
            decided = api.deny(request_id, comment)
        else:
            decided = api.cancel(request_id)
    fields = ["id", "status", "requester", "target", "approved_at", "valid_until"]
    if decided.application is not None:  # a data access request: the grant is the application's
        fields.insert(3, "application")
    show(decided.raw, as_json, fields=fields)


@request_app.command("approve")
def request_approve(
    request_id: str,
    comment: Annotated[str, typer.Option()],
    server: Server = None,
    as_json: Json = False,
) -> None:
    """Approve-ElevatedAccessRequest."""
    _decide(request_id, "approve", comment, server, as_json)


@request_app.command("deny")
def request_deny(
    request_id: str,
    comment: Annotated[str, typer.Option()],
    server: Server = None,
    as_json: Json = False,
) -> None:
    """Deny-ElevatedAccessRequest."""
    _decide(request_id, "deny", comment, server, as_json)


@request_app.command("cancel")
def request_cancel(request_id: str, server: Server = None, as_json: Json = False) -> None:
    _decide(request_id, "cancel", None, server, as_json)


@request_app.command("verify")
def request_verify(request_id: str, server: Server = None, as_json: Json = False) -> None:
    """Check a request against the signature made when it was submitted (exit 1 if altered)."""
    request_id = _id(request_id, "request id")
    with client(server) as api:
        verified = api.verify_request(request_id)
    show(verified.raw, as_json)
    if not verified.signature_valid:
        raise typer.Exit(output.REFUSED)


# ---------------------------------------------------------------- authorizations
authorization_app = typer.Typer(help="Authorizations (grants).", no_args_is_help=True)


@authorization_app.command("list")
def authorization_list(
    user: Annotated[str | None, typer.Option(help="A user, or * for everyone.")] = None,
    active: Annotated[
        bool, typer.Option(help="Only the grants active now, soonest ending first.")
    ] = False,
    limit: Limit = None,
    server: Server = None,
    as_json: Json = False,
) -> None:
    """Get-ElevatedAccessAuthorization: your grants (another user's, or everyone's, with
    jitpam\\Get-ElevatedAccessRequest), newest first. A grant that is over while a connector
    could not take its access away is called out below the table."""
    rows = _list(server, lambda api: api.authorizations(user=user, active=active, limit=limit))
    show(rows, as_json, columns=AUTH_COLUMNS)
    if not as_json:
        _alarm(
            f"still present in {where}: {r['user']}'s grant {r['id']} ({r['target']})"
            for r in rows
            for where in r.get("still_present_in", ())
        )


@authorization_app.command("revoke")
def authorization_revoke(
    authorization_id: Annotated[
        str, typer.Argument(help="The authorization's id or its request's.")
    ],
    comment: Annotated[str, typer.Option()],
    server: Server = None,
    as_json: Json = False,
) -> None:
    """Revoke-ElevatedAccessAuthorization."""
    authorization_id = _id(authorization_id, "authorization id")
    with client(server) as api:
        show(api.revoke(authorization_id, comment).raw, as_json)


# ---------------------------------------------------------------- audit
audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)


@audit_app.command("search")
def audit_search(
    since: Annotated[
        str | None, typer.Option(help="ISO 8601; naive means UTC.", callback=_instant)
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="ISO 8601; naive means UTC.", callback=_instant)
    ] = None,
    actor: Annotated[str | None, typer.Option()] = None,
    operation: Annotated[str | None, typer.Option()] = None,
    outcome: Annotated[
        str | None, typer.Option(help="success or refused", callback=_choice(*OUTCOMES))
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Stop after N records (default: all of them).")
    ] = None,
    server: Server = None,
    as_json: Json = False,
) -> None:
    """Search the audit log, newest first, following the server's pages to the end."""
    rows = _list(
        server,
        lambda api: api.audit(
            since=since,
            until=until,
            actor=actor,
            operation=operation,
            outcome=outcome,
            limit=limit,
        ),
    )
    show(rows, as_json, columns=["seq", "at", "actor", "operation", "target", "outcome"])


@audit_app.command("export")
def audit_export(
    format: Annotated[
        str, typer.Option(help="jsonl or csv", callback=_choice(*EXPORT_FORMATS))
    ] = "jsonl",
    output_file: Annotated[Path | None, typer.Option("--output")] = None,
    server: Server = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the records as one JSON list (with jsonl).")
    ] = False,
) -> None:
    """Export the whole audit log as JSON lines or CSV (to --output, or stdout)."""
    if as_json and format != "jsonl":
        output.fail("--json exports JSON; it cannot be combined with --format csv", output.USAGE)
    with client(server) as api:
        text = api.export_audit(format=format)
    if as_json:
        text = json.dumps(_json_lines(text), indent=2, sort_keys=True) + "\n"
    if output_file:
        output_file.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def _json_lines(text: str) -> list[Any]:
    try:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError:
        output.fail("the server's export is not JSON lines")


@audit_app.command("checkpoint")
def audit_checkpoint(
    output_file: Annotated[Path | None, typer.Option("--output")] = None,
    server: Server = None,
    as_json: Json = False,
) -> None:
    """Sign the chain head; keep the file outside the database to detect truncation later."""
    with client(server) as api:
        doc = api.audit_checkpoint().raw
    if output_file:
        output_file.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    show(doc, as_json)


@audit_app.command("verify")
def audit_verify(
    checkpoint: Annotated[Path | None, typer.Option()] = None,
    server: Server = None,
    as_json: Json = False,
) -> None:
    """Verify the audit chain (exit 1 when it is broken)."""
    signed = None
    if checkpoint:
        try:
            signed = json.loads(checkpoint.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            output.fail(f"cannot read the checkpoint {checkpoint}: {exc}", output.USAGE)
    with client(server) as api:
        report = api.verify_audit(checkpoint=signed)
    show(report.raw, as_json)
    if not report.ok:
        raise typer.Exit(output.REFUSED)


# ---------------------------------------------------------------- webhooks and the outbox
webhook_app = typer.Typer(help="Webhook endpoints for notifications.", no_args_is_help=True)
# The server's event types an endpoint may subscribe to (all but webhook.test, which a test
# delivery sends); written out, as the client knows the server only through its API
# (tests/unit/test_webhook_events.py holds it to the server's list).
EVENTS = (
    "request.created",
    "request.approved",
    "request.auto_approved",
    "request.denied",
    "request.expired",
    "authorization.revoked",
    "authorization.expiring",
    "system_account.exempted",
    "connector.failing",
    "lockbox.created",
    "lockbox.auto_approved",
    "lockbox.approved",
    "lockbox.denied",
    "lockbox.cancelled",
    "lockbox.revoked",
    "lockbox.expired",
)


@webhook_app.command("add")
def webhook_add(
    url: str,
    event: Annotated[
        list[str], typer.Option(help=f"Event type (repeatable): {', '.join(EVENTS)}.")
    ],
    format: Annotated[str, typer.Option(help="json or slack")] = "json",
    server: Server = None,
    as_json: Json = False,
) -> None:
    """Add an endpoint; its signing secret is printed once."""
    bad = [e for e in event if e not in EVENTS]
    if bad:
        output.fail(f"unknown event type {bad[0]!r}: one of {', '.join(EVENTS)}", output.USAGE)
    if format not in ("json", "slack"):
        output.fail("--format must be json or slack", output.USAGE)
    with client(server) as api:
        show(api.add_webhook(url, events=event, format=format).raw, as_json)


@webhook_app.command("list")
def webhook_list(server: Server = None, as_json: Json = False) -> None:
    hooks = _list(server, lambda api: api.webhooks())
    show(hooks, as_json, columns=["id", "url", "events", "format"])


@webhook_app.command("remove")
def webhook_remove(webhook_id: str, server: Server = None, as_json: Json = False) -> None:
    webhook_id = _id(webhook_id, "webhook")
    with client(server) as api:
        show(api.remove_webhook(webhook_id).raw, as_json)


@webhook_app.command("test")
def webhook_test(webhook_id: str, server: Server = None, as_json: Json = False) -> None:
    """Queue a signed test delivery to the endpoint."""
    webhook_id = _id(webhook_id, "webhook")
    with client(server) as api:
        show(api.test_webhook(webhook_id).raw, as_json)


outbox_app = typer.Typer(help="Notifications waiting, delivered or dead.", no_args_is_help=True)


@outbox_app.command("list")
def outbox_list(
    state: Annotated[str | None, typer.Option(help="pending, delivered or dead")] = None,
    limit: Annotated[int | None, typer.Option(min=1)] = None,
    server: Server = None,
    as_json: Json = False,
) -> None:
    if state is not None and state not in ("pending", "delivered", "dead"):
        output.fail("--state must be pending, delivered or dead", output.USAGE)
    rows = _list(server, lambda api: api.outbox(state=state, limit=limit))
    show(
        rows,
        as_json,
        columns=["id", "channel", "event", "state", "attempts", "next_attempt_at", "last_error"],
    )


@outbox_app.command("retry")
def outbox_retry(message_id: str, server: Server = None, as_json: Json = False) -> None:
    """Put a message back in line now (after fixing what made it fail)."""
    message_id = _id(message_id, "message")
    with client(server) as api:
        show(api.retry_message(message_id).raw, as_json)


# ---------------------------------------------------------------- connectors
connector_app = typer.Typer(
    help="Connectors: grants made real in PostgreSQL or LDAP, and taken away again.",
    no_args_is_help=True,
)
CONNECTOR_COLUMNS = [
    "health",
    "name",
    "kind",
    "failures",
    "still_present",
    "drift",
    "last_success_at",
    "last_error",
]
ConnectorName = Annotated[str, typer.Argument(help="The connector's name (its file's name).")]


def _still_present_lines(doc: dict[str, Any]) -> list[str]:
    return [
        f"still present in {doc['name']}: {f['member']} in {f['target']}"
        + (f" (for {f['user']})" if f.get("user") else "")
        + f" since {f['since']}"
        for f in doc["still_present"]
    ]


def _alarm(lines: Iterable[str]) -> None:
    """Lines about access that should be gone: marked, and in red on a terminal."""
    for line in lines:
        typer.secho(f"! {line}", fg=typer.colors.RED, bold=True)


def _connector_row(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "still_present": len(doc["still_present"]), "drift": len(doc["drift"])}


def _connector_details(doc: dict[str, Any]) -> None:
    typer.echo(f"{doc['name']} ({doc['kind'] or 'no valid configuration'}): {doc['health']}")
    _alarm(_still_present_lines(doc))
    bindings = [f"{b['kind']} {b['name']} -> {b['target']}" for b in doc["bindings"]]
    facts = {
        "problem": doc["problem"],
        "failures in a row": doc["failures"],
        "last error": doc["last_error"],
        "last run": doc["last_run_at"] or "none yet",
        "last success": doc["last_success_at"] or "never",
        "next attempt": doc["next_attempt_at"],
        "bindings": bindings,
        "recorded": f"{doc['added']} added by jitpam, {doc['pre_existing']} there before",
    }
    output.record({k: v for k, v in facts.items() if v is not None})
    adds = [f for f in doc["failing"] if f["change"] == "add"]
    if adds:
        typer.echo("adds failing:")
        output.table(adds, ["target", "member", "user", "error", "since"])
    if doc["drift"]:
        typer.echo("drift (members no grant needs, not added by jitpam):")
        output.table(doc["drift"], ["target", "member"])
    if "records" in doc:
        typer.echo("records:")
        output.table(doc["records"], ["target", "member", "origin", "user", "recorded_at"])


@connector_app.command("list")
def connector_list(server: Server = None, as_json: Json = False) -> None:
    """The organization's connectors, health first; a removal that failed (access still
    present) is called out below the table."""
    rows = _list(server, lambda api: api.connectors())
    if as_json:
        output.emit_json(rows)
        return
    output.table([_connector_row(r) for r in rows], CONNECTOR_COLUMNS)
    _alarm(line for r in rows for line in _still_present_lines(r))


@connector_app.command("status")
def connector_status(
    name: Annotated[
        str | None,
        typer.Argument(help="One connector, with what jitpam recorded in it (default: all)."),
    ] = None,
    server: Server = None,
    as_json: Json = False,
) -> None:
    """Each connector in detail: health, failures, what is still present, drift."""
    if name is None:
        docs = _list(server, lambda api: api.connectors())
    else:
        name = _named(name, "connector")
        with client(server) as api:
            docs = [api.connector(name).raw]
    if as_json:
        output.emit_json(docs if name is None else docs[0])
        return
    if not docs:
        typer.echo("(none)")
    for i, doc in enumerate(docs):
        if i:
            typer.echo("")
        _connector_details(doc)


@connector_app.command("reconcile")
def connector_reconcile(
    name: ConnectorName,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what a pass would change; change nothing.")
    ] = False,
    server: Server = None,
    as_json: Json = False,
) -> None:
    """Run a pass of the connector now (audited as yours). Exits 1 when the pass failed in
    whole or in part."""
    name = _named(name, "connector")
    with client(server) as api:
        report = api.reconcile_connector(name, dry_run=dry_run).raw
    failed = report["error"] is not None or any(not o["done"] for o in report["outcomes"])
    if as_json:
        output.emit_json(report)
    else:
        _pass_report(report)
    if failed:
        raise typer.Exit(output.REFUSED)


def _pass_report(report: dict[str, Any]) -> None:
    plan = report["plan"]
    if report["error"] is not None:
        typer.secho(f"! the pass failed: {report['error']}", fg=typer.colors.RED, bold=True)
    if plan is not None:
        changes = [
            {"plan": key, **m}
            for key in ("adds", "removes", "adopt", "forget", "drift")
            for m in plan[key]
        ]
        heading = "plan (dry run: nothing was changed):" if report["dry_run"] else "plan:"
        typer.echo(heading if changes else "nothing to change")
        if changes:
            output.table(changes, ["plan", "target", "member"])
    if report["outcomes"]:
        typer.echo("changes:")
        rows = [{**o, "result": "done" if o["done"] else "failed"} for o in report["outcomes"]]
        output.table(rows, ["change", "target", "member", "result", "error"])
    for refused in report["unmappable"]:
        typer.echo(f"not mapped: {refused}")


task_app = typer.Typer(
    help="The tasks jitpam runs for you (jitpam run TASK).", no_args_is_help=True
)


@task_app.command("list")
def task_list(server: Server = None, as_json: Json = False) -> None:
    """The tasks this organization's server runs (defined in its configuration)."""
    show(
        _list(server, lambda api: api.task_definitions()),
        as_json,
        columns=["task", "executor", "timeout_seconds", "description"],
    )


@task_app.command("show")
def task_show(task: str, server: Server = None, as_json: Json = False) -> None:
    """A task's parameters and limits."""
    task = _named(task, "task")
    with client(server) as api:
        show(api.get_task_definition(task).raw, as_json)


# ---------------------------------------------------------------- organization settings
config_app = typer.Typer(
    help="Settings: the organization's (set) and the server's (show).", no_args_is_help=True
)


@config_app.command("set")
def config_set(
    ticket_pattern: Annotated[
        str | None, typer.Option(help="The regular expression a ticketed reason must contain.")
    ] = None,
    clear_ticket_pattern: Annotated[bool, typer.Option()] = False,
    max_policies: Annotated[int | None, typer.Option(min=1)] = None,
    clear_max_policies: Annotated[bool, typer.Option()] = False,
    pending_hours: Annotated[int | None, typer.Option(min=1, max=720)] = None,
    lockbox_approval_required: Annotated[
        bool | None,
        typer.Option(
            "--lockbox-approval-required/--no-lockbox-approval-required",
            help="Whether your approvers must approve every Customer Lockbox request of the "
            "operator's engineers (off: approved automatically, still filed and audited).",
        ),
    ] = None,
    lockbox_max_hours: Annotated[
        int | None, typer.Option(min=1, max=4, help="The longest lockbox access you allow.")
    ] = None,
    scim_approver_group: Annotated[
        list[str] | None,
        typer.Option(
            "--scim-approver-group",
            help="An approver group whose memberships SCIM may set (repeatable; the whole set).",
        ),
    ] = None,
    clear_scim_approver_groups: Annotated[bool, typer.Option()] = False,
    server: Server = None,
    as_json: Json = False,
) -> None:
    """Set-OrganizationConfig: what is given changes."""
    with client(server) as api:
        changed = api.set_organization_config(
            ticket_pattern=ticket_pattern,
            clear_ticket_pattern=clear_ticket_pattern,
            max_policies=max_policies,
            clear_max_policies=clear_max_policies,
            pending_hours=pending_hours,
            lockbox_approval_required=lockbox_approval_required,
            lockbox_max_hours=lockbox_max_hours,
            scim_approver_groups=scim_approver_group or None,
            clear_scim_approver_groups=clear_scim_approver_groups,
        )
    show(changed.raw, as_json)


# ---------------------------------------------------------------- applications
application_app = typer.Typer(
    help="Applications: installing one files its data access requests.", no_args_is_help=True
)


@application_app.command("install")
def application_install(
    name: Annotated[str, typer.Argument(help="The application's name, or its account's UPN.")],
    service: Annotated[str, typer.Option(help="The service of the data scopes: Office365.")],
    scope: Annotated[
        list[str], typer.Option("--scope", help="A data scope of the service (repeatable).")
    ],
    data: Annotated[
        list[str],
        typer.Option(
            "--data",
            help="The data covered, kind:name: group:Sales, mailbox:ceo@contoso.com, user:…, "
            "site:… (repeatable).",
        ),
    ],
    reason: Annotated[str, typer.Option()],
    hours: Annotated[int | None, typer.Option("--hours", min=1, help="How long.")] = None,
    server: Server = None,
    as_json: Json = False,
) -> None:
    """Install-Application (jitpam\\Application Installer): register the application's account
    and file a data access request per scope, in your name; approvers decide them as any
    request."""
    name = _named(name, "application's name")
    with client(server) as api:
        installed = api.install_application(
            name,
            service=service,
            scopes=scope,
            resources=data,
            reason=reason,
            duration_hours=hours,
        )
    if as_json:
        output.emit_json(installed.raw)
        return
    typer.echo(f"application  {installed.application.upn}")
    output.table([r.raw for r in installed.requests], ["id", "status", "target", "valid_until"])


# ---------------------------------------------------------------- Customer Lockbox
lockbox_app = typer.Typer(
    help="Customer Lockbox: the operator's engineers ask a customer before touching its data.",
    no_args_is_help=True,
)
LOCKBOX_FIELDS = [
    "id",
    "requested_access",
    "status",
    "customer",
    "requester",
    "service",
    "case_reference",
    "duration_hours",
    "pending_until",
    "decided_by",
    "valid_until",
]


@lockbox_app.command("request")
def lockbox_request(
    customer: Annotated[str, typer.Argument(help="The customer organization.")],
    service: Annotated[
        str, typer.Option(help="Exchange, SharePoint, Teams, EOP or a scope of its catalog.")
    ],
    reason: Annotated[str, typer.Option()],
    case: Annotated[str, typer.Option("--case", help="The support case reference.")],
    hours: Annotated[int, typer.Option("--hours", min=1, max=4, help="How long (1 to 4).")] = 1,
    server: Server = None,
    as_json: Json = False,
) -> None:
    """New-AccessToCustomerDataRequest (the operator's jitpam\\Lockbox Requester)."""
    customer = _named(customer, "customer organization")
    with client(server) as api:
        filed = api.file_lockbox_request(
            customer, service=service, reason=reason, case_reference=case, duration_hours=hours
        )
    show(filed.raw, as_json, fields=LOCKBOX_FIELDS)


@lockbox_app.command("list")
def lockbox_list(
    status: Annotated[
        str | None,
        typer.Option(help=", ".join(STATUSES), callback=_choice(*STATUSES)),
    ] = None,
    created_after: Annotated[
        str | None, typer.Option(help="ISO 8601; naive means UTC.", callback=_instant)
    ] = None,
    request_id: Annotated[str | None, typer.Option("--id", help="One request's id.")] = None,
    limit: Limit = None,
    server: Server = None,
    as_json: Json = False,
) -> None:
    """Get-AccessToCustomerDataRequest: those addressed to your organization (or, for the
    operator, those it filed), newest first."""
    wanted = _id(request_id, "lockbox request id") if request_id is not None else None
    rows = _list(
        server,
        lambda api: api.lockbox_requests(
            status=status, created_after=created_after, request_id=wanted, limit=limit
        ),
    )
    show(rows, as_json, columns=LOCKBOX_COLUMNS)


@lockbox_app.command("show")
def lockbox_show(request_id: str, server: Server = None, as_json: Json = False) -> None:
    """One lockbox request, as your side of it sees it."""
    request_id = _id(request_id, "lockbox request id")
    with client(server) as api:
        show(api.lockbox_request(request_id).raw, as_json)


def _lockbox_decide(
    request_id: str, decision: str, comment: str | None, server: str | None, as_json: bool
) -> None:
    request_id = _id(request_id, "lockbox request id")
    with client(server) as api:
        decided = api.decide_lockbox_request(request_id, decision, comment=comment)
    show(decided.raw, as_json, fields=LOCKBOX_FIELDS)


Comment = Annotated[str | None, typer.Option()]


@lockbox_app.command("approve")
def lockbox_approve(
    request_id: str, comment: Comment = None, server: Server = None, as_json: Json = False
) -> None:
    """Set-AccessToCustomerDataRequest -ApprovalDecision Approve (the customer's approver)."""
    _lockbox_decide(request_id, "Approve", comment, server, as_json)


@lockbox_app.command("deny")
def lockbox_deny(
    request_id: str, comment: Comment = None, server: Server = None, as_json: Json = False
) -> None:
    """Set-AccessToCustomerDataRequest -ApprovalDecision Deny (the customer's approver)."""
    _lockbox_decide(request_id, "Deny", comment, server, as_json)


@lockbox_app.command("cancel")
def lockbox_cancel(
    request_id: str, comment: Comment = None, server: Server = None, as_json: Json = False
) -> None:
    """Set-AccessToCustomerDataRequest -ApprovalDecision Cancel (the engineer who filed it)."""
    _lockbox_decide(request_id, "Cancel", comment, server, as_json)


@lockbox_app.command("revoke")
def lockbox_revoke(
    request_id: str, comment: Comment = None, server: Server = None, as_json: Json = False
) -> None:
    """Revoke-AccessToCustomerDataRequest: end approved access now."""
    request_id = _id(request_id, "lockbox request id")
    with client(server) as api:
        revoked = api.revoke_lockbox_request(request_id, comment)
    show(revoked.raw, as_json, fields=[*LOCKBOX_FIELDS, "revoked_at", "revoked_by"])
