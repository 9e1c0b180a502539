"""Worker processes: a killed worker loses nothing, and two workers deliver each message once."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jitpam.bootstrap import build_context
from jitpam.domain.policy import ApprovalType, PolicyType
from jitpam.services import directory, organizations, policies, requests
from jitpam.services.context import Caller
from tests.e2e.conftest import FAST, JITPAM
from tests.smtp import Mailbox, SmtpServer


class SlowMailbox(Mailbox):
    """Takes a while per message, so a worker can be killed in the middle of a delivery."""

    delay = 0.3

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        import asyncio

        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


def make_requests(db: str, count: int) -> set[str]:
    """An organization whose requesters ask ``count`` times: one email each to the approvers."""
    ctx, engine = build_context(database_url=db)
    suffix = uuid.uuid4().hex[:8]
    org, admin_user = organizations.create_organization(
        ctx,
        name=f"w-{suffix}",
        admin_upn=f"admin@{suffix}.test",
        admin_display_name="Admin",
        catalogs=("exchange",),
    )
    admin = Caller(org.id, admin_user.id)
    approver = directory.add_user(
        ctx, caller=admin, upn=f"approver@{suffix}.test", display_name="A"
    )
    directory.add_group(ctx, caller=admin, name="Approvers")
    directory.change_membership(ctx, caller=admin, group="Approvers", upn=approver.upn, add=True)
    organizations.enable_access_control(ctx, caller=admin, admin_group="Approvers")
    policies.new_policy(
        ctx,
        caller=admin,
        type=PolicyType.TASK,
        target="Exchange\\New-MoveRequest",
        approval_type=ApprovalType.MANUAL,
    )
    ids = set()
    for i in range(count):
        user = directory.add_user(
            ctx, caller=admin, upn=f"r{i}@{suffix}.test", display_name=f"R{i}"
        )
        directory.change_assignment(
            ctx, caller=admin, role="Move Mailboxes", user=user.upn, add=True
        )
        view = requests.new_request(
            ctx,
            caller=Caller(org.id, user.id),
            type=PolicyType.TASK,
            target="New-MoveRequest",
            reason="move",
        )
        ids.add(str(view.request.id))
    engine.dispose()
    return ids


def start_worker(
    db: str, smtp_port: int, tmp: Path, name: str, *, lease_seconds: int = 10
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **FAST,
        "JITPAM_SMTP_HOST": "127.0.0.1",
        "JITPAM_SMTP_PORT": str(smtp_port),
        "JITPAM_SMTP_STARTTLS": "false",
        "JITPAM_WORKER_INTERVAL_SECONDS": "1",
        "JITPAM_OUTBOX_LEASE_SECONDS": str(lease_seconds),
        "JITPAM_DATA_DIR": str(tmp / name),
    }
    with (tmp / f"{name}.log").open("wb") as log:
        return subprocess.Popen(
            [JITPAM, "worker", "--db", db], env=env, stdout=log, stderr=subprocess.STDOUT
        )


def delivered_requests(smtp: SmtpServer, wanted: set[str]) -> list[str]:
    found = []
    for m in smtp.mailbox.snapshot():
        body = m.message.get_body(("plain",)).get_content()
        found += [rid for rid in wanted if rid in body]
    return found


def wait_for(check: Any, deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.2)  # polling interval
    raise AssertionError("not done in time")


@pytest.fixture
def slow_smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.mailbox = SlowMailbox()
    server.controller.handler = server.mailbox
    server.start()
    yield server
    server.stop()


def test_a_worker_killed_mid_delivery_loses_nothing(
    fresh_database: str, slow_smtp: SmtpServer, tmp_path: Path
) -> None:
    wanted = make_requests(fresh_database, 6)
    # A lease still ten times one delivery (0.3 s) but short, so that the second worker need not
    # wait long for what the killed one had claimed. One worker runs at a time here: a lease
    # running out under a live worker could only deliver a message twice, which this test allows.
    first = start_worker(fresh_database, slow_smtp.port, tmp_path, "first", lease_seconds=3)
    try:
        wait_for(lambda: len(delivered_requests(slow_smtp, wanted)) >= 1)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=20)
    second = start_worker(fresh_database, slow_smtp.port, tmp_path, "second", lease_seconds=3)
    try:
        # What the killed worker had claimed comes back when its lease (3 s here) runs out.
        # Nothing is lost: every request's email arrives (the one in flight possibly twice).
        wait_for(lambda: set(delivered_requests(slow_smtp, wanted)) == wanted, deadline=120)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0


def test_two_workers_deliver_each_message_exactly_once(fresh_database: str, tmp_path: Path) -> None:
    smtp = SmtpServer().start()
    try:
        wanted = make_requests(fresh_database, 20)
        workers = [start_worker(fresh_database, smtp.port, tmp_path, f"w{i}") for i in range(2)]
        try:
            wait_for(lambda: set(delivered_requests(smtp, wanted)) == wanted)
            got = delivered_requests(smtp, wanted)
            assert sorted(got) == sorted(wanted)
        finally:
            for w in workers:
                w.send_signal(signal.SIGTERM)
            for w in workers:
                assert w.wait(timeout=30) == 0
    finally:
        smtp.stop()
