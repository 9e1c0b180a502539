"""``jitpam``: server commands open the database; client commands talk to a server."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from jitpam.cli import client as cmd
from jitpam.cli import output, session
from jitpam.cli.output import show
from jitpam.cli.ps import command as ps_command
from jitpam.sdk import UNREACHABLE, ApiError, Client, TaskRun, Unreachable

app = typer.Typer(
    name="jitpam",
    help="Just-in-time privileged access management.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
for name, sub in (
    ("user", cmd.user_app),
    ("group", cmd.group_app),
    ("role", cmd.role_app),
    ("role-group", cmd.role_group_app),
    ("catalog", cmd.catalog_app),
    ("token", cmd.token_app),
    ("control", cmd.control_app),
    ("policy", cmd.policy_app),
    ("request", cmd.request_app),
    ("authorization", cmd.authorization_app),
    ("audit", cmd.audit_app),
    ("webhook", cmd.webhook_app),
    ("outbox", cmd.outbox_app),
    ("connector", cmd.connector_app),
    ("task", cmd.task_app),
    ("config", cmd.config_app),
    ("lockbox", cmd.lockbox_app),
    ("app", cmd.application_app),
):
    app.add_typer(sub, name=name)

Json = cmd.Json
Server = cmd.Server


@app.command()
def login(
    user: Annotated[str, typer.Option(help="Your UPN.")],
    server: Server = None,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from stdin.")] = False,
    as_json: Json = False,
) -> None:
    """Sign in and keep the token under $JITPAM_CONFIG_DIR (mode 600)."""
    url = session.server_url(server)
    password = cmd._read_secret(password_stdin, "Password")
    with Client(url) as api:
        issued = api.login(user, password)
    path = session.save(server=url, token=issued.token, user=issued.user)
    show(
        {
            "user": issued.user,
            "server": url,
            "expires_at": issued.expires_at,
            "saved_to": str(path),
        },
        as_json,
    )


@app.command()
def logout(as_json: Json = False) -> None:
    """Forget the saved token (revoking it on the server first, when it answers)."""
    creds = session.saved()
    if creds.get("token"):
        try:
            with Client(str(creds.get("server")), str(creds["token"])) as api:
                api.logout()
        except (ApiError, Unreachable):
            pass  # the token expires anyway; forgetting it here is what the user asked for
    show({"signed_out": session.forget()}, as_json)


@app.command()
def passwd(
    password_stdin: Annotated[
        bool, typer.Option(help="Read current and new password from stdin, a line each.")
    ] = False,
    server: Server = None,
    as_json: Json = False,
) -> None:
    """Change your own password."""
    current = cmd._read_secret(password_stdin, "Current password")
    new = cmd._read_secret(password_stdin, "New password")
    with session.client(server) as api:
        api.change_password(password=new, current_password=current)
    show({"password_changed": True}, as_json)


@app.command()
def check(
    task: Annotated[
        str | None, typer.Option(help="Scope\\Name, or a bare name when unambiguous.")
    ] = None,
    organization: Annotated[
        str | None,
        typer.Option(help="Customer Lockbox: the customer organization (with --service)."),
    ] = None,
    service: Annotated[
        str | None,
        typer.Option(
            help="Customer Lockbox: the customer's service (Exchange, ...); data access: the "
            "data scope's service (Office365)."
        ),
    ] = None,
    scope: Annotated[
        str | None, typer.Option(help="Data access: the data scope (Mail.Read), with --resource.")
    ] = None,
    resource: Annotated[
        str | None,
        typer.Option(help="Data access: the data, kind:name (mailbox:ceo@contoso.com)."),
    ] = None,
    user: Annotated[
        str | None, typer.Option(help="Ask about another user (jitpam\\Access Checker).")
    ] = None,
    server: Server = None,
    as_json: Json = False,
) -> None:
    """May this user run this task now (--task), reach this service of this customer's data
    (--organization and --service: Customer Lockbox), or may this application use this data
    scope on this resource (--service, --scope and --resource)? Exit 0 when allowed, 3 when
    denied."""
    data = scope is not None or resource is not None
    kinds = (task is not None) + (organization is not None) + data
    # One kind of check; a service with every kind but a task's; a scope with a resource.
    if (
        kinds != 1
        or (service is None) != (task is not None)
        or (data and (scope is None or resource is None))
    ):
        output.fail(
            "give --task; or --organization and --service; or --service, --scope and --resource",
            output.USAGE,
        )
    with session.client(server) as api:
        if task is not None:
            decision = api.check(task, user)
        elif data:
            decision = api.check_data(user, str(service), str(scope), str(resource))
        else:
            decision = api.check_customer_data(user, str(organization), str(service))
    if decision.reason == UNREACHABLE:  # the SDK's denial for no answer: not the server's
        output.fail(decision.detail, output.UNREACHABLE)
    if as_json:
        output.emit_json(decision.raw)
    else:
        verdict = "allowed" if decision.allowed else "denied"
        granted = decision.authorization_id
        what = "lockbox request" if organization is not None else "authorization"
        suffix = f" ({what} {granted})" if granted else ""
        typer.echo(f"{verdict}: {decision.reason}{suffix}")
    if not decision.allowed:
        raise typer.Exit(output.DENIED)


@app.command()
def run(
    task: Annotated[str, typer.Argument(help="Scope\\Name, or a bare name when unambiguous.")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE (repeatable).")
    ] = None,
    server: Server = None,
    as_json: Json = False,
) -> None:
    """Have the server run a task for you. Exits with the task's own exit code (0 or 1 for an
    HTTP task), 3 when your check denies it (the task never starts)."""
    values: dict[str, str | int | bool] = {}
    for item in param or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            output.fail(f"--param takes NAME=VALUE, not {item!r}", output.USAGE)
        if name.strip() in values:
            output.fail(f"--param {name.strip()} is given twice", output.USAGE)
        values[name.strip()] = value
    task = cmd._named(task, "task")
    with session.client(server) as api:
        try:
            done = api.run_task(task, values)  # waits for the end: a run is never sent twice
        except ApiError as exc:
            if exc.status == 403:
                output.fail(f"denied: {exc.detail}", output.DENIED)
            raise
    if as_json:
        output.emit_json(done.raw)
    else:
        if done.output:
            sys.stdout.write(done.output if done.output.endswith("\n") else done.output + "\n")
        if done.error:
            typer.echo(f"jitpam: {done.error}", err=True)
        if done.outlived_grant:
            typer.echo("jitpam: the authorization ended while the task ran", err=True)
    raise typer.Exit(_exit_code(done))


@app.command("ps")
def ps(
    line: Annotated[
        str | None, typer.Argument(help="One cmdlet line (none: read lines from stdin).")
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Run each line of this file.")
    ] = None,
    server: Server = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print each line's objects as one JSON array.")
    ] = False,
) -> None:
    """Run Microsoft 365 PAM cmdlets (Enable-ElevatedAccessControl, New-ElevatedAccessRequest,
    ...) as the signed-in user, with | select, where, fl and ft. Stops at the first failing line."""
    if line is not None and file is not None:
        output.fail("give a line or --file, not both", output.USAGE)
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            output.fail(f"cannot read {file}: {exc}", output.USAGE)
    else:
        text = sys.stdin.read() if line is None else line
    lines = ps_command.lines_of(text)
    code = ps_command.run(
        lambda: session.client(server),
        lines,
        as_json=as_json,
        write=sys.stdout.write,
        error=lambda message: typer.echo(message, err=True),
        several=line is None,
    )
    raise typer.Exit(code)


def _exit_code(done: TaskRun) -> int:
    """The task's own exit code; an HTTP task's 2xx is 0, anything else (or no answer) is 1."""
    if done.exit_code is not None:
        return int(done.exit_code) if 0 <= int(done.exit_code) <= 255 else 1
    return 0 if done.outcome == "succeeded" else 1


def _register_server_commands() -> None:
    from jitpam.cli import server as server_commands

    server_commands.register(app)
    server_commands.register_worker(app)


_register_server_commands()


def main(argv: list[str] | None = None) -> Any:
    """Run the command line; errors become one line on stderr and the documented exit code."""
    try:
        return app(args=argv, standalone_mode=True)
    except ApiError as exc:
        code = output.NOT_PERMITTED if exc.status in (401, 403) else output.REFUSED
        message = output.first_line(exc.detail) or exc.code
        typer.echo(f"jitpam: {message} ({exc.status})", err=True)
        sys.exit(code)
    except Unreachable as exc:
        typer.echo(f"jitpam: {output.first_line(str(exc))}", err=True)
        sys.exit(output.UNREACHABLE)
    except Exception as exc:  # one line for the user, never a traceback
        detail = output.first_line(str(exc))
        typer.echo(
            f"jitpam: unexpected error: {type(exc).__name__}" + (f": {detail}" if detail else ""),
            err=True,
        )
        sys.exit(output.REFUSED)
