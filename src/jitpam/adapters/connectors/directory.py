"""The server's connector configurations: ``<connectors_dir>/<organization>/<name>.toml``.

Read again whenever a file of the organization's folder changes (its names, sizes or modification
times), so a configuration change reaches the next pass without a restart. A file that does not
parse is reported as that connector's problem and leaves the others working; the connector keeps
its records and is not run until the file is fixed.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from jitpam.domain.connectors import (
    ConnectorConfig,
    ConnectorKind,
    ConnectorSet,
    parse_connector,
    shared_targets,
)
from jitpam.domain.errors import ConnectorInvalid
from jitpam.services.ports import ConnectorTarget

Opener = Callable[[ConnectorConfig, Path | None, Mapping[str, str]], ConnectorTarget]


def _open_postgresql(
    config: ConnectorConfig, secrets_dir: Path | None, environ: Mapping[str, str]
) -> ConnectorTarget:
    from jitpam.adapters.connectors.postgresql import PostgresqlConnector

    return PostgresqlConnector.from_config(config, secrets_dir=secrets_dir, environ=environ)


def _open_ldap(
    config: ConnectorConfig, secrets_dir: Path | None, environ: Mapping[str, str]
) -> ConnectorTarget:
    from jitpam.adapters.connectors.ldap import LdapConnector

    return LdapConnector.from_config(config, secrets_dir=secrets_dir, environ=environ)


OPENERS: dict[ConnectorKind, Opener] = {
    ConnectorKind.POSTGRESQL: _open_postgresql,
    ConnectorKind.LDAP: _open_ldap,
}


class ConnectorDirectory:
    """The adapter behind services.ports.ConnectorSource."""

    def __init__(
        self,
        root: Path,
        *,
        secrets_dir: Path | None = None,
        environ: Mapping[str, str] | None = None,
        openers: Mapping[ConnectorKind, Opener] | None = None,
    ) -> None:
        self._root = root
        self._secrets_dir = secrets_dir
        self._environ = environ if environ is not None else os.environ
        self._openers = dict(openers if openers is not None else OPENERS)
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[tuple[tuple[str, int, int], ...], ConnectorSet]] = {}

    @classmethod
    def from_settings(cls, connectors_dir: str, secrets_dir: str) -> ConnectorDirectory | None:
        if not connectors_dir:
            return None
        return cls(
            Path(connectors_dir).expanduser(),
            secrets_dir=Path(secrets_dir).expanduser() if secrets_dir else None,
        )

    def _folder(self, org_name: str) -> Path | None:
        if not self._root.is_dir():
            return None
        for path in self._root.iterdir():
            if path.is_dir() and path.name.lower() == org_name.lower():
                return path
        return None

    def configured(self, org_name: str) -> ConnectorSet:
        folder = self._folder(org_name) if org_name else None
        if folder is None:
            return ConnectorSet({}, {})
        files = sorted(folder.glob("*.toml"))
        stamp = []
        for path in files:
            try:
                st = path.stat()
            except OSError:
                continue
            stamp.append((path.name, st.st_size, st.st_mtime_ns))
        key = str(folder)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached[0] == tuple(stamp):
                return cached[1]
        configs: dict[str, ConnectorConfig] = {}
        problems: dict[str, str] = {}
        for path in files:
            try:
                config = parse_connector(path.read_text(encoding="utf-8"), source=str(path))
            except ConnectorInvalid as exc:
                problems[path.stem] = exc.message
                continue
            except OSError as exc:
                problems[path.stem] = f"{path}: cannot be read: {exc.strerror or exc}"
                continue
            except UnicodeDecodeError:
                problems[path.stem] = f"{path}: is not UTF-8 text"
                continue
            configs[config.name] = config
        for name, problem in shared_targets(configs).items():
            del configs[name]
            problems[name] = problem
        found = ConnectorSet(configs, problems)
        with self._lock:
            self._cache[key] = (tuple(stamp), found)
        return found

    def open(self, config: ConnectorConfig) -> ConnectorTarget:
        return self._openers[config.kind](config, self._secrets_dir, self._environ)
