"""Signing in to the API only reads: while a use case holds the write lock (SQLite takes it for
the whole transaction), every other caller's token is still recognised at once instead of
queueing behind the writer."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from jitpam.adapters.sql import db
from jitpam.adapters.sql.db import make_engine
from jitpam.bootstrap import build_context
from jitpam.domain.audit import AuditRecord, ChainReport
from jitpam.domain.errors import DatabaseUnavailable, ErrorKind
from jitpam.services import audit_log, auth, directory, organizations
from jitpam.services.context import Caller
from jitpam.services.ports import AuditFilter


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


def test_other_changes_commit_while_the_audit_chain_is_verified(
    database_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verifying walks the whole chain, which takes long on a big log: it reads without the
    write lock, so a change made meanwhile commits at once (and the walk still verifies)."""
    ctx, own_engine = build_context(database_url=database_url, migrate=False)
    try:
        suffix = uuid.uuid4().hex[:8]
        org, admin = organizations.create_organization(
            ctx,
            name=f"verify-{suffix}",
            admin_upn=f"admin@{suffix}.test",
            admin_display_name="Admin",
            catalogs=(),
        )
        caller = Caller(org.id, admin.id)
        directory.change_assignment(
            ctx, caller=caller, role="jitpam\\Audit Reader", user=admin.upn, add=True
        )
        committed: list[str] = []
        walk = audit_log.verify_chain

        def change_meanwhile() -> None:
            group = directory.add_group(
                ctx, caller=caller, name=f"Added during the walk {suffix}", email=None
            )
            committed.append(group.group.name)

        def verify_while_another_change_commits(
            records: Iterable[AuditRecord], **options: Any
        ) -> ChainReport:
            records = iter(records)
            first = next(records)  # the walk has begun
            writer = threading.Thread(target=change_meanwhile)
            writer.start()
            writer.join(30)
            assert committed, "the change waited for the walk to end"
            return walk(itertools.chain([first], records), **options)

        monkeypatch.setattr(audit_log, "verify_chain", verify_while_another_change_commits)
        result = audit_log.verify_audit(ctx, caller=caller)
        assert result.report.ok, result.report.problem
        monkeypatch.setattr(audit_log, "verify_chain", walk)
        after = audit_log.verify_audit(ctx, caller=caller)
        assert after.report.ok, after.report.problem
        found = audit_log.search_audit(ctx, caller=caller, flt=AuditFilter(operation="New-Group"))
        assert [r.target for r in found.items] == committed
    finally:
        own_engine.dispose()


def test_a_write_that_waits_too_long_for_the_write_lock_is_told_to_try_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite this process's writers queue for one lock; one that waits past the busy timeout
    gets a clean "try again" (503), not a driver error (a 500)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'busy.db'}")
    monkeypatch.setattr(db, "BUSY_TIMEOUT_S", 0.2)
    holding, release = threading.Event(), threading.Event()

    def writer() -> None:
        with engine.begin():
            holding.set()
            release.wait(30)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert holding.wait(30)
        with pytest.raises(DatabaseUnavailable) as refused, engine.begin():
            pass
        assert refused.value.kind is ErrorKind.UNAVAILABLE
    finally:
        release.set()
        thread.join(30)
        engine.dispose()
