"""Sign-in, tokens and OIDC against a real server (RELIABILITY #2, #14)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
from jwt.algorithms import RSAAlgorithm

from tests.e2e.conftest import (
    DEMO_PASSWORD,
    FAST,
    JITPAM,
    Server,
    free_port,
    start_server,
    token_for,
)

ISSUER = "https://login.test.example"
AUDIENCE = "jitpam-tests"


def api(server: Server, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server.url + "/api/v1", headers=headers, timeout=30)


class Jwks:
    """A JWKS endpoint on localhost serving the public half of a key the test generates."""

    def __init__(self) -> None:
        self.key = generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        body = json.dumps(
            {"keys": [{**jwk, "kid": "test-key", "use": "sig", "alg": "RS256"}]}
        ).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.port = free_port()
        self.httpd = HTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/jwks.json"

    def token(self, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300, **claims}
        return jwt.encode(body, self.key, algorithm="RS256", headers={"kid": "test-key"})

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def jwks() -> Iterator[Jwks]:
    j = Jwks()
    yield j
    j.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, jwks: Jwks) -> Iterator[Server]:
    s = start_server(
        tmp_path_factory.mktemp("signin"),
        "--demo",
        extra_env={
            "JITPAM_OIDC_ISSUER": ISSUER,
            "JITPAM_OIDC_AUDIENCE": AUDIENCE,
            "JITPAM_OIDC_JWKS_URL": jwks.url,
            "JITPAM_LOGIN_MAX_FAILURES": "3",
        },
    )
    yield s
    s.stop()


def test_unknown_expired_and_revoked_tokens_get_the_same_401(server: Server) -> None:
    alice = token_for(server, "alice@contoso.com")
    with api(server, alice) as c:
        made = c.post("/tokens", json={"name": "short", "expires_in_days": 1}).json()
        revoked = c.post("/tokens", json={"name": "to revoke"}).json()
        assert c.delete(f"/tokens/{revoked['id']}").status_code == 200
    assert made["token"].startswith("jpt_")
    assert len(made["token"]) >= 4 + 43  # 256 random bits, base64url
    bodies = []
    for token in ("jpt_" + "A" * 43, revoked["token"], "", "not even a token"):
        with api(server, token) as c:
            response = c.get("/requests")
        assert response.status_code == 401
        bodies.append(response.json())
    assert all(b == bodies[0] for b in bodies)
    with api(server, made["token"]) as c:
        assert c.get("/requests").status_code == 200


def test_tokens_are_never_listed_with_their_secret(server: Server) -> None:
    alice = token_for(server, "alice@contoso.com")
    with api(server, alice) as c:
        listed = c.get("/tokens").json()["items"]
    assert listed
    assert all("token" not in t and "digest" not in t for t in listed)
    assert alice not in json.dumps(listed)


def test_tokens_for_another_person_are_refused_but_service_accounts_get_them(
    server: Server,
) -> None:
    admin = token_for(server, "admin@contoso.com")
    with api(server, admin) as c:
        person = c.post("/tokens", json={"user": "bob@contoso.com"})
        assert person.status_code == 403
        assert "only for service and application accounts" in person.json()["detail"]
        service = c.post("/tokens", json={"user": "sys@contoso.com", "name": "migration"})
        assert service.status_code == 201
    with api(server, service.json()["token"]) as c:
        assert c.get("/me").json()["upn"] == "sys@contoso.com"


def test_a_disabled_user_is_signed_out_everywhere(server: Server) -> None:
    admin = token_for(server, "admin@contoso.com")
    carol = token_for(server, "carol@contoso.com")
    with api(server, admin) as c:
        assert c.patch("/users/carol@contoso.com", json={"enabled": False}).status_code == 200
    with api(server, carol) as c:
        assert c.get("/me").status_code == 401
    sign_in = httpx.post(
        server.url + "/api/v1/auth/login",
        json={"user": "carol@contoso.com", "password": DEMO_PASSWORD},
    )
    assert sign_in.status_code == 401
    with api(server, admin) as c:
        assert c.patch("/users/carol@contoso.com", json={"enabled": True}).status_code == 200


def test_repeated_failed_sign_ins_are_slowed_down_with_a_429(server: Server) -> None:
    codes = [
        httpx.post(
            server.url + "/api/v1/auth/login", json={"user": "bob@contoso.com", "password": "wrong"}
        ).status_code
        for _ in range(5)
    ]
    assert codes[:3] == [401, 401, 401]
    assert codes[3:] == [429, 429]
    locked = httpx.post(
        server.url + "/api/v1/auth/login",
        json={"user": "bob@contoso.com", "password": DEMO_PASSWORD},
    )
    assert locked.status_code == 429
    assert "try again in" in locked.json()["detail"]


def test_sign_ins_and_token_changes_are_audited_without_secrets(server: Server) -> None:
    admin = token_for(server, "admin@contoso.com")
    with api(server, admin) as c:
        made = c.post("/tokens", json={"name": "audited"}).json()
        assert c.delete(f"/tokens/{made['id']}").status_code == 200
        records = c.get("/audit/export").text
    assert made["token"] not in records
    assert '"operation": "Sign-In"' in records
    assert '"operation": "New-ApiToken"' in records
    assert '"operation": "Revoke-ApiToken"' in records
    assert DEMO_PASSWORD not in records
    assert admin not in records


def test_an_oidc_token_with_a_verified_email_signs_in_and_links_the_user(
    server: Server, jwks: Jwks
) -> None:
    token = jwks.token(sub="subject-alice", email="alice@contoso.com", email_verified=True)
    with api(server, token) as c:
        assert c.get("/me").json()["upn"] == "alice@contoso.com"
    # Linked by issuer and subject from now on, whatever the email claim says.
    later = jwks.token(sub="subject-alice")
    with api(server, later) as c:
        assert c.get("/me").json()["upn"] == "alice@contoso.com"


def test_an_oidc_email_is_trusted_only_when_verified(server: Server, jwks: Jwks) -> None:
    unverified = jwks.token(sub="subject-bob", email="bob@contoso.com", email_verified=False)
    with api(server, unverified) as c:
        assert c.get("/me").status_code == 401
    wrong_audience = jwt.encode(
        {
            "iss": ISSUER,
            "aud": "someone-else",
            "sub": "subject-alice",
            "exp": int(time.time()) + 60,
        },
        jwks.key,
        algorithm="RS256",
        headers={"kid": "test-key"},
    )
    with api(server, wrong_audience) as c:
        assert c.get("/me").status_code == 401


def test_config_show_masks_secrets(tmp_path: Path) -> None:
    env = {
        **FAST,
        "JITPAM_SMTP_PASSWORD": "canary-smtp-secret",
        "JITPAM_DATA_DIR": str(tmp_path),
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [JITPAM, "config", "show", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["smtp_password"] == "********"
    assert "canary-smtp-secret" not in done.stdout
    assert shown["data_dir"] == str(tmp_path)
