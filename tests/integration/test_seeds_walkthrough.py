"""The seeds' privileged access workflow, end to end, as one story."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jitpam.domain.check import Reason
from jitpam.domain.errors import NotPermitted
from jitpam.domain.policy import ApprovalType, PolicyType
from jitpam.domain.requests import RequestStatus
from jitpam.services import access, organizations, policies, requests
from tests.integration.world import World


def test_the_seeds_workflow_from_approver_group_to_disable(world: World) -> None:
    ctx, admin = world.ctx, world.admin.caller
    # Step 1: an approver group (the seeds' mail-enabled security group).
    approver = world.user("pamapprover")
    second_approver = world.user("secondapprover")
    world.group("PAMApprovers", approver, second_approver)
    sysaccount = world.user("sys1", roles=("Move Mailboxes",))
    helpdesk = world.user("helpdesk", role_groups=("Recipient Management",))

    # Step 2: enable control with the default approver group and a system account. A colleague
    # does it: whoever designates a system account must not have made it or set its credentials,
    # themself or through accounts they made (separation of duties). The admin made sys1 (and
    # the colleague); the colleague made neither sys1 nor whoever made it.
    colleague = world.user("colleague", role_groups=("jitpam\\Global Administrator",))
    control = organizations.enable_access_control(
        ctx, caller=colleague.caller, admin_group="PAMApprovers", system_accounts=[sysaccount.upn]
    )
    assert control.control.enabled

    # Step 3: a Manual task policy for Exchange\New-MoveRequest.
    policy = world.policy("Exchange\\New-MoveRequest", approver_group="PAMApprovers")
    assert str(policy.target) == "Exchange\\New-MoveRequest"

    # Blocked for the helpdesk user, who holds the task through Recipient Management...
    denied = access.check_access(
        ctx, caller=helpdesk.caller, user=helpdesk.upn, task="New-MoveRequest"
    )
    assert (denied.allowed, denied.reason) == (False, Reason.AUTHORIZATION_REQUIRED)
    # ...but not for the system account, which is exempt (and audited as such).
    exempt = access.check_access(
        ctx, caller=sysaccount.caller, user=sysaccount.upn, task="New-MoveRequest"
    )
    assert exempt.allowed
    assert exempt.exempt

    # Step 4: request the task for 4 hours; a group member approves.
    asked = requests.new_request(
        ctx,
        caller=helpdesk.caller,
        type=PolicyType.TASK,
        target="Exchange\\New-MoveRequest",
        reason="Attempting to fix the user mailbox error",
        duration_hours=4,
    )
    assert asked.status is RequestStatus.PENDING
    world.later(minutes=10)
    approved = requests.approve_request(
        ctx, caller=approver.caller, request_id=asked.request.id, comment="ok"
    )
    assert approved.status is RequestStatus.APPROVED
    approved_at = world.clock.now()

    # The task is allowed for 4 hours, and not after.
    allowed = access.check_access(
        ctx, caller=helpdesk.caller, user=helpdesk.upn, task="New-MoveRequest"
    )
    assert (allowed.allowed, allowed.reason) == (True, Reason.AUTHORIZED)
    assert allowed.authorization_id == approved.request.authorization.id  # type: ignore[union-attr]
    world.clock.set(approved_at + timedelta(hours=4) - timedelta(microseconds=1))
    assert access.check_access(
        ctx, caller=helpdesk.caller, user=helpdesk.upn, task="New-MoveRequest"
    ).allowed
    world.clock.set(approved_at + timedelta(hours=4))
    after = access.check_access(
        ctx, caller=helpdesk.caller, user=helpdesk.upn, task="New-MoveRequest"
    )
    assert not after.allowed
    assert requests.get_request(
        ctx, caller=helpdesk.caller, request_id=asked.request.id
    ).status is (RequestStatus.COMPLETED)

    # A later request is denied by an approver and stays blocked.
    again = requests.new_request(
        ctx,
        caller=helpdesk.caller,
        type=PolicyType.TASK,
        target="New-MoveRequest",
        reason="Second move",
    )
    denied_view = requests.deny_request(
        ctx, caller=second_approver.caller, request_id=again.request.id, comment="not today"
    )
    assert denied_view.status is RequestStatus.DENIED
    assert not access.check_access(
        ctx, caller=helpdesk.caller, user=helpdesk.upn, task="New-MoveRequest"
    ).allowed

    # A role policy with Auto approval grants the role at once, only to eligible requesters.
    world.policy(
        "Exchange\\Mailbox Search",
        type=PolicyType.ROLE,
        approval=ApprovalType.AUTO,
        approver_group="PAMApprovers",
        eligible_users=[helpdesk.upn],
    )
    before = access.check_access(
        ctx, caller=helpdesk.caller, user=helpdesk.upn, task="Search-Mailbox"
    )
    assert (before.allowed, before.reason) == (False, Reason.TASK_NOT_HELD)
    role_grant = requests.new_request(
        ctx,
        caller=helpdesk.caller,
        type=PolicyType.ROLE,
        target="Mailbox Search",
        reason="eDiscovery case 12",
    )
    assert role_grant.status is RequestStatus.APPROVED
    searching = access.check_access(
        ctx, caller=helpdesk.caller, user=helpdesk.upn, task="Search-Mailbox"
    )
    assert (searching.allowed, searching.reason) == (True, Reason.NOT_PROTECTED)
    assert searching.authorization_id == role_grant.request.authorization.id  # type: ignore[union-attr]

    # A revoked grant stops working at once.
    requests.revoke_authorization(
        ctx, caller=approver.caller, request_id=role_grant.request.id, comment="case closed"
    )
    assert not access.check_access(
        ctx, caller=helpdesk.caller, user=helpdesk.upn, task="Search-Mailbox"
    ).allowed

    # Disable keeps the policies; checks fall back to RBAC; new requests are refused.
    organizations.disable_access_control(ctx, caller=admin)
    assert len(policies.list_policies(ctx, caller=admin)) == 2
    fallback = access.check_access(
        ctx, caller=helpdesk.caller, user=helpdesk.upn, task="New-MoveRequest"
    )
    assert (fallback.allowed, fallback.reason) == (True, Reason.CONTROL_DISABLED)


def test_requester_cannot_manage_control(world: World) -> None:
    someone = world.user("someone")
    world.group("Approvers", world.user("approver"))
    with pytest.raises(NotPermitted):
        organizations.enable_access_control(
            world.ctx, caller=someone.caller, admin_group="Approvers"
        )
