"""Server commands: they open the database directly (``jitpam init``, ``serve``, ...).

What they need (the database layer, the services) is imported when one of them runs, so the
client commands, which share the ``jitpam`` program, start without loading any of it.
"""

from __future__ import annotations

import gc
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from jitpam.cli import output
from jitpam.cli.output import show

if TYPE_CHECKING:
    from jitpam.bootstrap import Runtime
    from jitpam.settings import Settings

Db = Annotated[
    str | None, typer.Option("--db", help="Database URL (default: SQLite in the data directory).")
]
Config = Annotated[
    str | None, typer.Option("--config", help="Settings file (default: $JITPAM_CONFIG).")
]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document and nothing else.")]


def _settings(config: str | None, **overrides: Any) -> Settings:
    from jitpam.settings import SettingsError, load_settings

    try:
        return load_settings(config, **overrides)
    except SettingsError as exc:
        output.fail(str(exc), output.USAGE)


def _runtime(settings: Settings, *, serving: bool = False) -> Runtime:
    """The runtime of a command; ``serving``: of the server, which also sets up OIDC (and may
    fetch the issuer's discovery document, failing here with its reason)."""
    from jitpam.bootstrap import build_runtime
    from jitpam.domain.errors import TaskDefinitionInvalid
    from jitpam.services import organizations
    from jitpam.settings import SettingsError

    try:
        runtime = build_runtime(settings, identity_provider=serving)
    except SettingsError as exc:
        output.fail(str(exc), output.USAGE)
    except TaskDefinitionInvalid as exc:
        output.fail("task definitions: " + "; ".join(exc.problems), output.USAGE)
    except Exception as exc:
        output.fail(f"cannot open the database: {exc}")
    organizations.refresh_builtin_catalog(runtime.ctx)
    return runtime


def _create_org(
    runtime: Runtime, name: str, admin: str, password_stdin: bool, catalog: list[str]
) -> dict[str, str]:
    from jitpam.domain.errors import JitpamError
    from jitpam.domain.tokens import check_password
    from jitpam.services import auth, organizations
    from jitpam.services.context import Caller

    ctx = runtime.ctx
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    try:
        if password is not None:
            check_password(password)  # before anything is created: a retry must find nothing
        org, admin_user = organizations.create_organization(
            ctx,
            name=name,
            admin_upn=admin,
            admin_display_name=admin.split("@")[0],
            catalogs=tuple(catalog),
        )
        caller = Caller(org.id, admin_user.id)
        if password is not None:
            auth.set_password(ctx, caller=caller, upn=admin_user.upn, password=password)
        issued = auth.create_token(ctx, caller=caller, name="init", expires_in_days=30)
    except JitpamError as exc:
        output.fail(exc.message)
    return {
        "organization": org.name,
        "admin": admin_user.upn,
        "token": issued.secret,
        "token_expires_at": issued.token.expires_at.isoformat(),
    }


def register(app: typer.Typer) -> None:
    @app.command()
    def init(
        org: Annotated[str, typer.Option("--org", help="The organization's name (lowercase).")],
        admin: Annotated[str, typer.Option("--admin", help="The first administrator's UPN.")],
        db: Db = None,
        config: Config = None,
        password_stdin: Annotated[
            bool, typer.Option(help="Read the admin's password from stdin.")
        ] = False,
        catalog: Annotated[
            list[str] | None, typer.Option(help="Shipped catalog to install (repeatable).")
        ] = None,
        as_json: Json = False,
    ) -> None:
        """Create the schema, an organization and its first admin; print an API token for them."""
        runtime = _runtime(_settings(config, database_url=db))
        try:
            show(
                _create_org(
                    runtime,
                    org,
                    admin,
                    password_stdin,
                    catalog if catalog is not None else ["exchange"],
                ),
                as_json,
            )
        finally:
            runtime.close()

    org_app = typer.Typer(help="Organizations of this installation.", no_args_is_help=True)
    app.add_typer(org_app, name="org")

    @org_app.command("create")
    def org_create(
        name: str,
        admin: Annotated[str, typer.Option("--admin")],
        db: Db = None,
        config: Config = None,
        password_stdin: Annotated[bool, typer.Option()] = False,
        as_json: Json = False,
    ) -> None:
        """Another organization on the same installation, with its own first admin."""
        runtime = _runtime(_settings(config, database_url=db))
        try:
            show(_create_org(runtime, name, admin, password_stdin, ["exchange"]), as_json)
        finally:
            runtime.close()

    @org_app.command("add-domain")
    def org_add_domain(
        name: str, domain: str, db: Db = None, config: Config = None, as_json: Json = False
    ) -> None:
        """Let an organization's user names use another email domain (one organization each)."""
        from jitpam.domain.errors import JitpamError
        from jitpam.services import organizations

        runtime = _runtime(_settings(config, database_url=db))
        try:
            domains = organizations.add_domain(runtime.ctx, org_name=name, domain=domain)
        except JitpamError as exc:
            output.fail(exc.message)
        finally:
            runtime.close()
        show({"organization": name, "domains": domains}, as_json)

    db_app = typer.Typer(help="The database.", no_args_is_help=True)
    app.add_typer(db_app, name="db")

    @db_app.command("upgrade")
    def db_upgrade(db: Db = None, config: Config = None, as_json: Json = False) -> None:
        """Migrate the schema to this version (under an advisory lock on PostgreSQL)."""
        from jitpam.bootstrap import migrate_database

        try:
            revision = migrate_database(_settings(config, database_url=db))
        except Exception as exc:
            output.fail(str(exc))
        show({"schema_revision": revision}, as_json)

    # ``jitpam config`` and ``jitpam lockbox`` are the client's groups (cli/client.py); the
    # commands that open the database join them here.
    from jitpam.cli.client import config_app, lockbox_app

    @lockbox_app.command("operator")
    def lockbox_operator(
        name: Annotated[
            str | None, typer.Argument(help="The organization to make the operator.")
        ] = None,
        none: Annotated[
            bool, typer.Option("--none", help="No organization is the operator any more.")
        ] = False,
        db: Db = None,
        config: Config = None,
        as_json: Json = False,
    ) -> None:
        """The installation's Customer Lockbox operator: show it, designate NAME, or --none.
        On the server only (it opens the database); every organization's audit chain records
        the change."""
        from jitpam.domain.errors import JitpamError
        from jitpam.domain.timeutil import iso
        from jitpam.services import lockbox

        if name is not None and none:
            output.fail("give an organization or --none, not both", output.USAGE)
        runtime = _runtime(_settings(config, database_url=db))
        try:
            if name is not None or none:
                lockbox.designate_operator(runtime.ctx, org_name=None if none else name)
            current = lockbox.current_operator(runtime.ctx)
        except JitpamError as exc:
            output.fail(exc.message)
        finally:
            runtime.close()
        org, since = current if current is not None else (None, None)
        show(
            {
                "operator": org.name if org is not None else None,
                "since": iso(since) if since is not None else None,
            },
            as_json,
        )

    @config_app.command("show")
    def config_show(config: Config = None, as_json: Json = False) -> None:
        """The effective settings (defaults, file, JITPAM_* variables), secrets masked."""
        show(_settings(config).masked(), as_json)

    @app.command()
    def serve(
        db: Db = None,
        host: Annotated[str | None, typer.Option()] = None,
        port: Annotated[int | None, typer.Option()] = None,
        config: Config = None,
        data_dir: Annotated[
            str | None, typer.Option(help="Where SQLite, the signing key and the demo live.")
        ] = None,
        demo_org: Annotated[
            bool, typer.Option("--demo", help="Create the demo organization 'contoso' once.")
        ] = False,
    ) -> None:
        """Run the API server (migrating the database first)."""
        import uvicorn

        from jitpam import demo
        from jitpam.bootstrap import build_worker
        from jitpam.web.app import create_server

        settings = _settings(config, database_url=db, host=host, port=port, data_dir=data_dir)
        if demo_org and not settings.tasks_dir:
            secrets_dir = settings.secrets_dir or str(settings.data_path / "demo-secrets")
            demo.ensure_demo_secrets(Path(secrets_dir))
            settings = replace(settings, tasks_dir=str(demo.TASKS_DIR), secrets_dir=secrets_dir)
        runtime = _runtime(settings, serving=True)
        if demo_org:
            created = demo.ensure_demo(runtime.ctx)
            typer.echo(
                f"demo organization '{demo.ORG}' {'created' if created else 'ready'}; sign in with:"
            )
            for u in demo.USERS:
                typer.echo(f"  {u.upn:<22} password {demo.PASSWORD}   {u.role}")
        worker = build_worker(runtime) if settings.worker_in_process else None
        url = f"http://{settings.host}:{settings.port}"
        typer.echo(f"jitpam listening on {url} (API {url}/api/v1, docs {url}/docs)")
        app = create_server(runtime, background=worker)
        settle_memory()
        try:
            uvicorn.run(
                app,
                host=settings.host,
                port=settings.port,
                log_level="warning",
                # Client addresses (sign-in throttling, audit) come from the connection unless a
                # trusted proxy in front says otherwise.
                proxy_headers=bool(settings.trusted_proxies),
                forwarded_allow_ips=settings.trusted_proxies or None,
            )
        finally:
            runtime.close()


def settle_memory() -> None:
    """Before serving: what start-up made (modules, settings, the app) is kept for good, so
    the collector's full passes no longer walk it. Those passes had made the slowest checks
    (p99 110 ms against 50 ms with this, on the benchmark's load)."""
    gc.collect()
    gc.freeze()


def register_worker(app: typer.Typer) -> None:
    @app.command()
    def worker(
        db: Db = None,
        config: Config = None,
        once: Annotated[bool, typer.Option(help="Run one round and exit.")] = False,
        as_json: Json = False,
    ) -> None:
        """Deliver notifications and run the sweeps until stopped (SIGTERM or Ctrl-C)."""
        from jitpam.bootstrap import build_worker

        runtime = _runtime(_settings(config, database_url=db))
        job = build_worker(runtime)
        try:
            if once:
                delivered = job.run_once()
                show(
                    {"delivered": delivered, "connector_passes": job.run_connectors_once()}, as_json
                )
                return
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: job.stop())
            typer.echo("jitpam worker running; stop it with SIGTERM or Ctrl-C", err=True)
            job.run()
        finally:
            runtime.close()
