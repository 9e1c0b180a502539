"""The batch check: many (user, task) decisions at one instant, each audited, one transaction."""

from __future__ import annotations

import pytest

from jitpam.domain.errors import InvalidInput, NotPermitted
from jitpam.services import access, audit_log, organizations
from jitpam.services.ports import AuditFilter
from tests.integration.world import World

MOVE = "Exchange\\New-MoveRequest"
SEARCH = "Exchange\\Get-Recipient"


def checks_recorded(world: World) -> list[dict[str, object]]:
    page = audit_log.search_audit(
        world.ctx,
        caller=world.admin.caller,
        flt=AuditFilter(operation=access.OPERATION),
        limit=1000,
    )
    return [dict(r.details) for r in page.items]


def test_a_batch_gives_the_single_checks_answers_and_audits_each(world: World) -> None:
    alice = world.user("alice", roles=("Exchange\\Move Mailboxes",))
    bob = world.user("bob")
    organizations.enable_access_control(
        world.ctx, caller=world.admin.caller, admin_group=world.group("Approvers", bob)
    )
    world.policy(MOVE)
    pairs = [
        (alice.upn, MOVE),
        (alice.upn, "New-MoveRequest"),  # a bare name, resolved as a single check would
        (bob.upn, MOVE),
        (world.upn("nobody"), MOVE),
        (alice.upn, "Exchange\\No-Such-Task"),
    ]
    batch = access.check_access_batch(world.ctx, caller=world.admin.caller, pairs=pairs)
    one_by_one = [
        access.check_access(world.ctx, caller=world.admin.caller, user=u, task=t) for u, t in pairs
    ]
    assert [(d.allowed, d.reason) for d in batch] == [(d.allowed, d.reason) for d in one_by_one]
    assert [d.reason.value for d in batch] == [
        "authorization_required",
        "authorization_required",
        "task_not_held",
        "unknown_user",
        "unknown_task",
    ]
    recorded = checks_recorded(world)
    assert len(recorded) == 2 * len(pairs)
    assert sum(1 for r in recorded if r["user"] == world.upn("nobody")) == 2
    report = audit_log.verify_audit(world.ctx, caller=world.admin.caller).report
    assert report.ok


def test_asking_about_others_needs_the_access_checker_role(world: World) -> None:
    alice = world.user("alice", roles=("Exchange\\Move Mailboxes",))
    carol = world.user("carol")
    own = access.check_access_batch(
        world.ctx, caller=alice.caller, pairs=[(alice.upn, SEARCH), (alice.upn, MOVE)]
    )
    assert all(d.allowed for d in own)
    with pytest.raises(NotPermitted):
        access.check_access_batch(
            world.ctx, caller=alice.caller, pairs=[(alice.upn, SEARCH), (carol.upn, SEARCH)]
        )
    # The refused batch left no decisions behind, only its refusal.
    assert not any(r.get("user") == carol.upn for r in checks_recorded(world))


@pytest.mark.parametrize("size", [0, access.MAX_BATCH + 1])
def test_a_batch_holds_one_to_a_thousand_checks(world: World, size: int) -> None:
    alice = world.user("alice")
    with pytest.raises(InvalidInput):
        access.check_access_batch(
            world.ctx, caller=alice.caller, pairs=[(alice.upn, SEARCH)] * size
        )


def test_a_full_batch_is_one_append_to_the_audit_chain(world: World) -> None:
    alice = world.user("alice", roles=("Exchange\\Move Mailboxes",))
    decisions = access.check_access_batch(
        world.ctx, caller=alice.caller, pairs=[(alice.upn, SEARCH)] * access.MAX_BATCH
    )
    assert len(decisions) == access.MAX_BATCH
    assert all(d.allowed for d in decisions)
    assert audit_log.verify_audit(world.ctx, caller=world.admin.caller).report.ok
