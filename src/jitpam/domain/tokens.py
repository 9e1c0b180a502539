"""API tokens and passwords' rules: what a credential is, never how it is stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from jitpam.domain.errors import InvalidInput

TOKEN_PREFIX = "jpt_"  # noqa: S105 - a marker for secret scanners, not a secret
TOKEN_BYTES = 32  # 256 random bits; the digest below is then a safe stored form
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
MAX_TOKEN_DAYS = 366


def new_token_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(secret: str) -> str:
    """SHA-256 of the token: enough for >= 128-bit random secrets, and microseconds to compute."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same_digest(a: str, b: str) -> bool:
    return hmac.compare_digest(a, b)


@dataclass(frozen=True)
class ApiToken:
    id: UUID
    org_id: UUID
    user_id: UUID
    name: str
    digest: str
    created_at: datetime
    expires_at: datetime
    created_by: UUID
    revoked_at: datetime | None = None

    def usable_at(self, at: datetime) -> bool:
        return self.revoked_at is None and at < self.expires_at


def check_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise InvalidInput(f"a password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise InvalidInput(f"a password must have at most {MAX_PASSWORD} characters")
    return password


def check_token_days(days: int) -> int:
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_TOKEN_DAYS:
        raise InvalidInput(f"a token lasts from 1 to {MAX_TOKEN_DAYS} days")
    return days
