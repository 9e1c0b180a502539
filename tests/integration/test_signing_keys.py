"""Servers sharing a database verify each other's signatures: the other server's public key is
read from the registry, also while this thread holds a write transaction (an approval verifies
the request it changes). On SQLite that read must not wait for the write lock this same thread
holds: it used to wait out the whole busy timeout (30 s) and fail the approval."""

from __future__ import annotations

import threading

from sqlalchemy import Engine, text

from jitpam.adapters.signing import Ed25519Signer
from jitpam.adapters.sql.keys import lookup_key, register_key

PAYLOAD = b"request 7 by alice@contoso.test"


def test_another_servers_key_is_read_while_this_thread_holds_a_write_transaction(
    engine: Engine,
) -> None:
    other = Ed25519Signer.generate()
    register_key(engine, key_id=other.key_id, public_key=other.public_key)
    signature = other.sign(PAYLOAD)
    mine = Ed25519Signer.generate().with_lookup(lambda key_id: lookup_key(engine, key_id))
    verified: list[bool] = []
    errors: list[BaseException] = []

    def approve() -> None:
        try:
            with engine.begin() as conn:  # the approval's transaction, writing
                conn.execute(text("UPDATE audit_heads SET seq = seq WHERE 1 = 0"))
                verified.append(
                    mine.verify(key_id=other.key_id, payload=PAYLOAD, signature=signature)
                )
        except BaseException as exc:  # reported below
            errors.append(exc)

    worker = threading.Thread(target=approve)
    worker.start()
    worker.join(15)  # the busy timeout is 30 s: waiting for the lock would overrun this
    assert not worker.is_alive(), "the key look-up waited for this thread's own write lock"
    assert not errors, errors
    assert verified == [True]
    assert not mine.verify(key_id=other.key_id, payload=PAYLOAD + b"!", signature=signature)
