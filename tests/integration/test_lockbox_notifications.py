"""Customer Lockbox notices: who gets what for each step, each organization its own messages.

The customer's approvers (the enabled people holding jitpam\\Customer Lockbox Access Approver
directly, through a role group or through a group) and the customer's webhooks get the
customer's side; the engineer and the operator's webhooks the operator's side, which names no
person of the customer. Rules on the in-memory unit of work; one delivery through a real SMTP
server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from jitpam.adapters.clock import FixedClock
from jitpam.adapters.email import SmtpSender
from jitpam.adapters.webhooks import OutboundUrls
from jitpam.domain.directory import UserKind
from jitpam.domain.lockbox import PENDING_HOURS
from jitpam.domain.notifications import Channel, OutboxMessage, new_webhook_secret
from jitpam.domain.timeutil import hours, iso
from jitpam.services import directory, lockbox, organizations, webhooks
from jitpam.services.context import ServiceContext
from jitpam.services.delivery import deliver_due
from tests.integration.world import Person, World
from tests.smtp import SmtpServer

APPROVER_ROLE = "jitpam\\Customer Lockbox Access Approver"
REQUESTER_ROLE = "jitpam\\Lockbox Requester"
REASON = "Mailbox database repair for the customer's support case"
CASE = "EXSR123456"


@pytest.fixture
def ctx(memory_ctx: ServiceContext) -> ServiceContext:
    return memory_ctx


@dataclass(frozen=True)
class Cast:
    operator: World
    customer: World
    engineer: Person
    approver: Person  # holds the role directly
    in_group: Person  # through a group that holds it
    others: tuple[Person, ...]  # customer users who must never be mailed

    @property
    def approvers(self) -> list[str]:
        """The customer's approvers' addresses: these three and the admin (Global Administrator)."""
        return sorted([self.approver.upn, self.in_group.upn, self.customer.admin.upn])

    @property
    def customer_people(self) -> list[str]:
        return [*self.approvers, *(p.upn for p in self.others)]

    def file(self, hours: int = 2) -> str:
        view = lockbox.file_request(
            self.operator.ctx,
            caller=self.engineer.caller,
            customer=self.customer.org.name,
            service="Exchange",
            reason=REASON,
            case_reference=CASE,
            duration_hours=hours,
        )
        return str(view.request.id)

    def decide(self, request_id: str, decision: str, comment: str | None = None) -> None:
        lockbox.set_request(
            self.customer.ctx,
            caller=self.approver.caller,
            request_id=request_id,
            decision=decision,
            comment=comment,
        )

    def require_approval(self) -> None:
        organizations.set_organization_config(
            self.customer.ctx, caller=self.customer.admin.caller, lockbox_approval_required=True
        )


@pytest.fixture
def cast(ctx: ServiceContext, clock: FixedClock) -> Cast:
    operator, customer = World(ctx, clock), World(ctx, clock)
    lockbox.designate_operator(ctx, org_name=operator.org.name)
    engineer = operator.user("engineer", roles=(REQUESTER_ROLE,))
    operator.user("colleague", roles=(REQUESTER_ROLE,))  # the operator's, not the requester
    approver = customer.user("approver", roles=(APPROVER_ROLE,))
    in_group = customer.user("member")
    customer.group("LockboxApprovers", in_group)
    directory.change_assignment(
        ctx, caller=customer.admin.caller, role=APPROVER_ROLE, group="LockboxApprovers", add=True
    )
    gone = customer.user("gone", roles=(APPROVER_ROLE,))
    directory.set_user(ctx, caller=customer.admin.caller, upn=gone.upn, enabled=False)
    robot = customer.user("robot", kind=UserKind.SERVICE, roles=(APPROVER_ROLE,))
    plain = customer.user("plain")
    return Cast(operator, customer, engineer, approver, in_group, (gone, robot, plain))


def outbox(world: World, channel: Channel = Channel.EMAIL) -> list[OutboxMessage]:
    """The organization's queued messages of one channel, oldest first."""
    with world.ctx.uow() as uow:
        page = uow.outbox.listing(world.org.id, state=None, cursor=None, limit=500)
    return sorted(
        (m for m in page.items if m.channel is channel), key=lambda m: (m.created_at, m.event)
    )


def mails(world: World, event: str) -> list[OutboxMessage]:
    return [m for m in outbox(world) if m.event.value == event]


def text(message: OutboxMessage) -> str:
    return json.dumps(message.payload)


def assert_names_no_customer_person(cast: Cast) -> None:
    """Nothing the operator's side queued names a person of the customer."""
    for channel in Channel:
        for message in outbox(cast.operator, channel):
            for upn in cast.customer_people:
                assert upn not in text(message), (message.event, upn)


def test_a_request_needing_approval_asks_the_approvers_and_gives_the_engineer_a_receipt(
    cast: Cast,
) -> None:
    cast.require_approval()
    filed_at = cast.operator.clock.now()
    request_id = cast.file(hours=3)
    (ask,) = mails(cast.customer, "lockbox.created")
    assert sorted(ask.payload["to"]) == cast.approvers  # not the disabled, the robot, the plain
    assert ask.payload["cc"] == []
    body = ask.payload["text"]
    subject = ask.payload["subject"]
    assert cast.engineer.upn in subject
    assert cast.operator.org.name in subject
    assert f"{cast.customer.org.name}'s Exchange data for 3 h" in subject
    assert CASE in subject
    deadline = iso(filed_at + hours(PENDING_HOURS))
    assert f"decide by {deadline}" in subject
    assert f"Decide by: {deadline}" in body
    assert "after 12 hours, it expires" in body
    assert f"http://127.0.0.1:8000/lockbox/{request_id}" in body
    assert f'href="http://127.0.0.1:8000/lockbox/{request_id}"' in ask.payload["html"]
    assert f"Support case: {CASE}" in body
    assert "Duration: 3 h" in body
    assert REASON in body
    (receipt,) = mails(cast.operator, "lockbox.created")
    assert receipt.payload["to"] == [cast.engineer.upn]
    assert receipt.payload["cc"] == []
    assert outbox(cast.customer) == [ask]  # nothing else: no message crosses sides
    assert_names_no_customer_person(cast)


def test_an_automatic_approval_tells_the_approvers_it_was_filed_and_approved(cast: Cast) -> None:
    request_id = cast.file(hours=2)
    assert mails(cast.customer, "lockbox.created") == []
    (told,) = mails(cast.customer, "lockbox.auto_approved")
    assert sorted(told.payload["to"]) == cast.approvers
    assert "approved automatically" in told.payload["subject"]
    until = iso(cast.operator.clock.now() + hours(2))
    assert f"until {until}" in told.payload["subject"]
    assert "Decision:" in told.payload["text"]
    assert "automatically (the customer does not require approval)" in told.payload["text"]
    assert request_id in told.payload["text"]
    (engineer,) = mails(cast.operator, "lockbox.auto_approved")
    assert engineer.payload["to"] == [cast.engineer.upn]
    assert "Decide by" not in engineer.payload["text"]
    assert_names_no_customer_person(cast)


@pytest.mark.parametrize("decision", ["Approve", "Deny"])
def test_a_decision_tells_the_engineer_and_the_approvers_never_who_decided_to_the_operator(
    cast: Cast, decision: str
) -> None:
    cast.require_approval()
    request_id = cast.file()
    cast.operator.later(minutes=20)
    cast.decide(request_id, decision, comment="Per the ticket owner")
    event = "lockbox.approved" if decision == "Approve" else "lockbox.denied"
    (engineer,) = mails(cast.operator, event)
    assert engineer.payload["to"] == [cast.engineer.upn]
    assert "by customer: Per the ticket owner" in engineer.payload["text"]
    (copy,) = mails(cast.customer, event)  # the approvers' copy, a message of their own
    assert sorted(copy.payload["to"]) == cast.approvers
    assert f"by {cast.approver.upn}: Per the ticket owner" in copy.payload["text"]
    assert ("Window:" in copy.payload["text"]) is (decision == "Approve")
    assert_names_no_customer_person(cast)


def test_a_withdrawn_request_tells_the_approvers_only(cast: Cast) -> None:
    cast.require_approval()
    request_id = cast.file()
    lockbox.set_request(
        cast.operator.ctx, caller=cast.engineer.caller, request_id=request_id, decision="Cancel"
    )
    (told,) = mails(cast.customer, "lockbox.cancelled")
    assert sorted(told.payload["to"]) == cast.approvers
    assert "no longer asks" in told.payload["subject"]
    assert mails(cast.operator, "lockbox.cancelled") == []


def test_a_revocation_tells_both_sides_and_the_operator_reads_customer(cast: Cast) -> None:
    request_id = cast.file()
    cast.operator.later(minutes=30)
    lockbox.revoke_request(
        cast.customer.ctx, caller=cast.approver.caller, request_id=request_id, comment="Done"
    )
    (engineer,) = mails(cast.operator, "lockbox.revoked")
    assert engineer.payload["to"] == [cast.engineer.upn]
    assert "by customer: Done" in engineer.payload["text"]
    (copy,) = mails(cast.customer, "lockbox.revoked")
    assert sorted(copy.payload["to"]) == cast.approvers
    assert f"by {cast.approver.upn}: Done" in copy.payload["text"]
    assert_names_no_customer_person(cast)


def test_an_engineer_ending_access_early_is_named_on_both_sides(cast: Cast) -> None:
    request_id = cast.file()
    lockbox.revoke_request(cast.operator.ctx, caller=cast.engineer.caller, request_id=request_id)
    for world in (cast.operator, cast.customer):
        (told,) = mails(world, "lockbox.revoked")
        assert f"by {cast.engineer.upn}" in told.payload["text"]


def test_an_expiry_is_told_once_to_both_sides(cast: Cast) -> None:
    cast.require_approval()
    request_id = cast.file()
    cast.operator.later(hours=PENDING_HOURS, minutes=1)
    assert lockbox.settle_requests(cast.operator.ctx) == 1
    assert lockbox.settle_requests(cast.operator.ctx) == 0
    (engineer,) = mails(cast.operator, "lockbox.expired")
    assert engineer.payload["to"] == [cast.engineer.upn]
    (copy,) = mails(cast.customer, "lockbox.expired")
    assert sorted(copy.payload["to"]) == cast.approvers
    assert "expired without a decision" in copy.payload["subject"]
    assert request_id in copy.payload["text"]
    assert "Decision:" not in copy.payload["text"]


def test_completed_access_is_not_an_expiry(cast: Cast) -> None:
    cast.file(hours=1)
    cast.operator.later(hours=2)
    assert lockbox.settle_requests(cast.operator.ctx) == 1
    assert mails(cast.customer, "lockbox.expired") == mails(cast.operator, "lockbox.expired") == []


def hook(world: World, *events: str, format: str = "json") -> None:
    webhooks.add_webhook(
        world.ctx,
        caller=world.admin.caller,
        url="http://127.0.0.1:9/hook",
        events=list(events),
        format=format,
        urls=OutboundUrls(allow_private=True),
        secret=new_webhook_secret(),
    )


def test_each_sides_webhooks_get_the_events_they_subscribe_to(cast: Cast) -> None:
    hook(cast.customer, "lockbox.created", "lockbox.approved")
    hook(cast.customer, "request.created")  # wants no lockbox event
    hook(cast.operator, "lockbox.approved", "lockbox.revoked")
    hook(cast.operator, "lockbox.approved", format="slack")
    cast.require_approval()
    request_id = cast.file()
    cast.operator.later(minutes=1)
    cast.decide(request_id, "Approve", comment="ok")
    cast.operator.later(minutes=1)
    lockbox.revoke_request(cast.customer.ctx, caller=cast.approver.caller, request_id=request_id)
    customer = outbox(cast.customer, Channel.WEBHOOK)
    assert [m.event.value for m in customer] == ["lockbox.created", "lockbox.approved"]
    created, approved = (m.payload for m in customer)
    assert created["data"]["status"] == "pending"
    assert created["data"]["requested_access"] == "Customer Lockbox"
    assert created["data"]["organization_id"] == str(cast.customer.org.id)
    assert approved["data"]["decided_by"] == cast.approver.upn
    assert approved["data"]["link"].endswith(f"/lockbox/{request_id}")
    operator = outbox(cast.operator, Channel.WEBHOOK)
    assert sorted(m.event.value for m in operator) == [
        "lockbox.approved",
        "lockbox.approved",
        "lockbox.revoked",
    ]
    json_ones = [m.payload for m in operator if "data" in m.payload]
    assert [p["data"]["decided_by"] for p in json_ones] == ["customer", "customer"]
    assert json_ones[1]["data"]["revoked_by"] == "customer"
    assert json_ones[0]["data"]["valid_until"] is not None
    assert json_ones[0]["data"]["organization_id"] == str(cast.operator.org.id)
    (slack,) = [m.payload for m in operator if "text" in m.payload]
    assert f"/lockbox/{request_id}|Open the lockbox request>" in slack["text"]
    assert_names_no_customer_person(cast)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


def test_delivered_by_mail_each_side_gets_its_own_messages(smtp: SmtpServer, cast: Cast) -> None:
    cast.require_approval()
    request_id = cast.file()
    cast.decide(request_id, "Approve", comment="ok")
    senders = {
        Channel.EMAIL: SmtpSender(
            host="127.0.0.1", port=smtp.port, sender="PAM <pam@jitpam.test>", starttls=False
        )
    }
    while deliver_due(cast.operator.ctx, senders=senders):
        pass
    received = smtp.mailbox.snapshot()
    assert len(received) == 4  # created and approved, on each side
    for mail in received:
        to = sorted(mail.envelope_to)
        assert to in ([cast.engineer.upn], cast.approvers), to
        if to == [cast.engineer.upn]:
            whole = mail.message.as_string()
            assert not any(upn in whole for upn in cast.customer_people)
        body = mail.message.get_body(("plain",)).get_content()
        assert f"http://127.0.0.1:8000/lockbox/{request_id}" in body
    engineers = [m.message["Subject"] for m in received if m.envelope_to == [cast.engineer.upn]]
    assert len(engineers) == 2
    assert any("asks to reach" in s for s in engineers)
    assert any("Customer Lockbox, approved:" in s for s in engineers)
