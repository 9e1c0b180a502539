"""Signing in to the web pages through an OIDC issuer (authorization code flow with PKCE), against
a real server and an identity provider this test runs on localhost with a key it generates."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
from jwt.algorithms import RSAAlgorithm

from tests.e2e.conftest import Server, free_port, start_server, token_for

ISSUER = "https://login.contoso.test"
CLIENT = "jitpam-web"


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    nonce: str
    challenge: str


@dataclass
class IdentityProvider:
    """Signs in whoever ``account`` says, the way an issuer's login page would after a password."""

    account: dict[str, Any] = field(
        default_factory=lambda: {"email": "alice@contoso.com", "email_verified": True}
    )
    nonce_override: str | None = None
    # The issuer in its tokens: ISSUER, or (own_issuer) its own address, which publishes the
    # discovery document; document_issuer: what that document claims instead (a misconfiguration).
    own_issuer: bool = False
    document_issuer: str | None = None
    grants: dict[str, Grant] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.key = generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        jwks = json.dumps({"keys": [{**jwk, "kid": "idp", "use": "sig", "alg": "RS256"}]})
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path == "/jwks.json":
                    self._answer(200, jwks)
                    return
                if url.path == "/.well-known/openid-configuration":
                    idp.discoveries += 1
                    document = {
                        "issuer": idp.document_issuer or idp.issuer,
                        "jwks_uri": idp.base + "/jwks.json",
                        "authorization_endpoint": idp.base + "/authorize",
                        "token_endpoint": idp.base + "/token",
                        "response_types_supported": ["code"],
                        "subject_types_supported": ["public"],
                        "id_token_signing_alg_values_supported": ["RS256"],
                    }
                    self._answer(200, json.dumps(document))
                    return
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                code = uuid.uuid4().hex
                idp.grants[code] = Grant(
                    q["client_id"], q["redirect_uri"], q["nonce"], q["code_challenge"]
                )
                assert q["code_challenge_method"] == "S256"
                self.send_response(302)
                back = urlencode({"code": code, "state": q["state"]})
                self.send_header("Location", f"{q['redirect_uri']}?{back}")
                self.end_headers()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"])).decode()
                form = {k: v[0] for k, v in parse_qs(body).items()}
                idp.token_requests.append(form)
                grant = idp.grants.pop(form.get("code", ""), None)
                verifier = form.get("code_verifier", "")
                challenge = (
                    base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
                    .rstrip(b"=")
                    .decode()
                )
                if (
                    grant is None
                    or grant.challenge != challenge
                    or grant.redirect_uri != form.get("redirect_uri")
                ):
                    self._answer(400, json.dumps({"error": "invalid_grant"}))
                    return
                now = int(time.time())
                claims = {
                    "iss": idp.issuer,
                    "aud": grant.client_id,
                    "sub": "idp-" + str(idp.account["email"]),
                    "iat": now,
                    "exp": now + 300,
                    "nonce": idp.nonce_override or grant.nonce,
                    **idp.account,
                }
                token = jwt.encode(claims, idp.key, algorithm="RS256", headers={"kid": "idp"})
                self._answer(200, json.dumps({"id_token": token, "token_type": "Bearer"}))

            def _answer(self, status: int, body: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.discoveries = 0
        self.port = free_port()
        self.httpd = HTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return self.base if self.own_issuer else ISSUER

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    provider = IdentityProvider()
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, idp: IdentityProvider) -> Iterator[Server]:
    s = start_server(
        tmp_path_factory.mktemp("web-oidc"),
        "--demo",
        extra_env={
            "JITPAM_OIDC_ISSUER": ISSUER,
            "JITPAM_OIDC_AUDIENCE": CLIENT,
            "JITPAM_OIDC_JWKS_URL": idp.base + "/jwks.json",
            "JITPAM_OIDC_AUTHORIZATION_URL": idp.base + "/authorize",
            "JITPAM_OIDC_TOKEN_URL": idp.base + "/token",
        },
    )
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def alice_signs_in(idp: IdentityProvider) -> None:
    idp.account = {"email": "alice@contoso.com", "email_verified": True}
    idp.nonce_override = None


def leave_for_issuer(browser: httpx.Client, next_path: str = "/my-access") -> httpx.Response:
    """Click the sign-in button and let the issuer answer: the redirect back to jitpam."""
    sign_in = browser.get("/login", params={"next": next_path})
    assert 'id="oidc-sign-in"' in sign_in.text
    start = browser.get("/login/oidc", params={"next": next_path})
    assert start.status_code == 303
    at_issuer = httpx.get(start.headers["location"])
    assert at_issuer.status_code == 302
    return at_issuer


def test_a_user_signs_in_through_the_issuer_and_lands_where_they_were_going(
    server: Server, idp: IdentityProvider
) -> None:
    with httpx.Client(base_url=server.url) as browser:
        back = leave_for_issuer(browser, "/requests")
        done = browser.get(back.headers["location"])
        assert done.status_code == 303
        assert done.headers["location"] == "/requests"
        page = browser.get("/requests")
        assert page.status_code == 200
        assert "alice@contoso.com" in page.text
    # The server proved it holds the code's verifier; no client secret was configured.
    assert idp.token_requests[-1]["code_verifier"]
    assert "client_secret" not in idp.token_requests[-1]
    with httpx.Client(
        base_url=server.url + "/api/v1",
        headers={"Authorization": f"Bearer {token_for(server, 'admin@contoso.com')}"},
    ) as admin:
        records = admin.get(
            "/audit", params={"operation": "Sign-In", "actor": "alice@contoso.com"}
        ).json()["items"]
    assert any(r["details"].get("method") == "oidc" for r in records)


def test_an_answer_for_another_browser_signs_nobody_in(server: Server) -> None:
    with httpx.Client(base_url=server.url) as victim:
        back = leave_for_issuer(victim)
    # The answer meant for the victim's browser, opened in the attacker's: no pending sign-in.
    with httpx.Client(base_url=server.url) as attacker:
        answer = attacker.get(back.headers["location"])
        assert answer.status_code == 401
        assert "jitpam_session" not in answer.cookies
        assert attacker.get("/my-access").status_code == 303


def test_a_forged_state_is_refused(server: Server) -> None:
    with httpx.Client(base_url=server.url) as browser:
        back = leave_for_issuer(browser)
        url = urlsplit(back.headers["location"])
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        forged = browser.get(url.path, params={"code": q["code"], "state": "forged"})
        assert forged.status_code == 401
        assert browser.get("/my-access").status_code == 303


def test_an_id_token_with_another_nonce_is_refused(server: Server, idp: IdentityProvider) -> None:
    idp.nonce_override = "a-nonce-from-another-sign-in"
    with httpx.Client(base_url=server.url) as browser:
        back = leave_for_issuer(browser)
        assert browser.get(back.headers["location"]).status_code == 401
        assert browser.get("/my-access").status_code == 303


def test_an_unverified_email_matches_no_user(server: Server, idp: IdentityProvider) -> None:
    idp.account = {"email": "bob@contoso.com", "email_verified": False}
    with httpx.Client(base_url=server.url) as browser:
        back = leave_for_issuer(browser)
        answer = browser.get(back.headers["location"])
        assert answer.status_code == 401
        assert "No jitpam user matches" in answer.text
        assert browser.get("/my-access").status_code == 303
