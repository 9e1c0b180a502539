"""Requests as PRODUCT.md states them: who may ask, for what, for how long; who decides, and when;
who sees what. Every refusal is also found in the audit log, with its error code."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from jitpam.domain.audit import AuditRecord, Outcome
from jitpam.domain.check import Reason
from jitpam.domain.directory import UserKind
from jitpam.domain.errors import (
    AlreadyVoted,
    AuthorizationNotActive,
    ControlDisabled,
    DuplicateRequest,
    InvalidInput,
    JitpamError,
    NoPolicy,
    NotAnApprover,
    NotFound,
    NotPermitted,
    RequesterNotEligible,
    RequestNotPending,
    SelfApprovalNotAllowed,
    TaskNotHeld,
)
from jitpam.domain.policy import PolicyType
from jitpam.domain.requests import RequestStatus
from jitpam.services import access, audit_log, directory, organizations, policies, requests
from jitpam.services.context import ServiceContext
from jitpam.services.ports import AuditFilter
from jitpam.services.requests import RequestView
from tests.integration.world import Person, World

MOVE = "Exchange\\New-MoveRequest"
SEARCH = "Exchange\\Search-Mailbox"
SELF_APPROVAL = "Requestor and approver are the same. Self-approval is not allowed."
# Someone outside the approver group may also be told the request is not theirs to see.
NOT_AN_APPROVER = (NotAnApprover, NotFound)


@pytest.fixture
def ctx(memory_ctx: ServiceContext) -> ServiceContext:
    """The rules run on the in-memory unit of work; what a listing's query decides (who sees
    what, the status filter's SQL twin, pages, search) runs on the databases (``db_scene``)."""
    return memory_ctx


@dataclass(frozen=True)
class Scene:
    """Control on, default approver group Approvers (ann, ben); rita may run mailbox moves."""

    world: World
    ann: Person
    ben: Person
    rita: Person


def make_scene(world: World) -> Scene:
    ann, ben = world.user("ann"), world.user("ben")
    world.group("Approvers", ann, ben)
    rita = world.user("rita", roles=("Exchange\\Move Mailboxes",))
    organizations.enable_access_control(
        world.ctx, caller=world.admin.caller, admin_group="Approvers"
    )
    return Scene(world, ann, ben, rita)


@pytest.fixture
def scene(world: World) -> Scene:
    return make_scene(world)


@pytest.fixture
def db_scene(db_world: World) -> Scene:
    return make_scene(db_world)


def ask(
    world: World,
    who: Person,
    target: str = MOVE,
    *,
    reason: str = "Fix a stuck mailbox move",
    type: PolicyType = PolicyType.TASK,
    **options: Any,
) -> RequestView:
    return requests.new_request(
        world.ctx, caller=who.caller, type=type, target=target, reason=reason, **options
    )


def approve(world: World, who: Person, view: RequestView) -> RequestView:
    return requests.approve_request(world.ctx, caller=who.caller, request_id=view.request.id)


def deny(world: World, who: Person, view: RequestView) -> RequestView:
    return requests.deny_request(world.ctx, caller=who.caller, request_id=view.request.id)


def status(world: World, view: RequestView) -> RequestStatus:
    return requests.get_request(
        world.ctx, caller=world.admin.caller, request_id=view.request.id
    ).status


def may_run(world: World, who: Person, task: str = MOVE) -> bool:
    return access.check_access(world.ctx, caller=who.caller, user=who.upn, task=task).allowed


def audit(world: World, **flt: Any) -> list[AuditRecord]:
    page = audit_log.search_audit(
        world.ctx, caller=world.admin.caller, flt=AuditFilter(**flt), limit=1000
    )
    return page.items


def assert_refusal_audited(
    world: World, err: JitpamError, *, operation: str, target: str, by: Person
) -> None:
    found = [
        (r.actor_name, r.details.get("error"), r.details.get("message"))
        for r in audit(world, operation=operation, target=target, outcome=Outcome.REFUSED)
    ]
    assert (by.upn, err.code, err.message) in found


# --- who may ask, for what ----------------------------------------------------------------------


def test_request_for_a_task_no_policy_covers_is_refused_naming_it(scene: Scene) -> None:
    world = scene.world
    with pytest.raises(NoPolicy) as unknown:
        ask(world, scene.rita, "Exchange\\X")
    assert unknown.value.message == "no privileged access policy covers Task 'Exchange\\X'"
    assert_refusal_audited(
        world,
        unknown.value,
        operation="New-ElevatedAccessRequest",
        target="Exchange\\X",
        by=scene.rita,
    )

    with pytest.raises(NoPolicy) as unprotected:
        ask(world, scene.rita, "Exchange\\Get-MoveRequest")
    assert unprotected.value.message == (
        "no privileged access policy covers Task 'Exchange\\Get-MoveRequest'"
    )
    assert_refusal_audited(
        world,
        unprotected.value,
        operation="New-ElevatedAccessRequest",
        target="Exchange\\Get-MoveRequest",
        by=scene.rita,
    )


def test_requests_are_refused_while_control_is_disabled_and_accepted_again_after(
    scene: Scene,
) -> None:
    world = scene.world
    world.policy(MOVE)
    organizations.disable_access_control(world.ctx, caller=world.admin.caller)

    with pytest.raises(ControlDisabled) as refused:
        ask(world, scene.rita)
    assert "disabled" in refused.value.message
    assert_refusal_audited(
        world, refused.value, operation="New-ElevatedAccessRequest", target=MOVE, by=scene.rita
    )

    organizations.enable_access_control(
        world.ctx, caller=world.admin.caller, admin_group="Approvers"
    )
    assert ask(world, scene.rita).status is RequestStatus.PENDING  # the policy was kept


def test_second_request_while_one_is_pending_is_refused_naming_it(scene: Scene) -> None:
    world = scene.world
    world.policy(MOVE)
    first = ask(world, scene.rita)

    with pytest.raises(DuplicateRequest) as dup:
        ask(world, scene.rita, "New-MoveRequest", reason="asking again")
    assert str(first.request.id) in dup.value.message
    assert "pending" in dup.value.message
    assert_refusal_audited(
        world,
        dup.value,
        operation="New-ElevatedAccessRequest",
        target="New-MoveRequest",
        by=scene.rita,
    )


def test_second_request_while_one_is_active_is_refused_naming_it(scene: Scene) -> None:
    world = scene.world
    world.policy(MOVE)
    first = approve(world, scene.ann, ask(world, scene.rita))

    world.later(hours=1)
    with pytest.raises(DuplicateRequest) as dup:
        ask(world, scene.rita)
    assert str(first.request.id) in dup.value.message
    assert "approved" in dup.value.message


def test_a_new_request_is_accepted_once_the_previous_one_is_over(scene: Scene) -> None:
    world = scene.world
    world.policy(MOVE)
    deny(world, scene.ann, ask(world, scene.rita))
    second = ask(world, scene.rita)  # after a denial
    world.later(hours=24)  # the second expired unanswered
    assert status(world, second) is RequestStatus.EXPIRED
    third = approve(world, scene.ann, ask(world, scene.rita, duration_hours=1))
    world.later(hours=1)  # the third's window ended
    assert status(world, third) is RequestStatus.COMPLETED
    assert ask(world, scene.rita).status is RequestStatus.PENDING


def test_only_eligible_users_and_groups_may_request(scene: Scene) -> None:
    world = scene.world
    carol = world.user("carol", roles=("Exchange\\Move Mailboxes",))
    dave = world.user("dave", roles=("Exchange\\Move Mailboxes",))
    world.group("Movers", carol)
    world.policy(MOVE, eligible_users=[scene.rita.upn], eligible_groups=["Movers"])

    assert ask(world, scene.rita).status is RequestStatus.PENDING  # named user
    assert ask(world, carol).status is RequestStatus.PENDING  # through a named group
    with pytest.raises(RequesterNotEligible) as refused:
        ask(world, dave)
    assert_refusal_audited(
        world, refused.value, operation="New-ElevatedAccessRequest", target=MOVE, by=dave
    )


def test_request_for_a_task_held_through_no_role_is_refused(scene: Scene) -> None:
    world = scene.world
    world.policy(MOVE)
    nobody = world.user("nobody")
    with pytest.raises(TaskNotHeld) as refused:
        ask(world, nobody)
    assert MOVE in refused.value.message
    assert_refusal_audited(
        world, refused.value, operation="New-ElevatedAccessRequest", target=MOVE, by=nobody
    )
    # so no approver ever sees it
    assert requests.list_requests(world.ctx, caller=scene.ann.caller).items == []


def test_request_without_a_reason_is_refused(scene: Scene) -> None:
    world = scene.world
    world.policy(MOVE)
    blanks = ["", "   ", "\n\t"]
    for reason in blanks:
        with pytest.raises(InvalidInput) as refused:
            ask(world, scene.rita, reason=reason)
        assert refused.value.message == "a reason is required"
    audited = audit(world, operation="New-ElevatedAccessRequest", outcome=Outcome.REFUSED)
    assert [r.details["error"] for r in audited] == ["invalid_input"] * len(blanks)
    assert requests.list_requests(world.ctx, caller=world.admin.caller).items == []


def test_duration_outside_the_policy_bounds_is_refused(scene: Scene) -> None:
    world = scene.world
    world.policy(MOVE, max_duration_hours=8)
    out_of_bounds: list[Any] = [0, -1, -24, 9, 10**9, 2.5, True]
    for hours in out_of_bounds:
        with pytest.raises(InvalidInput) as refused:
            ask(world, scene.rita, duration_hours=hours)
        assert "duration" in refused.value.message, hours
        assert_refusal_audited(
            world,
            refused.value,
            operation="New-ElevatedAccessRequest",
            target=MOVE,
            by=scene.rita,
        )
    audited = audit(world, operation="New-ElevatedAccessRequest", outcome=Outcome.REFUSED)
    assert len(audited) == len(out_of_bounds)
    assert requests.list_requests(world.ctx, caller=world.admin.caller).items == []


def test_duration_of_exactly_the_policy_max_is_granted_in_full(scene: Scene) -> None:
    world = scene.world
    world.policy(MOVE, max_duration_hours=8)
    granted = approve(world, scene.ann, ask(world, scene.rita, duration_hours=8))
    auth = granted.request.authorization
    assert auth is not None
    assert auth.end - auth.start == timedelta(hours=8)


def test_duration_defaults_to_four_hours(scene: Scene) -> None:
    world = scene.world
    world.policy(MOVE)
    asked = ask(world, scene.rita)
    assert asked.request.duration_hours == 4
    granted = approve(world, scene.ann, asked)
    auth = granted.request.authorization
    assert auth is not None
    world.clock.set(auth.start + timedelta(hours=4) - timedelta(microseconds=1))
    assert may_run(world, scene.rita)
    world.clock.set(auth.start + timedelta(hours=4))
    assert not may_run(world, scene.rita)
    world.clock.set(auth.start + timedelta(hours=4, milliseconds=1))
    assert not may_run(world, scene.rita)


def test_policy_requiring_a_ticket_needs_the_org_pattern_in_the_reason(scene: Scene) -> None:
    world = scene.world
    world.policy(MOVE, require_ticket=True)
    with pytest.raises(InvalidInput) as no_pattern:
        ask(world, scene.rita, reason="INC-123456 stuck move")
    assert "ticket" in no_pattern.value.message

    organizations.set_organization_config(
        world.ctx, caller=world.admin.caller, ticket_pattern=r"\bINC-\d{4,}\b"
    )
    with pytest.raises(InvalidInput) as no_ticket:
        ask(world, scene.rita, reason="stuck move, see INC-12")
    assert r"INC-\d{4,}" in no_ticket.value.message
    assert_refusal_audited(
        world, no_ticket.value, operation="New-ElevatedAccessRequest", target=MOVE, by=scene.rita
    )
    assert ask(world, scene.rita, reason="stuck move, see INC-123456").status is (
        RequestStatus.PENDING
    )


# --- the pending deadline -----------------------------------------------------------------------


def test_pending_request_can_be_approved_one_second_before_its_deadline(scene: Scene) -> None:
    world = scene.world
    world.policy(MOVE)
    asked = ask(world, scene.rita)
    assert asked.request.pending_until == asked.request.created_at + timedelta(hours=24)
    world.clock.set(asked.request.pending_until - timedelta(seconds=1))
    assert approve(world, scene.ann, asked).status is RequestStatus.APPROVED
    assert may_run(world, scene.rita)


def test_pending_request_expires_at_its_deadline(scene: Scene) -> None:
    world = scene.world
    world.policy(MOVE)
    asked = ask(world, scene.rita)
    world.clock.set(asked.request.pending_until)

    with pytest.raises(RequestNotPending) as late:
        approve(world, scene.ann, asked)
    assert "expired" in late.value.message
    with pytest.raises(RequestNotPending):
        deny(world, scene.ben, asked)
    assert status(world, asked) is RequestStatus.EXPIRED
    assert not may_run(world, scene.rita)
    assert_refusal_audited(
        world,
        late.value,
        operation="Approve-ElevatedAccessRequest",
        target=str(asked.request.id),
        by=scene.ann,
    )
    world.later(seconds=1)
    with pytest.raises(RequestNotPending):
        approve(world, scene.ann, asked)
    assert status(world, asked) is RequestStatus.EXPIRED


def test_pending_deadline_follows_the_organization_setting(scene: Scene) -> None:
    world = scene.world
    world.policy(MOVE)
    organizations.set_organization_config(world.ctx, caller=world.admin.caller, pending_hours=2)
    asked = ask(world, scene.rita)
    assert asked.request.pending_until == world.clock.now() + timedelta(hours=2)
    world.later(hours=2)
    assert status(world, asked) is RequestStatus.EXPIRED
    with pytest.raises(RequestNotPending):
        approve(world, scene.ann, asked)


# --- who decides --------------------------------------------------------------------------------


def test_requester_cannot_approve_own_request(scene: Scene) -> None:
    world = scene.world
    world.policy(MOVE)
    asked = ask(world, scene.rita)
    with pytest.raises(SelfApprovalNotAllowed) as refused:
        approve(world, scene.rita, asked)
    assert refused.value.message == SELF_APPROVAL
    assert status(world, asked) is RequestStatus.PENDING


def test_admin_in_the_approver_group_cannot_approve_own_request(scene: Scene) -> None:
    world = scene.world
    # The administrator who asks is root, made by the world's admin; the world's admin sets the
    # policy up. Had root chosen the policy's approval setup (or had the asker been the world's
    # admin, which made every account here), the request would be refused as soon as it is filed
    # (separation of duties), before the self-approval this test is about.
    admin = world.user("root", role_groups=("jitpam\\Global Administrator",))
    directory.change_assignment(
        world.ctx, caller=admin.caller, role="Exchange\\Move Mailboxes", user=admin.upn, add=True
    )
    world.policy(MOVE, approver_group="Approvers")
    earlier = ask(world, admin, duration_hours=1)
    directory.change_membership(  # joining the approver group of one's own pending request
        world.ctx, caller=admin.caller, group="Approvers", upn=admin.upn, add=True
    )
    with pytest.raises(SelfApprovalNotAllowed):
        approve(world, admin, earlier)
    requests.cancel_request(world.ctx, caller=admin.caller, request_id=earlier.request.id)
    asked = ask(world, admin)

    with pytest.raises(SelfApprovalNotAllowed) as refused:
        approve(world, admin, asked)
    assert refused.value.message == SELF_APPROVAL
    with pytest.raises(SelfApprovalNotAllowed):
        deny(world, admin, asked)
    assert_refusal_audited(
        world,
        refused.value,
        operation="Approve-ElevatedAccessRequest",
        target=str(asked.request.id),
        by=admin,
    )
    assert status(world, asked) is RequestStatus.PENDING
    assert not may_run(world, admin)


def test_guest_in_the_approver_group_cannot_approve(scene: Scene) -> None:
    world = scene.world
    guest = world.user("guest", kind=UserKind.GUEST)
    directory.change_membership(
        world.ctx, caller=world.admin.caller, group="Approvers", upn=guest.upn, add=True
    )
    world.policy(MOVE)
    asked = ask(world, scene.rita)
    with pytest.raises(NotAnApprover) as refused:
        approve(world, guest, asked)
    assert "guest" in refused.value.message
    assert_refusal_audited(
        world,
        refused.value,
        operation="Approve-ElevatedAccessRequest",
        target=str(asked.request.id),
        by=guest,
    )
    assert status(world, asked) is RequestStatus.PENDING


def test_disabled_user_in_the_approver_group_cannot_approve(scene: Scene) -> None:
    world = scene.world
    world.policy(MOVE)
    asked = ask(world, scene.rita)
    directory.set_user(world.ctx, caller=world.admin.caller, upn=scene.ann.upn, enabled=False)
    with pytest.raises(NotAnApprover):
        approve(world, scene.ann, asked)
    with pytest.raises(NotAnApprover):
        deny(world, scene.ann, asked)
    assert status(world, asked) is RequestStatus.PENDING


def test_approver_removed_from_the_group_before_the_vote_cannot_vote(scene: Scene) -> None:
    world = scene.world
    world.policy(MOVE, approver_group="Approvers")
    asked = ask(world, scene.rita)
    directory.change_membership(
        world.ctx, caller=world.admin.caller, group="Approvers", upn=scene.ann.upn, add=False
    )
    with pytest.raises(NOT_AN_APPROVER) as refused:
        approve(world, scene.ann, asked)
    assert_refusal_audited(
        world,
        refused.value,
        operation="Approve-ElevatedAccessRequest",
        target=str(asked.request.id),
        by=scene.ann,
    )
    assert status(world, asked) is RequestStatus.PENDING
    assert approve(world, scene.ben, asked).status is RequestStatus.APPROVED


def test_default_approver_group_votes_when_the_policy_names_none(scene: Scene) -> None:
    world = scene.world
    olga = world.user("olga")
    world.group("Others", olga)
    world.policy(MOVE)  # no approver group of its own
    first = ask(world, scene.rita, duration_hours=1)
    with pytest.raises(NOT_AN_APPROVER):
        approve(world, olga, first)
    assert approve(world, scene.ann, first).status is RequestStatus.APPROVED

    world.later(hours=1)
    second = ask(world, scene.rita)
    organizations.enable_access_control(world.ctx, caller=world.admin.caller, admin_group="Others")
    with pytest.raises(NOT_AN_APPROVER):
        approve(world, scene.ann, second)  # the default at the time of the vote
    assert approve(world, olga, second).status is RequestStatus.APPROVED


# --- N of M -------------------------------------------------------------------------------------


def test_two_approvals_required_need_two_distinct_approvers(scene: Scene) -> None:
    world = scene.world
    world.policy(MOVE, approvals_required=2)
    asked = ask(world, scene.rita)

    assert approve(world, scene.ann, asked).status is RequestStatus.PENDING
    assert not may_run(world, scene.rita)
    with pytest.raises(AlreadyVoted) as twice:
        approve(world, scene.ann, asked)
    assert_refusal_audited(
        world,
        twice.value,
        operation="Approve-ElevatedAccessRequest",
        target=str(asked.request.id),
        by=scene.ann,
    )
    with pytest.raises(AlreadyVoted):
        deny(world, scene.ann, asked)  # nor change their vote
    assert status(world, asked) is RequestStatus.PENDING

    done = approve(world, scene.ben, asked)
    assert done.status is RequestStatus.APPROVED
    assert [r.approver_id for r in done.request.reviews] == [
        scene.ann.caller.user_id,
        scene.ben.caller.user_id,
    ]
    assert may_run(world, scene.rita)


def test_one_deny_after_one_approval_denies(scene: Scene) -> None:
    world = scene.world
    world.policy(MOVE, approvals_required=2)
    asked = ask(world, scene.rita)
    approve(world, scene.ann, asked)
    assert deny(world, scene.ben, asked).status is RequestStatus.DENIED
    assert not may_run(world, scene.rita)
    carl = world.user("carl")
    directory.change_membership(
        world.ctx, caller=world.admin.caller, group="Approvers", upn=carl.upn, add=True
    )
    with pytest.raises(RequestNotPending):
        approve(world, carl, asked)


def test_lowering_approvals_required_does_not_approve_an_earlier_request(scene: Scene) -> None:
    world = scene.world
    policy = world.policy(MOVE, approvals_required=2)
    asked = ask(world, scene.rita)
    policies.set_policy(
        world.ctx, caller=world.admin.caller, policy_id=policy.id, approvals_required=1
    )
    assert approve(world, scene.ann, asked).status is RequestStatus.PENDING
    assert not may_run(world, scene.rita)
    assert approve(world, scene.ben, asked).status is RequestStatus.APPROVED


# --- cancel and revoke --------------------------------------------------------------------------


def test_only_the_requester_can_cancel(scene: Scene) -> None:
    world = scene.world
    world.policy(MOVE)
    stranger = world.user("stranger")
    asked = ask(world, scene.rita)
    rid = asked.request.id

    with pytest.raises(NotPermitted):
        requests.cancel_request(world.ctx, caller=scene.ann.caller, request_id=rid)  # approver
    with pytest.raises(NotPermitted):
        requests.cancel_request(world.ctx, caller=world.admin.caller, request_id=rid)
    with pytest.raises(NotFound):
        requests.cancel_request(world.ctx, caller=stranger.caller, request_id=rid)
    assert status(world, asked) is RequestStatus.PENDING

    cancelled = requests.cancel_request(world.ctx, caller=scene.rita.caller, request_id=rid)
    assert cancelled.status is RequestStatus.CANCELLED
    with pytest.raises(RequestNotPending):
        approve(world, scene.ann, asked)
    assert len(audit(world, operation="Cancel-ElevatedAccessRequest", target=str(rid))) == 4


@pytest.mark.parametrize("revoker", ["grantee", "approver", "administrator"])
def test_grant_can_be_revoked_by_grantee_approver_and_admin(scene: Scene, revoker: str) -> None:
    world = scene.world
    world.policy(MOVE, approver_group="Approvers")
    secadmin = world.user("secadmin", roles=("jitpam\\Role Management",))
    who = {"grantee": scene.rita, "approver": scene.ben, "administrator": secadmin}[revoker]
    granted = approve(world, scene.ann, ask(world, scene.rita))
    world.later(minutes=30)
    assert may_run(world, scene.rita)

    revoked = requests.revoke_authorization(
        world.ctx, caller=who.caller, request_id=granted.request.id, comment="done early"
    )
    assert revoked.status is RequestStatus.REVOKED
    auth = revoked.request.authorization
    assert auth is not None
    assert (auth.revoked_at, auth.revoked_by, auth.revocation_comment) == (
        world.clock.now(),
        who.caller.user_id,
        "done early",
    )
    assert not may_run(world, scene.rita)  # at once
    (record,) = audit(world, operation="Revoke-ElevatedAccessAuthorization")
    assert record.actor_name == who.upn
    assert record.details["revoked_as"] == revoker
    assert record.details["comment"] == "done early"


def test_unrelated_user_cannot_revoke(scene: Scene) -> None:
    world = scene.world
    world.policy(MOVE, approver_group="Approvers")
    stranger = world.user("stranger", roles=("Exchange\\Move Mailboxes",))
    granted = approve(world, scene.ann, ask(world, scene.rita))
    with pytest.raises(NotFound) as refused:
        requests.revoke_authorization(
            world.ctx, caller=stranger.caller, request_id=granted.request.id
        )
    assert_refusal_audited(
        world,
        refused.value,
        operation="Revoke-ElevatedAccessAuthorization",
        target=str(granted.request.id),
        by=stranger,
    )
    assert status(world, granted) is RequestStatus.APPROVED
    assert may_run(world, scene.rita)


def test_revoking_a_grant_that_is_not_active_is_refused(scene: Scene) -> None:
    world = scene.world
    world.policy(MOVE)
    pending = ask(world, scene.rita)
    with pytest.raises(AuthorizationNotActive):
        requests.revoke_authorization(
            world.ctx, caller=scene.rita.caller, request_id=pending.request.id
        )
    deny(world, scene.ann, pending)
    with pytest.raises(AuthorizationNotActive):
        requests.revoke_authorization(
            world.ctx, caller=world.admin.caller, request_id=pending.request.id
        )

    granted = approve(world, scene.ann, ask(world, scene.rita, duration_hours=1))
    requests.revoke_authorization(world.ctx, caller=scene.ann.caller, request_id=granted.request.id)
    with pytest.raises(AuthorizationNotActive) as twice:
        requests.revoke_authorization(
            world.ctx, caller=scene.ben.caller, request_id=granted.request.id
        )
    assert_refusal_audited(
        world,
        twice.value,
        operation="Revoke-ElevatedAccessAuthorization",
        target=str(granted.request.id),
        by=scene.ben,
    )

    completed = approve(world, scene.ann, ask(world, scene.rita, duration_hours=1))
    world.later(hours=1)
    with pytest.raises(AuthorizationNotActive):
        requests.revoke_authorization(
            world.ctx, caller=scene.rita.caller, request_id=completed.request.id
        )
    assert status(world, completed) is RequestStatus.COMPLETED


def test_disabling_a_user_revokes_grants_and_cancels_pending_requests(scene: Scene) -> None:
    world = scene.world
    world.policy(MOVE)
    world.policy("Exchange\\Set-MoveRequest")
    granted = approve(world, scene.ann, ask(world, scene.rita, duration_hours=8))
    pending = ask(world, scene.rita, "Exchange\\Set-MoveRequest")
    world.later(minutes=5)

    directory.set_user(world.ctx, caller=world.admin.caller, upn=scene.rita.upn, enabled=False)

    assert status(world, granted) is RequestStatus.REVOKED
    assert status(world, pending) is RequestStatus.CANCELLED
    with pytest.raises(RequestNotPending):
        approve(world, scene.ann, pending)
    revoked = audit(
        world, operation="Revoke-ElevatedAccessAuthorization", target=str(granted.request.id)
    )
    cancelled = audit(
        world, operation="Cancel-ElevatedAccessRequest", target=str(pending.request.id)
    )
    assert [(r.actor_name, r.details["requester"]) for r in revoked + cancelled] == [
        (world.admin.upn, scene.rita.upn)
    ] * 2

    # enabling the account again does not bring the grant back
    directory.set_user(world.ctx, caller=world.admin.caller, upn=scene.rita.upn, enabled=True)
    again = access.check_access(world.ctx, caller=scene.rita.caller, user=scene.rita.upn, task=MOVE)
    assert (again.allowed, again.reason) == (False, Reason.AUTHORIZATION_REQUIRED)


# --- who sees what ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TwoQueues:
    """rita's move request reviewed by Approvers; dora's search request reviewed by Searchers."""

    move: RequestView
    search: RequestView
    dora: Person
    sam: Person


def two_queues(scene: Scene) -> TwoQueues:
    world = scene.world
    sam = world.user("sam")
    world.group("Searchers", sam)
    dora = world.user("dora", roles=("Exchange\\Mailbox Search",))
    world.policy(MOVE, approver_group="Approvers")
    world.policy(SEARCH, approver_group="Searchers")
    move = ask(world, scene.rita)
    world.later(seconds=1)
    search = ask(world, dora, SEARCH, reason="legal hold case 7")
    return TwoQueues(move, search, dora, sam)


def ids(page: Any) -> set[Any]:
    return {v.request.id for v in page.items}


def test_requester_sees_only_their_own_requests(db_scene: Scene) -> None:
    scene = db_scene
    world, q = scene.world, two_queues(scene)
    assert ids(requests.list_requests(world.ctx, caller=scene.rita.caller)) == {q.move.request.id}
    assert ids(requests.list_requests(world.ctx, caller=q.dora.caller)) == {q.search.request.id}
    assert requests.get_request(world.ctx, caller=scene.rita.caller, request_id=q.move.request.id)
    with pytest.raises(NotFound):
        requests.get_request(world.ctx, caller=scene.rita.caller, request_id=q.search.request.id)
    with pytest.raises(NotFound):
        requests.verify_request(world.ctx, caller=q.dora.caller, request_id=q.move.request.id)


def test_approver_sees_the_requests_of_their_groups_policies(db_scene: Scene) -> None:
    scene = db_scene
    world, q = scene.world, two_queues(scene)
    assert ids(requests.list_requests(world.ctx, caller=scene.ann.caller)) == {q.move.request.id}
    assert ids(requests.list_requests(world.ctx, caller=q.sam.caller)) == {q.search.request.id}
    assert requests.get_request(world.ctx, caller=q.sam.caller, request_id=q.search.request.id)
    with pytest.raises(NotFound):
        requests.get_request(world.ctx, caller=q.sam.caller, request_id=q.move.request.id)


def test_voting_on_a_request_outside_ones_queue_reveals_nothing(scene: Scene) -> None:
    # Like get, cancel and revoke: a request the caller may not see is "not found"; the refusal
    # must not tell them that it exists, nor what it is for.
    world, q = scene.world, two_queues(scene)
    for vote in (approve, deny):
        with pytest.raises(NotFound) as refused:
            vote(world, q.sam, q.move)
        assert MOVE not in refused.value.message
    assert status(world, q.move) is RequestStatus.PENDING


def test_admin_sees_every_request(db_scene: Scene) -> None:
    scene = db_scene
    world, q = scene.world, two_queues(scene)
    everything = requests.list_requests(world.ctx, caller=world.admin.caller)
    assert [v.request.id for v in everything.items] == [q.search.request.id, q.move.request.id]
    auditor = world.user("auditor", roles=("jitpam\\Audit Reader",))
    assert ids(requests.list_requests(world.ctx, caller=auditor.caller)) == {
        q.move.request.id,
        q.search.request.id,
    }
    mine = requests.list_requests(world.ctx, caller=world.admin.caller, mine=True)
    assert mine.items == []


def test_list_filters_by_status_including_expired_and_completed(db_scene: Scene) -> None:
    scene = db_scene
    world = scene.world
    world.policy(MOVE)
    names = ["approved", "completed", "denied", "cancelled", "revoked", "expired", "pending"]
    people = {n: world.user(f"u-{n}", roles=("Exchange\\Move Mailboxes",)) for n in names}
    start = world.clock.now()
    asked = {
        n: ask(world, people[n], duration_hours=1 if n == "completed" else 48)
        for n in names
        if n != "pending"
    }
    approve(world, scene.ann, asked["approved"])
    approve(world, scene.ann, asked["completed"])
    deny(world, scene.ann, asked["denied"])
    requests.cancel_request(
        world.ctx, caller=people["cancelled"].caller, request_id=asked["cancelled"].request.id
    )
    approve(world, scene.ann, asked["revoked"])
    requests.revoke_authorization(
        world.ctx, caller=scene.ann.caller, request_id=asked["revoked"].request.id
    )
    world.clock.set(start + timedelta(hours=24))  # "expired" and "completed" are now due
    asked["pending"] = ask(world, people["pending"])

    def listed(s: RequestStatus | None) -> dict[Any, RequestStatus]:
        page = requests.list_requests(world.ctx, caller=world.admin.caller, status=s)
        return {v.request.id: v.status for v in page.items}

    for settled in (2, 0):  # before and after the sweeper writes the clock's decisions down
        for name in names:
            expected = RequestStatus(name)
            assert listed(expected) == {asked[name].request.id: expected}, name
            assert status(world, asked[name]) is expected
        assert len(listed(None)) == len(names)
        assert requests.settle_requests(world.ctx, org_id=world.org.id) == settled


def test_list_pages_through_more_requests_than_one_page_holds(db_scene: Scene) -> None:
    scene = db_scene
    world = scene.world
    world.policy(MOVE)
    movers = [world.user(f"mover{i}", roles=("Exchange\\Move Mailboxes",)) for i in range(7)]
    asked = []
    for i, mover in enumerate(movers):
        if i in (3, 5):
            world.later(minutes=1)  # some requests share their creation instant, some do not
        asked.append(ask(world, mover).request.id)

    seen: list[Any] = []
    created = []
    cursor: str | None = None
    pages = 0
    while True:
        page = requests.list_requests(world.ctx, caller=world.admin.caller, cursor=cursor, limit=3)
        pages += 1
        assert len(page.items) <= 3
        seen += [v.request.id for v in page.items]
        created += [v.request.created_at for v in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == set(asked)
    assert created == sorted(created, reverse=True)  # newest first

    mine = requests.list_requests(world.ctx, caller=movers[0].caller, limit=1)
    assert [v.request.id for v in mine.items] == [asked[0]]
    assert mine.next_cursor is None
    with pytest.raises(InvalidInput):
        requests.list_requests(world.ctx, caller=world.admin.caller, cursor="not-a-cursor")
    with pytest.raises(InvalidInput):
        requests.list_requests(world.ctx, caller=world.admin.caller, limit=0)


def test_list_searches_the_target_text(db_scene: Scene) -> None:
    scene = db_scene
    world, q = scene.world, two_queues(scene)

    def found(text: str) -> set[Any]:
        return ids(
            requests.list_requests(world.ctx, caller=world.admin.caller, target_contains=text)
        )

    assert found("moverequest") == {q.move.request.id}
    assert found("Exchange\\Search-") == {q.search.request.id}
    assert found("exchange") == {q.move.request.id, q.search.request.id}
    assert found("%") == set()  # wildcards are plain characters
    assert found("_") == set()
    assert found("Search_Mailbox") == set()
    # a requester's search stays within what they may see
    assert ids(
        requests.list_requests(world.ctx, caller=scene.rita.caller, target_contains="exchange")
    ) == {q.move.request.id}


def test_a_kind_filter_lists_the_requests_of_those_kinds(scene: Scene) -> None:
    kinds_listed(scene)


def test_a_kind_filter_lists_the_requests_of_those_kinds_from_the_database(
    db_scene: Scene,
) -> None:
    kinds_listed(db_scene)


def kinds_listed(scene: Scene) -> None:
    world = scene.world
    world.policy(MOVE, approver_group="Approvers")
    world.policy("Exchange\\Mailbox Search", type=PolicyType.ROLE, approver_group="Approvers")
    task = ask(world, scene.rita)
    world.later(seconds=1)
    role = ask(world, scene.rita, "Exchange\\Mailbox Search", type=PolicyType.ROLE)
    admin = world.admin.caller

    def listed(types: list[Any] | None) -> set[Any]:
        return ids(requests.list_requests(world.ctx, caller=admin, types=types))

    assert listed(None) == {task.request.id, role.request.id}
    assert listed([PolicyType.TASK]) == {task.request.id}
    assert listed(["role"]) == {role.request.id}
    assert listed([PolicyType.ROLE_GROUP]) == set()
    assert listed([]) == set()  # a kind no access request is (a data access request)
    with pytest.raises(InvalidInput):
        listed(["lockbox"])
