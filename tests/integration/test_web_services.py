"""What the web pages ask the services before they show anything: which buttons a request offers
(``request_actions``), how many requests wait for one's vote (``pending_reviews``), what one may ask
for (``requestable``), searching and paging the request list, and which pages a user may open
(``abilities``). Each answer must agree with what the operation itself would then do."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import Engine, Uuid, bindparam, text

from jitpam.adapters.clock import FixedClock
from jitpam.catalogs import shipped_catalog
from jitpam.domain.directory import UserKind
from jitpam.domain.errors import (
    AuthorizationNotActive,
    InvalidInput,
    NotAnApprover,
    NotFound,
    NotPermitted,
    RequesterNotEligible,
    RequestNotPending,
    RequestTampered,
    TaskNotHeld,
)
from jitpam.domain.policy import Policy, PolicyType
from jitpam.domain.requests import RequestStatus
from jitpam.services import audit_log, directory, lockbox, organizations, policies, requests
from jitpam.services.abilities import Abilities, abilities
from jitpam.services.context import ServiceContext
from jitpam.services.ports import AuditFilter
from jitpam.services.requests import RequestActions, RequestView
from tests.integration.world import Person, World

MOVE = "Exchange\\New-MoveRequest"
SEARCH = "Exchange\\Search-Mailbox"
TRACKING = "Exchange\\Message Tracking"  # a role
DISTRIBUTION = "Exchange\\Distribution Groups"  # a role
ROLE_MANAGEMENT = "jitpam\\Role Management"

NOTHING = RequestActions(approve=False, deny=False, cancel=False, revoke=False)
REVIEW = RequestActions(approve=True, deny=True, cancel=False, revoke=False)
DENY_ONLY = RequestActions(approve=False, deny=True, cancel=False, revoke=False)
CANCEL = RequestActions(approve=False, deny=False, cancel=True, revoke=False)
REVOKE = RequestActions(approve=False, deny=False, cancel=False, revoke=True)


@dataclass(frozen=True)
class Scene:
    """Control on with Approvers (ann, ben) as the default approver group; rita may run mailbox
    moves; oscar is an ordinary user who approves nothing."""

    world: World
    ann: Person
    ben: Person
    rita: Person
    oscar: Person


@pytest.fixture
def ctx(memory_ctx: ServiceContext) -> ServiceContext:
    """The rules run on the in-memory unit of work; what an adapter's query decides runs on
    the databases (``db_scene``)."""
    return memory_ctx


def make_scene(world: World) -> Scene:
    ann, ben = world.user("ann"), world.user("ben")
    world.group("Approvers", ann, ben)
    rita = world.user("rita", roles=("Exchange\\Move Mailboxes",))
    oscar = world.user("oscar")
    organizations.enable_access_control(
        world.ctx, caller=world.admin.caller, admin_group="Approvers"
    )
    return Scene(world, ann, ben, rita, oscar)


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
    type: PolicyType = PolicyType.TASK,
    **options: Any,
) -> RequestView:
    return requests.new_request(
        world.ctx, caller=who.caller, type=type, target=target, reason="CHG-7 fix", **options
    )


def actions(world: World, who: Person, view: RequestView) -> RequestActions:
    return requests.request_actions(world.ctx, caller=who.caller, request_id=view.request.id)


def approve(world: World, who: Person, view: RequestView) -> RequestView:
    return requests.approve_request(world.ctx, caller=who.caller, request_id=view.request.id)


def waiting(world: World, who: Person, **options: Any) -> int:
    return requests.pending_reviews(world.ctx, caller=who.caller, **options)


def offered(world: World, who: Person) -> set[UUID]:
    found, more = requests.requestable(world.ctx, caller=who.caller)
    assert not more
    return {p.id for p in found}


# --- request_actions ----------------------------------------------------------------------------


def test_requester_may_cancel_but_never_review_and_approvers_review_once(scene: Scene) -> None:
    world, ann, ben, rita = scene.world, scene.ann, scene.ben, scene.rita
    # rita is an approver too: membership never lets her decide her own request
    directory.change_membership(
        world.ctx, caller=world.admin.caller, group="Approvers", upn=rita.upn, add=True
    )
    world.policy(MOVE, approvals_required=2)
    asked = ask(world, rita)

    assert actions(world, rita, asked) == CANCEL
    assert actions(world, ann, asked) == REVIEW
    assert actions(world, ben, asked) == REVIEW

    approve(world, ann, asked)  # one of two approvals: still pending
    assert actions(world, ann, asked) == NOTHING  # she has voted
    assert actions(world, ben, asked) == REVIEW
    assert actions(world, rita, asked) == CANCEL

    approve(world, ben, asked)  # approved: the grant is active
    assert actions(world, rita, asked) == REVOKE  # the grantee
    assert actions(world, ann, asked) == REVOKE  # approvers of the policy
    assert actions(world, ben, asked) == REVOKE


def test_nobody_reviews_a_request_once_it_expired_or_was_denied(scene: Scene) -> None:
    world, ann, ben, rita = scene.world, scene.ann, scene.ben, scene.rita
    world.policy(MOVE)
    asked = ask(world, rita)
    world.clock.set(asked.request.pending_until - timedelta(microseconds=1))
    assert actions(world, ann, asked) == REVIEW  # the last moment it can be decided
    assert actions(world, rita, asked) == CANCEL

    world.clock.set(asked.request.pending_until)  # expired, whether or not a sweep ran
    for who in (ann, ben, rita):
        assert actions(world, who, asked) == NOTHING

    again = ask(world, rita)
    requests.deny_request(world.ctx, caller=ben.caller, request_id=again.request.id)
    for who in (ann, ben, rita):
        assert actions(world, who, again) == NOTHING


def test_approve_is_withheld_when_the_policy_no_longer_allows_the_request(scene: Scene) -> None:
    world, ann, rita, admin = scene.world, scene.ann, scene.rita, scene.world.admin
    move = world.policy(MOVE, max_duration_hours=8)
    asked = ask(world, rita, duration_hours=8)
    assert actions(world, ann, asked) == REVIEW

    policies.set_policy(world.ctx, caller=admin.caller, policy_id=move.id, max_duration_hours=4)
    assert actions(world, ann, asked) == DENY_ONLY  # what approving would now refuse
    with pytest.raises(InvalidInput):
        approve(world, ann, asked)
    policies.set_policy(world.ctx, caller=admin.caller, policy_id=move.id, max_duration_hours=8)
    assert actions(world, ann, asked) == REVIEW

    policies.set_policy(world.ctx, caller=admin.caller, policy_id=move.id, eligible_users=[ann.upn])
    assert actions(world, ann, asked) == DENY_ONLY  # rita is no longer an eligible requester
    with pytest.raises(RequesterNotEligible):
        approve(world, ann, asked)
    requests.deny_request(world.ctx, caller=ann.caller, request_id=asked.request.id)


def test_approve_is_withheld_from_a_request_altered_in_the_database(
    db_scene: Scene, engine: Engine
) -> None:
    scene = db_scene
    world, ann, rita = scene.world, scene.ann, scene.rita
    world.policy(MOVE)
    asked = ask(world, rita)
    statement = text("UPDATE requests SET reason = :reason WHERE id = :id").bindparams(
        bindparam("id", type_=Uuid())
    )
    with engine.begin() as conn:
        conn.execute(statement, {"reason": "something else", "id": asked.request.id})

    assert actions(world, ann, asked) == DENY_ONLY
    with pytest.raises(RequestTampered):
        approve(world, ann, asked)
    requests.deny_request(world.ctx, caller=ann.caller, request_id=asked.request.id)


def test_a_request_whose_policy_was_removed_offers_no_vote(scene: Scene) -> None:
    world, ann, rita, admin = scene.world, scene.ann, scene.rita, scene.world.admin
    move = world.policy(MOVE)
    asked = ask(world, rita)
    policies.remove_policy(world.ctx, caller=admin.caller, policy_id=move.id)
    assert actions(world, admin, asked) == NOTHING
    assert actions(world, rita, asked) == CANCEL
    with pytest.raises(NotFound):  # ann saw it as an approver of the policy, now gone
        actions(world, ann, asked)
    assert waiting(world, ann) == 0


def test_cancelled_request_offers_nothing(scene: Scene) -> None:
    world, ann, rita = scene.world, scene.ann, scene.rita
    world.policy(MOVE)
    asked = ask(world, rita)
    requests.cancel_request(world.ctx, caller=rita.caller, request_id=asked.request.id)
    assert actions(world, rita, asked) == NOTHING
    assert actions(world, ann, asked) == NOTHING


def test_revoke_is_offered_while_the_grant_is_active_and_works_for_each_it_is_offered_to(
    scene: Scene,
) -> None:
    world, ann, rita, oscar = scene.world, scene.ann, scene.rita, scene.oscar
    revoker = world.user("rex", roles=(ROLE_MANAGEMENT,))  # holds Revoke-...Authorization
    world.policy(MOVE)
    world.policy(TRACKING, type=PolicyType.ROLE)

    granted = approve(world, ann, ask(world, rita, duration_hours=1))
    for who in (rita, ann, revoker):
        assert actions(world, who, granted) == REVOKE, who.upn
    with pytest.raises(NotFound):
        actions(world, oscar, granted)

    # an ended window offers nothing more, to anyone
    world.later(hours=1)
    for who in (rita, ann, revoker):
        assert actions(world, who, granted) == NOTHING, who.upn

    # each one offered the button may really press it; then it is gone
    for who in (rita, ann, revoker):
        active = approve(world, ann, ask(world, rita, TRACKING, type=PolicyType.ROLE))
        assert actions(world, who, active).revoke
        revoked = requests.revoke_authorization(
            world.ctx, caller=who.caller, request_id=active.request.id
        )
        assert revoked.status is RequestStatus.REVOKED
        for anyone in (rita, ann, revoker):
            assert actions(world, anyone, active) == NOTHING


def test_a_request_the_caller_cannot_see_is_not_found(scene: Scene) -> None:
    world, rita, oscar = scene.world, scene.rita, scene.oscar
    sam = world.user("sam")
    world.group("Searchers", sam)
    world.policy(MOVE)
    asked = ask(world, rita)

    for who in (oscar, sam):  # neither its requester nor an approver of its policy
        with pytest.raises(NotFound):
            actions(world, who, asked)
    with pytest.raises(NotFound):
        requests.request_actions(world.ctx, caller=rita.caller, request_id=uuid4())
    assert actions(world, world.admin, asked) == NOTHING  # sees all, but is no approver


def test_guests_service_accounts_and_disabled_users_get_no_review(scene: Scene) -> None:
    world, ann, rita = scene.world, scene.ann, scene.rita
    guest = world.user("gina", kind=UserKind.GUEST)
    service = world.user("svc", kind=UserKind.SERVICE)
    for member in (guest, service):
        directory.change_membership(
            world.ctx, caller=world.admin.caller, group="Approvers", upn=member.upn, add=True
        )
    world.policy(MOVE)
    asked = ask(world, rita)

    for who in (guest, service):
        assert actions(world, who, asked) == NOTHING, who.upn
        assert waiting(world, who) == 0, who.upn
    assert waiting(world, ann) == 1

    directory.set_user(world.ctx, caller=world.admin.caller, upn=ann.upn, enabled=False)
    with pytest.raises(NotPermitted):
        actions(world, ann, asked)
    with pytest.raises(NotPermitted):
        waiting(world, ann)


# --- pending_reviews ----------------------------------------------------------------------------


def test_pending_reviews_counts_only_requests_awaiting_the_callers_vote(db_scene: Scene) -> None:
    scene = db_scene
    world, ann, ben, rita, oscar = scene.world, scene.ann, scene.ben, scene.rita, scene.oscar
    carol = world.user("carol", roles=("Exchange\\Mailbox Search",))
    sam = world.user("sam")
    world.group("Searchers", sam)
    world.policy(MOVE, approvals_required=2)  # default group: ann and ben
    world.policy(TRACKING, type=PolicyType.ROLE)  # default group
    world.policy(SEARCH, approver_group="Searchers")

    early = ask(world, oscar, TRACKING, type=PolicyType.ROLE)
    world.later(hours=23)
    move = ask(world, rita)
    ask(world, ann, TRACKING, type=PolicyType.ROLE)  # ann's own
    ask(world, carol, SEARCH)  # another group's policy

    assert waiting(world, ann) == 2  # rita's move, oscar's early request
    assert waiting(world, ben) == 3  # and ann's
    assert waiting(world, sam) == 1
    for nobody in (rita, carol, oscar, world.admin):
        assert waiting(world, nobody) == 0, nobody.upn

    world.clock.set(early.request.pending_until)  # oscar's request expired
    assert waiting(world, ann) == 1
    assert waiting(world, ben) == 2

    approve(world, ann, move)  # one approval of two: still pending, but ann has voted
    assert waiting(world, ann) == 0
    assert waiting(world, ben) == 2
    approve(world, ben, move)
    assert waiting(world, ben) == 1  # ann's own remains


def test_pending_reviews_limit_caps_the_count_of_reviewable_requests(db_scene: Scene) -> None:
    scene = db_scene
    world, ann = scene.world, scene.ann
    world.policy(MOVE, approvals_required=2)
    movers = [world.user(f"mover{i}", roles=("Exchange\\Move Mailboxes",)) for i in range(3)]
    ask(world, movers[0])  # the oldest: it alone still waits for ann
    world.later(minutes=1)
    for mover in movers[1:]:
        approve(world, ann, ask(world, mover))  # newer ones: ann has voted, still pending
    assert waiting(world, ann) == 1
    assert waiting(world, ann, limit=1) == 1


# --- requestable --------------------------------------------------------------------------------


def test_requestable_lists_what_new_request_accepts(scene: Scene) -> None:
    world, ann, rita, oscar = scene.world, scene.ann, scene.rita, scene.oscar
    # carol holds Mailbox Search only through her group; dora holds Move Mailboxes only through
    # a role group
    carol = world.user("carol")
    world.group("Searchers", carol)
    directory.change_assignment(
        world.ctx,
        caller=world.admin.caller,
        role="Exchange\\Mailbox Search",
        group="Searchers",
        add=True,
    )
    dora = world.user("dora", role_groups=("Exchange\\Recipient Management",))
    move = world.policy(MOVE)
    search = world.policy(SEARCH)
    tracking = world.policy(TRACKING, type=PolicyType.ROLE)
    distribution = world.policy(
        DISTRIBUTION, type=PolicyType.ROLE, eligible_users=[rita.upn], eligible_groups=["Searchers"]
    )
    # oscar is named, but holds no role with the task; rita holds one, but is not named
    named = world.policy("Exchange\\Get-MoveRequest", eligible_users=[oscar.upn])

    assert offered(world, rita) == {move.id, tracking.id, distribution.id}
    assert offered(world, carol) == {search.id, tracking.id, distribution.id}
    assert offered(world, dora) == {move.id, tracking.id}
    assert offered(world, oscar) == {tracking.id}

    # every policy offered is accepted, every other one refused
    everything: list[Policy] = [move, search, tracking, distribution, named]
    asked: dict[tuple[str, UUID], RequestView] = {}
    for who in (rita, carol, dora, oscar):
        shown = offered(world, who)
        for policy in everything:
            if policy.id in shown:
                asked[who.upn, policy.id] = ask(world, who, str(policy.target), type=policy.type)
            else:
                with pytest.raises((TaskNotHeld, RequesterNotEligible)):
                    ask(world, who, str(policy.target), type=policy.type)
        assert offered(world, who) == set(), who.upn  # each one asked for already

    # offered again once the request is over: cancelled, denied, or its grant ended
    requests.cancel_request(
        world.ctx, caller=rita.caller, request_id=asked[rita.upn, move.id].request.id
    )
    requests.deny_request(
        world.ctx, caller=ann.caller, request_id=asked[rita.upn, tracking.id].request.id
    )
    granted = approve(world, ann, asked[rita.upn, distribution.id])
    assert offered(world, rita) == {move.id, tracking.id}  # not while the grant lasts
    assert granted.request.authorization is not None
    world.clock.set(granted.request.authorization.end)
    assert offered(world, rita) == {move.id, tracking.id, distribution.id}

    organizations.disable_access_control(world.ctx, caller=world.admin.caller)
    for who in (rita, carol, dora, oscar, world.admin):
        assert offered(world, who) == set()


def test_requestable_never_offers_a_data_scope(scene: Scene) -> None:
    """Data access is asked for an application by installing it: the new-request page offers
    no data access policy, even to someone eligible who may install applications."""
    world, rita = scene.world, scene.rita
    organizations.import_catalog(
        world.ctx, caller=world.admin.caller, text=shipped_catalog("office365"), source="o365"
    )
    directory.change_assignment(
        world.ctx,
        caller=world.admin.caller,
        role="jitpam\\Application Installer",
        user=rita.upn,
        add=True,
    )
    mail = world.policy("Office365\\Mail.Read", type=PolicyType.DATA_ACCESS)
    move = world.policy(MOVE)
    assert offered(world, rita) == {move.id}
    assert mail.id not in offered(world, rita)


def test_requestable_follows_a_role_held_just_in_time(scene: Scene) -> None:
    world, ann, oscar = scene.world, scene.ann, scene.oscar
    world.policy("Exchange\\Move Mailboxes", type=PolicyType.ROLE)
    move = world.policy(MOVE)
    role = ask(world, oscar, "Exchange\\Move Mailboxes", type=PolicyType.ROLE, duration_hours=1)
    assert move.id not in offered(world, oscar)
    approve(world, ann, role)
    assert move.id in offered(world, oscar)  # an approval would now let him run it
    world.later(hours=1)
    assert move.id not in offered(world, oscar)


def test_requestable_is_bounded_and_says_when_there_may_be_more(scene: Scene) -> None:
    world, rita = scene.world, scene.rita
    move, tracking = world.policy(MOVE), world.policy(TRACKING, type=PolicyType.ROLE)
    search = world.policy(SEARCH)  # rita holds no role with it: never offered
    everything, more = requests.requestable(world.ctx, caller=rita.caller)
    assert ({p.id for p in everything}, more) == ({move.id, tracking.id}, False)
    # At most ``limit`` of them, in (type, target) order, and a flag that more may exist.
    first, more = requests.requestable(world.ctx, caller=rita.caller, limit=1)
    assert ([p.id for p in first], more) == ([everything[0].id], True)
    # Only the first ``window`` policies are examined: those beyond are not looked at.
    ordered = sorted([move, tracking, search], key=lambda p: (p.type.value, p.target.key))
    seen, more = requests.requestable(world.ctx, caller=rita.caller, window=1)
    assert more
    assert {p.id for p in seen} == {ordered[0].id} - {search.id}


# --- list_requests: search and oldest first -----------------------------------------------------


def ids(views: list[RequestView]) -> list[UUID]:
    return [v.request.id for v in views]


def search(world: World, who: Person, needle: str, **options: Any) -> list[UUID]:
    page = requests.list_requests(world.ctx, caller=who.caller, search=needle, limit=500, **options)
    assert page.next_cursor is None
    return ids(page.items)


def test_search_matches_part_of_the_requester_or_target_in_any_case(db_scene: Scene) -> None:
    scene = db_scene
    world, rita = scene.world, scene.rita
    underscore = world.user("a_b", roles=("Exchange\\Move Mailboxes",))
    plain = world.user("axb", roles=("Exchange\\Move Mailboxes",))
    percent = world.user("p%q", roles=("Exchange\\Move Mailboxes",))
    other = world.user("pxq", roles=("Exchange\\Move Mailboxes",))
    world.policy(MOVE)
    world.policy(TRACKING, type=PolicyType.ROLE)
    by = {who.upn: ask(world, who).request.id for who in (rita, underscore, plain, percent, other)}
    tracking = ask(world, rita, TRACKING, type=PolicyType.ROLE).request.id
    admin = world.admin

    assert set(search(world, admin, "RITA@")) == {by[rita.upn], tracking}
    assert search(world, admin, "  message TRACK ") == [tracking]
    assert set(search(world, admin, "exchange\\new-move")) == set(by.values())  # a backslash
    # LIKE's wildcards are plain characters
    assert search(world, admin, "a_b") == [by[underscore.upn]]
    assert search(world, admin, "_") == [by[underscore.upn]]
    assert search(world, admin, "p%q") == [by[percent.upn]]
    assert search(world, admin, "%") == [by[percent.upn]]
    assert search(world, admin, "nobody-at-all") == []
    everything = requests.list_requests(world.ctx, caller=admin.caller, search="   ", limit=500)
    assert len(everything.items) == 6  # a blank search filters nothing

    # what one may see is unchanged: a requester finds only their own
    assert search(world, underscore, "@") == [by[underscore.upn]]
    assert search(world, rita, percent.upn) == []
    assert set(search(world, scene.ann, "@")) == {*by.values(), tracking}  # an approver: all


DOORS = """\
scope = "Straße"
description = "A workload with names beyond ASCII"

[tasks]
"Überprüfen-Tür" = "Check a door"

[[roles]]
name = "Türen"
tasks = ["Überprüfen-Tür"]
"""


def test_search_finds_a_target_beyond_ascii_as_it_is_written(db_scene: Scene) -> None:
    scene = db_scene
    world = scene.world
    organizations.import_catalog(world.ctx, caller=world.admin.caller, text=DOORS, source="doors")
    tom = world.user("tom", roles=("Straße\\Türen",))
    world.policy("Straße\\Überprüfen-Tür")
    made = ask(world, tom, "Straße\\Überprüfen-Tür").request.id
    found = {typed: search(world, world.admin, typed) for typed in ("Straße", "Überprüfen", "tür")}
    assert found == {"Straße": [made], "Überprüfen": [made], "tür": [made]}


def test_oldest_first_pages_give_every_request_exactly_once_in_ascending_order(
    db_scene: Scene,
) -> None:
    scene = db_scene
    world = scene.world
    movers = [world.user(f"m{i}", roles=("Exchange\\Move Mailboxes",)) for i in range(4)]
    world.policy(MOVE)
    world.policy(TRACKING, type=PolicyType.ROLE)
    made: list[RequestView] = []
    for i, who in enumerate(movers):
        made.append(ask(world, who))
        made.append(ask(world, who, TRACKING, type=PolicyType.ROLE))  # same instant: a tie
        if i % 2:
            world.later(seconds=1)
    made.append(ask(world, scene.rita))

    def walk(who: Person, **options: Any) -> list[RequestView]:
        seen: list[RequestView] = []
        cursor: str | None = None
        while True:
            page = requests.list_requests(
                world.ctx, caller=who.caller, cursor=cursor, limit=3, **options
            )
            seen += page.items
            if page.next_cursor is None:
                return seen
            cursor = page.next_cursor

    oldest = walk(world.admin, oldest_first=True)
    newest = walk(world.admin)
    assert sorted(ids(oldest)) == sorted(ids(made))  # all of them ...
    assert len(set(ids(oldest))) == len(made)  # ... once each
    assert [v.request.created_at for v in oldest] == sorted(v.request.created_at for v in made)
    assert ids(oldest) == ids(newest)[::-1]

    moves = walk(world.admin, oldest_first=True, search="new-moverequest")
    assert ids(moves) == [i for i in ids(oldest) if i in {v.request.id for v in made[::2]}]
    own = walk(movers[0], oldest_first=True)  # a requester pages through their own only
    assert ids(own) == [i for i in ids(oldest) if i in {made[0].request.id, made[1].request.id}]


# --- abilities ----------------------------------------------------------------------------------


def test_abilities_of_the_admin_a_requester_and_an_approver(scene: Scene) -> None:
    world = scene.world
    admin = abilities(world.ctx, caller=world.admin.caller)
    assert admin == Abilities(
        upn=world.admin.upn,
        display_name="Organization Admin",
        organization=world.org.name,
        control_enabled=True,
        manage_control=True,
        manage_policies=True,
        see_all_requests=True,
        read_audit=True,
    )
    for who in (scene.rita, scene.ann):
        mine = abilities(world.ctx, caller=who.caller)
        assert mine.upn == who.upn
        assert mine.control_enabled
        pages = (mine.manage_control, mine.manage_policies, mine.see_all_requests, mine.read_audit)
        assert pages == (False, False, False, False), who.upn
    auditor = abilities(
        world.ctx, caller=world.user("audrey", roles=("jitpam\\Audit Reader",)).caller
    )
    assert (auditor.read_audit, auditor.see_all_requests) == (True, True)
    assert (auditor.manage_control, auditor.manage_policies) == (False, False)

    organizations.disable_access_control(world.ctx, caller=world.admin.caller)
    assert not abilities(world.ctx, caller=scene.rita.caller).control_enabled


def test_a_just_in_time_jitpam_role_shows_its_pages_only_while_it_lasts(scene: Scene) -> None:
    world, ann, oscar = scene.world, scene.ann, scene.oscar
    world.policy(ROLE_MANAGEMENT, type=PolicyType.ROLE)

    def manages() -> tuple[bool, bool, bool]:
        mine = abilities(world.ctx, caller=oscar.caller)
        return mine.manage_control, mine.manage_policies, mine.see_all_requests

    asked = ask(world, oscar, ROLE_MANAGEMENT, type=PolicyType.ROLE, duration_hours=2)
    assert manages() == (False, False, False)
    granted = approve(world, ann, asked)
    assert manages() == (True, True, True)
    assert not abilities(world.ctx, caller=oscar.caller).read_audit  # not in Role Management
    world.later(hours=1)
    assert manages() == (True, True, True)
    requests.revoke_authorization(world.ctx, caller=oscar.caller, request_id=granted.request.id)
    assert manages() == (False, False, False)


def test_a_policy_on_a_jitpam_task_hides_its_page_until_approved(scene: Scene) -> None:
    world = scene.world
    # The requester is a second administrator, made by the world's admin; the world's admin (whom
    # root steers in no way) sets the guard up and makes its approver, so root has no hand in
    # vera's vote (separation of duties: had root made vera, the group or the policy, it would).
    root = world.user("root", role_groups=("jitpam\\Global Administrator",))
    vera = world.user("vera")
    world.group("Reviewers", vera)
    world.policy("jitpam\\Search-AuditLog", approver_group="Reviewers")

    def reads_audit() -> bool:
        return abilities(world.ctx, caller=root.caller).read_audit

    def search_audit() -> object:
        return audit_log.search_audit(world.ctx, caller=root.caller, flt=AuditFilter(), limit=1)

    assert not reads_audit()
    with pytest.raises(NotPermitted):
        search_audit()
    approve(world, vera, ask(world, root, "jitpam\\Search-AuditLog", duration_hours=1))
    assert reads_audit()
    search_audit()
    world.later(hours=1)
    assert not reads_audit()


# --- Customer Lockbox -----------------------------------------------------------------------------


def test_the_lockbox_page_offers_what_the_lockbox_use_cases_then_allow(
    ctx: ServiceContext, clock: FixedClock
) -> None:
    operator, customer = World(ctx, clock), World(ctx, clock)
    lockbox.designate_operator(ctx, org_name=operator.org.name)
    engineer = operator.user("engineer", roles=("jitpam\\Lockbox Requester",))
    colleague = operator.user("colleague")
    approver = customer.user("approver", roles=("jitpam\\Customer Lockbox Access Approver",))
    bystander = customer.user("bystander")
    organizations.set_organization_config(
        ctx, caller=customer.admin.caller, lockbox_approval_required=True
    )
    people = (engineer, colleague, operator.admin, approver, bystander, customer.admin)

    def file(who: Person = engineer) -> UUID:
        return lockbox.file_request(
            ctx,
            caller=who.caller,
            customer=customer.org.name,
            service="Exchange",
            reason="support case",
            case_reference="EXSR-1",
            duration_hours=1,
        ).request.id

    def allowed(run: Callable[[], object]) -> bool:
        try:
            run()
        except (NotPermitted, NotFound, RequestNotPending, AuthorizationNotActive, NotAnApprover):
            return False
        return True

    # The filing form: shown to whoever file_request then accepts, the engineer alone here.
    for who in people:
        shown = abilities(ctx, caller=who.caller).file_lockbox
        assert shown is allowed(partial(file, who)), who.upn
    assert abilities(ctx, caller=engineer.caller).file_lockbox

    tries: dict[str, Callable[[Person, UUID], object]] = {
        "decide": lambda who, rid: lockbox.set_request(
            ctx, caller=who.caller, request_id=rid, decision="Approve"
        ),
        "cancel": lambda who, rid: lockbox.set_request(
            ctx, caller=who.caller, request_id=rid, decision="Cancel"
        ),
        "revoke": lambda who, rid: lockbox.revoke_request(ctx, caller=who.caller, request_id=rid),
    }
    offered: dict[str, set[str]] = {}
    for state in ("pending", "approved"):
        for who in people:
            for action, attempt in tries.items():
                rid = file()
                if state == "approved":
                    lockbox.set_request(
                        ctx, caller=approver.caller, request_id=rid, decision="Approve"
                    )
                try:
                    actions = lockbox.request_page(ctx, caller=who.caller, request_id=rid).actions
                except NotFound:  # the page is not theirs to see, nor the request to act on
                    assert not allowed(partial(attempt, who, rid)), who.upn
                    continue
                button = getattr(actions, action)
                assert button is allowed(partial(attempt, who, rid)), (
                    state,
                    who.upn,
                    action,
                )
                if button:
                    offered.setdefault(f"{state} {action}", set()).add(who.upn)
    assert offered == {
        "pending decide": {approver.upn, customer.admin.upn},
        "pending cancel": {engineer.upn},
        "approved revoke": {engineer.upn, approver.upn, customer.admin.upn},
    }
