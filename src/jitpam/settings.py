"""The server's settings: defaults, then a TOML file, then ``JITPAM_*`` environment variables."""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

SECRET_FIELDS = frozenset({"smtp_password", "oidc_client_secret"})


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    database_url: str = ""  # default: SQLite in the data directory
    data_dir: str = "~/.local/share/jitpam"
    public_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    trusted_proxies: str = ""  # addresses whose X-Forwarded-For is believed (comma-separated)
    port: int = 8000
    signing_key_file: str = ""  # default: signing-key.pem in the data directory
    session_hours: int = 12
    oidc_issuer: str = ""
    oidc_audience: str = ""
    oidc_jwks_url: str = ""  # default: from the issuer's discovery document
    oidc_discovery_url: str = ""  # default: <oidc_issuer>/.well-known/openid-configuration
    oidc_authorization_url: str = ""  # with oidc_token_url: the web pages' OIDC sign-in
    oidc_token_url: str = ""
    oidc_client_id: str = ""  # default: oidc_audience
    oidc_client_secret: str = ""  # empty for a public client (PKCE only)
    oidc_groups_claim: str = ""  # the ID token's claim listing the user's groups (none: unused)
    # "<organization>:<jitpam group>" -> the claim value that means membership of that group
    oidc_group_map: tuple[tuple[str, str], ...] = ()
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_starttls: bool = True
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_sender: str = "jitpam <jitpam@localhost>"
    smtp_implicit_tls: bool = False
    worker_in_process: bool = True
    worker_interval_seconds: int = 5
    outbox_max_attempts: int = 24
    outbox_lease_seconds: int = 120
    expiry_warning_minutes: int = 30
    webhook_allow_private: bool = False
    login_max_failures: int = 5
    login_max_client_failures: int = 20
    login_window_seconds: int = 300
    login_lockout_seconds: int = 60
    tasks_dir: str = ""  # task definitions: <tasks_dir>/<organization>/*.toml (none: no runs)
    secrets_dir: str = ""  # where "file:NAME" secrets of tasks and connectors are read
    connectors_dir: str = ""  # connectors: <connectors_dir>/<organization>/<name>.toml
    connector_interval_ms: int = 1000  # how often the worker looks for connector work
    connector_reconcile_seconds: int = 300  # a full pass of each connector at least this often
    connector_retry_max_seconds: int = 300  # a failing connector's retries: 1 s doubling to this
    connector_lease_seconds: int = 120  # a worker's hold on a connector during a pass
    task_runs_max: int = 16  # task runs at once in one server process (each holds a thread)
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536

    @property
    def oidc_discovers(self) -> bool:
        """Whether the server fetches the issuer's discovery document when it starts."""
        return bool(self.oidc_issuer) and bool(self.oidc_discovery_url or not self.oidc_jwks_url)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser()

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_path / 'jitpam.db'}"

    @property
    def effective_signing_key_file(self) -> Path:
        return (
            Path(self.signing_key_file).expanduser()
            if self.signing_key_file
            else self.data_path / "signing-key.pem"
        )

    def masked(self) -> dict[str, Any]:
        """Every setting, secrets masked, with the derived defaults filled in."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = ("********" if value else "") if f.name in SECRET_FIELDS else value
        out["database_url"] = _mask_url(self.effective_database_url)
        out["signing_key_file"] = str(self.effective_signing_key_file)
        out["oidc_group_map"] = dict(self.oidc_group_map)
        return out


def _mask_url(url: str) -> str:
    url = re.sub(r"(?i)([?&]password=)[^&]*", r"\1********", url)
    if "://" in url and "@" in url.split("://", 1)[1]:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        if ":" in creds:
            return f"{scheme}://{creds.split(':', 1)[0]}:********@{host}"
    return url


def _group_key(key: object, name: str, where: str) -> str:
    text = key.strip() if isinstance(key, str) else ""
    org, _, group = text.partition(":")
    if not (org.strip() and group.strip()):
        raise SettingsError(
            f'{where}: {name} names groups as "<organization>:<group>", not {key!r}'
        )
    return f"{org.strip()}:{group.strip()}"


def _group_map(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    """A TOML table, or (in the environment) a JSON object: "org:Group" = "claim value"."""
    name = "oidc_group_map"
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except ValueError:
            raise SettingsError(f"{where}: {name} must be a JSON object") from None
    if not isinstance(value, dict):
        raise SettingsError(f'{where}: {name} must be a table of "org:Group" = "claim value"')
    out: dict[str, str] = {}
    for key, claim in value.items():
        group = _group_key(key, name, where)
        if not isinstance(claim, str) or not claim:
            raise SettingsError(f"{where}: {name}: {key!r} must map to a claim value (a string)")
        if group.casefold() in {k.casefold() for k in out}:
            raise SettingsError(f"{where}: {name} names {group!r} twice")
        out[group] = claim
    return tuple(out.items())


def _coerce(name: str, kind: Any, value: Any, where: str) -> Any:
    if name == "oidc_group_map":
        return _group_map(value, where)
    if kind in (int, "int"):
        if isinstance(value, bool):
            raise SettingsError(f"{where}: {name} must be a whole number")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise SettingsError(f"{where}: {name} must be a whole number, not {value!r}") from None
    if kind in (bool, "bool"):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{where}: {name} must be true or false, not {value!r}")
    if not isinstance(value, str):
        raise SettingsError(f"{where}: {name} must be a string")
    return value


def load_settings(
    config_file: str | None = None, env: dict[str, str] | None = None, **overrides: Any
) -> Settings:
    """Defaults, then the TOML file (``config_file`` or $JITPAM_CONFIG), then JITPAM_<NAME>
    variables, then explicit overrides (command-line options). Raises SettingsError."""
    env = dict(os.environ if env is None else env)
    known = {f.name: f.type for f in fields(Settings)}
    values: dict[str, Any] = {}
    path = config_file or env.get("JITPAM_CONFIG")
    if path:
        try:
            doc = tomllib.loads(Path(path).expanduser().read_text(encoding="utf-8"))
        except OSError as exc:
            raise SettingsError(
                f"cannot read the configuration file {path}: {exc.strerror}"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path}: not valid TOML: {exc}") from None
        for key, value in doc.items():
            if key not in known:
                raise SettingsError(f"{path}: unknown setting {key!r}")
            values[key] = _coerce(key, known[key], value, path)
    for name, kind in known.items():
        var = f"JITPAM_{name.upper()}"
        if var in env:
            values[name] = _coerce(name, kind, env[var], var)
    for name, value in overrides.items():
        if value is not None:
            values[name] = _coerce(name, known[name], value, f"--{name.replace('_', '-')}")
    settings = replace(Settings(), **values)
    _check_oidc(settings)
    if not 1 <= settings.task_runs_max <= 1000:
        raise SettingsError("task_runs_max must be from 1 to 1000")
    return settings


def _check_oidc(settings: Settings) -> None:
    """The OIDC settings hang together. Endpoints left out come from the issuer's discovery
    document, fetched when the server starts (``bootstrap``)."""
    s = settings
    needed = [s.oidc_issuer, s.oidc_audience]
    others = [
        s.oidc_jwks_url,
        s.oidc_discovery_url,
        s.oidc_authorization_url,
        s.oidc_token_url,
        s.oidc_groups_claim,
        s.oidc_group_map,
    ]
    if (any(needed) or any(others)) and not all(needed):
        raise SettingsError(
            "OIDC needs oidc_issuer and oidc_audience (the other endpoints come from the "
            "issuer's discovery document unless set)"
        )
    browser = [s.oidc_authorization_url, s.oidc_token_url]
    if any(browser) and not all(browser) and not s.oidc_discovers:
        raise SettingsError(
            "OIDC sign-in in the browser needs oidc_authorization_url and oidc_token_url, or "
            "the issuer's discovery document (leave oidc_jwks_url unset, or set "
            "oidc_discovery_url)"
        )
    if s.oidc_group_map and not s.oidc_groups_claim:
        raise SettingsError("oidc_group_map needs oidc_groups_claim: the claim that lists groups")
