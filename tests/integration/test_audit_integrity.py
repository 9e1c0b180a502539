"""The audit log fails closed, is complete, and is tamper-evident (RELIABILITY.md guarantees 10, 11
and 13), proven against the real database.

Fail closed: a database trigger makes every audit insert of the test's organization fail; each
change must then be refused with AuditUnavailable and leave nothing behind.

Tamper-evident: an attacker with write access to the database edits one organization's
``audit_records`` with plain SQL; ``verify_audit`` must name the damage. Flip a byte, delete,
insert, reorder, truncate: 5 of 5 detected (the truncation against a checkpoint exported earlier).
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import Engine, Uuid, bindparam, text

from jitpam.adapters.clock import FixedClock
from jitpam.domain.audit import AuditRecord, Checkpoint, Outcome, record_digest
from jitpam.domain.check import Reason
from jitpam.domain.errors import (
    AuditUnavailable,
    ConcurrentChange,
    ErrorKind,
    InvalidInput,
    NotFound,
    SelfApprovalNotAllowed,
)
from jitpam.domain.policy import PolicyType
from jitpam.domain.requests import RequestStatus
from jitpam.services import access, audit_log, directory, organizations, policies, requests
from jitpam.services.audit_log import VerifyResult
from jitpam.services.context import ServiceContext
from tests.integration.world import Person, World

TASK = "Exchange\\New-MoveRequest"
REASON = "Mailbox move for ticket 4711"


# --- helpers -------------------------------------------------------------------------------------


def sql(engine: Engine, world: World, statement: str, **params: Any) -> list[Any]:
    """Run one statement as an attacker would, scoped to the world's organization (``:org``)."""
    stmt = text(statement).bindparams(bindparam("org", value=world.org.id, type_=Uuid()))
    with engine.begin() as conn:
        result = conn.execute(stmt, params)
        return list(result.all()) if result.returns_rows else []


def records(world: World) -> list[AuditRecord]:
    with world.ctx.uow() as uow:
        return list(uow.audit.records(world.org.id))


def head(world: World) -> tuple[int, str]:
    with world.ctx.uow() as uow:
        return uow.audit.head(world.org.id)


def verify(world: World, checkpoint: Checkpoint | None = None) -> VerifyResult:
    return audit_log.verify_audit(world.ctx, caller=world.admin.caller, checkpoint=checkpoint)


@dataclasses.dataclass
class Story:
    """A short, ordinary history: the records an attacker would want to change."""

    world: World
    requester: Person
    approver: Person
    request_id: UUID


def story(world: World) -> Story:
    ctx = world.ctx
    approver = world.user("approver")
    world.group("Approvers", approver)
    requester = world.user("requester", roles=("Move Mailboxes",))
    organizations.enable_access_control(ctx, caller=world.admin.caller, admin_group="Approvers")
    world.policy(TASK, approver_group="Approvers")
    world.later(minutes=10)
    request = requests.new_request(
        ctx, caller=requester.caller, type=PolicyType.TASK, target=TASK, reason=REASON
    )
    with pytest.raises(SelfApprovalNotAllowed):
        requests.approve_request(ctx, caller=requester.caller, request_id=request.request.id)
    requests.approve_request(ctx, caller=approver.caller, request_id=request.request.id)
    access.check_access(ctx, caller=requester.caller, user=requester.upn, task=TASK)
    return Story(world, requester, approver, request.request.id)


def find(world: World, operation: str, outcome: Outcome = Outcome.SUCCESS) -> AuditRecord:
    return next(r for r in records(world) if r.operation == operation and r.outcome is outcome)


Finding = tuple[int, str]  # the record verify names first, and what it says about it


def more_activity(s: Story) -> None:
    requests.revoke_authorization(s.world.ctx, caller=s.approver.caller, request_id=s.request_id)
    for _ in range(2):
        access.check_access(s.world.ctx, caller=s.requester.caller, user=s.requester.upn, task=TASK)


# --- guarantee 10: fail closed --------------------------------------------------------------------


@contextmanager
def inserts_fail(
    engine: Engine, world: World, *, table: str, message: str, sqlstate: str = "P0001"
) -> Iterator[None]:
    """A trigger that refuses every insert of this organization's rows into ``table`` (other
    organizations are unaffected), with ``message`` (and, on PostgreSQL, ``sqlstate``)."""
    name = f"jitpam_test_block_{uuid4().hex}"
    if engine.dialect.name == "sqlite":
        install = [
            f"CREATE TRIGGER {name} BEFORE INSERT ON {table} "
            f"WHEN NEW.org_id = '{world.org.id.hex}' "
            f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
        ]
        remove = [f"DROP TRIGGER IF EXISTS {name}"]
    else:
        install = [
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{message}' USING ERRCODE = '{sqlstate}'; END $$",
            f"CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW "
            f"WHEN (NEW.org_id = '{world.org.id}'::uuid) EXECUTE FUNCTION {name}()",
        ]
        remove = [
            f"DROP TRIGGER IF EXISTS {name} ON {table}",
            f"DROP FUNCTION IF EXISTS {name}()",
        ]
    try:
        with engine.begin() as conn:
            for statement in install:
                conn.execute(text(statement))
        yield
    finally:
        with engine.begin() as conn:
            for statement in remove:
                conn.execute(text(statement))


def audit_storage_fails(engine: Engine, world: World) -> AbstractContextManager[None]:
    """Every audit insert of this organization fails, with a message that does not say so: the
    failure is the audit log's because that is where it happened, whatever its words."""
    return inserts_fail(engine, world, table="audit_records", message="no space left on device")


def refused_unaudited(action: Callable[[], Any]) -> AuditUnavailable:
    with pytest.raises(AuditUnavailable) as caught:
        action()
    assert caught.value.kind is ErrorKind.UNAVAILABLE  # a clean 503 at the API
    return caught.value


def test_when_the_audit_log_cannot_be_written_nothing_changes(engine: Engine, world: World) -> None:
    ctx, admin = world.ctx, world.admin.caller
    approver = world.user("approver")
    world.group("Approvers", approver)
    requester = world.user("requester", roles=("Move Mailboxes",))
    organizations.enable_access_control(ctx, caller=admin, admin_group="Approvers")
    world.policy(TASK, approver_group="Approvers")
    request_id = requests.new_request(
        ctx, caller=requester.caller, type=PolicyType.TASK, target=TASK, reason=REASON
    ).request.id
    before = head(world)

    def approve() -> Any:
        return requests.approve_request(ctx, caller=approver.caller, request_id=request_id)

    def add_policy() -> Any:
        return world.policy("Exchange\\Search-Mailbox", approver_group="Approvers")

    def disable() -> Any:
        return organizations.disable_access_control(ctx, caller=admin)

    def check() -> Any:
        return access.check_access(ctx, caller=requester.caller, user=requester.upn, task=TASK)

    with audit_storage_fails(engine, world):
        for action in (approve, add_policy, disable, check):
            refused_unaudited(action)

        # Nothing happened: the request is still pending, no policy, control still on.
        view = requests.get_request(ctx, caller=admin, request_id=request_id)
        assert view.status is RequestStatus.PENDING
        assert view.request.reviews == []
        assert view.request.authorization is None
        assert [str(p.target) for p in policies.list_policies(ctx, caller=admin)] == [TASK]
        assert organizations.get_access_control(ctx, caller=admin).control.enabled
        assert head(world) == before
        assert verify(world).report.ok

    # The same actions succeed once the audit log can be written again.
    assert approve().status is RequestStatus.APPROVED
    add_policy()
    assert not disable().control.enabled
    assert check().reason is Reason.CONTROL_DISABLED
    assert head(world)[0] == before[0] + 4
    assert verify(world).report.ok


def test_a_change_the_database_refuses_is_not_blamed_on_the_audit_log(
    engine: Engine, world: World
) -> None:
    """The change's own failure (here a uniqueness race, as the database reports one) is the
    conflict it is, even when its message speaks of the audit log: only a failed audit write
    is AuditUnavailable. The refusal itself is audited."""
    ctx, admin = world.ctx, world.admin.caller
    before = head(world)
    refusing = inserts_fail(
        engine, world, table="groups", message="audit log unavailable", sqlstate="23505"
    )
    with refusing, pytest.raises(ConcurrentChange):
        directory.add_group(ctx, caller=admin, name="Approvers")
    with pytest.raises(NotFound):
        directory.get_group(ctx, caller=admin, name="Approvers")
    refused = records(world)[before[0] :]
    assert [(r.operation, r.outcome, r.details["error"]) for r in refused] == [
        ("New-Group", Outcome.REFUSED, ConcurrentChange.code)
    ]
    assert verify(world).report.ok


def test_a_change_that_loses_the_race_for_the_chains_next_place_is_a_conflict(
    engine: Engine, world: World
) -> None:
    """Another writer took the chain's next sequence number first (here plain SQL that did not
    move the head): the change is refused as the lost race it is (409, try again), not as an
    audit log that cannot be written (503), and nothing of it is kept."""
    seq, _ = head(world)
    sql(
        engine,
        world,
        "INSERT INTO audit_records (org_id, seq, at, actor_id, actor_name, operation, target, "
        "outcome, details, prev_hash, hash) SELECT org_id, :next, at, actor_id, actor_name, "
        "operation, target, outcome, details, prev_hash, hash FROM audit_records "
        "WHERE org_id = :org AND seq = :seq",
        next=seq + 1,
        seq=seq,
    )
    with pytest.raises(ConcurrentChange):
        directory.add_group(world.ctx, caller=world.admin.caller, name="Approvers")
    with pytest.raises(NotFound):
        directory.get_group(world.ctx, caller=world.admin.caller, name="Approvers")


# --- guarantee 13: tamper evidence ---------------------------------------------------------------


def flip_a_byte(engine: Engine, s: Story) -> Finding:
    """Change one character of the request's reason inside its audit record's details."""
    rec = find(s.world, "New-ElevatedAccessRequest")
    [(details,)] = sql(
        engine,
        s.world,
        "SELECT details FROM audit_records WHERE org_id = :org AND seq = :seq",
        seq=rec.seq,
    )
    forged = details.replace("4711", "4712")
    assert json.loads(forged)["reason"] == "Mailbox move for ticket 4712"
    sql(
        engine,
        s.world,
        "UPDATE audit_records SET details = :d WHERE org_id = :org AND seq = :seq",
        d=forged,
        seq=rec.seq,
    )
    return rec.seq, f"record {rec.seq} was altered"


def delete_a_record(engine: Engine, s: Story) -> Finding:
    """Remove the refused self-approval attempt, as its author would like to."""
    rec = find(s.world, "Approve-ElevatedAccessRequest", Outcome.REFUSED)
    sql(
        engine, s.world, "DELETE FROM audit_records WHERE org_id = :org AND seq = :seq", seq=rec.seq
    )
    return rec.seq + 1, f"record {rec.seq} is missing"


def insert_a_record(engine: Engine, s: Story) -> Finding:
    """Slip a well-formed approval in after the request: shift the later records up by one,
    chain the forgery correctly after its predecessor, and move the head to match."""
    after = find(s.world, "New-ElevatedAccessRequest")
    last, _ = head(s.world)
    room = 1_000_000
    sql(
        engine,
        s.world,
        "UPDATE audit_records SET seq = seq + :room WHERE org_id = :org AND seq > :after",
        room=room,
        after=after.seq,
    )
    sql(
        engine,
        s.world,
        "UPDATE audit_records SET seq = seq - :room + 1 WHERE org_id = :org AND seq > :room",
        room=room,
    )
    template = find(s.world, "Approve-ElevatedAccessRequest")
    seq = after.seq + 1
    digest = record_digest(template, seq=seq, prev_hash=after.hash)
    sql(
        engine,
        s.world,
        "INSERT INTO audit_records (org_id, seq, at, actor_id, actor_name, operation, target, "
        "outcome, details, prev_hash, hash) SELECT org_id, :seq, at, actor_id, actor_name, "
        "operation, target, outcome, details, :prev, :hash FROM audit_records "
        "WHERE org_id = :org AND seq = :template",
        seq=seq,
        prev=after.hash,
        hash=digest,
        template=template.seq,
    )
    [(new_last_hash,)] = sql(
        engine,
        s.world,
        "SELECT hash FROM audit_records WHERE org_id = :org AND seq = :seq",
        seq=last + 1,
    )
    sql(
        engine,
        s.world,
        "UPDATE audit_heads SET seq = :seq, head_hash = :hash WHERE org_id = :org",
        seq=last + 1,
        hash=new_last_hash,
    )
    # The forgery itself chains; the record after it no longer follows.
    return seq + 1, f"record {seq + 1} does not follow record {seq}"


def reorder_records(engine: Engine, s: Story) -> Finding:
    """Swap the approval with the check that followed it, keeping the sequence numbers dense."""
    first = find(s.world, "Approve-ElevatedAccessRequest")
    second = first.seq + 1
    for old, new in ((first.seq, -1), (second, first.seq), (-1, second)):
        sql(
            engine,
            s.world,
            "UPDATE audit_records SET seq = :new WHERE org_id = :org AND seq = :old",
            old=old,
            new=new,
        )
    return first.seq, f"record {first.seq} does not follow record {first.seq - 1}"


def truncate_the_tail(engine: Engine, s: Story) -> Finding:
    """Delete the last records and rewind the chain head to match, as a careful attacker would."""
    keep = find(s.world, "Approve-ElevatedAccessRequest", Outcome.REFUSED).seq
    keep_hash = next(r.hash for r in records(s.world) if r.seq == keep)
    sql(engine, s.world, "DELETE FROM audit_records WHERE org_id = :org AND seq > :keep", keep=keep)
    sql(
        engine,
        s.world,
        "UPDATE audit_heads SET seq = :keep, head_hash = :hash WHERE org_id = :org",
        keep=keep,
        hash=keep_hash,
    )
    return keep + 1, f"the chain ends at record {keep}"


ATTACKS: dict[str, Callable[[Engine, Story], Finding]] = {
    "flip a byte": flip_a_byte,
    "delete": delete_a_record,
    "insert": insert_a_record,
    "reorder": reorder_records,
    "truncate": truncate_the_tail,
}


@pytest.mark.parametrize("attack", ["flip a byte", "delete", "insert", "reorder"])
def test_tampering_inside_the_chain_is_detected_naming_the_record(
    engine: Engine, world: World, attack: str
) -> None:
    s = story(world)
    more_activity(s)
    assert verify(world).report.ok

    bad_seq, problem = ATTACKS[attack](engine, s)

    report = verify(world).report
    assert (report.ok, report.bad_seq) == (False, bad_seq)
    assert problem in (report.problem or "")


@pytest.mark.parametrize(
    ("column", "value"),
    [("target", "approver@elsewhere.example.com"), ("outcome", "success"), ("at", None)],
    ids=["target rewritten", "refusal turned into success", "backdated"],
)
def test_rewriting_who_what_or_when_of_a_record_is_detected(
    engine: Engine, world: World, column: str, value: str | None
) -> None:
    """A refused self-approval rewritten to look harmless, or successful, or earlier."""
    story(world)
    rec = find(world, "Approve-ElevatedAccessRequest", Outcome.REFUSED)
    if column == "at":
        sql(
            engine,
            world,
            "UPDATE audit_records SET at = (SELECT at FROM audit_records "
            "WHERE org_id = :org AND seq = 1) WHERE org_id = :org AND seq = :seq",
            seq=rec.seq,
        )
    else:
        sql(
            engine,
            world,
            f"UPDATE audit_records SET {column} = :value WHERE org_id = :org AND seq = :seq",
            value=value,
            seq=rec.seq,
        )

    report = verify(world).report
    assert (report.ok, report.bad_seq) == (False, rec.seq)


def test_a_truncated_tail_is_detected_only_against_an_earlier_checkpoint(
    engine: Engine, world: World
) -> None:
    s = story(world)
    checkpoint = audit_log.export_checkpoint(world.ctx, caller=world.admin.caller)
    more_activity(s)
    assert verify(world, checkpoint).report.ok

    kept_up_to = truncate_the_tail(engine, s)[0] - 1
    assert kept_up_to < checkpoint.seq

    # The shortened chain is internally consistent: without a checkpoint it verifies...
    alone = verify(world).report
    assert (alone.ok, alone.records, alone.head_seq) == (True, kept_up_to, kept_up_to)
    # ...and the checkpoint kept outside the database shows that records were cut off.
    against = verify(world, checkpoint)
    assert against.checkpoint_signature_valid is True
    assert not against.report.ok
    assert "truncated" in (against.report.problem or "")
    assert against.report.bad_seq == kept_up_to + 1


def test_a_careless_truncation_is_caught_by_the_chain_head(engine: Engine, world: World) -> None:
    story(world)
    last, _ = head(world)
    sql(engine, world, "DELETE FROM audit_records WHERE org_id = :org AND seq = :seq", seq=last)

    report = verify(world).report
    assert not report.ok
    assert report.bad_seq == last


def test_a_head_whose_hash_alone_was_changed_is_reported_as_such(
    engine: Engine, world: World
) -> None:
    story(world)
    last, _ = head(world)
    forged = "0" * 64
    sql(engine, world, "UPDATE audit_heads SET head_hash = :h WHERE org_id = :org", h=forged)

    report = verify(world).report
    assert (report.ok, report.bad_seq, report.head_seq) == (False, last, last - 1)
    assert report.problem == (
        f"the head's hash does not match record {last}, the last one: "
        "the head or that record was changed"
    )


def test_a_checkpoint_with_an_altered_signature_or_head_is_invalid(world: World) -> None:
    story(world)
    checkpoint = audit_log.export_checkpoint(world.ctx, caller=world.admin.caller)
    assert verify(world, checkpoint).checkpoint_signature_valid is True
    signature = checkpoint.signature
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
    forged = [
        dataclasses.replace(checkpoint, signature=flipped),
        dataclasses.replace(checkpoint, signature="not base64!"),
        dataclasses.replace(checkpoint, seq=checkpoint.seq - 1),  # claims a shorter chain
        dataclasses.replace(checkpoint, key_id="ed25519:0000000000000000"),
    ]
    for bad in forged:
        result = verify(world, bad)
        assert result.checkpoint_signature_valid is False
        assert not result.report.ok
        assert "signature" in (result.report.problem or "")


def test_five_of_five_tamperings_are_detected(
    engine: Engine, ctx: ServiceContext, clock: FixedClock
) -> None:
    """The figure RELIABILITY.md reports: each attack on its own organization, verified against
    the checkpoint its auditor exported before the attack."""
    detected, without_checkpoint = [], []
    for name, attack in ATTACKS.items():
        world = World(ctx, clock)
        s = story(world)
        checkpoint = audit_log.export_checkpoint(ctx, caller=world.admin.caller)
        more_activity(s)
        attack(engine, s)
        if not verify(world, checkpoint).report.ok:
            detected.append(name)
        if not verify(world).report.ok:
            without_checkpoint.append(name)
    assert f"{len(detected)} of {len(ATTACKS)} detected" == "5 of 5 detected", detected
    assert without_checkpoint == ["flip a byte", "delete", "insert", "reorder"]


# --- guarantee 11: completeness ------------------------------------------------------------------


def test_every_change_and_every_check_of_a_workflow_is_audited(world: World) -> None:
    ctx = world.ctx
    approver = world.user("approver")
    world.group("Approvers", approver)
    requester = world.user("requester", roles=("Move Mailboxes",))
    organizations.enable_access_control(ctx, caller=world.admin.caller, admin_group="Approvers")
    start, _ = head(world)

    policy = world.policy(TASK, approver_group="Approvers")
    request = requests.new_request(
        ctx, caller=requester.caller, type=PolicyType.TASK, target=TASK, reason=REASON
    ).request
    with pytest.raises(SelfApprovalNotAllowed):
        requests.approve_request(ctx, caller=requester.caller, request_id=request.id)
    approved = requests.approve_request(ctx, caller=approver.caller, request_id=request.id)
    auth = approved.request.authorization
    assert auth is not None
    allowed = access.check_access(ctx, caller=requester.caller, user=requester.upn, task=TASK)
    requests.revoke_authorization(ctx, caller=approver.caller, request_id=request.id)
    denied = access.check_access(ctx, caller=requester.caller, user=requester.upn, task=TASK)
    assert (allowed.allowed, denied.allowed) == (True, False)

    trail = [r for r in records(world) if r.seq > start]
    assert [(r.operation, r.outcome.value, r.actor_name, r.target) for r in trail] == [
        ("New-ElevatedAccessApprovalPolicy", "success", world.admin.upn, str(policy.id)),
        ("New-ElevatedAccessRequest", "success", requester.upn, str(request.id)),
        ("Approve-ElevatedAccessRequest", "refused", requester.upn, str(request.id)),
        ("Approve-ElevatedAccessRequest", "success", approver.upn, str(request.id)),
        ("Test-ElevatedAccess", "success", requester.upn, TASK),
        ("Revoke-ElevatedAccessAuthorization", "success", approver.upn, str(request.id)),
        ("Test-ElevatedAccess", "refused", requester.upn, TASK),
    ]
    _, new_request, self_approval, approval, check_ok, revocation, check_no = trail
    assert new_request.details["reason"] == REASON
    assert self_approval.details["error"] == "self_approval"
    assert (approval.details["status"], approval.details["authorization_id"]) == (
        "approved",
        str(auth.id),
    )
    assert check_ok.details == {
        "user": requester.upn,
        "allowed": True,
        "reason": Reason.AUTHORIZED.value,
        "authorization_id": str(auth.id),
        "exempt": False,
    }
    assert revocation.details["authorization_id"] == str(auth.id)
    assert (check_no.details["allowed"], check_no.details["reason"]) == (
        False,
        Reason.AUTHORIZATION_REQUIRED.value,
    )
    assert verify(world).report.ok


@pytest.mark.parametrize(
    ("column", "how"),
    [
        ("details", "SUBSTR(details, 1, LENGTH(details) - 1)"),  # last byte cut: not JSON
        ("outcome", "'succes5'"),  # not an outcome jitpam writes
    ],
    ids=["details cut short", "unknown outcome"],
)
def test_a_record_mangled_beyond_reading_is_reported_not_a_crash(
    engine: Engine, world: World, column: str, how: str
) -> None:
    story(world)
    rec = find(world, "New-ElevatedAccessRequest")
    sql(
        engine,
        world,
        f"UPDATE audit_records SET {column} = {how} WHERE org_id = :org AND seq = :seq",
        seq=rec.seq,
    )

    report = verify(world).report

    assert (report.ok, report.bad_seq) == (False, rec.seq)
    assert f"record {rec.seq}" in (report.problem or "")


@pytest.mark.parametrize("seq", ["²", "-1", "9" * 40, "12a"])
def test_an_audit_cursor_that_names_no_record_number_is_invalid_input(
    world: World, seq: str
) -> None:
    cursor = base64.urlsafe_b64encode(json.dumps([seq]).encode()).decode()
    with pytest.raises(InvalidInput, match="cursor"):
        audit_log.search_audit(world.ctx, caller=world.admin.caller, cursor=cursor)
