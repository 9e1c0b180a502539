"""Signing in to the API only reads: while a use case holds the write lock (SQLite takes it for
the whole transaction), every other caller's token is still recognised at once instead of
queueing behind the writer."""

from __future__ import annotations

import threading
import time
import uuid

from sqlalchemy import Engine

from jitpam.bootstrap import build_context
from jitpam.services import auth, organizations
from jitpam.services.context import Caller


def test_a_token_is_recognised_while_another_transaction_writes(
    database_url: str, engine: Engine
) -> None:
    ctx, own_engine = build_context(database_url=database_url, migrate=False)
    try:
        suffix = uuid.uuid4().hex[:8]
        org, admin = organizations.create_organization(
            ctx,
            name=f"readers-{suffix}",
            admin_upn=f"admin@{suffix}.test",
            admin_display_name="Admin",
            catalogs=(),
        )
        secret = auth.create_token(ctx, caller=Caller(org.id, admin.id)).secret
        holding, release = threading.Event(), threading.Event()

        def writer() -> None:
            with ctx.uow() as uow:
                uow.audit.head(org.id, lock=True)  # a use case in the middle of its change
                holding.set()
                release.wait(30)

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            assert holding.wait(30)
            started = time.monotonic()
            caller = auth.authenticate(ctx, secret=secret)
            waited = time.monotonic() - started
        finally:
            release.set()
            thread.join(30)
        assert caller == Caller(org.id, admin.id)
        assert waited < 10, f"waited {waited:.1f} s for the writer"
    finally:
        own_engine.dispose()
