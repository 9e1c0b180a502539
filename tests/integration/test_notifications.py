"""The seeds' emails, through the outbox, to a real SMTP server on localhost."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from jitpam.adapters.email import SmtpSender
from jitpam.domain.notifications import Channel, DeliveryState
from jitpam.domain.policy import ApprovalType, PolicyType
from jitpam.services import organizations, requests
from jitpam.services.delivery import (
    DeliveryPolicy,
    deliver_due,
    list_outbox,
    retry_message,
    run_sweeps,
)
from tests.conftest import database_of_its_own
from tests.integration.world import Person, World
from tests.smtp import Received, SmtpServer, free_port

MOVE = "Exchange\\New-MoveRequest"


@pytest.fixture(scope="module")
def engine(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """This module's own database (on each backend): delivery rounds and sweeps serve every
    organization of the database, so on the shared one they would first deliver, fail or settle
    whatever the rest of the suite left pending."""
    with database_of_its_own(database_url, tmp_path_factory.mktemp("notifications")) as eng:
        yield eng


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


def sender(port: int) -> dict[Channel, SmtpSender]:
    return {
        Channel.EMAIL: SmtpSender(
            host="127.0.0.1", port=port, sender="PAM <pam@jitpam.test>", starttls=False
        )
    }


@pytest.fixture
def cast(world: World) -> tuple[World, Person, Person, Person]:
    approver1, approver2 = world.user("approver1"), world.user("approver2")
    world.group("PAMApprovers", approver1, approver2)
    requester = world.user("helpdesk", roles=("Move Mailboxes",))
    organizations.enable_access_control(
        world.ctx, caller=world.admin.caller, admin_group="PAMApprovers"
    )
    world.policy(MOVE, approver_group="PAMApprovers")
    return world, requester, approver1, approver2


def drain(
    world: World, senders: dict[Channel, SmtpSender], policy: DeliveryPolicy | None = None
) -> None:
    """Run delivery rounds until none of this organization's messages is due any more (other
    tests' organizations share the database, and the worker serves them all)."""
    for _ in range(500):
        deliver_due(world.ctx, senders=senders, policy=policy or DeliveryPolicy())
        now = world.clock.now()
        due = [
            m
            for m in list_outbox(
                world.ctx, caller=world.admin.caller, state=DeliveryState.PENDING
            ).items
            if m.next_attempt_at <= now and m.channel in senders
        ]
        if not due:
            return
    raise AssertionError("the outbox did not drain")


def mine(smtp: SmtpServer, world: World) -> list[Received]:
    """This test's mail: the worker serves every organization of the shared test database."""
    return [m for m in smtp.mailbox.snapshot() if any(world.domain in r for r in m.envelope_to)]


def ask(
    world: World, who: Person, target: str = MOVE, type: PolicyType = PolicyType.TASK
) -> requests.RequestView:
    return requests.new_request(
        world.ctx, caller=who.caller, type=type, target=target, reason="mailbox error"
    )


def test_a_new_request_mails_the_approvers_with_the_requester_in_cc(
    smtp: SmtpServer, cast: tuple
) -> None:
    world, requester, approver1, approver2 = cast
    asked = ask(world, requester)
    drain(world, sender(smtp.port))
    (mail,) = mine(smtp, world)
    assert sorted(mail.message["To"].split(", ")) == sorted([approver1.upn, approver2.upn])
    assert mail.message["Cc"] == requester.upn
    assert sorted(mail.envelope_to) == sorted([approver1.upn, approver2.upn, requester.upn])
    assert mail.message["From"] == "PAM <pam@jitpam.test>"
    assert "asks for Task 'Exchange\\New-MoveRequest' for 4 h" in mail.message["Subject"]
    body = mail.message.get_body(("plain",)).get_content()
    assert f"http://127.0.0.1:8000/requests/{asked.request.id}" in body
    html = mail.message.get_body(("html",)).get_content()
    assert f'href="http://127.0.0.1:8000/requests/{asked.request.id}"' in html


def test_a_decision_mails_the_requester_with_the_group_in_cc(smtp: SmtpServer, cast: tuple) -> None:
    world, requester, approver1, approver2 = cast
    asked = ask(world, requester)
    requests.approve_request(
        world.ctx, caller=approver1.caller, request_id=asked.request.id, comment="ok"
    )
    drain(world, sender(smtp.port))
    decision = [m for m in mine(smtp, world) if "Approved" in m.message["Subject"]]
    assert len(decision) == 1
    assert decision[0].message["To"] == requester.upn
    assert sorted(decision[0].message["Cc"].split(", ")) == sorted([approver1.upn, approver2.upn])


def test_an_auto_approval_still_sends_its_email(smtp: SmtpServer, cast: tuple) -> None:
    world, requester, _, _ = cast
    world.policy(
        "Exchange\\Mailbox Search",
        type=PolicyType.ROLE,
        approval=ApprovalType.AUTO,
        approver_group="PAMApprovers",
    )
    ask(world, requester, "Mailbox Search", PolicyType.ROLE)
    drain(world, sender(smtp.port))
    subjects = [m.message["Subject"] for m in mine(smtp, world)]
    assert any("Approved automatically" in s for s in subjects)


def test_a_down_channel_never_blocks_a_decision_and_catches_up(cast: tuple) -> None:
    world, requester, approver1, _ = cast
    port = free_port()  # nothing listens here yet
    asked = ask(world, requester)
    drain(world, sender(port))
    decided = requests.approve_request(
        world.ctx, caller=approver1.caller, request_id=asked.request.id
    )
    assert decided.status.value == "approved"
    waiting = list_outbox(world.ctx, caller=world.admin.caller, state=DeliveryState.PENDING).items
    assert waiting
    assert all(m.attempts <= 1 for m in waiting)
    assert any(m.last_error for m in waiting)
    smtp = SmtpServer(port).start()
    try:
        world.later(minutes=5)
        drain(world, sender(port))
        assert (
            list_outbox(world.ctx, caller=world.admin.caller, state=DeliveryState.PENDING).items
            == []
        )
        assert len(mine(smtp, world)) == 2
    finally:
        smtp.stop()


def test_after_too_many_attempts_a_message_is_dead_until_retried(
    cast: tuple, smtp: SmtpServer
) -> None:
    world, requester, _, _ = cast
    ask(world, requester)
    dead_port = free_port()
    for _ in range(3):
        drain(world, sender(dead_port), DeliveryPolicy(max_attempts=3))
        world.later(hours=2)
    (dead,) = list_outbox(world.ctx, caller=world.admin.caller, state=DeliveryState.DEAD).items
    assert dead.attempts == 3
    retry_message(world.ctx, caller=world.admin.caller, message_id=dead.id)
    drain(world, sender(smtp.port))
    assert len(mine(smtp, world)) == 1


def test_expiry_and_ending_grants_are_notified_once(smtp: SmtpServer, cast: tuple) -> None:
    world, requester, approver1, _ = cast
    stale = ask(world, requester)
    world.later(hours=24)
    run_sweeps(world.ctx, warning=timedelta(minutes=30))
    fresh = ask(world, requester)
    requests.approve_request(world.ctx, caller=approver1.caller, request_id=fresh.request.id)
    world.later(hours=3, minutes=45)
    run_sweeps(world.ctx, warning=timedelta(minutes=30))
    run_sweeps(world.ctx, warning=timedelta(minutes=30))  # a second sweep queues nothing new
    drain(world, sender(smtp.port))
    subjects = [m.message["Subject"] for m in mine(smtp, world)]
    assert sum("Expired without a decision" in s for s in subjects) == 1
    assert sum("Ending at" in s for s in subjects) == 1, subjects
    expired = next(m for m in mine(smtp, world) if "Expired" in m.message["Subject"])
    assert requester.upn in expired.message["To"]
    assert str(stale.request.id) in expired.message.get_body(("plain",)).get_content()


def test_a_system_accounts_exempt_use_is_reported_to_the_default_approvers_once_a_day(
    smtp: SmtpServer, world: World
) -> None:
    from jitpam.services import access

    approver = world.user("approver")
    world.group("PAMApprovers", approver)
    sysacct = world.user("sys1", roles=("Move Mailboxes",))
    organizations.enable_access_control(
        world.ctx, caller=world.admin.caller, admin_group="PAMApprovers"
    )
    world.exempt(sysacct)  # the admin made it: the installation designates it
    world.policy(MOVE, approver_group="PAMApprovers")
    for _ in range(2):
        assert access.check_access(
            world.ctx, caller=sysacct.caller, user=sysacct.upn, task=MOVE
        ).exempt
    drain(world, sender(smtp.port))
    (mail,) = mine(smtp, world)
    assert mail.message["To"] == approver.upn
    assert "exempt from control" in mail.message["Subject"]


class FlakyEndpoint:
    """An HTTP endpoint that answers 500 (or hangs) until told to recover."""

    def __init__(self, *, hang: bool = False) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.healthy = threading.Event()
        self.release = threading.Event()
        self.received: list[bytes] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if not endpoint.healthy.is_set():
                    if hang:
                        endpoint.release.wait(10)
                    self.send_response(500)
                    self.end_headers()
                    return
                endpoint.received.append(body)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("hang", [False, True], ids=["answers 500", "hangs"])
def test_a_failing_webhook_never_slows_a_decision_and_gets_everything_later(
    cast: tuple, hang: bool
) -> None:
    from jitpam.adapters.webhooks import OutboundUrls, WebhookSender
    from jitpam.domain.notifications import new_webhook_secret
    from jitpam.services import webhooks

    world, requester, approver1, _ = cast
    endpoint = FlakyEndpoint(hang=hang)
    try:
        webhooks.add_webhook(
            world.ctx,
            caller=world.admin.caller,
            url=endpoint.url,
            events=["request.created", "request.approved"],
            urls=OutboundUrls(allow_private=True),
            secret=new_webhook_secret(),
        )
        senders = {
            Channel.WEBHOOK: WebhookSender(urls=OutboundUrls(allow_private=True), timeout=0.5)
        }
        asked = ask(world, requester)
        drain(world, senders)  # fails: 500 or a timeout, and backs off
        # Decisions only write the outbox: they are taken while the channel is down.
        decided = requests.approve_request(
            world.ctx, caller=approver1.caller, request_id=asked.request.id
        )
        assert decided.status.value == "approved"
        drain(world, senders)
        assert endpoint.received == []
        endpoint.healthy.set()
        endpoint.release.set()
        world.later(minutes=10)
        drain(world, senders)
        events = sorted(json.loads(b)["type"] for b in endpoint.received)
        assert events == ["request.approved", "request.created"]
    finally:
        endpoint.close()
