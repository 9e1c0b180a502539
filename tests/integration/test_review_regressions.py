"""Rules the security review found broken, one test each: removing a group never opens a policy,
a decision given as text is checked like the enum, refused input with odd text keeps the audit
chain sound, guards on jitpam operations and jitpam role policies are lifted only through
break-glass, approvals are judged by the policy as it is now, bad choices are clear errors, and a
disabled user learns nothing about requests they cannot see."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import Engine, Integer, Uuid, bindparam, text

from jitpam.domain.audit import AuditRecord, Outcome
from jitpam.domain.control import AccessControl
from jitpam.domain.errors import (
    InvalidInput,
    JitpamError,
    NotFound,
    NotPermitted,
    RequesterNotEligible,
    RequestTampered,
)
from jitpam.domain.policy import ApprovalType, PolicyType
from jitpam.domain.requests import RequestStatus
from jitpam.services import audit_log, directory, organizations, policies, requests
from jitpam.services.context import Caller, ServiceContext
from jitpam.services.ports import AuditFilter
from jitpam.services.requests import RequestView
from tests.integration.world import Person, World

DISABLE = "jitpam\\Disable-ElevatedAccessControl"
ROLE_MANAGEMENT = "jitpam\\Role Management"
GLOBAL_ADMIN = "jitpam\\Global Administrator"
MOVE = "Exchange\\New-MoveRequest"
MOVE_ROLE = "Exchange\\Move Mailboxes"


@dataclass(frozen=True)
class Scene:
    """Control on; Approvers (ann and ben) is the default approver group; rita may move mailboxes;
    breakglass is a system account holding jitpam\\Role Management (made one before any guard)."""

    world: World
    ann: Person
    ben: Person
    rita: Person
    breakglass: Person


@pytest.fixture
def ctx(memory_ctx: ServiceContext) -> ServiceContext:
    """The rules run on the in-memory unit of work; what an adapter's query decides runs on
    the databases (``db_scene``)."""
    return memory_ctx


def make_scene(world: World) -> Scene:
    ann, ben = world.user("ann"), world.user("ben")
    world.group("Approvers", ann, ben)
    rita = world.user("rita", roles=(MOVE_ROLE,))
    breakglass = world.user("breakglass", roles=(ROLE_MANAGEMENT,))
    organizations.enable_access_control(
        world.ctx, caller=world.admin.caller, admin_group="Approvers"
    )
    world.exempt(breakglass)  # the admin made the account: the installation designates it
    return Scene(world, ann, ben, rita, breakglass)


@pytest.fixture
def scene(world: World) -> Scene:
    return make_scene(world)


@pytest.fixture
def db_scene(db_world: World) -> Scene:
    return make_scene(db_world)


def audit(world: World, **flt: Any) -> list[AuditRecord]:
    return audit_log.search_audit(
        world.ctx, caller=world.admin.caller, flt=AuditFilter(**flt), limit=1000
    ).items


def refusals(world: World, operation: str) -> list[str]:
    """The error codes of the refused attempts at ``operation``, oldest first."""
    records = audit(world, operation=operation, outcome=Outcome.REFUSED)
    return [r.details["error"] for r in sorted(records, key=lambda r: r.seq)]


def ask(world: World, who: Person, target: str = MOVE, *, hours: int = 4) -> RequestView:
    return requests.new_request(
        world.ctx,
        caller=who.caller,
        type=PolicyType.TASK,
        target=target,
        reason="change window CHG-1042",
        duration_hours=hours,
    )


def status(world: World, view: RequestView) -> RequestStatus:
    return requests.get_request(
        world.ctx, caller=world.admin.caller, request_id=view.request.id
    ).status


def control(world: World) -> AccessControl:
    return organizations.get_access_control(world.ctx, caller=world.admin.caller).control


def set_duration(engine: Engine, request_id: UUID, hours: int) -> None:
    """Change the stored duration behind the service's back, as someone with database access."""
    statement = text("UPDATE requests SET duration_hours = :value WHERE id = :id").bindparams(
        bindparam("value", type_=Integer()), bindparam("id", type_=Uuid())
    )
    with engine.begin() as conn:
        assert conn.execute(statement, {"value": hours, "id": request_id}).rowcount == 1


# --- 1. removing a group never widens what it was used for --------------------------------------


def test_group_naming_eligible_requesters_cannot_be_removed(scene: Scene) -> None:
    world, admin = scene.world, scene.world.admin
    movers = world.user("mover", roles=(MOVE_ROLE,))
    world.group("Movers", movers)
    policy = world.policy(MOVE, eligible_groups=["Movers"])

    with pytest.raises(InvalidInput) as refused:
        directory.remove_group(world.ctx, caller=admin.caller, name="Movers")
    assert str(policy.id) in refused.value.message
    assert "Movers" in [
        v.group.name for v in directory.list_groups(world.ctx, caller=admin.caller).items
    ]
    assert refusals(world, "Remove-Group") == ["invalid_input"]

    # the policy is still restricted: rita, not a member, may not ask; a member may
    with pytest.raises(RequesterNotEligible):
        ask(world, scene.rita)
    assert ask(world, movers).status is RequestStatus.PENDING


def test_group_holding_a_standing_role_cannot_be_removed_until_unassigned(scene: Scene) -> None:
    world, admin, ctx = scene.world, scene.world.admin, scene.world.ctx
    world.group("Helpdesk")
    directory.change_assignment(
        ctx, caller=admin.caller, role=MOVE_ROLE, group="Helpdesk", add=True
    )

    with pytest.raises(InvalidInput) as refused:
        directory.remove_group(ctx, caller=admin.caller, name="Helpdesk")
    assert MOVE_ROLE in refused.value.message
    assert refusals(world, "Remove-Group") == ["invalid_input"]
    holders = directory.role_members(ctx, caller=admin.caller, role=MOVE_ROLE)
    assert "Helpdesk" in [m.name for m in holders]

    directory.change_assignment(
        ctx, caller=admin.caller, role=MOVE_ROLE, group="Helpdesk", add=False
    )
    directory.remove_group(ctx, caller=admin.caller, name="Helpdesk")
    assert "Helpdesk" not in [
        v.group.name for v in directory.list_groups(ctx, caller=admin.caller).items
    ]


# --- 2. a decision given as text is the decision ------------------------------------------------


def test_approve_given_as_text_still_refuses_an_altered_request(
    db_scene: Scene, engine: Engine
) -> None:
    scene = db_scene
    world, ann = scene.world, scene.ann
    world.policy(MOVE)
    asked = ask(world, scene.rita, hours=4)
    set_duration(engine, asked.request.id, 5000)

    with pytest.raises(RequestTampered):
        requests.review_request(
            world.ctx,
            caller=ann.caller,
            request_id=asked.request.id,
            decision="approve",  # type: ignore[arg-type]
        )
    assert status(world, asked) is RequestStatus.PENDING
    assert requests.my_authorizations(world.ctx, caller=scene.rita.caller) == []
    assert refusals(world, "Approve-ElevatedAccessRequest") == ["request_tampered"]
    assert audit(world, operation="Deny-ElevatedAccessRequest") == []


def test_approve_given_as_text_approves_like_the_enum(scene: Scene) -> None:
    world = scene.world
    world.policy(MOVE)
    asked = ask(world, scene.rita)
    granted = requests.review_request(
        world.ctx,
        caller=scene.ann.caller,
        request_id=asked.request.id,
        decision="approve",  # type: ignore[arg-type]
    )
    assert granted.status is RequestStatus.APPROVED
    assert granted.request.authorization is not None
    (record,) = audit(world, operation="Approve-ElevatedAccessRequest", actor=scene.ann.upn)
    assert record.details["status"] == "approved"


def test_unknown_decision_is_invalid_input_and_decides_nothing(scene: Scene) -> None:
    world = scene.world
    world.policy(MOVE)
    asked = ask(world, scene.rita)
    with pytest.raises(InvalidInput) as refused:
        requests.review_request(
            world.ctx,
            caller=scene.ann.caller,
            request_id=asked.request.id,
            decision="maybe",  # type: ignore[arg-type]
        )
    assert refused.value.message == "decision must be one of: approve, deny"
    assert status(world, asked) is RequestStatus.PENDING


# --- 3. refusals with odd text are audited and keep the chain sound -----------------------------


def test_refusal_with_long_or_unstorable_target_is_audited_and_chain_verifies(
    scene: Scene,
) -> None:
    world, rita = scene.world, scene.rita
    targets = ["x" * 600, "Exchange\\bad\ud800name", "Exchange\\bad\x00name"]
    for target in targets:
        with pytest.raises(NotPermitted):
            policies.new_policy(
                world.ctx,
                caller=rita.caller,
                type=PolicyType.TASK,
                target=target,
                approval_type=ApprovalType.AUTO,
            )

    records = sorted(
        audit(
            world,
            actor=rita.upn,
            operation="New-ElevatedAccessApprovalPolicy",
            outcome=Outcome.REFUSED,
        ),
        key=lambda r: r.seq,
    )
    assert len(records) == len(targets)
    stored = [r.target for r in records]
    assert stored[0] == "x" * 512
    for target in stored:
        assert len(target) <= 512
        assert "\x00" not in target
        target.encode("utf-8")  # no lone surrogate: raises if one was kept
    assert all(r.details["error"] == "not_permitted" for r in records)

    verified = audit_log.verify_audit(world.ctx, caller=world.admin.caller)
    assert verified.report.ok, verified.report


OddText = Callable[[Scene], object]

# Callers who may run the operation, so the odd text reaches the lookup before the refusal.
ODD_TEXT_REFUSALS: dict[str, tuple[OddText, str]] = {
    "policy target with a lone surrogate": (
        lambda s: policies.new_policy(
            s.world.ctx,
            caller=s.world.admin.caller,
            type=PolicyType.TASK,
            target="Exchange\\bad\ud800name",
            approval_type=ApprovalType.AUTO,
        ),
        "New-ElevatedAccessApprovalPolicy",
    ),
    "request target with a lone surrogate": (
        lambda s: requests.new_request(
            s.world.ctx,
            caller=s.rita.caller,
            type=PolicyType.TASK,
            target="Exchange\\bad\ud800name",
            reason="change window CHG-1042",
        ),
        "New-ElevatedAccessRequest",
    ),
    "group name with a NUL byte": (
        lambda s: directory.remove_group(
            s.world.ctx, caller=s.world.admin.caller, name="bad\x00name"
        ),
        "Remove-Group",
    ),
}


@pytest.mark.parametrize("case", list(ODD_TEXT_REFUSALS))
def test_odd_text_from_a_permitted_caller_is_a_clear_audited_refusal(
    scene: Scene, case: str
) -> None:
    world = scene.world
    attempt, operation = ODD_TEXT_REFUSALS[case]
    with pytest.raises(JitpamError):  # not a UnicodeEncodeError or a database error
        attempt(scene)
    (record,) = audit(world, operation=operation, outcome=Outcome.REFUSED)
    record.target.encode("utf-8")
    assert "\x00" not in record.target
    verified = audit_log.verify_audit(world.ctx, caller=world.admin.caller)
    assert verified.report.ok, verified.report


# --- 4. guards on jitpam operations are lifted only through break-glass -------------------------


def approved_disable(scene: Scene) -> Person:
    """A guard on disabling, and a request to disable by root (an administrator holding
    jitpam\\Global Administrator, made by the world's admin) approved by vera; returns root.
    Breakglass sets the guard up and makes vera an approver. The requester is root, not the
    world's admin: the world's admin made breakglass's, ann's and ben's accounts, so it would
    steer them all and have a hand in any vote (separation of duties); root steers none of them."""
    world, breakglass = scene.world, scene.breakglass
    root = world.user("root", role_groups=(GLOBAL_ADMIN,))
    directory.add_user(
        world.ctx, caller=breakglass.caller, upn=world.upn("vera"), display_name="Vera"
    )
    directory.change_membership(
        world.ctx, caller=breakglass.caller, group="Approvers", upn=world.upn("vera"), add=True
    )
    policies.new_policy(
        world.ctx,
        caller=breakglass.caller,
        type=PolicyType.TASK,
        target=DISABLE,
        approval_type=ApprovalType.MANUAL,
        approver_group="Approvers",
    )
    asked = ask(world, root, DISABLE, hours=1)
    vera = directory.get_user(world.ctx, caller=breakglass.caller, upn=world.upn("vera"))
    granted = requests.approve_request(
        world.ctx, caller=Caller(world.org.id, vera.id), request_id=asked.request.id
    )
    assert granted.request.authorization is not None
    return root


def test_approval_to_disable_once_does_not_let_the_admin_lift_the_guard(scene: Scene) -> None:
    world, ctx = scene.world, scene.world.ctx
    admin = approved_disable(scene)  # the administrator whose disable was approved
    (guard,) = policies.list_policies(ctx, caller=admin.caller)

    with pytest.raises(NotPermitted):
        policies.remove_policy(ctx, caller=admin.caller, policy_id=guard.id)
    with pytest.raises(NotPermitted):
        policies.set_policy(
            ctx, caller=admin.caller, policy_id=guard.id, approval_type=ApprovalType.AUTO
        )
    with pytest.raises(NotPermitted):  # nobody makes themself a system account
        organizations.enable_access_control(
            ctx,
            caller=admin.caller,
            admin_group="Approvers",
            system_accounts=[scene.breakglass.upn, admin.upn],
        )
    with pytest.raises(NotPermitted):  # nor adds another one while a jitpam guard exists
        organizations.enable_access_control(
            ctx,
            caller=admin.caller,
            admin_group="Approvers",
            system_accounts=[scene.breakglass.upn, scene.ann.upn],
        )

    assert policies.list_policies(ctx, caller=admin.caller) == [guard]
    assert control(world).system_account_ids == {scene.breakglass.caller.user_id}
    assert refusals(world, "Remove-ElevatedAccessApprovalPolicy") == ["not_permitted"]
    assert refusals(world, "Set-ElevatedAccessApprovalPolicy") == ["not_permitted"]
    assert refusals(world, "Enable-ElevatedAccessControl") == ["not_permitted"] * 2

    # break-glass is the way to lift it
    policies.remove_policy(ctx, caller=scene.breakglass.caller, policy_id=guard.id)
    assert policies.list_policies(ctx, caller=admin.caller) == []


def test_after_an_approved_disable_the_admin_cannot_reenable_as_system_account(
    scene: Scene,
) -> None:
    world, ctx = scene.world, scene.world.ctx
    admin = approved_disable(scene)  # the administrator whose disable was approved
    organizations.disable_access_control(ctx, caller=admin.caller)
    assert not control(world).enabled

    with pytest.raises(NotPermitted):
        organizations.enable_access_control(
            ctx, caller=admin.caller, admin_group="Approvers", system_accounts=[admin.upn]
        )
    assert not control(world).enabled
    assert admin.caller.user_id not in control(world).system_account_ids
    assert refusals(world, "Enable-ElevatedAccessControl") == ["not_permitted"]

    # re-enabling without making anyone new a system account is fine, and the guard is still there
    organizations.enable_access_control(
        ctx, caller=admin.caller, admin_group="Approvers", system_accounts=[scene.breakglass.upn]
    )
    assert control(world).enabled
    assert [str(p.target) for p in policies.list_policies(ctx, caller=admin.caller)] == [DISABLE]


# --- 5. a role policy on a jitpam role is not undone by a standing assignment -------------------


def test_role_policy_on_role_management_cannot_be_bypassed_by_standing_assignment(
    scene: Scene,
) -> None:
    world, admin, ctx, rita = scene.world, scene.world.admin, scene.world.ctx, scene.rita
    world.policy(ROLE_MANAGEMENT, type=PolicyType.ROLE, approver_group="Approvers")

    def standing_holders() -> list[str]:
        members = directory.role_members(ctx, caller=admin.caller, role=ROLE_MANAGEMENT)
        return sorted(m.name for m in members if not m.just_in_time)

    before = standing_holders()
    with pytest.raises(NotPermitted) as direct:
        directory.change_assignment(
            ctx, caller=admin.caller, role=ROLE_MANAGEMENT, user=rita.upn, add=True
        )
    assert "system account" in direct.value.message
    with pytest.raises(NotPermitted):  # nor through the role group that contains it
        directory.change_assignment(
            ctx, caller=admin.caller, role_group=GLOBAL_ADMIN, user=rita.upn, add=True
        )
    assert standing_holders() == before
    records = audit(world, operation="New-ManagementRoleAssignment", outcome=Outcome.REFUSED)
    assert sorted((r.target, r.details["error"]) for r in records) == [
        (GLOBAL_ADMIN, "not_permitted"),
        (ROLE_MANAGEMENT, "not_permitted"),
    ]

    directory.change_assignment(
        ctx, caller=scene.breakglass.caller, role=ROLE_MANAGEMENT, user=rita.upn, add=True
    )
    assert rita.upn in standing_holders()


# --- 6. approval is judged by the policy as it is now -------------------------------------------


def test_approval_fails_when_the_policy_maximum_drops_below_the_request(scene: Scene) -> None:
    world, admin = scene.world, scene.world.admin
    policy = world.policy(MOVE, max_duration_hours=8)
    asked = ask(world, scene.rita, hours=6)
    policies.set_policy(world.ctx, caller=admin.caller, policy_id=policy.id, max_duration_hours=4)

    with pytest.raises(InvalidInput) as refused:
        requests.approve_request(world.ctx, caller=scene.ann.caller, request_id=asked.request.id)
    assert "4 h" in refused.value.message
    assert status(world, asked) is RequestStatus.PENDING
    assert refusals(world, "Approve-ElevatedAccessRequest") == ["invalid_input"]

    denied = requests.deny_request(world.ctx, caller=scene.ben.caller, request_id=asked.request.id)
    assert denied.status is RequestStatus.DENIED


def test_approval_fails_when_the_requester_is_no_longer_eligible(scene: Scene) -> None:
    world, admin = scene.world, scene.world.admin
    other = world.user("other", roles=(MOVE_ROLE,))
    policy = world.policy(MOVE, eligible_users=[scene.rita.upn])
    asked = ask(world, scene.rita)
    policies.set_policy(
        world.ctx, caller=admin.caller, policy_id=policy.id, eligible_users=[other.upn]
    )

    with pytest.raises(RequesterNotEligible) as refused:
        requests.approve_request(world.ctx, caller=scene.ann.caller, request_id=asked.request.id)
    assert scene.rita.upn in refused.value.message
    assert status(world, asked) is RequestStatus.PENDING
    assert requests.my_authorizations(world.ctx, caller=scene.rita.caller) == []
    assert refusals(world, "Approve-ElevatedAccessRequest") == ["requester_not_eligible"]

    denied = requests.deny_request(world.ctx, caller=scene.ben.caller, request_id=asked.request.id)
    assert denied.status is RequestStatus.DENIED


# --- 7. a bad choice is a clear InvalidInput ----------------------------------------------------

BadChoice = Callable[[Scene], object]

BAD_CHOICES: dict[str, tuple[BadChoice, str | None]] = {
    "policy type": (
        lambda s: policies.new_policy(
            s.world.ctx,
            caller=s.world.admin.caller,
            type="bogus",  # type: ignore[arg-type]
            target=MOVE,
            approval_type=ApprovalType.MANUAL,
        ),
        "New-ElevatedAccessApprovalPolicy",
    ),
    "policy approval type": (
        lambda s: policies.new_policy(
            s.world.ctx,
            caller=s.world.admin.caller,
            type=PolicyType.TASK,
            target=MOVE,
            approval_type="sometimes",  # type: ignore[arg-type]
        ),
        "New-ElevatedAccessApprovalPolicy",
    ),
    "policy list type": (
        lambda s: policies.list_policies(
            s.world.ctx,
            caller=s.world.admin.caller,
            type="nope",  # type: ignore[arg-type]
        ),
        None,
    ),
    "request type": (
        lambda s: requests.new_request(
            s.world.ctx,
            caller=s.rita.caller,
            type="bogus",  # type: ignore[arg-type]
            target=MOVE,
            reason="change window CHG-1042",
        ),
        "New-ElevatedAccessRequest",
    ),
    "request list status": (
        lambda s: requests.list_requests(
            s.world.ctx,
            caller=s.world.admin.caller,
            status="nope",  # type: ignore[arg-type]
        ),
        None,
    ),
    "user kind": (
        lambda s: directory.add_user(
            s.world.ctx,
            caller=s.world.admin.caller,
            upn=s.world.upn("robot"),
            display_name="Robot",
            kind="robot",  # type: ignore[arg-type]
        ),
        "New-User",
    ),
    "catalog entry kind": (
        lambda s: organizations.catalog_entries(
            s.world.ctx,
            caller=s.world.admin.caller,
            kind="nope",  # type: ignore[arg-type]
        ),
        None,
    ),
    "policy limit": (
        lambda s: organizations.set_organization_config(
            s.world.ctx, caller=s.world.admin.caller, max_policies=10**30
        ),
        "Set-OrganizationConfig",
    ),
}


@pytest.mark.parametrize("choice", list(BAD_CHOICES))
def test_bad_choice_is_invalid_input_and_changes_nothing(scene: Scene, choice: str) -> None:
    world, ctx, me = scene.world, scene.world.ctx, scene.world.admin.caller
    attempt, operation = BAD_CHOICES[choice]
    with pytest.raises(InvalidInput):
        attempt(scene)

    assert policies.list_policies(ctx, caller=me) == []
    assert requests.list_requests(ctx, caller=me).items == []
    with pytest.raises(NotFound):
        directory.get_user(ctx, caller=me, upn=world.upn("robot"))
    assert control(world).max_policies is None
    refused = audit(world, outcome=Outcome.REFUSED)
    assert [(r.operation, r.details["error"]) for r in refused] == (
        [(operation, "invalid_input")] if operation else []
    )


def test_policy_list_filter_accepts_choices_as_text(scene: Scene) -> None:
    world, ctx, me = scene.world, scene.world.ctx, scene.world.admin.caller
    task = world.policy(MOVE)
    role = world.policy(MOVE_ROLE, type=PolicyType.ROLE)
    assert policies.list_policies(ctx, caller=me, type="task") == [task]  # type: ignore[arg-type]
    assert policies.list_policies(ctx, caller=me, type="role") == [role]  # type: ignore[arg-type]
    assert policies.list_policies(
        ctx,
        caller=me,
        approval_type="manual",  # type: ignore[arg-type]
    ) == policies.list_policies(ctx, caller=me)


# --- 8. a disabled user learns nothing about requests they cannot see ---------------------------


def test_disabled_user_gets_not_found_for_requests_they_cannot_see(scene: Scene) -> None:
    # ann is in the default approver group, but the policy names its own approver group
    world, admin, ctx = scene.world, scene.world.admin, scene.world.ctx
    carl = world.user("carl")
    world.group("MailboxApprovers", carl)
    world.policy(MOVE, approver_group="MailboxApprovers")
    asked = ask(world, scene.rita)
    directory.set_user(ctx, caller=admin.caller, upn=scene.ann.upn, enabled=False)

    def ann_reviews_in_vain() -> None:
        for review in (requests.approve_request, requests.deny_request):
            with pytest.raises(NotFound) as hidden:
                review(ctx, caller=scene.ann.caller, request_id=asked.request.id)
            assert "MoveRequest" not in hidden.value.message

    ann_reviews_in_vain()  # while pending
    decided = requests.deny_request(ctx, caller=carl.caller, request_id=asked.request.id)
    assert decided.status is RequestStatus.DENIED
    ann_reviews_in_vain()  # once decided

    records = audit(world, actor=scene.ann.upn, outcome=Outcome.REFUSED)
    assert [r.details["error"] for r in records] == ["not_found"] * 4
    assert not any("MoveRequest" in r.details["message"] for r in records)


def test_a_vote_from_someone_no_longer_an_approver_does_not_count(scene: Scene) -> None:
    w = scene.world
    cleo = w.user("cleo")
    directory.change_membership(
        w.ctx, caller=w.admin.caller, group="Approvers", upn=cleo.upn, add=True
    )
    w.policy(MOVE, approvals_required=2)
    asked = ask(w, scene.rita)
    requests.approve_request(
        w.ctx, caller=scene.ann.caller, request_id=asked.request.id, comment="one"
    )
    directory.change_membership(
        w.ctx, caller=w.admin.caller, group="Approvers", upn=scene.ann.upn, add=False
    )
    after = requests.approve_request(
        w.ctx, caller=scene.ben.caller, request_id=asked.request.id, comment="two"
    )
    assert after.status is RequestStatus.PENDING
    done = requests.approve_request(
        w.ctx, caller=cleo.caller, request_id=asked.request.id, comment="three"
    )
    assert done.status is RequestStatus.APPROVED
