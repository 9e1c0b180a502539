"""Bearer JWTs from an OIDC issuer, verified against its JWKS (RS256/ES256/EdDSA)."""

from __future__ import annotations

from dataclasses import dataclass

import jwt


@dataclass(frozen=True)
class OidcIdentity:
    issuer: str
    subject: str
    email: str | None
    email_verified: bool


class OidcVerifier:
    """Verifies signature, issuer, audience and expiry; keys come from the JWKS URL (cached)."""

    ALGORITHMS = ("RS256", "ES256", "EdDSA")

    def __init__(self, *, issuer: str, audience: str, jwks_url: str) -> None:
        self.issuer = issuer
        self.audience = audience
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=5)

    def verify(self, token: str) -> OidcIdentity | None:
        """The identity in a valid token, or None for anything not valid."""
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
        email = claims.get("email")
        return OidcIdentity(
            issuer=str(claims["iss"]),
            subject=str(claims["sub"]),
            email=email if isinstance(email, str) else None,
            email_verified=claims.get("email_verified") is True,
        )
