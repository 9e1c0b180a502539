"""The one place that wires adapters and the runtime's machinery into the services."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine

from jitpam.adapters.clock import SystemClock
from jitpam.adapters.connectors.directory import ConnectorDirectory
from jitpam.adapters.email import SmtpSender
from jitpam.adapters.executors import TaskRunner
from jitpam.adapters.oidc import (
    DiscoveryFailed,
    OidcBrowserSignIn,
    OidcIdentity,
    OidcVerifier,
    PendingSignIn,
    discover,
    discovery_url,
)
from jitpam.adapters.passwords import Argon2Passwords
from jitpam.adapters.signing import Ed25519Signer
from jitpam.adapters.sql.db import is_sqlite, make_engine, reading
from jitpam.adapters.sql.keys import lookup_key, register_key
from jitpam.adapters.sql.migrate import upgrade
from jitpam.adapters.sql.uow import SqlUnitOfWork, unit_of_work_factory
from jitpam.adapters.throttle import MemoryLoginThrottle
from jitpam.adapters.webhooks import OutboundUrls, WebhookSender
from jitpam.domain.group_claims import GroupClaimMap
from jitpam.domain.notifications import Channel
from jitpam.runtime.decision_index import MemoryDecisionIndex
from jitpam.runtime.group_commit import LoopGroupCommit, ThreadGroupCommit
from jitpam.runtime.writer_queue import WriterQueue
from jitpam.services.context import ServiceContext
from jitpam.services.delivery import DeliveryPolicy, Sender
from jitpam.services.ports import Clock, Signer, UnitOfWork
from jitpam.settings import Settings, SettingsError
from jitpam.worker import Worker

__all__ = ["OidcIdentity", "PendingSignIn", "Runtime", "build_context", "build_runtime"]


def build_context(
    *,
    database_url: str,
    signer: Signer | None = None,
    signing_key_file: Path | None = None,
    clock: Clock | None = None,
    migrate: bool = True,
    settings: Settings | None = None,
) -> tuple[ServiceContext, Engine]:
    """Open the database (migrating it to the code's schema unless told not to) and return the
    services' context with the engine, which the caller disposes of."""
    engine = make_engine(database_url)
    if migrate:
        upgrade(engine)
    sessions = unit_of_work_factory(engine)
    read_sessions = unit_of_work_factory(reading(engine))

    def new_uow() -> UnitOfWork:
        return SqlUnitOfWork(sessions)

    def new_reader() -> UnitOfWork:
        return SqlUnitOfWork(read_sessions)

    if signer is None:
        own = (
            Ed25519Signer.from_file(signing_key_file)
            if signing_key_file
            else Ed25519Signer.generate()
        )
        # Every server registers its public key and verifies the others' through the registry.
        register_key(engine, key_id=own.key_id, public_key=own.public_key)
        signer = own.with_lookup(lambda key_id: lookup_key(engine, key_id))
    s = settings or Settings()
    ctx = ServiceContext(
        uow=new_uow,
        read=new_reader,
        clock=clock or SystemClock(),
        signer=signer,
        passwords=Argon2Passwords(
            time_cost=s.argon2_time_cost, memory_cost_kib=s.argon2_memory_kib
        ),
        throttle=MemoryLoginThrottle(
            max_failures=s.login_max_failures,
            window_seconds=s.login_window_seconds,
            lockout_seconds=s.login_lockout_seconds,
            max_client_failures=s.login_max_client_failures,
        ),
        session_hours=s.session_hours,
        public_url=s.public_url,
        groups_claim=s.oidc_groups_claim,
        group_claims=GroupClaimMap.of(s.oidc_group_map),
        index=MemoryDecisionIndex(),
        checks=ThreadGroupCommit(),
        async_checks=LoopGroupCommit(),
        writes=WriterQueue() if is_sqlite(engine) else None,
        connectors=ConnectorDirectory.from_settings(s.connectors_dir, s.secrets_dir),
    )
    return ctx, engine


@dataclass
class Runtime:
    """What a server process holds: settings, the services' context, the engine, OIDC."""

    settings: Settings
    ctx: ServiceContext
    engine: Engine
    oidc: OidcVerifier | None
    urls: OutboundUrls
    oidc_sign_in: OidcBrowserSignIn | None = None
    tasks: TaskRunner = field(default_factory=lambda: TaskRunner({}))

    def close(self) -> None:
        self.engine.dispose()


def _oidc(settings: Settings) -> tuple[OidcVerifier | None, OidcBrowserSignIn | None]:
    """The OIDC verifier and browser sign-in the settings configure. Endpoints not set come from
    the issuer's discovery document, fetched here once. Raises SettingsError (at start, not at
    the first sign-in) when it cannot be fetched or names another issuer."""
    s = settings
    if not s.oidc_issuer:
        return None, None
    jwks, authorize, token = s.oidc_jwks_url, s.oidc_authorization_url, s.oidc_token_url
    if s.oidc_discovers:
        url = s.oidc_discovery_url or discovery_url(s.oidc_issuer)
        try:
            found = discover(url, issuer=s.oidc_issuer)
        except DiscoveryFailed as exc:
            raise SettingsError(str(exc)) from None
        # What is set explicitly wins over what the document says.
        jwks = jwks or found.jwks_uri
        authorize = authorize or found.authorization_endpoint
        token = token or found.token_endpoint
    if not jwks:
        raise SettingsError(
            f"OIDC: no oidc_jwks_url is set and the discovery document of {s.oidc_issuer} "
            "names no jwks_uri"
        )
    verifier = OidcVerifier(
        issuer=s.oidc_issuer,
        audience=s.oidc_audience,
        jwks_url=jwks,
        groups_claim=s.oidc_groups_claim,
    )
    browser = (
        OidcBrowserSignIn(
            verifier=verifier,
            client_id=s.oidc_client_id or s.oidc_audience,
            client_secret=s.oidc_client_secret,
            authorization_url=authorize,
            token_url=token,
        )
        if authorize and token
        else None
    )
    return verifier, browser


def build_runtime(
    settings: Settings, *, clock: Clock | None = None, identity_provider: bool = True
) -> Runtime:
    """Create the data directory, open and migrate the database, load or create the signing key.
    With ``identity_provider`` (a server, not a one-off command), set up OIDC: this may fetch
    the issuer's discovery document, and raises SettingsError when that fails."""
    oidc, browser = _oidc(settings) if identity_provider else (None, None)
    _private_dir(settings.data_path)
    ctx, engine = build_context(
        database_url=settings.effective_database_url,
        signing_key_file=settings.effective_signing_key_file,
        clock=clock,
        settings=settings,
    )
    if is_sqlite(engine) and engine.url.database:
        # The database holds password hashes and token digests: readable by the owner only.
        for suffix in ("", "-wal", "-shm"):
            path = Path(engine.url.database + suffix)
            if path.exists():
                path.chmod(0o600)
    urls = OutboundUrls(allow_private=settings.webhook_allow_private)
    return Runtime(
        settings=settings,
        ctx=ctx,
        engine=engine,
        oidc=oidc,
        urls=urls,
        oidc_sign_in=browser,
        tasks=TaskRunner.from_directory(settings.tasks_dir, settings.secrets_dir),
    )


def build_senders(settings: Settings) -> dict[Channel, Sender]:
    """The delivery channels the settings configure (email only when an SMTP host is set)."""
    senders: dict[Channel, Sender] = {}
    if settings.smtp_host:
        senders[Channel.EMAIL] = SmtpSender(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_sender,
            starttls=settings.smtp_starttls,
            implicit_tls=settings.smtp_implicit_tls,
            username=settings.smtp_username,
            password=settings.smtp_password,
        )
    senders[Channel.WEBHOOK] = WebhookSender(
        urls=OutboundUrls(allow_private=settings.webhook_allow_private)
    )
    return senders


def build_worker(runtime: Runtime) -> Worker:
    s = runtime.settings
    return Worker(
        ctx=runtime.ctx,
        senders=build_senders(s),
        interval=s.worker_interval_seconds,
        warning=timedelta(minutes=s.expiry_warning_minutes),
        policy=DeliveryPolicy(
            max_attempts=s.outbox_max_attempts, lease=timedelta(seconds=s.outbox_lease_seconds)
        ),
        connector_interval=s.connector_interval_ms / 1000,
        reconcile_every=timedelta(seconds=s.connector_reconcile_seconds),
        retry_cap=timedelta(seconds=s.connector_retry_max_seconds),
        connector_lease=timedelta(seconds=s.connector_lease_seconds),
    )


def _private_dir(path: Path) -> None:
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if created:
        path.chmod(0o700)


def migrate_database(settings: Settings) -> str | None:
    """Bring the database to this version's schema; returns the revision."""
    settings.data_path.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.effective_database_url)
    try:
        return upgrade(engine)
    finally:
        engine.dispose()
