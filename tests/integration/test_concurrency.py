"""Exactly one decision under concurrent approve and deny (RELIABILITY.md guarantee 3), and an
audit chain that stays whole while many changes are written at once.

Every call here runs in a thread of its own, released together by a barrier, against the session's
database (SQLite, and PostgreSQL when configured). A loser of a race must get a conflict the entry
points can answer with 409: RequestNotPending, AlreadyVoted or ConcurrentChange, never anything
else.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

import pytest

from jitpam.domain.audit import AuditRecord, Outcome
from jitpam.domain.errors import (
    AlreadyExists,
    AlreadyVoted,
    ConcurrentChange,
    DuplicateRequest,
    ErrorKind,
    JitpamError,
    RequestNotPending,
)
from jitpam.domain.policy import PolicyType
from jitpam.domain.requests import RequestStatus, ReviewDecision
from jitpam.services import access, audit_log, directory, organizations, requests
from jitpam.services.context import Caller
from jitpam.services.ports import AuditFilter
from tests.integration.world import Person, World

ROLE = "Exchange\\Mailbox Search"
ROLE_TASK = "Exchange\\Get-Mailbox"  # held through Mail Recipients, covered by no policy
ROUNDS = 3
APPROVERS = 16

DECISION_LOSERS = (RequestNotPending, ConcurrentChange)
VOTE_LOSERS = (RequestNotPending, AlreadyVoted, ConcurrentChange)


def race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run every call in its own thread, all released at once; return each result or exception."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait(timeout=30)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(run, call) for call in calls]
        outcomes = []
        for future in futures:
            error = future.exception(timeout=120)
            outcomes.append(error if error is not None else future.result())
    return outcomes


def split(outcomes: list[Any]) -> tuple[list[Any], list[BaseException]]:
    wins = [o for o in outcomes if not isinstance(o, BaseException)]
    losses = [o for o in outcomes if isinstance(o, BaseException)]
    return wins, losses


def assert_conflicts(losses: list[BaseException], allowed: tuple[type[JitpamError], ...]) -> None:
    """Every loser got a named conflict (409), nothing else: no database error, no crash."""
    unexpected = [e for e in losses if not isinstance(e, allowed)]
    assert unexpected == [], f"losers got other errors: {[repr(e) for e in unexpected]}"
    assert all(e.kind is ErrorKind.CONFLICT for e in losses if isinstance(e, JitpamError))


def approver_team(world: World, count: int, *, group: str = "Approvers") -> list[Person]:
    team = [world.user(f"approver{i:02d}") for i in range(count)]
    world.group(group, *team)
    organizations.enable_access_control(world.ctx, caller=world.admin.caller, admin_group=group)
    return team


def ask(world: World, requester: Person) -> UUID:
    view = requests.new_request(
        world.ctx,
        caller=requester.caller,
        type=PolicyType.ROLE,
        target=ROLE,
        reason="eDiscovery case 4711",
    )
    assert view.status is RequestStatus.PENDING
    return view.request.id


def vote(
    world: World, caller: Caller, request_id: UUID, decision: ReviewDecision
) -> Callable[[], Any]:
    return lambda: requests.review_request(
        world.ctx, caller=caller, request_id=request_id, decision=decision, comment="racing"
    )


def trail(world: World, target: str) -> list[AuditRecord]:
    page = audit_log.search_audit(
        world.ctx, caller=world.admin.caller, flt=AuditFilter(target=target), limit=1000
    )
    assert page.next_cursor is None
    return page.items


def chain_is_whole(world: World) -> int:
    result = audit_log.verify_audit(world.ctx, caller=world.admin.caller)
    assert result.report.ok, result.report.problem
    return result.report.records


def test_concurrent_approve_and_deny_give_exactly_one_decision(world: World) -> None:
    team = approver_team(world, APPROVERS)
    world.policy(ROLE, type=PolicyType.ROLE, approver_group="Approvers")
    for round_no in range(ROUNDS):
        request_id = ask(world, world.user(f"requester{round_no}"))
        decisions = [
            ReviewDecision.APPROVE if i % 2 == 0 else ReviewDecision.DENY for i in range(APPROVERS)
        ]

        outcomes = race(
            [
                vote(world, approver.caller, request_id, decision)
                for approver, decision in zip(team, decisions, strict=True)
            ]
        )

        wins, losses = split(outcomes)
        assert len(wins) == 1, f"round {round_no}: {len(wins)} decisions were accepted"
        assert len(losses) == APPROVERS - 1
        assert_conflicts(losses, DECISION_LOSERS)
        winner_decision = decisions[outcomes.index(wins[0])]
        expected = (
            RequestStatus.APPROVED
            if winner_decision is ReviewDecision.APPROVE
            else RequestStatus.DENIED
        )
        assert wins[0].status is expected

        stored = requests.get_request(world.ctx, caller=world.admin.caller, request_id=request_id)
        assert stored.status is expected
        assert [r.decision for r in stored.request.reviews] == [winner_decision]
        assert (stored.request.authorization is not None) == (expected is RequestStatus.APPROVED)

        records = trail(world, str(request_id))
        decided = [
            r
            for r in records
            if r.outcome is Outcome.SUCCESS
            and r.operation in ("Approve-ElevatedAccessRequest", "Deny-ElevatedAccessRequest")
        ]
        assert len(decided) == 1
        assert decided[0].details["status"] == expected.value
        refused = [r for r in records if r.outcome is Outcome.REFUSED]
        assert len(refused) == APPROVERS - 1  # every losing attempt left a trace
        assert {r.details["error"] for r in refused} <= {"request_not_pending", "concurrent_change"}
    chain_is_whole(world)


def test_concurrent_audited_changes_keep_the_chain_verifiable(world: World) -> None:
    ctx, admin = world.ctx, world.admin.caller
    approver_team(world, 1)
    world.policy(ROLE, type=PolicyType.ROLE, approver_group="Approvers")
    requesters = [world.user(f"requester{i}") for i in range(4)]
    eager = world.user("eager")
    checker = world.user("checker", roles=("Mail Recipients",))
    seq_before, _ = head(world)

    calls: list[Callable[[], Any]] = []
    calls += [
        (
            lambda i=i: directory.add_user(
                ctx, caller=admin, upn=world.upn(f"new{i}"), display_name="N"
            )
        )
        for i in range(4)
    ]
    calls += [
        (lambda i=i: directory.add_group(ctx, caller=admin, name=f"Team {i}")) for i in range(4)
    ]
    calls += [(lambda p=p: ask(world, p)) for p in requesters]
    calls += [(lambda: ask(world, eager)) for _ in range(4)]  # the same request, four times
    calls += [
        (lambda: access.check_access(ctx, caller=checker.caller, user=checker.upn, task=ROLE_TASK))
        for _ in range(4)
    ]

    outcomes = race(calls)

    wins, losses = split(outcomes)
    assert_conflicts(losses, (DuplicateRequest, ConcurrentChange))
    assert len(losses) == 3, "exactly one of the four identical requests is accepted"
    assert len(wins) == len(calls) - 3

    # Each call wrote exactly one record: a success, or the audited refusal of a duplicate.
    seq_after, _ = head(world)
    assert seq_after - seq_before == len(calls)
    assert chain_is_whole(world) == seq_after
    new = [r for r in all_records(world) if r.seq > seq_before]
    assert [r.seq for r in sorted(new, key=lambda r: r.seq)] == list(
        range(seq_before + 1, seq_after + 1)
    )
    assert Counter((r.operation, r.outcome) for r in new) == {
        ("New-User", Outcome.SUCCESS): 4,
        ("New-Group", Outcome.SUCCESS): 4,
        ("New-ElevatedAccessRequest", Outcome.SUCCESS): 5,
        ("New-ElevatedAccessRequest", Outcome.REFUSED): 3,
        ("Test-ElevatedAccess", Outcome.SUCCESS): 4,  # not covered by a policy: allowed by role
    }


@pytest.mark.parametrize("thing", ["user", "group", "group member"])
def test_creating_the_same_thing_at_once_creates_it_once(world: World, thing: str) -> None:
    ctx, admin = world.ctx, world.admin.caller
    if thing == "group member":
        world.group("Approvers")
        newcomer = world.user("newcomer")
    seq_before, _ = head(world)

    def create() -> Any:
        if thing == "user":
            return directory.add_user(ctx, caller=admin, upn=world.upn("twin"), display_name="T")
        if thing == "group":
            return directory.add_group(ctx, caller=admin, name="Twins")
        return directory.change_membership(
            ctx, caller=admin, group="Approvers", upn=newcomer.upn, add=True
        )

    outcomes = race([create] * 8)

    wins, losses = split(outcomes)
    if thing == "group member":  # adding a member twice is not an error, only not a change
        assert sorted(w.changed for w in wins) == [False] * (len(wins) - 1) + [True]
    else:
        assert len(wins) == 1
    assert_conflicts(losses, (AlreadyExists, ConcurrentChange))
    seq_after, _ = head(world)
    assert seq_after - seq_before == 8  # each attempt audited: the change, or its refusal
    chain_is_whole(world)


def head(world: World) -> tuple[int, str]:
    with world.ctx.uow() as uow:
        return uow.audit.head(world.org.id)


def all_records(world: World) -> list[AuditRecord]:
    with world.ctx.uow() as uow:
        return list(uow.audit.records(world.org.id))


@pytest.fixture
def two_of_many(world: World) -> tuple[World, list[Person]]:
    team = approver_team(world, 12)
    world.policy(ROLE, type=PolicyType.ROLE, approver_group="Approvers", approvals_required=2)
    return world, team


def test_two_approvals_required_counts_exactly_two_votes(
    two_of_many: tuple[World, list[Person]],
) -> None:
    world, team = two_of_many
    request_id = ask(world, world.user("requester"))

    outcomes = race([vote(world, a.caller, request_id, ReviewDecision.APPROVE) for a in team])

    wins, losses = split(outcomes)
    assert sorted(w.status.value for w in wins) == ["approved", "pending"]
    assert_conflicts(losses, DECISION_LOSERS)
    stored = requests.get_request(world.ctx, caller=world.admin.caller, request_id=request_id)
    assert stored.status is RequestStatus.APPROVED
    assert stored.request.approvals == 2
    assert len(stored.request.reviews) == 2
    assert len({r.approver_id for r in stored.request.reviews}) == 2
    approvals = [
        r
        for r in trail(world, str(request_id))
        if r.operation == "Approve-ElevatedAccessRequest" and r.outcome is Outcome.SUCCESS
    ]
    assert sorted((r.details["approvals"], r.details["status"]) for r in approvals) == [
        (1, "pending"),
        (2, "approved"),
    ]
    chain_is_whole(world)


def test_mixed_votes_under_two_approvals_stop_at_the_deciding_vote(
    two_of_many: tuple[World, list[Person]],
) -> None:
    world, team = two_of_many
    for round_no in range(ROUNDS):
        request_id = ask(world, world.user(f"requester{round_no}"))
        decisions = [ReviewDecision.APPROVE, ReviewDecision.DENY] * (len(team) // 2)

        outcomes = race(
            [vote(world, a.caller, request_id, d) for a, d in zip(team, decisions, strict=True)]
        )

        wins, losses = split(outcomes)
        assert_conflicts(losses, DECISION_LOSERS)
        stored = requests.get_request(world.ctx, caller=world.admin.caller, request_id=request_id)
        reviews = stored.request.reviews
        # Every accepted vote is stored, and no vote was accepted after the decision.
        assert len(reviews) == len(wins)
        assert [w.status for w in wins].count(RequestStatus.PENDING) == len(wins) - 1
        if stored.status is RequestStatus.APPROVED:
            assert [r.decision for r in reviews] == [ReviewDecision.APPROVE] * 2
        else:
            assert stored.status is RequestStatus.DENIED
            assert 1 <= len(reviews) <= 2
            assert [r.decision for r in reviews].count(ReviewDecision.DENY) == 1
            assert stored.request.approvals <= 1
        decisive = [w for w in wins if w.status is not RequestStatus.PENDING]
        assert [d.status for d in decisive] == [stored.status]


def test_one_vote_per_approver_even_from_many_threads(
    two_of_many: tuple[World, list[Person]],
) -> None:
    world, team = two_of_many
    request_id = ask(world, world.user("requester"))
    alice = team[0]

    outcomes = race([vote(world, alice.caller, request_id, ReviewDecision.APPROVE)] * 8)

    wins, losses = split(outcomes)
    assert len(wins) == 1
    assert_conflicts(losses, VOTE_LOSERS)
    stored = requests.get_request(world.ctx, caller=world.admin.caller, request_id=request_id)
    assert stored.status is RequestStatus.PENDING  # one approver's vote is not two approvals
    assert [r.approver_id for r in stored.request.reviews] == [alice.caller.user_id]


def test_three_approvers_voting_twice_each_approve_with_two_distinct_votes(
    two_of_many: tuple[World, list[Person]],
) -> None:
    world, team = two_of_many
    request_id = ask(world, world.user("requester"))
    voters = team[:3] * 3

    outcomes = race([vote(world, a.caller, request_id, ReviewDecision.APPROVE) for a in voters])

    wins, losses = split(outcomes)
    assert len(wins) == 2
    assert_conflicts(losses, VOTE_LOSERS)
    stored = requests.get_request(world.ctx, caller=world.admin.caller, request_id=request_id)
    assert stored.status is RequestStatus.APPROVED
    assert len({r.approver_id for r in stored.request.reviews}) == 2
    assert len(stored.request.reviews) == 2
    chain_is_whole(world)
