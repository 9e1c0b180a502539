"""Checks arriving together are decided and audited in one transaction (group commit): every
caller still gets the answer it would get alone, every decision has its record, a refused
caller does not spoil the group, and a revocation is exact for every check that starts after it
returned."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.exc import DataError

from jitpam.domain.check import Decision
from jitpam.domain.errors import InvalidInput, NotPermitted
from jitpam.domain.policy import PolicyType
from jitpam.services import access, audit_log, organizations, requests
from jitpam.services.ports import AuditFilter
from tests.integration.world import World

MOVE = "Exchange\\New-MoveRequest"
SEARCH = "Exchange\\Get-Recipient"
DEADLINE = 60.0


def in_threads(count: int, work: Callable[[int], None]) -> None:
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            work(n)
        except BaseException as exc:  # reported below, with the thread's assertion
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
        assert not t.is_alive(), "a check was never answered"
    if errors:
        raise errors[0]


def recorded(world: World) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    cursor = None
    while True:
        page = audit_log.search_audit(
            world.ctx,
            caller=world.admin.caller,
            flt=AuditFilter(operation=access.OPERATION),
            cursor=cursor,
            limit=1000,
        )
        out.extend({**r.details, "outcome": r.outcome.value} for r in page.items)
        cursor = page.next_cursor
        if cursor is None:
            return out


def test_concurrent_callers_share_transactions_and_each_gets_its_own_audited_answer(
    world: World,
) -> None:
    alice = world.user("alice", roles=("Exchange\\Move Mailboxes",))
    bob = world.user("bob")
    carol = world.user("carol", roles=("Exchange\\Mail Recipients",))
    organizations.enable_access_control(
        world.ctx, caller=world.admin.caller, admin_group=world.group("Approvers", bob)
    )
    world.policy(MOVE)
    before = len(recorded(world))
    groups_before = world.ctx.checks.groups if world.ctx.checks else 0
    rounds, threads = 15, 6
    refused: list[int] = []

    def work(n: int) -> None:
        who, other = ((alice, bob), (bob, carol), (carol, alice))[n % 3]
        for _ in range(rounds):
            mine = access.check_access(world.ctx, caller=who.caller, user=None, task=MOVE)
            expected = "authorization_required" if who is alice else "task_not_held"
            assert mine.reason.value == expected
            search = access.check_access(world.ctx, caller=who.caller, user=who.upn, task=SEARCH)
            assert search.allowed is (who is not bob)
            try:  # asking about someone else: refused, alone
                access.check_access(world.ctx, caller=who.caller, user=other.upn, task=SEARCH)
            except NotPermitted:
                refused.append(n)

    in_threads(threads, work)
    assert len(refused) == threads * rounds
    records = recorded(world)[: len(recorded(world)) - before]
    decisions = [r for r in records if "allowed" in r]
    refusals = [r for r in records if "error" in r]
    assert len(decisions) == threads * rounds * 2
    assert len(refusals) == threads * rounds
    assert all(r["outcome"] == "refused" for r in refusals)
    assert sum(1 for r in decisions if r["allowed"]) == (threads * rounds * 2) // 3
    assert world.ctx.checks is not None
    calls = threads * rounds * 3
    assert world.ctx.checks.groups - groups_before < calls  # some calls shared a transaction
    assert audit_log.verify_audit(world.ctx, caller=world.admin.caller).report.ok


def test_a_revocation_is_exact_for_every_check_that_starts_after_it(world: World) -> None:
    alice = world.user("alice", roles=("Exchange\\Move Mailboxes",))
    bob = world.user("bob")
    organizations.enable_access_control(
        world.ctx, caller=world.admin.caller, admin_group=world.group("Approvers", bob)
    )
    world.policy(MOVE)
    view = requests.new_request(
        world.ctx,
        caller=alice.caller,
        type=PolicyType.TASK,
        target=MOVE,
        reason="ticket 4711",
        duration_hours=2,
    )
    requests.approve_request(world.ctx, caller=bob.caller, request_id=view.request.id)
    assert access.check_access(world.ctx, caller=alice.caller, user=None, task=MOVE).allowed
    revoked = threading.Event()
    stop = threading.Event()
    late: list[Decision] = []

    def work(_: int) -> None:
        while not stop.is_set():
            after = revoked.is_set()  # read before the check starts
            decision = access.check_access(world.ctx, caller=alice.caller, user=None, task=MOVE)
            if after:
                late.append(decision)

    worker = threading.Thread(target=in_threads, args=(4, work))
    worker.start()
    try:
        requests.revoke_authorization(world.ctx, caller=bob.caller, request_id=view.request.id)
        revoked.set()
        end = time.monotonic() + DEADLINE
        while len(late) < 40 and worker.is_alive() and time.monotonic() < end:
            time.sleep(0.001)
    finally:
        stop.set()
        worker.join(DEADLINE)
    assert len(late) >= 40
    assert not any(d.allowed for d in late), "a check that began after the revocation allowed"


def test_text_the_database_cannot_store_is_refused_before_any_transaction(world: World) -> None:
    alice = world.user("alice", roles=("Exchange\\Move Mailboxes",))
    groups_before = world.ctx.checks.groups if world.ctx.checks else 0
    for user, task in (("alice\x00@x.com", MOVE), (None, "Exchange\\New-\ud800")):
        with pytest.raises(InvalidInput, match="which jitpam does not accept"):
            access.check_access(world.ctx, caller=alice.caller, user=user, task=task)
    assert (world.ctx.checks.groups if world.ctx.checks else 0) == groups_before
    assert recorded(world) == []


def test_a_value_the_database_refuses_fails_only_the_ask_that_brought_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the entry points miss: a group the database fails on a value is split until
    the ask that brought it stands alone; every other ask is decided, and recorded, once."""
    alice = world.user("alice", roles=("Exchange\\Move Mailboxes",))
    bob = world.user("bob")
    organizations.enable_access_control(
        world.ctx, caller=world.admin.caller, admin_group=world.group("Approvers", bob)
    )
    world.policy(MOVE)
    refused_value = "mallory@contoso.com"
    decide = access._decide

    def the_database_refuses(uow: Any, caller: Any, known: Any, ask: Any, *rest: Any) -> Any:
        if any(user == refused_value for user, _ in ask.pairs):
            uow.users.get(caller.user_id)  # some work in the transaction first
            raise DataError("SELECT", {}, ValueError("text fields cannot contain NUL"))
        return decide(uow, caller, known, ask, *rest)

    monkeypatch.setattr(access, "_decide", the_database_refuses)
    asks = [
        access._Ask(world.org.id, caller, None, ((user, MOVE),))
        for caller, user in (
            *((alice.caller, None),) * 3,
            (bob.caller, refused_value),
            *((alice.caller, None),) * 4,
        )
    ]
    outcomes = access._decide_groups(world.ctx, asks)
    assert isinstance(outcomes[3], InvalidInput)
    decided = [o for i, o in enumerate(outcomes) if i != 3]
    assert all(isinstance(o, list) for o in decided), decided
    assert {d.reason.value for o in decided for d in o} == {"authorization_required"}  # type: ignore[union-attr]
    assert len(recorded(world)) == 7  # each decided ask once; the failed transactions left none
    assert audit_log.verify_audit(world.ctx, caller=world.admin.caller).report.ok
