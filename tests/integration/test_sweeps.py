"""The worker's sweeps at scale: they write in small transactions (so other writers wait for one
batch at most), and a sweep with nothing new to do writes nothing at all."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jitpam.domain.policy import PolicyType
from jitpam.domain.requests import RequestStatus
from jitpam.services import organizations, requests
from tests.integration.world import Person, World

MOVE = "Exchange\\New-MoveRequest"


def granted(world: World, count: int, hours: int) -> list[Person]:
    approver = world.user("approver")
    world.group("Approvers", approver)
    organizations.enable_access_control(
        world.ctx, caller=world.admin.caller, admin_group="Approvers"
    )
    world.policy(MOVE, approver_group="Approvers")
    people = [world.user(f"user{i}", roles=("Exchange\\Move Mailboxes",)) for i in range(count)]
    for who in people:
        asked = requests.new_request(
            world.ctx,
            caller=who.caller,
            type=PolicyType.TASK,
            target=MOVE,
            reason="sweep test",
            duration_hours=hours,
        )
        requests.approve_request(world.ctx, caller=approver.caller, request_id=asked.request.id)
    return people


def test_every_grant_ending_soon_is_warned_once_over_several_batches(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(requests, "SWEEP_BATCH", 2)
    granted(world, 5, hours=1)
    world.later(minutes=45)
    soon = timedelta(minutes=30)
    # One email to each requester, written two at a time.
    assert requests.warn_expiring(world.ctx, org_id=world.org.id, within=soon) == 5
    assert requests.warn_expiring(world.ctx, org_id=world.org.id, within=soon) == 0
    world.later(minutes=20)  # ended: no longer ending soon
    assert requests.warn_expiring(world.ctx, org_id=world.org.id, within=soon) == 0


def test_ended_grants_are_settled_a_batch_per_transaction_until_none_is_left(
    world: World,
) -> None:
    people = granted(world, 5, hours=1)
    world.later(hours=2)
    assert requests.settle_requests(world.ctx, org_id=world.org.id, limit=2) == 2
    assert requests.settle_requests(world.ctx, org_id=world.org.id, limit=2) == 2
    assert requests.settle_requests(world.ctx, org_id=world.org.id, limit=2) == 1
    assert requests.settle_requests(world.ctx, org_id=world.org.id, limit=2) == 0
    for who in people:
        (mine,) = requests.list_requests(world.ctx, caller=who.caller, mine=True).items
        assert mine.status is RequestStatus.COMPLETED
