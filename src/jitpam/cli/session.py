"""Where the client finds its server and token: options, JITPAM_URL / JITPAM_TOKEN, or the
credentials saved by ``jitpam login`` under JITPAM_CONFIG_DIR (default ~/.config/jitpam)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from jitpam.sdk import Client

DEFAULT_SERVER = "http://127.0.0.1:8000"


def config_dir() -> Path:
    return Path(os.environ.get("JITPAM_CONFIG_DIR", "~/.config/jitpam")).expanduser()


def credentials_file() -> Path:
    return config_dir() / "credentials.json"


def saved() -> dict[str, Any]:
    try:
        data = json.loads(credentials_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save(*, server: str, token: str, user: str) -> Path:
    path = credentials_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"server": server, "token": token, "user": user}, f)
    os.chmod(path, 0o600)
    return path


def forget() -> bool:
    try:
        credentials_file().unlink()
    except FileNotFoundError:
        return False
    return True


def server_url(option: str | None) -> str:
    return option or os.environ.get("JITPAM_URL") or str(saved().get("server") or DEFAULT_SERVER)


def same_server(a: str, b: str) -> bool:
    """Whether two server URLs name the same server (``http://h:1/`` is ``http://h:1``)."""
    return a.strip().rstrip("/") == b.strip().rstrip("/")


def client(option_server: str | None) -> Client:
    """A client for the targeted server (--server, else JITPAM_URL, else the saved server).

    JITPAM_TOKEN is sent to whatever server is targeted: the user set both. The token saved by
    ``jitpam login`` is sent only to the server it was issued by, never to another one.
    """
    url = server_url(option_server)
    token = os.environ.get("JITPAM_TOKEN") or None
    if token is None:
        creds = saved()
        issuer, secret = creds.get("server"), creds.get("token")
        if isinstance(issuer, str) and isinstance(secret, str) and same_server(issuer, url):
            token = secret
    return Client(url, token)
