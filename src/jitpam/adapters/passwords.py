"""Argon2id password hashing (slow on purpose; tests configure cheap parameters)."""

from __future__ import annotations

from argon2 import PasswordHasher as Argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class Argon2Passwords:
    def __init__(
        self, *, time_cost: int = 3, memory_cost_kib: int = 65536, parallelism: int = 1
    ) -> None:
        self._argon = Argon2(
            time_cost=time_cost, memory_cost=memory_cost_kib, parallelism=parallelism
        )

    def hash(self, password: str) -> str:
        return self._argon.hash(password)

    def verify(self, hash: str, password: str) -> bool:
        try:
            return self._argon.verify(hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
