"""jitpam's own operations are tasks of the built-in ``jitpam`` scope, gated by the same check as
any protected task: policies can put them behind approval, system accounts stay the break-glass
path, and the check service itself answers only to those it should."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from jitpam.domain.audit import AuditRecord, Outcome
from jitpam.domain.check import Reason
from jitpam.domain.errors import (
    AmbiguousName,
    CatalogInvalid,
    JitpamError,
    NotFound,
    NotPermitted,
    SelfApprovalNotAllowed,
)
from jitpam.domain.policy import ApprovalType, Policy, PolicyType
from jitpam.domain.requests import RequestStatus
from jitpam.services import access, audit_log, directory, organizations, policies, requests
from jitpam.services.context import ServiceContext
from jitpam.services.ports import AuditFilter
from jitpam.services.requests import RequestView
from tests.integration.world import Person, World

DISABLE = "jitpam\\Disable-ElevatedAccessControl"
ROLE_MANAGEMENT = "jitpam\\Role Management"
MOVE = "Exchange\\New-MoveRequest"

CONTOSO = """\
scope = "Contoso"
description = "Contoso line-of-business tools"

[tasks]
"Get-Recipient" = "List the recipients of the Contoso directory"
"Reset-Badge" = "Reset a door badge"

[[roles]]
name = "Badge Admins"
tasks = ["Reset-Badge", "Get-Recipient"]
"""


@dataclass(frozen=True)
class Scene:
    """Control on; Approvers (ann and root) is the default approver group. Root is a second
    administrator (jitpam\\Global Administrator) made by the world's admin, who also made ann's
    account and the group and sets up the policies: root has no hand in ann's vote (separation of
    duties), so root is the one who asks. (The world's admin made every account in the world, so
    it steers them all and no vote on a request of its own could count.)"""

    world: World
    ann: Person
    rita: Person  # an ordinary user who may run mailbox moves
    root: Person


@pytest.fixture
def ctx(memory_ctx: ServiceContext) -> ServiceContext:
    """The rules run on the in-memory unit of work."""
    return memory_ctx


@pytest.fixture
def scene(world: World) -> Scene:
    root = world.user("root", role_groups=("jitpam\\Global Administrator",))
    ann = world.user("ann")
    world.group("Approvers", ann, root)
    rita = world.user("rita", roles=("Exchange\\Move Mailboxes",))
    organizations.enable_access_control(
        world.ctx, caller=world.admin.caller, admin_group="Approvers"
    )
    return Scene(world, ann, rita, root)


def audit(world: World, **flt: Any) -> list[AuditRecord]:
    return audit_log.search_audit(
        world.ctx, caller=world.admin.caller, flt=AuditFilter(**flt), limit=1000
    ).items


def control_enabled(world: World) -> bool:
    return organizations.get_access_control(world.ctx, caller=world.admin.caller).control.enabled


def ask_for(
    world: World, who: Person, target: str, type: PolicyType, hours: int = 4
) -> RequestView:
    return requests.new_request(
        world.ctx,
        caller=who.caller,
        type=type,
        target=target,
        reason="change window CHG-1042",
        duration_hours=hours,
    )


def approve(world: World, who: Person, view: RequestView) -> RequestView:
    return requests.approve_request(world.ctx, caller=who.caller, request_id=view.request.id)


def disable(world: World, who: Person) -> None:
    organizations.disable_access_control(world.ctx, caller=who.caller)


# --- an ordinary user manages nothing -----------------------------------------------------------


def test_ordinary_user_cannot_run_jitpam_management_operations(scene: Scene) -> None:
    world, rita = scene.world, scene.rita
    ctx, me = world.ctx, rita.caller
    attempts: dict[str, Callable[[], object]] = {
        "Enable-ElevatedAccessControl": lambda: organizations.enable_access_control(
            ctx, caller=me, admin_group="Approvers"
        ),
        "Disable-ElevatedAccessControl": lambda: organizations.disable_access_control(
            ctx, caller=me
        ),
        "New-ElevatedAccessApprovalPolicy": lambda: policies.new_policy(
            ctx, caller=me, type=PolicyType.TASK, target=MOVE, approval_type=ApprovalType.AUTO
        ),
        "New-User": lambda: directory.add_user(
            ctx, caller=me, upn=world.upn("puppet"), display_name="Puppet"
        ),
        "Add-GroupMember": lambda: directory.change_membership(
            ctx, caller=me, group="Approvers", upn=rita.upn, add=True
        ),
        "Set-OrganizationConfig": lambda: organizations.set_organization_config(
            ctx, caller=me, pending_hours=720
        ),
        "Import-TaskCatalog": lambda: organizations.import_catalog(
            ctx, caller=me, text=CONTOSO, source="contoso.toml"
        ),
        "Search-AuditLog": lambda: audit_log.search_audit(ctx, caller=me),
    }
    for operation, attempt in attempts.items():
        with pytest.raises(NotPermitted) as refused:
            attempt()
        assert f"may not run 'jitpam\\{operation}'" in refused.value.message

    assert control_enabled(world)
    assert policies.list_policies(ctx, caller=world.admin.caller) == []
    with pytest.raises(NotFound):  # the user was not added
        directory.get_user(ctx, caller=world.admin.caller, upn=world.upn("puppet"))
    refused_ops = {
        r.operation
        for r in audit(world, actor=rita.upn, outcome=Outcome.REFUSED)
        if r.details["error"] == "not_permitted"
    }
    assert refused_ops >= set(attempts) - {"Search-AuditLog"}


def test_refused_audit_log_read_is_itself_audited(scene: Scene) -> None:
    # Every decision of the check, allowed or denied, is audited; jitpam's own operations go
    # through the same check, so a refused Search-AuditLog is a denied decision to record.
    world = scene.world
    with pytest.raises(NotPermitted):
        audit_log.search_audit(world.ctx, caller=scene.rita.caller)
    refused = audit(world, actor=scene.rita.upn, outcome=Outcome.REFUSED)
    assert [r.operation for r in refused] == ["Search-AuditLog"]


# --- a task policy on disabling -----------------------------------------------------------------


def test_task_policy_puts_disabling_control_behind_another_approver(scene: Scene) -> None:
    world, admin = scene.world, scene.root  # the administrator who asks (see Scene)
    world.policy(DISABLE, approver_group="Approvers")  # by the world's admin

    with pytest.raises(NotPermitted) as refused:
        disable(world, admin)
    assert "authorization" in refused.value.message
    assert control_enabled(world)
    (record,) = audit(world, operation="Disable-ElevatedAccessControl", outcome=Outcome.REFUSED)
    assert (record.actor_name, record.details["error"]) == (admin.upn, "not_permitted")

    asked = ask_for(world, admin, DISABLE, PolicyType.TASK, hours=1)
    assert asked.status is RequestStatus.PENDING
    with pytest.raises(SelfApprovalNotAllowed):
        approve(world, admin, asked)  # the admin is an approver, but not of their own request
    with pytest.raises(NotPermitted):
        disable(world, admin)

    granted = approve(world, scene.ann, asked)
    assert granted.request.authorization is not None
    disable(world, admin)
    assert not control_enabled(world)
    (done,) = audit(world, operation="Disable-ElevatedAccessControl", outcome=Outcome.SUCCESS)
    assert done.actor_name == admin.upn
    assert done.details["allowed_by"] == "authorized"
    assert done.details["authorization_id"] == str(granted.request.authorization.id)


WEAKENINGS = ["remove the policy", "make it auto-approved", "make oneself a system account"]


def weaken_and_disable(world: World, guard: Policy, how: str) -> None:
    """The admin tries, alone, to get around the guard on disabling; refusals are expected."""
    admin = world.admin
    try:
        if how == "remove the policy":
            policies.remove_policy(world.ctx, caller=admin.caller, policy_id=guard.id)
        elif how == "make it auto-approved":
            policies.set_policy(
                world.ctx, caller=admin.caller, policy_id=guard.id, approval_type=ApprovalType.AUTO
            )
            ask_for(world, admin, DISABLE, PolicyType.TASK, hours=1)
        else:
            organizations.enable_access_control(
                world.ctx, caller=admin.caller, admin_group="Approvers", system_accounts=[admin.upn]
            )
        disable(world, admin)
    except JitpamError:
        pass


@pytest.mark.parametrize("how", WEAKENINGS)
def test_admin_cannot_lift_the_guard_on_disabling_alone(scene: Scene, how: str) -> None:
    # Guarantee 16: disabling alone when that is protected is never accepted, however the admin
    # goes about it. Whichever step refuses, control must still be on at the end.
    guard = scene.world.policy(DISABLE, approver_group="Approvers")
    weaken_and_disable(scene.world, guard, how)
    assert control_enabled(scene.world)


def test_guarding_the_guard_keeps_the_admin_from_lifting_it_alone(scene: Scene) -> None:
    # With the operations that could undo the guard protected too, every way around it is refused.
    world = scene.world
    guard = world.policy(DISABLE, approver_group="Approvers")
    for operation in (
        "Enable-ElevatedAccessControl",
        "Set-ElevatedAccessApprovalPolicy",
        "Remove-ElevatedAccessApprovalPolicy",
    ):
        world.policy(f"jitpam\\{operation}", approver_group="Approvers")
    for how in WEAKENINGS:
        weaken_and_disable(world, guard, how)
        assert control_enabled(world), how
    assert [
        p.approval_type for p in policies.list_policies(world.ctx, caller=world.admin.caller)
    ] == [ApprovalType.MANUAL] * 4


def test_system_account_disables_without_approval_and_is_audited_as_such(scene: Scene) -> None:
    world, admin = scene.world, scene.world.admin
    breakglass = world.user("breakglass", roles=(ROLE_MANAGEMENT,))
    # Root designates it: the world's admin made breakglass's account, so a designation of its
    # own would be refused (separation of duties); root does not steer breakglass.
    organizations.enable_access_control(
        world.ctx,
        caller=scene.root.caller,
        admin_group="Approvers",
        system_accounts=[breakglass.upn],
    )
    world.policy(DISABLE, approver_group="Approvers")
    with pytest.raises(NotPermitted):
        disable(world, admin)

    disable(world, breakglass)
    assert not control_enabled(world)
    (done,) = audit(world, operation="Disable-ElevatedAccessControl", outcome=Outcome.SUCCESS)
    assert done.actor_name == breakglass.upn
    assert done.details["allowed_by"] == "system_account"


# --- a role policy on Role Management -----------------------------------------------------------


def test_role_policy_on_role_management_makes_admin_rights_just_in_time(scene: Scene) -> None:
    world, admin, ctx = scene.world, scene.root, scene.world.ctx  # root asks (see Scene)
    for role in ("jitpam\\Audit Reader", "jitpam\\Access Checker"):
        directory.change_assignment(ctx, caller=admin.caller, role=role, user=admin.upn, add=True)
    world.policy(ROLE_MANAGEMENT, type=PolicyType.ROLE, approver_group="Approvers")
    directory.change_assignment(
        ctx,
        caller=admin.caller,
        role_group="jitpam\\Global Administrator",
        user=admin.upn,
        add=False,
    )

    def add_user(name: str) -> None:
        directory.add_user(ctx, caller=admin.caller, upn=world.upn(name), display_name=name)

    def jit_members() -> list[Any]:
        members = directory.role_members(ctx, caller=admin.caller, role=ROLE_MANAGEMENT)
        return [m for m in members if m.name == admin.upn]

    with pytest.raises(NotPermitted) as before:
        add_user("before")
    assert "no role held by the user contains the task" in before.value.message
    assert jit_members() == []

    asked = ask_for(world, admin, ROLE_MANAGEMENT, PolicyType.ROLE, hours=2)
    world.later(minutes=3)
    granted = approve(world, scene.ann, asked)
    auth = granted.request.authorization
    assert auth is not None
    assert auth.end == world.clock.now() + timedelta(hours=2)

    add_user("during")
    (record,) = audit(world, operation="New-User", target=world.upn("during"))
    assert record.details["authorization_id"] == str(auth.id)
    (member,) = jit_members()
    assert member.just_in_time
    assert (member.until, member.authorization_id) == (auth.end, auth.id)

    world.clock.set(auth.end)
    with pytest.raises(NotPermitted):
        add_user("after")
    assert jit_members() == []


# --- the check service --------------------------------------------------------------------------


def test_user_may_check_themself_but_needs_access_checker_for_others(scene: Scene) -> None:
    world, rita, ctx = scene.world, scene.rita, scene.world.ctx
    checker = world.user("checker", roles=("jitpam\\Access Checker",))

    own = access.check_access(ctx, caller=rita.caller, user=rita.upn, task=MOVE)
    assert (own.allowed, own.reason) == (True, Reason.NOT_PROTECTED)
    with pytest.raises(NotPermitted) as refused:
        access.check_access(ctx, caller=rita.caller, user=scene.ann.upn, task=MOVE)
    assert "themself" in refused.value.message
    (record,) = audit(
        world, operation="Test-ElevatedAccess", actor=rita.upn, target=MOVE, outcome=Outcome.REFUSED
    )
    assert record.details["error"] == "not_permitted"

    for asker in (checker, world.admin):
        other = access.check_access(ctx, caller=asker.caller, user=rita.upn, task=MOVE)
        assert (other.allowed, other.reason) == (True, Reason.NOT_PROTECTED)


def test_every_check_is_audited_allowed_or_denied(scene: Scene) -> None:
    world, ctx, admin = scene.world, scene.world.ctx, scene.world.admin
    world.policy(MOVE)
    checks = [
        (scene.rita.upn, MOVE, False, Reason.AUTHORIZATION_REQUIRED),
        (scene.rita.upn, "Exchange\\Get-Mailbox", False, Reason.TASK_NOT_HELD),
        (scene.rita.upn, "Exchange\\Get-MoveRequest", True, Reason.NOT_PROTECTED),
        (world.upn("ghost"), MOVE, False, Reason.UNKNOWN_USER),
        (scene.rita.upn, "Exchange\\No-Such-Task", False, Reason.UNKNOWN_TASK),
    ]
    for user, task, allowed, reason in checks:
        decision = access.check_access(ctx, caller=admin.caller, user=user, task=task)
        assert (decision.allowed, decision.reason) == (allowed, reason), task

    records = sorted(audit(world, operation="Test-ElevatedAccess"), key=lambda r: r.seq)
    assert [
        (r.details["user"], r.target, r.details["allowed"], r.details["reason"], r.outcome)
        for r in records
    ] == [(u, t, a, r.value, Outcome.SUCCESS if a else Outcome.REFUSED) for u, t, a, r in checks]
    assert {r.actor_name for r in records} == {admin.upn}


def test_unknown_task_is_denied_as_unknown(scene: Scene) -> None:
    world = scene.world
    for task in ("Exchange\\No-Such-Task", "No-Such-Task", "Nowhere\\New-MoveRequest"):
        decision = access.check_access(
            world.ctx, caller=scene.rita.caller, user=scene.rita.upn, task=task
        )
        assert (decision.allowed, decision.reason) == (False, Reason.UNKNOWN_TASK), task


def test_bare_names_resolve_only_when_one_scope_has_them(scene: Scene) -> None:
    world, ctx, admin, rita = scene.world, scene.world.ctx, scene.world.admin, scene.rita
    bare = access.check_access(ctx, caller=rita.caller, user=rita.upn, task="new-moverequest")
    assert bare.allowed
    (record,) = audit(world, operation="Test-ElevatedAccess")
    assert record.target == MOVE  # the name it resolved to

    organizations.import_catalog(ctx, caller=admin.caller, text=CONTOSO, source="contoso.toml")
    with pytest.raises(AmbiguousName) as ambiguous:
        access.check_access(ctx, caller=rita.caller, user=rita.upn, task="Get-Recipient")
    assert "'Contoso\\Get-Recipient'" in ambiguous.value.message
    assert "'Exchange\\Get-Recipient'" in ambiguous.value.message
    with pytest.raises(AmbiguousName):
        world.policy("Get-Recipient")
    with pytest.raises(AmbiguousName):  # also in jitpam's own scope, out of the box
        world.policy("Disable-ElevatedAccessControl")

    for task, allowed in (("Exchange\\Get-Recipient", True), ("Contoso\\Get-Recipient", False)):
        decision = access.check_access(ctx, caller=rita.caller, user=rita.upn, task=task)
        assert decision.allowed is allowed, task
    assert str(world.policy("Contoso\\Get-Recipient").target) == "Contoso\\Get-Recipient"
    assert str(world.policy("Reset-Badge").target) == "Contoso\\Reset-Badge"


def test_invalid_catalog_import_names_the_source_line_and_field(scene: Scene) -> None:
    world, admin = scene.world, scene.world.admin
    broken = CONTOSO.replace(
        'tasks = ["Reset-Badge", "Get-Recipient"]',
        'tasks = ["Reset-Badge", "Open-Vault"]\ncolour = "red"',
    )
    with pytest.raises(CatalogInvalid) as invalid:
        organizations.import_catalog(
            world.ctx, caller=admin.caller, text=broken, source="contoso-v2.toml"
        )
    assert invalid.value.problems == [
        "contoso-v2.toml, line 11, field roles[0].colour: unknown field",
        "contoso-v2.toml, line 10, field roles[0].tasks: unknown task 'Open-Vault'",
    ]
    # nothing of it was imported, and the refusal is on record
    decision = access.check_access(
        world.ctx, caller=admin.caller, user=admin.upn, task="Contoso\\Reset-Badge"
    )
    assert decision.reason is Reason.UNKNOWN_TASK
    (record,) = audit(world, operation="Import-TaskCatalog", outcome=Outcome.REFUSED)
    assert (record.target, record.details["error"]) == ("contoso-v2.toml", "catalog_invalid")

    with pytest.raises(CatalogInvalid) as builtin:
        organizations.import_catalog(
            world.ctx,
            caller=admin.caller,
            text='scope = "jitpam"\n[tasks]\n"Anything" = "x"\n',
            source="mine.toml",
        )
    assert builtin.value.message.startswith("mine.toml, line 1, field scope:")
