"""OIDC: bearer JWTs from an issuer, verified against its JWKS (RS256/ES256/EdDSA), the
authorization code flow with PKCE for signing in to the web pages, and the issuer's discovery
document (``/.well-known/openid-configuration``) that names the endpoints of both."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import httpx
import jwt

DISCOVERY_PATH = "/.well-known/openid-configuration"


class DiscoveryFailed(Exception):
    """The discovery document could not be fetched, or does not describe the configured issuer."""


@dataclass(frozen=True)
class OidcEndpoints:
    """What an issuer's discovery document says (empty: it does not say)."""

    jwks_uri: str
    authorization_endpoint: str
    token_endpoint: str


def discovery_url(issuer: str) -> str:
    """Where an issuer publishes its discovery document (OpenID Connect Discovery 1.0, 4)."""
    return issuer.rstrip("/") + DISCOVERY_PATH


def discover(url: str, *, issuer: str, timeout: float = 10) -> OidcEndpoints:
    """Fetch the discovery document at ``url`` once. Its ``issuer`` must be ``issuer`` exactly
    (a document for another issuer would let that one's tokens in). Raises DiscoveryFailed."""
    try:
        answer = httpx.get(url, timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise DiscoveryFailed(f"cannot fetch the OIDC discovery document {url}: {exc}") from None
    if answer.status_code != 200:
        raise DiscoveryFailed(
            f"the OIDC discovery document {url} answered HTTP {answer.status_code}"
        )
    try:
        doc = answer.json()
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise DiscoveryFailed(f"the OIDC discovery document {url} is not a JSON object")
    if doc.get("issuer") != issuer:
        raise DiscoveryFailed(
            f"the OIDC discovery document {url} is for the issuer {doc.get('issuer')!r}, "
            f"not the configured oidc_issuer {issuer!r}"
        )

    def text(name: str) -> str:
        value = doc.get(name)
        if not isinstance(value, str) or not value:
            return ""
        if not _safe_endpoint(value):
            raise DiscoveryFailed(
                f"the OIDC discovery document {url} gives {name} {value!r}: endpoints must use "
                "https (plain http only on this machine's loopback address)"
            )
        return value

    return OidcEndpoints(
        jwks_uri=text("jwks_uri"),
        authorization_endpoint=text("authorization_endpoint"),
        token_endpoint=text("token_endpoint"),
    )


def _safe_endpoint(url: str) -> bool:
    """https, or plain http to the loopback address (a provider on the same machine): the client
    secret and the codes never cross a network in the clear."""
    parsed = urlsplit(url)
    if parsed.scheme == "https" and parsed.hostname:
        return True
    return parsed.scheme == "http" and parsed.hostname in ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class OidcIdentity:
    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    # The values of the configured groups claim; None when none is configured or the token
    # does not carry it (then nobody's memberships change).
    groups: frozenset[str] | None = None


def _groups(claims: dict[str, object], name: str) -> frozenset[str] | None:
    if not name or name not in claims:
        return None
    value = claims[name]
    if isinstance(value, str):
        return frozenset([value])
    if isinstance(value, list):
        return frozenset(v for v in value if isinstance(v, str))
    return None


class OidcVerifier:
    """Verifies signature, issuer, audience and expiry; keys come from the JWKS URL (cached)."""

    ALGORITHMS = ("RS256", "ES256", "EdDSA")

    def __init__(
        self, *, issuer: str, audience: str, jwks_url: str, groups_claim: str = ""
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.groups_claim = groups_claim
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=5)

    def verify(self, token: str, *, nonce: str | None = None) -> OidcIdentity | None:
        """The identity in a valid token, or None for anything not valid. With ``nonce`` (an ID
        token from the browser sign-in), the token must carry that same nonce."""
        try:
            key = self._jwks.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=list(self.ALGORITHMS),
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except Exception:  # a malformed, forged or mismatched token is simply not valid
            return None
        if nonce is not None and not (
            isinstance(claims.get("nonce"), str) and secrets.compare_digest(claims["nonce"], nonce)
        ):
            return None
        email = claims.get("email")
        return OidcIdentity(
            issuer=str(claims["iss"]),
            subject=str(claims["sub"]),
            email=email if isinstance(email, str) else None,
            email_verified=claims.get("email_verified") is True,
            groups=_groups(claims, self.groups_claim),
        )


@dataclass(frozen=True)
class PendingSignIn:
    """What the browser keeps (in a short-lived cookie) between leaving for the issuer and
    coming back: compared with the answer, so a code cannot be replayed into another session."""

    state: str
    nonce: str
    verifier: str
    next_path: str


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True)
class OidcBrowserSignIn:
    """The authorization code flow with PKCE (S256) against one issuer."""

    verifier: OidcVerifier
    client_id: str
    client_secret: str
    authorization_url: str
    token_url: str

    def start(self, *, redirect_uri: str, next_path: str) -> tuple[str, PendingSignIn]:
        pending = PendingSignIn(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            verifier=secrets.token_urlsafe(48),
            next_path=next_path,
        )
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": redirect_uri,
                "scope": "openid email",
                "state": pending.state,
                "nonce": pending.nonce,
                "code_challenge": _challenge(pending.verifier),
                "code_challenge_method": "S256",
            }
        )
        separator = "&" if "?" in self.authorization_url else "?"
        return f"{self.authorization_url}{separator}{query}", pending

    def finish(
        self, *, code: str, state: str, pending: PendingSignIn, redirect_uri: str
    ) -> OidcIdentity | None:
        """The identity the issuer vouches for, or None: wrong state, a refused code, or an ID
        token that does not verify (signature, issuer, audience, expiry, nonce)."""
        if not secrets.compare_digest(state.encode(), pending.state.encode()):
            return None
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.client_id,
            "code_verifier": pending.verifier,
        }
        auth = (self.client_id, self.client_secret) if self.client_secret else None
        try:
            answer = httpx.post(self.token_url, data=form, auth=auth, timeout=10)
        except httpx.HTTPError:
            return None
        if answer.status_code != 200:
            return None
        try:
            body = answer.json()
        except ValueError:
            return None
        id_token = body.get("id_token") if isinstance(body, dict) else None
        if not isinstance(id_token, str):
            return None
        return self.verifier.verify(id_token, nonce=pending.nonce)
