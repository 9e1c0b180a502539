"""Ports of the cryptography and the guards around sign-in: password hashing, the login
throttle, request signatures."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...
    def verify(self, hash: str, password: str) -> bool:
        """True when ``password`` matches; False otherwise (never raises for a wrong one)."""
        ...


class LoginThrottle(Protocol):
    """Counts failed sign-ins per account and per client address."""

    def attempt(self, *, account: str, client: str, at: datetime) -> float:
        """Count an attempt before its password is checked, atomically; returns 0 when it may
        go ahead, else the seconds to wait (and then it is not counted)."""
        ...

    def succeeded(self, *, account: str, client: str) -> None:
        """The attempt was right: forget the account's failures and this attempt."""
        ...


class Signer(Protocol):
    """Signs request content with the server's key; verifies with any key it has known."""

    @property
    def key_id(self) -> str: ...

    def sign(self, payload: bytes) -> str:
        """Return the signature, base64-encoded."""
        ...

    def verify(self, *, key_id: str, payload: bytes, signature: str) -> bool:
        """True only when ``signature`` is valid for ``payload`` under the key ``key_id``."""
        ...
