"""A request is signed when submitted, so an altered row is detected and never granted; and
organizations never see or touch each other's requests, policies, users or groups."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import Engine, Integer, String, Text, Uuid, bindparam, text
from sqlalchemy.types import TypeEngine

from jitpam.adapters.clock import FixedClock
from jitpam.adapters.sql.models import UTCDateTime
from jitpam.domain.audit import AuditRecord, Outcome
from jitpam.domain.check import Reason
from jitpam.domain.errors import (
    AlreadyExists,
    InvalidInput,
    NotFound,
    NotPermitted,
    RequestTampered,
)
from jitpam.domain.policy import ApprovalType, PolicyType
from jitpam.domain.requests import RequestStatus
from jitpam.services import access, audit_log, directory, organizations, policies, requests
from jitpam.services.context import Caller, ServiceContext
from jitpam.services.ports import AuditFilter
from jitpam.services.requests import RequestView
from tests.integration.world import Person, World

MOVE = "Exchange\\New-MoveRequest"
SEARCH = "Exchange\\Search-Mailbox"


@dataclass(frozen=True)
class Org:
    """Control on with approvers ann and ben; rita may run mailbox moves and search mailboxes."""

    world: World
    ann: Person
    ben: Person
    rita: Person


def populate(world: World, *, approvals_required: int = 1) -> Org:
    ann, ben = world.user("ann"), world.user("ben")
    world.group("Approvers", ann, ben)
    rita = world.user("rita", roles=("Exchange\\Move Mailboxes", "Exchange\\Mailbox Search"))
    organizations.enable_access_control(
        world.ctx, caller=world.admin.caller, admin_group="Approvers"
    )
    world.policy(MOVE, approvals_required=approvals_required, max_duration_hours=8)
    world.policy(SEARCH)
    return Org(world, ann, ben, rita)


def ask(org: Org, *, hours: int = 3) -> RequestView:
    return requests.new_request(
        org.world.ctx,
        caller=org.rita.caller,
        type=PolicyType.TASK,
        target=MOVE,
        reason="move the CEO mailbox to the new database",
        duration_hours=hours,
    )


def may_run(org: Org, task: str) -> bool:
    return access.check_access(
        org.world.ctx, caller=org.rita.caller, user=org.rita.upn, task=task
    ).allowed


def verified(org: Org, request_id: UUID) -> bool:
    return requests.verify_request(
        org.world.ctx, caller=org.world.admin.caller, request_id=request_id
    )


def audit(world: World, **flt: Any) -> list[AuditRecord]:
    return audit_log.search_audit(
        world.ctx, caller=world.admin.caller, flt=AuditFilter(**flt), limit=1000
    ).items


# --- signatures ---------------------------------------------------------------------------------

Alteration = Callable[[Org, RequestView], Any]

ALTERATIONS: dict[str, tuple[TypeEngine[Any], Alteration]] = {
    "reason": (Text(), lambda org, v: "routine clean-up"),
    "duration_hours": (Integer(), lambda org, v: 8),
    "target": (String(), lambda org, v: SEARCH),
    "requester_upn": (String(), lambda org, v: org.ann.upn),
    "approvals_required": (Integer(), lambda org, v: 1),
    "pending_until": (UTCDateTime(), lambda org, v: v.request.pending_until + timedelta(days=30)),
}


def alter(
    engine: Engine, request_id: UUID, column: str, type_: TypeEngine[Any], value: Any
) -> None:
    """Change one stored field behind the service's back, as someone with database access could."""
    assert column in ALTERATIONS  # never a column name from anywhere else
    statement = text(f"UPDATE requests SET {column} = :value WHERE id = :id").bindparams(
        bindparam("value", type_=type_), bindparam("id", type_=Uuid())
    )
    with engine.begin() as conn:
        assert conn.execute(statement, {"value": value, "id": request_id}).rowcount == 1


def test_fresh_request_verifies(world: World) -> None:
    org = populate(world)
    asked = ask(org)
    assert verified(org, asked.request.id) is True
    assert requests.verify_request(world.ctx, caller=org.rita.caller, request_id=asked.request.id)


@pytest.mark.parametrize("column", list(ALTERATIONS))
def test_altered_request_is_detected_and_never_granted(
    world: World, engine: Engine, column: str
) -> None:
    org = populate(world, approvals_required=2)
    asked = ask(org)
    type_, new_value = ALTERATIONS[column]
    alter(engine, asked.request.id, column, type_, new_value(org, asked))

    assert verified(org, asked.request.id) is False
    for approver in (org.ann, org.ben):
        with pytest.raises(RequestTampered) as refused:
            requests.approve_request(world.ctx, caller=approver.caller, request_id=asked.request.id)
    assert "signature" in refused.value.message

    # no grant of any kind came out of it
    assert requests.get_request(
        world.ctx, caller=world.admin.caller, request_id=asked.request.id
    ).status is (RequestStatus.PENDING)
    assert not may_run(org, MOVE)
    assert not may_run(org, SEARCH)
    assert requests.my_authorizations(world.ctx, caller=org.rita.caller) == []
    assert requests.my_authorizations(world.ctx, caller=org.ann.caller) == []
    refusals = audit(
        world,
        operation="Approve-ElevatedAccessRequest",
        target=str(asked.request.id),
        outcome=Outcome.REFUSED,
    )
    assert [r.details["error"] for r in refusals] == ["request_tampered"] * 2


def test_tampered_request_can_still_be_denied(world: World, engine: Engine) -> None:
    org = populate(world)
    asked = ask(org)
    alter(engine, asked.request.id, "duration_hours", Integer(), 8)
    denied = requests.deny_request(world.ctx, caller=org.ann.caller, request_id=asked.request.id)
    assert denied.status is RequestStatus.DENIED


def test_approval_grants_exactly_what_was_asked(world: World) -> None:
    org = populate(world, approvals_required=2)
    asked = ask(org, hours=3)
    world.later(minutes=20)
    requests.approve_request(world.ctx, caller=org.ann.caller, request_id=asked.request.id)
    world.later(minutes=5)
    granted = requests.approve_request(
        world.ctx, caller=org.ben.caller, request_id=asked.request.id
    )
    approved_at = world.clock.now()

    auth = granted.request.authorization
    assert auth is not None
    assert (auth.user_id, auth.type, str(auth.target)) == (
        org.rita.caller.user_id,
        PolicyType.TASK,
        MOVE,
    )
    assert (auth.start, auth.end) == (approved_at, approved_at + timedelta(hours=3))
    assert granted.request.reason == asked.request.reason
    assert verified(org, asked.request.id) is True  # approval changes no signed field

    (mine,) = requests.my_authorizations(world.ctx, caller=org.rita.caller)
    assert mine.request.id == asked.request.id
    assert not may_run(org, SEARCH)
    world.clock.set(auth.end - timedelta(microseconds=1))
    assert may_run(org, MOVE)
    world.clock.set(auth.end)
    assert not may_run(org, MOVE)


# --- organizations are isolated -----------------------------------------------------------------


@dataclass(frozen=True)
class TwoOrgs:
    home: Org
    pending: RequestView
    granted: RequestView
    other: World  # a second organization, with its own admin


@pytest.fixture
def two_orgs(world: World, ctx: ServiceContext, clock: FixedClock) -> TwoOrgs:
    home = populate(world)
    world.group("team", home.ann)
    granted = requests.new_request(
        ctx, caller=home.rita.caller, type=PolicyType.TASK, target=SEARCH, reason="case 9"
    )
    granted = requests.approve_request(ctx, caller=home.ann.caller, request_id=granted.request.id)
    pending = ask(home)
    other = World(ctx, clock)
    other.group("Approvers", other.user("oscar"))
    organizations.enable_access_control(ctx, caller=other.admin.caller, admin_group="Approvers")
    return TwoOrgs(home, pending, granted, other)


def test_other_org_admin_cannot_reach_requests(two_orgs: TwoOrgs) -> None:
    home, other = two_orgs.home, two_orgs.other
    ctx, intruder = other.ctx, other.admin.caller
    for request_id in (two_orgs.pending.request.id, two_orgs.granted.request.id):
        for attempt in (
            requests.get_request,
            requests.verify_request,
            requests.approve_request,
            requests.deny_request,
            requests.cancel_request,
            requests.revoke_authorization,
        ):
            with pytest.raises(NotFound):
                attempt(ctx, caller=intruder, request_id=request_id)  # type: ignore[operator]

    assert requests.list_requests(ctx, caller=intruder).items == []
    assert requests.list_requests(ctx, caller=intruder, target_contains="%").items == []
    assert requests.list_requests(ctx, caller=intruder, target_contains="_").items == []
    assert requests.list_requests(ctx, caller=intruder, target_contains="move").items == []
    with pytest.raises(NotFound):
        requests.list_requests(ctx, caller=intruder, requester=home.rita.upn)
    assert requests.get_request(
        home.world.ctx, caller=home.world.admin.caller, request_id=two_orgs.pending.request.id
    ).status is (RequestStatus.PENDING)
    assert may_run(home, SEARCH)  # the grant was not revoked
    # the attempts are on the intruder's own record, and nowhere in the other organization's
    assert audit(home.world, actor=other.admin.upn) == []
    assert len(audit(other, actor=other.admin.upn, outcome=Outcome.REFUSED)) == 8  # 4 writes x 2


def test_other_org_admin_cannot_see_or_change_policies(two_orgs: TwoOrgs) -> None:
    home, other = two_orgs.home, two_orgs.other
    ctx, intruder = other.ctx, other.admin.caller
    assert policies.list_policies(ctx, caller=intruder) == []
    for policy in policies.list_policies(home.world.ctx, caller=home.world.admin.caller):
        with pytest.raises(NotFound):
            policies.get_policy(ctx, caller=intruder, policy_id=policy.id)
        with pytest.raises(NotFound):
            policies.set_policy(
                ctx, caller=intruder, policy_id=policy.id, approval_type=ApprovalType.AUTO
            )
        with pytest.raises(NotFound):
            policies.remove_policy(ctx, caller=intruder, policy_id=policy.id)
    kept = policies.list_policies(home.world.ctx, caller=home.world.admin.caller)
    assert [(str(p.target), p.approval_type) for p in kept] == [
        (MOVE, ApprovalType.MANUAL),
        (SEARCH, ApprovalType.MANUAL),
    ]
    # the same target is free to protect in the other organization
    assert str(other.policy(MOVE).target) == MOVE


def test_other_org_admin_cannot_see_or_use_users(two_orgs: TwoOrgs) -> None:
    home, other = two_orgs.home, two_orgs.other
    ctx, intruder, rita = other.ctx, other.admin.caller, home.rita
    assert {u.upn for u in directory.list_users(ctx, caller=intruder).items} == {
        other.admin.upn,
        other.upn("oscar"),
    }
    with pytest.raises(NotFound):
        directory.get_user(ctx, caller=intruder, upn=rita.upn)
    with pytest.raises(NotFound):
        directory.set_user(ctx, caller=intruder, upn=rita.upn, enabled=False)
    with pytest.raises(NotFound):
        directory.change_membership(ctx, caller=intruder, group="Approvers", upn=rita.upn, add=True)
    with pytest.raises(NotFound):
        directory.change_assignment(
            ctx, caller=intruder, role="Exchange\\Move Mailboxes", user=rita.upn, add=True
        )
    with pytest.raises(NotFound):
        other.policy(SEARCH, eligible_users=[rita.upn])
    with pytest.raises(NotFound):
        organizations.enable_access_control(
            ctx, caller=intruder, admin_group="Approvers", system_accounts=[rita.upn]
        )
    checked = access.check_access(ctx, caller=intruder, user=rita.upn, task=MOVE)
    assert (checked.allowed, checked.reason) == (False, Reason.UNKNOWN_USER)
    holders = directory.role_members(ctx, caller=intruder, role="Exchange\\Move Mailboxes")
    assert holders == []

    assert directory.get_user(home.world.ctx, caller=home.world.admin.caller, upn=rita.upn).enabled
    assert may_run(home, SEARCH)


def test_a_caller_is_bound_to_their_own_organization(two_orgs: TwoOrgs) -> None:
    home, other = two_orgs.home, two_orgs.other
    ctx = other.ctx
    crossed = [
        Caller(other.org.id, home.ann.caller.user_id),  # a home user presenting the other org
        Caller(home.world.org.id, other.admin.caller.user_id),  # the other admin, the home org
    ]
    for caller in crossed:
        with pytest.raises(NotPermitted):
            requests.get_request(ctx, caller=caller, request_id=two_orgs.pending.request.id)
        with pytest.raises(NotPermitted):
            requests.approve_request(ctx, caller=caller, request_id=two_orgs.pending.request.id)
        with pytest.raises(NotPermitted):
            requests.list_requests(ctx, caller=caller)
        with pytest.raises(NotPermitted):
            policies.list_policies(ctx, caller=caller)
    assert (
        requests.get_request(
            ctx, caller=home.world.admin.caller, request_id=two_orgs.pending.request.id
        ).request.reviews
        == []
    )


def test_look_alike_group_names_do_not_match_across_organizations(two_orgs: TwoOrgs) -> None:
    home, other = two_orgs.home, two_orgs.other
    other.group("team%", other.user("tess"))
    other.group("team_")
    ctx = other.ctx

    for name in ("team", "TEAM", "tea%", "t_am", "%"):
        with pytest.raises(NotFound):
            directory.change_membership(
                ctx, caller=other.admin.caller, group=name, upn=other.upn("oscar"), add=True
            )
        with pytest.raises(NotFound):
            other.policy(SEARCH, approver_group=name)
    for name in ("team%", "team_", "team_%", "%"):
        with pytest.raises(NotFound):
            home.world.policy("Exchange\\Get-Mailbox", approver_group=name)
    with pytest.raises(NotFound):
        organizations.enable_access_control(ctx, caller=other.admin.caller, admin_group="team")

    assert {v.group.name for v in directory.list_groups(ctx, caller=other.admin.caller).items} == {
        "Approvers",
        "team%",
        "team_",
    }
    policy = other.policy(SEARCH, approver_group="team%")
    assert policy.approver_group_id is not None
    home_groups = directory.list_groups(home.world.ctx, caller=home.world.admin.caller).items
    assert policy.approver_group_id not in {v.group.id for v in home_groups}
    # in its own organization, "TEAM" is the group "team", and nothing else
    home.world.policy("Exchange\\Get-Mailbox", approver_group="TEAM")


def test_user_names_are_unique_across_the_installation(two_orgs: TwoOrgs) -> None:
    home, other = two_orgs.home, two_orgs.other
    rita = home.rita
    # Another organization cannot create names in this one's domain, taken or not: it learns
    # nothing about which exist, and cannot squat them.
    answers = set()
    for upn in (rita.upn, rita.upn.upper(), f"  {rita.upn}  ", home.world.upn("nobody-yet")):
        with pytest.raises(InvalidInput) as refused:
            directory.add_user(other.ctx, caller=other.admin.caller, upn=upn, display_name="Rita 2")
        answers.add(refused.value.message)
    assert len(answers) == 1
    with pytest.raises(AlreadyExists):
        directory.add_user(
            home.world.ctx, caller=home.world.admin.caller, upn=rita.upn, display_name="R"
        )
    with pytest.raises(AlreadyExists):
        organizations.create_organization(
            other.ctx, name=f"{other.org.name}-b", admin_upn=rita.upn, admin_display_name="Rita"
        )
    same = directory.get_user(home.world.ctx, caller=home.world.admin.caller, upn=rita.upn)
    assert (same.org_id, same.display_name) == (home.world.org.id, "Rita")
    assert rita.upn not in {
        u.upn for u in directory.list_users(other.ctx, caller=other.admin.caller).items
    }
