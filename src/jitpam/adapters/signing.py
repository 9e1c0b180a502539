"""Ed25519 signatures for requests and audit checkpoints, with key ids so keys can rotate."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


def _key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


class Ed25519Signer:
    """Signs with one private key; verifies with it and with any retired public keys given."""

    def __init__(
        self,
        private: Ed25519PrivateKey,
        retired: list[Ed25519PublicKey] | None = None,
        lookup: Callable[[str], str | None] | None = None,
    ) -> None:
        self._private = private
        public = private.public_key()
        self._key_id = _key_id(public)
        self._public = {self._key_id: public}
        for key in retired or []:
            self._public[_key_id(key)] = key
        self._lookup = lookup  # other servers' public keys (base64 raw), by key id

    @property
    def public_key(self) -> str:
        raw = self._private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return base64.b64encode(raw).decode()

    def with_lookup(self, lookup: Callable[[str], str | None]) -> Ed25519Signer:
        return Ed25519Signer(self._private, list(self._public.values()), lookup)

    def _key(self, key_id: str) -> Ed25519PublicKey | None:
        key = self._public.get(key_id)
        if key is None and self._lookup is not None:
            found = self._lookup(key_id)
            if found is not None:
                candidate = Ed25519PublicKey.from_public_bytes(base64.b64decode(found))
                if _key_id(candidate) == key_id:  # the id is the key's own digest: no substitution
                    self._public[key_id] = key = candidate
        return key

    @property
    def key_id(self) -> str:
        return self._key_id

    def sign(self, payload: bytes) -> str:
        return base64.b64encode(self._private.sign(payload)).decode()

    def verify(self, *, key_id: str, payload: bytes, signature: str) -> bool:
        key = self._key(key_id)
        if key is None:
            return False
        try:
            key.verify(base64.b64decode(signature, validate=True), payload)
        except (InvalidSignature, ValueError):
            return False
        return True

    @classmethod
    def generate(cls) -> Ed25519Signer:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_file(cls, path: Path, *, create: bool = True) -> Ed25519Signer:
        """Load a PEM private key; create one (mode 600) when missing and ``create`` is true."""
        if not path.exists():
            if not create:
                raise FileNotFoundError(f"signing key file {path} does not exist")
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise ValueError(f"{path} does not hold an Ed25519 private key")
        return cls(loaded)
