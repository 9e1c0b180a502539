"""What one repository changes, the others see in the same transaction.

The repositories remember what a transaction has read (adapters/sql/memo.py); a change made
through one of them must not leave another answering from what it read before. Each test reads
through one repository, changes through another (or the same), and reads again, all in one unit
of work.
"""

from __future__ import annotations

from dataclasses import replace
from uuid import UUID

from jitpam.adapters.sql.uow import SqlUnitOfWork
from jitpam.domain.audit import JITPAM, AuditEvent, Outcome
from jitpam.domain.operations import AuditOperation
from jitpam.domain.policy import ApprovalType, PolicyType
from jitpam.domain.requests import Review, ReviewDecision
from jitpam.services import directory, organizations, requests
from jitpam.services.context import ServiceContext
from tests.integration.world import Person, World

TASK = "Exchange\\New-MoveRequest"
ROLE = "Move Mailboxes"


def _uow(world: World) -> SqlUnitOfWork:
    uow = world.ctx.uow()
    assert isinstance(uow, SqlUnitOfWork)
    return uow


def _ids(world: World, person: Person, group: str) -> tuple[UUID, UUID]:
    with world.ctx.uow() as uow:
        found = directory.find_group(uow, world.org.id, group)
    return person.caller.user_id, found.id


def test_a_member_added_or_removed_is_in_the_users_groups_at_once(world: World) -> None:
    alice = world.user("alice")
    world.group("Approvers")
    user_id, group_id = _ids(world, alice, "Approvers")
    with _uow(world) as uow:
        assert group_id not in uow.users.group_ids(user_id)  # read, and remembered
        assert not uow.groups.is_member(group_id, user_id, lock=True)
        assert uow.groups.add_member(group_id, user_id, added_by=None)
        assert group_id in uow.users.group_ids(user_id)
        assert uow.groups.is_member(group_id, user_id)
        group = uow.groups.get(group_id)
        assert group is not None
        assert user_id in group.member_ids
        assert uow.groups.remove_member(group_id, user_id)
        assert group_id not in uow.users.group_ids(user_id)
        assert not uow.groups.is_member(group_id, user_id, lock=True)
        group = uow.groups.get(group_id)
        assert group is not None
        assert user_id not in group.member_ids


def test_a_group_removed_leaves_the_policies_that_named_it_eligible(world: World) -> None:
    alice = world.user("alice", roles=(ROLE,))
    world.group("Movers", alice)
    policy = world.policy(TASK, approval=ApprovalType.AUTO, eligible_groups=["Movers"])
    user_id, group_id = _ids(world, alice, "Movers")
    with _uow(world) as uow:
        read = uow.policies.get(policy.id)
        assert read is not None
        assert group_id in read.eligible_group_ids
        found = uow.policies.for_target(world.org.id, PolicyType.TASK, policy.target)
        assert found is not None
        assert group_id in found.eligible_group_ids
        assert group_id in uow.users.group_ids(user_id)
        assert uow.groups.get(group_id) is not None
        uow.groups.remove(group_id)
        read = uow.policies.get(policy.id)
        assert read is not None
        assert group_id not in read.eligible_group_ids
        found = uow.policies.for_target(world.org.id, PolicyType.TASK, policy.target)
        assert found is not None
        assert group_id not in found.eligible_group_ids
        assert group_id not in uow.users.group_ids(user_id)
        assert uow.groups.get(group_id) is None


def test_a_policy_saved_or_removed_is_read_back_as_it_now_is(world: World) -> None:
    world.group("Approvers")
    policy = world.policy(TASK)
    with _uow(world) as uow:
        assert uow.policies.get(policy.id) is not None
        uow.policies.save(replace(policy, approvals_required=3))
        read = uow.policies.get(policy.id)
        assert read is not None
        assert read.approvals_required == 3
        found = uow.policies.for_target(world.org.id, PolicyType.TASK, policy.target)
        assert found is not None
        assert found.approvals_required == 3
        uow.policies.remove(policy.id)
        assert uow.policies.get(policy.id) is None
        assert uow.policies.for_target(world.org.id, PolicyType.TASK, policy.target) is None


def test_a_user_saved_is_read_and_named_as_they_now_are(world: World) -> None:
    alice = world.user("alice")
    with _uow(world) as uow:
        user = uow.users.get(alice.caller.user_id)
        assert user is not None
        assert user.enabled
        uow.users.save(replace(user, enabled=False, display_name="Alice Renamed"))
        again = uow.users.get(alice.caller.user_id)
        assert again is not None
        assert not again.enabled
        assert again.display_name == "Alice Renamed"


def test_access_control_saved_is_read_back_as_it_now_is(world: World) -> None:
    with _uow(world) as uow:
        control = uow.orgs.control(world.org.id)
        uow.orgs.save_control(replace(control, ticket_pattern="CHG-[0-9]+", max_policies=7))
        again = uow.orgs.control(world.org.id)
        assert again.ticket_pattern == "CHG-[0-9]+"
        assert again.max_policies == 7


def test_the_audit_head_moved_by_an_append_is_the_head_read_after_it(world: World) -> None:
    with _uow(world) as uow:
        seq, _head = uow.audit.head(world.org.id, lock=True)
        event = AuditEvent(
            org_id=world.org.id,
            at=world.clock.now(),
            actor=JITPAM,
            operation=AuditOperation.EXPORT_AUDIT_CHECKPOINT,
            target="memo",
            outcome=Outcome.SUCCESS,
            details={},
        )
        (record,) = uow.audit.append([event])
        assert uow.audit.head(world.org.id, lock=True) == (seq + 1, record.hash)
        assert uow.audit.head(world.org.id) == (seq + 1, record.hash)


def test_a_request_saved_twice_in_one_transaction_writes_each_change_once(
    world: World, ctx: ServiceContext
) -> None:
    requester = world.user("requester", roles=(ROLE,))
    first, second = world.user("first"), world.user("second")
    world.group("Approvers", first, second)
    organizations.enable_access_control(ctx, caller=world.admin.caller, admin_group="Approvers")
    world.policy(TASK, approver_group="Approvers", approvals_required=2)
    made = requests.new_request(
        ctx, caller=requester.caller, type=PolicyType.TASK, target=TASK, reason="move"
    )
    at = world.clock.now()
    with _uow(world) as uow:
        request = uow.requests.get(made.request.id, for_update=True)
        assert request is not None
        for voter in (first, second):
            request.reviews.append(Review(voter.caller.user_id, ReviewDecision.APPROVE, "", at))
            uow.requests.save(request)  # the version read is carried to the next save
        uow.commit()
    with _uow(world) as uow:
        stored = uow.requests.get(made.request.id)
        assert stored is not None
        assert sorted(r.approver_id for r in stored.reviews) == sorted(
            [first.caller.user_id, second.caller.user_id]
        )


def test_what_one_transaction_read_is_not_what_the_next_one_sees(world: World) -> None:
    alice = world.user("alice")
    world.group("Approvers")
    user_id, group_id = _ids(world, alice, "Approvers")
    with _uow(world) as uow:
        assert group_id not in uow.users.group_ids(user_id)
        uow.commit()  # the transaction ends: what it read no longer vouches for anything
        with _uow(world) as other:
            other.groups.add_member(group_id, user_id, added_by=None)
            other.commit()
        assert group_id in uow.users.group_ids(user_id)
