"""Separation of duties: a vote counts only when its requester had no hand in it.

The requester has a hand when they are the voter, steer the voter's account (created it, set its
password or a token), placed the voter in the approver group, or last set the policy's approval
setup; and a system account's exemption counts only when its designator does not steer it
(docs/reference.md, "Separation of duties"). Each path is tried by an administrator, eve, who
holds jitpam\\Global Administrator; the world's own administrator, whom the installation
created, plays the independent administrator who sets things up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from jitpam.adapters.passwords import Argon2Passwords
from jitpam.domain.audit import AuditRecord, Outcome
from jitpam.domain.check import Reason
from jitpam.domain.directory import UserKind
from jitpam.domain.errors import NotPermitted, SelfApprovalNotAllowed, SeparationOfDuties
from jitpam.domain.policy import ApprovalType, Policy, PolicyType
from jitpam.domain.requests import RequestStatus
from jitpam.services import (
    access,
    audit_log,
    auth,
    directory,
    organizations,
    policies,
    requests,
)
from jitpam.services.context import Caller, ServiceContext
from jitpam.services.ports import AuditFilter
from jitpam.services.requests import RequestView
from tests.integration.world import Person, World, own_process

DISABLE = "jitpam\\Disable-ElevatedAccessControl"
GLOBAL_ADMIN = "jitpam\\Global Administrator"
MOVE = "Exchange\\New-MoveRequest"
PASSWORD = "a-long-enough-password"


@dataclass(frozen=True)
class Scene:
    """Control on, pamapprovers (bob, added by the world's admin) the default approver group;
    eve is a second administrator, made by the world's admin."""

    world: World
    eve: Person
    bob: Person


@pytest.fixture
def ctx(memory_ctx: ServiceContext) -> ServiceContext:
    """The rules run on the in-memory unit of work; what an adapter's query decides runs on
    the databases (``db_scene``)."""
    return memory_ctx


def make_scene(world: World) -> Scene:
    world.ctx = own_process(
        ServiceContext(
            uow=world.ctx.uow,
            clock=world.ctx.clock,
            signer=world.ctx.signer,
            passwords=Argon2Passwords(time_cost=1, memory_cost_kib=8),
        )
    )
    eve = world.user("eve", role_groups=(GLOBAL_ADMIN,))
    bob = world.user("bob")
    world.group("pamapprovers", bob)
    organizations.enable_access_control(
        world.ctx, caller=world.admin.caller, admin_group="pamapprovers"
    )
    return Scene(world, eve, bob)


@pytest.fixture
def scene(world: World) -> Scene:
    return make_scene(world)


@pytest.fixture
def db_scene(db_world: World) -> Scene:
    return make_scene(db_world)


def make_account(
    scene: Scene, by: Person, name: str, *, kind: UserKind = UserKind.PERSON
) -> Person:
    w = scene.world
    user = directory.add_user(
        w.ctx, caller=by.caller, upn=w.upn(name), display_name=name, kind=kind
    )
    return Person(Caller(w.org.id, user.id), user.upn)


def join(scene: Scene, by: Person, who: Person, group: str = "pamapprovers") -> None:
    directory.change_membership(
        scene.world.ctx, caller=by.caller, group=group, upn=who.upn, add=True
    )


def guard(scene: Scene, **options: Any) -> Policy:
    """The world's admin puts jitpam\\Disable-ElevatedAccessControl behind pamapprovers."""
    options.setdefault("approver_group", "pamapprovers")
    return scene.world.policy(DISABLE, **options)


def ask(scene: Scene, who: Person, target: str = DISABLE) -> RequestView:
    return requests.new_request(
        scene.world.ctx,
        caller=who.caller,
        type=PolicyType.TASK,
        target=target,
        reason="maintenance window CHG-7",
        duration_hours=1,
    )


def approve(scene: Scene, who: Person, view: RequestView) -> RequestView:
    return requests.approve_request(scene.world.ctx, caller=who.caller, request_id=view.request.id)


def status(scene: Scene, view: RequestView) -> RequestStatus:
    return requests.get_request(
        scene.world.ctx, caller=scene.world.admin.caller, request_id=view.request.id
    ).status


def control_enabled(scene: Scene) -> bool:
    return organizations.get_access_control(
        scene.world.ctx, caller=scene.world.admin.caller
    ).control.enabled


def refusals(scene: Scene, operation: str) -> list[AuditRecord]:
    return audit_log.search_audit(
        scene.world.ctx,
        caller=scene.world.admin.caller,
        flt=AuditFilter(operation=operation, outcome=Outcome.REFUSED),
        limit=1000,
    ).items


def refused_vote(scene: Scene, voter: Person, view: RequestView, hand: str) -> None:
    """The vote is refused as separation of duties, naming the relation, and audited."""
    before = len(refusals(scene, "Approve-ElevatedAccessRequest"))
    with pytest.raises(SeparationOfDuties) as refused:
        approve(scene, voter, view)
    assert "separation of duties" in refused.value.message
    assert {
        "steers_account": "created",
        "placed_in_group": "added",
        "chose_setup": "approval setup",
    }[hand] in refused.value.message
    records = refusals(scene, "Approve-ElevatedAccessRequest")
    assert len(records) == before + 1
    assert records[0].details["error"] == "separation_of_duties"
    assert status(scene, view) is RequestStatus.PENDING


# --- the tester's reproduction -------------------------------------------------------------------


def test_admin_cannot_approve_their_own_guarded_request_through_an_account_they_made(
    scene: Scene,
) -> None:
    w, eve = scene.world, scene.eve
    guard(scene)
    mallory = make_account(scene, eve, "mallory")
    auth.set_password(w.ctx, caller=eve.caller, upn=mallory.upn, password=PASSWORD)
    join(scene, eve, mallory)
    view = ask(scene, eve)
    signed_in = auth.sign_in(w.ctx, upn=mallory.upn, password=PASSWORD, client="test")
    as_mallory = auth.authenticate(w.ctx, secret=signed_in.secret)

    with pytest.raises(SeparationOfDuties) as refused:
        requests.approve_request(w.ctx, caller=as_mallory, request_id=view.request.id)
    assert mallory.upn in refused.value.message
    assert eve.upn in refused.value.message
    with pytest.raises(NotPermitted):
        organizations.disable_access_control(w.ctx, caller=eve.caller)
    assert control_enabled(scene)
    assert status(scene, view) is RequestStatus.PENDING
    (record,) = refusals(scene, "Approve-ElevatedAccessRequest")
    assert record.actor_name == mallory.upn
    assert record.details["error"] == "separation_of_duties"


def test_an_independent_approver_still_approves_and_the_guarded_operation_runs(
    scene: Scene,
) -> None:
    guard(scene)
    view = ask(scene, scene.eve)
    assert approve(scene, scene.bob, view).status is RequestStatus.APPROVED
    organizations.disable_access_control(scene.world.ctx, caller=scene.eve.caller)
    assert not control_enabled(scene)


# --- each way a requester can make or steer a vote -----------------------------------------------


def test_an_approver_whose_account_the_requester_created_cannot_vote(scene: Scene) -> None:
    guard(scene)
    mallory = make_account(scene, scene.eve, "mallory")
    join(scene, scene.world.admin, mallory)  # placed by someone else: the creation is enough
    refused_vote(scene, mallory, ask(scene, scene.eve), "steers_account")


def test_an_approver_whose_password_the_requester_set_cannot_vote(scene: Scene) -> None:
    w = scene.world
    guard(scene)
    carol = make_account(scene, w.admin, "carol")  # someone else made the account
    auth.set_password(w.ctx, caller=scene.eve.caller, upn=carol.upn, password=PASSWORD)
    join(scene, w.admin, carol)
    view = ask(scene, scene.eve)
    # Carol changing her password afterwards clears nothing: eve could have been carol.
    auth.set_password(
        w.ctx,
        caller=carol.caller,
        upn=carol.upn,
        password=PASSWORD + "!",
        current_password=PASSWORD,
    )
    refused_vote(scene, carol, view, "steers_account")


def test_an_approver_the_requester_added_to_the_group_cannot_vote(scene: Scene) -> None:
    w = scene.world
    guard(scene)
    carol = make_account(scene, w.admin, "carol")
    join(scene, scene.eve, carol)
    view = ask(scene, scene.eve)
    refused_vote(scene, carol, view, "placed_in_group")
    # Another administrator adding her again re-confirms the membership: her vote counts.
    join(scene, w.admin, carol)
    assert approve(scene, carol, view).status is RequestStatus.APPROVED


def test_a_member_of_a_group_the_requester_created_with_them_cannot_vote(scene: Scene) -> None:
    w = scene.world
    carol = make_account(scene, w.admin, "carol")
    directory.add_group(w.ctx, caller=scene.eve.caller, name="eve-approvers", members=[carol.upn])
    guard(scene, approver_group="eve-approvers")
    view = ask(scene, scene.eve)
    refused_vote(scene, carol, view, "placed_in_group")


def may_move(scene: Scene, who: Person) -> None:
    directory.change_assignment(
        scene.world.ctx,
        caller=scene.world.admin.caller,
        role="Exchange\\Move Mailboxes",
        user=who.upn,
        add=True,
    )


def test_a_requester_who_chose_the_approver_group_cannot_file_until_it_is_reconfirmed(
    scene: Scene,
) -> None:
    w, eve = scene.world, scene.eve
    move = w.policy(MOVE, approver_group="pamapprovers")
    may_move(scene, eve)
    w.group("cronies")
    carol = make_account(scene, w.admin, "carol")
    join(scene, w.admin, carol, group="cronies")
    policies.set_policy(w.ctx, caller=eve.caller, policy_id=move.id, approver_group="cronies")
    with pytest.raises(SeparationOfDuties) as refused:
        ask(scene, eve, MOVE)
    assert "the approver group for" in refused.value.message
    assert "re-confirm" in refused.value.message
    (record,) = refusals(scene, "New-ElevatedAccessRequest")
    assert record.details["error"] == "separation_of_duties"
    # Another administrator re-confirms the setting: now eve may ask, and carol's vote counts.
    policies.set_policy(w.ctx, caller=w.admin.caller, policy_id=move.id, approver_group="cronies")
    view = ask(scene, eve, MOVE)
    assert approve(scene, carol, view).status is RequestStatus.APPROVED


def test_a_requester_who_set_the_default_approver_group_cannot_file_under_it(
    scene: Scene,
) -> None:
    w = scene.world
    guard(scene, approver_group=None)  # the policy uses the organization's default group
    organizations.enable_access_control(w.ctx, caller=scene.eve.caller, admin_group="pamapprovers")
    with pytest.raises(SeparationOfDuties) as refused:
        ask(scene, scene.eve)
    assert "default approver group" in refused.value.message
    organizations.enable_access_control(w.ctx, caller=w.admin.caller, admin_group="pamapprovers")
    assert approve(scene, scene.bob, ask(scene, scene.eve)).status is RequestStatus.APPROVED


def test_a_requester_who_lowered_approvals_required_cannot_file_under_it(scene: Scene) -> None:
    w = scene.world
    carol = make_account(scene, w.admin, "carol")
    join(scene, w.admin, carol)
    move = w.policy(MOVE, approver_group="pamapprovers", approvals_required=2)
    may_move(scene, scene.eve)
    policies.set_policy(w.ctx, caller=scene.eve.caller, policy_id=move.id, approvals_required=1)
    with pytest.raises(SeparationOfDuties) as refused:
        ask(scene, scene.eve, MOVE)
    assert "approvals required" in refused.value.message


def test_a_requester_who_made_the_policy_auto_is_not_auto_approved(scene: Scene) -> None:
    w = scene.world
    move = w.policy(MOVE, approver_group="pamapprovers")
    may_move(scene, scene.eve)
    policies.set_policy(
        w.ctx, caller=scene.eve.caller, policy_id=move.id, approval_type=ApprovalType.AUTO
    )
    with pytest.raises(SeparationOfDuties) as refused:
        ask(scene, scene.eve, MOVE)
    assert "approval type" in refused.value.message
    assert requests.my_authorizations(w.ctx, caller=scene.eve.caller) == []
    # Someone else asking under the same Auto policy is approved at once, as before.
    rita = w.user("rita", roles=("Exchange\\Move Mailboxes",))
    assert ask(scene, rita, MOVE).status is RequestStatus.APPROVED


def test_on_an_auto_policy_nobody_makes_themself_eligible(scene: Scene) -> None:
    """Eligibility is the whole approval of an Auto policy: being eligible only through a
    membership one added, or a list one set, does not count."""
    w, eve = scene.world, scene.eve
    w.group("helpdesk")
    w.policy(MOVE, approval=ApprovalType.AUTO, eligible_groups=["helpdesk"])
    may_move(scene, eve)
    join(scene, eve, eve, group="helpdesk")
    with pytest.raises(SeparationOfDuties, match="eligible groups"):
        ask(scene, eve, MOVE)
    join(scene, w.admin, eve, group="helpdesk")  # another administrator adds her
    assert ask(scene, eve, MOVE).status is RequestStatus.APPROVED

    search = "Exchange\\Get-Recipient"
    w.policy(search, approval=ApprovalType.AUTO, eligible_groups=["helpdesk"])
    directory.change_assignment(
        w.ctx, caller=w.admin.caller, role="Exchange\\Mail Recipients", user=eve.upn, add=True
    )
    (policy,) = [
        p for p in policies.list_policies(w.ctx, caller=w.admin.caller) if str(p.target) == search
    ]
    policies.set_policy(w.ctx, caller=eve.caller, policy_id=policy.id, eligible_users=[eve.upn])
    with pytest.raises(SeparationOfDuties, match="the eligible requesters"):
        ask(scene, eve, search)


def test_a_requester_who_changes_the_approver_group_while_pending_cannot_use_it(
    scene: Scene,
) -> None:
    w = scene.world
    move = w.policy(MOVE, approver_group="pamapprovers")
    may_move(scene, scene.eve)
    view = ask(scene, scene.eve, MOVE)
    w.group("cronies")
    carol = make_account(scene, w.admin, "carol")
    join(scene, w.admin, carol, group="cronies")
    policies.set_policy(w.ctx, caller=scene.eve.caller, policy_id=move.id, approver_group="cronies")
    refused_vote(scene, carol, view, "chose_setup")


def test_an_earlier_approval_stops_counting_once_the_requester_steers_the_voter(
    scene: Scene,
) -> None:
    w = scene.world
    carol = make_account(scene, w.admin, "carol")
    join(scene, w.admin, carol)
    guard(scene, approvals_required=2)
    view = ask(scene, scene.eve)
    approve(scene, carol, view)  # carol is independent: her approval counts, one of two
    # Eve then sets carol's first password: eve could sign in as carol from now on.
    auth.set_password(w.ctx, caller=scene.eve.caller, upn=carol.upn, password=PASSWORD)
    after = approve(scene, scene.bob, view)
    assert after.status is RequestStatus.PENDING  # carol's approval no longer counts
    dana = make_account(scene, w.admin, "dana")
    join(scene, w.admin, dana)
    assert approve(scene, dana, view).status is RequestStatus.APPROVED


def test_the_requester_still_cannot_approve_their_own_request(scene: Scene) -> None:
    guard(scene)
    join(scene, scene.world.admin, scene.eve)
    view = ask(scene, scene.eve)
    with pytest.raises(SelfApprovalNotAllowed):
        approve(scene, scene.eve, view)


# --- system accounts -----------------------------------------------------------------------------


def test_nobody_makes_themself_a_system_account(scene: Scene) -> None:
    w = scene.world
    with pytest.raises(NotPermitted, match="nobody can make themself a system account"):
        organizations.enable_access_control(
            w.ctx,
            caller=scene.eve.caller,
            admin_group="pamapprovers",
            system_accounts=[scene.eve.upn],
        )
    assert organizations.get_access_control(
        w.ctx, caller=w.admin.caller
    ).control.system_account_ids == (frozenset())
    (record,) = refusals(scene, "Enable-ElevatedAccessControl")
    assert record.details["error"] == "not_permitted"


def test_nobody_makes_an_account_they_steer_a_system_account(scene: Scene) -> None:
    w = scene.world
    robot = make_account(scene, scene.eve, "robot", kind=UserKind.SERVICE)
    with pytest.raises(SeparationOfDuties) as refused:
        organizations.enable_access_control(
            w.ctx, caller=scene.eve.caller, admin_group="pamapprovers", system_accounts=[robot.upn]
        )
    assert robot.upn in refused.value.message
    # Nor one whose token they minted, made by someone else.
    other = make_account(scene, w.admin, "other", kind=UserKind.SERVICE)
    auth.create_token(w.ctx, caller=scene.eve.caller, user=other.upn)
    with pytest.raises(SeparationOfDuties):
        organizations.enable_access_control(
            w.ctx, caller=scene.eve.caller, admin_group="pamapprovers", system_accounts=[other.upn]
        )
    # An administrator who steers neither may.
    dana = w.user("dana", role_groups=(GLOBAL_ADMIN,))
    organizations.enable_access_control(
        w.ctx,
        caller=dana.caller,
        admin_group="pamapprovers",
        system_accounts=[robot.upn, other.upn],
    )


def test_an_exemption_stops_counting_once_its_designator_resets_the_password(
    scene: Scene,
) -> None:
    w, eve = scene.world, scene.eve
    robot = make_account(scene, w.admin, "robot", kind=UserKind.SERVICE)
    directory.change_assignment(
        w.ctx, caller=w.admin.caller, role="Exchange\\Move Mailboxes", user=robot.upn, add=True
    )
    w.policy(MOVE, approver_group="pamapprovers")
    organizations.enable_access_control(
        w.ctx, caller=eve.caller, admin_group="pamapprovers", system_accounts=[robot.upn]
    )

    def check() -> Reason:
        return access.check_access(w.ctx, caller=w.admin.caller, user=robot.upn, task=MOVE).reason

    assert check() is Reason.SYSTEM_ACCOUNT  # exempt, through the decision index
    auth.set_password(w.ctx, caller=eve.caller, upn=robot.upn, password=PASSWORD)
    assert check() is Reason.AUTHORIZATION_REQUIRED  # the designator now steers it
    # Listed again by eve, who now steers it, the designation is refused; by an administrator
    # who steers it in no way, it is exempt again.
    with pytest.raises(SeparationOfDuties):
        organizations.enable_access_control(
            w.ctx, caller=eve.caller, admin_group="pamapprovers", system_accounts=[robot.upn]
        )
    dana = w.user("dana", role_groups=(GLOBAL_ADMIN,))
    organizations.enable_access_control(
        w.ctx, caller=dana.caller, admin_group="pamapprovers", system_accounts=[robot.upn]
    )
    assert check() is Reason.SYSTEM_ACCOUNT


def test_an_exemption_stops_counting_once_anyone_sets_a_credential_of_the_account(
    scene: Scene,
) -> None:
    w = scene.world
    robot = make_account(scene, w.admin, "robot", kind=UserKind.SERVICE)
    directory.change_assignment(
        w.ctx, caller=w.admin.caller, role="Exchange\\Move Mailboxes", user=robot.upn, add=True
    )
    w.policy(MOVE, approver_group="pamapprovers")
    organizations.enable_access_control(
        w.ctx, caller=scene.eve.caller, admin_group="pamapprovers", system_accounts=[robot.upn]
    )

    def check() -> Reason:
        return access.check_access(w.ctx, caller=w.admin.caller, user=robot.upn, task=MOVE).reason

    assert check() is Reason.SYSTEM_ACCOUNT  # eve, who steers it in no way, designated it
    # Someone else (not its designator) mints a token for it: whoever holds that token acts as
    # the account, so the exemption is now that person's designation, and it does not count.
    auth.create_token(w.ctx, caller=w.admin.caller, user=robot.upn)
    assert check() is Reason.AUTHORIZATION_REQUIRED
    (minted,) = audit_log.search_audit(
        w.ctx, caller=w.admin.caller, flt=AuditFilter(operation="New-ApiToken"), limit=10
    ).items
    assert minted.details["system_account_exemption"] == (
        f"ended: its designator is now {w.admin.upn}"
    )
    dana = w.user("dana", role_groups=(GLOBAL_ADMIN,))
    organizations.enable_access_control(
        w.ctx, caller=dana.caller, admin_group="pamapprovers", system_accounts=[robot.upn]
    )
    assert check() is Reason.SYSTEM_ACCOUNT


# --- through an account the requester steers -----------------------------------------------------


def test_an_account_the_requester_made_does_for_them_nothing_they_may_not_do(
    scene: Scene,
) -> None:
    """eve makes mallory an administrator; mallory makes carol, places dave (whom someone else
    made) in the approver group, re-confirms the policy eve chose, and designates a robot: none
    of it counts for eve."""
    w, eve = scene.world, scene.eve
    mallory = make_account(scene, eve, "mallory")
    directory.change_assignment(
        w.ctx, caller=w.admin.caller, role_group=GLOBAL_ADMIN, user=mallory.upn, add=True
    )
    robot = make_account(scene, mallory, "robot", kind=UserKind.SERVICE)
    with pytest.raises(SeparationOfDuties, match="an account you steer"):
        organizations.enable_access_control(
            w.ctx, caller=eve.caller, admin_group="pamapprovers", system_accounts=[robot.upn]
        )
    guard(scene)
    carol = make_account(scene, mallory, "carol")
    join(scene, w.admin, carol)
    dave = make_account(scene, w.admin, "dave")
    join(scene, mallory, dave)
    view = ask(scene, eve)
    refused_vote(scene, carol, view, "steers_account")  # made by eve's puppet
    refused_vote(scene, dave, view, "placed_in_group")  # placed by eve's puppet

    move = w.policy(MOVE, approver_group="pamapprovers")
    directory.change_assignment(
        w.ctx, caller=w.admin.caller, role="Exchange\\Move Mailboxes", user=eve.upn, add=True
    )
    policies.set_policy(w.ctx, caller=eve.caller, policy_id=move.id, approvals_required=1)
    policies.set_policy(w.ctx, caller=mallory.caller, policy_id=move.id, approvals_required=1)
    with pytest.raises(SeparationOfDuties, match="an account you steer"):
        ask(scene, eve, target=MOVE)


def test_pages_offer_no_vote_and_count_no_request_the_requester_has_a_hand_in(
    db_scene: Scene,
) -> None:
    scene = db_scene
    w, eve, bob = scene.world, scene.eve, scene.bob
    guard(scene)
    mallory = make_account(scene, eve, "mallory")  # made by eve
    join(scene, w.admin, mallory)
    carol = make_account(scene, w.admin, "carol")
    join(scene, eve, carol)  # placed by eve
    view = ask(scene, eve)

    def waiting(who: Person) -> int:
        return requests.pending_reviews(w.ctx, caller=who.caller)

    def buttons(who: Person) -> tuple[bool, bool]:
        actions = requests.request_actions(w.ctx, caller=who.caller, request_id=view.request.id)
        return actions.approve, actions.deny

    assert (waiting(mallory), waiting(carol), waiting(bob)) == (0, 0, 1)
    assert buttons(mallory) == buttons(carol) == (False, False)
    assert buttons(bob) == (True, True)
    # Eve setting the guard's approver group again (to the same group) while her request waits.
    move = w.policy(MOVE, approver_group="pamapprovers")
    may_move(scene, eve)
    ask(scene, eve, MOVE)
    assert waiting(bob) == 2
    policies.set_policy(w.ctx, caller=eve.caller, policy_id=move.id, approver_group="pamapprovers")
    assert waiting(bob) == 1
