"""Group claims at OIDC sign-in, on the in-memory unit of work: exactly the mapped groups follow
the claim, each change audited by jitpam in the sign-in's transaction, and a claim makes nobody
an approver unless the settings opted the group in."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from jitpam.domain.group_claims import GroupClaimMap
from jitpam.domain.policy import PolicyType
from jitpam.services import audit_log, auth, directory, organizations
from jitpam.services.context import ServiceContext
from jitpam.services.ports import AuditFilter
from tests.integration.world import Person, World


@pytest.fixture
def ctx(memory_ctx: ServiceContext) -> ServiceContext:
    return memory_ctx


def configure(w: World, mapping: dict[str, str], approvers: tuple[str, ...] = ()) -> None:
    """The installation's settings (keys name groups of the world's organization), and the
    approver groups the organization opted in (its administrator, as for SCIM)."""
    pairs = [(f"{w.org.name}:{group}", claim) for group, claim in mapping.items()]
    w.ctx = replace(w.ctx, groups_claim="groups", group_claims=GroupClaimMap.of(pairs))
    if approvers:
        organizations.set_organization_config(
            w.ctx, caller=w.admin.caller, scim_approver_groups=list(approvers)
        )


def sign_in(w: World, who: Person, groups: frozenset[str] | None) -> None:
    auth.sign_in_oidc(
        w.ctx,
        issuer="https://login.example",
        subject="sub-" + who.upn,
        email=who.upn,
        email_verified=True,
        client="198.51.100.7",
        groups=groups,
    )


def members(w: World, group: str) -> set[str]:
    view = directory.get_group(w.ctx, caller=w.admin.caller, name=group)
    return set(view.names.values())


def records(w: World, operation: str) -> list[Any]:
    page = audit_log.search_audit(
        w.ctx, caller=w.admin.caller, flt=AuditFilter(operation=operation), limit=100
    )
    return list(page.items)


def test_mapped_groups_follow_the_claim_and_others_are_left_alone(world: World) -> None:
    w = world
    alice = w.user("alice")
    w.group("Helpdesk")
    w.group("Mailbox-Team", alice)
    w.group("Hand-Made", alice)  # not in the map: never touched
    configure(w, {"Helpdesk": "sg-helpdesk", "Mailbox-Team": "sg-mailbox"})

    sign_in(w, alice, frozenset({"sg-helpdesk", "sg-other"}))
    assert alice.upn in members(w, "Helpdesk")
    assert alice.upn not in members(w, "Mailbox-Team")
    assert alice.upn in members(w, "Hand-Made")
    added = [r for r in records(w, "Add-GroupMember") if r.details.get("via") == "oidc"]
    removed = [r for r in records(w, "Remove-GroupMember") if r.details.get("via") == "oidc"]
    assert [(r.target, r.actor_name, r.details["claim"]) for r in added] == [
        ("Helpdesk", "jitpam", {"groups": "sg-helpdesk"})
    ]
    assert [(r.target, r.details["member"], r.details["claim"]) for r in removed] == [
        ("Mailbox-Team", alice.upn, {"groups": "sg-mailbox"})
    ]
    # A second sign-in with the same claim changes nothing and records no change.
    sign_in(w, alice, frozenset({"sg-helpdesk"}))
    assert len([r for r in records(w, "Add-GroupMember") if r.details.get("via") == "oidc"]) == 1


def test_a_token_without_the_claim_changes_nothing(world: World) -> None:
    w = world
    alice = w.user("alice")
    w.group("Helpdesk", alice)
    configure(w, {"Helpdesk": "sg-helpdesk"})
    sign_in(w, alice, None)
    assert alice.upn in members(w, "Helpdesk")
    signed = records(w, "Sign-In")[0]
    assert signed.details["groups_claim"] == "absent: memberships unchanged"


def test_another_organizations_map_and_unknown_groups_change_nothing(world: World) -> None:
    w = world
    alice = w.user("alice")
    w.group("Helpdesk", alice)
    w.ctx = replace(
        w.ctx,
        groups_claim="groups",
        group_claims=GroupClaimMap.of(
            [("fabrikam:Helpdesk", "sg-helpdesk"), (f"{w.org.name}:Nowhere", "sg-nowhere")]
        ),
    )
    sign_in(w, alice, frozenset({"sg-nowhere"}))
    assert alice.upn in members(w, "Helpdesk")
    assert records(w, "Sign-In")[0].details["groups_skipped"] == {"Nowhere": "no such group"}


def test_a_claim_adds_to_an_approver_group_only_when_opted_in(world: World) -> None:
    w = world
    alice = w.user("alice")
    w.group("Approvers")
    w.policy("Exchange\\Move Mailboxes", type=PolicyType.ROLE, approver_group="Approvers")
    configure(w, {"Approvers": "sg-approvers"})
    sign_in(w, alice, frozenset({"sg-approvers"}))
    assert alice.upn not in members(w, "Approvers")
    skipped = records(w, "Sign-In")[0].details["groups_skipped"]
    assert skipped == {"Approvers": "approver group not opted in (scim_approver_groups)"}

    configure(w, {"Approvers": "sg-approvers"}, approvers=("Approvers",))
    sign_in(w, alice, frozenset({"sg-approvers"}))
    assert alice.upn in members(w, "Approvers")
    # The membership counts as the installation's (the settings' author is not a jitpam user),
    # never as the admin's or Alice's: their own requests' votes are judged by that.
    with w.ctx.uow() as uow:
        group = uow.groups.find(w.org.id, "Approvers")
        assert group is not None
        assert uow.groups.member_paths(group.id, [alice.caller.user_id]) == {
            alice.caller.user_id: [(None,)]
        }
    # Leaving the group at the identity provider always applies.
    sign_in(w, alice, frozenset())
    assert alice.upn not in members(w, "Approvers")


def test_a_claim_removes_nobody_from_an_approver_group_not_opted_in(world: World) -> None:
    """A sign-in whose claim lacks the group leaves a hand-made approver group's members alone:
    the identity provider may not drop the approvers a policy needs."""
    w = world
    bob = w.user("bob")
    w.group("Approvers", bob)
    w.policy("Exchange\\Move Mailboxes", type=PolicyType.ROLE, approver_group="Approvers")
    configure(w, {"Approvers": "sg-approvers"})
    sign_in(w, bob, frozenset())
    assert bob.upn in members(w, "Approvers")
    skipped = records(w, "Sign-In")[0].details["groups_skipped"]
    assert skipped == {"Approvers": "approver group not opted in (scim_approver_groups)"}


def test_the_default_approver_group_counts_as_an_approver_group(world: World) -> None:
    w = world
    alice = w.user("alice")
    w.group("Admins", w.admin)
    organizations.enable_access_control(w.ctx, caller=w.admin.caller, admin_group="Admins")
    configure(w, {"Admins": "sg-admins"})
    sign_in(w, alice, frozenset({"sg-admins"}))
    assert alice.upn not in members(w, "Admins")
    assert records(w, "Sign-In")[0].details["groups_skipped"] == {
        "Admins": "approver group not opted in (scim_approver_groups)"
    }


def test_a_claim_never_adds_to_a_group_holding_a_guarded_jitpam_role(world: World) -> None:
    w = world
    alice = w.user("alice")
    w.group("Auditors")
    directory.change_assignment(
        w.ctx, caller=w.admin.caller, role="jitpam\\Audit Reader", group="Auditors", add=True
    )
    w.policy("jitpam\\Audit Reader", type=PolicyType.ROLE)
    configure(w, {"Auditors": "sg-auditors"}, approvers=("Auditors",))
    sign_in(w, alice, frozenset({"sg-auditors"}))
    assert alice.upn not in members(w, "Auditors")
    assert records(w, "Sign-In")[0].details["groups_skipped"] == {
        "Auditors": "the group holds a jitpam role a policy makes just in time"
    }


def test_the_databases_tell_approver_groups_apart(db_world: World) -> None:
    """The SQL adapter's ``approves``: a policy's approver group and the default one, not
    another group."""
    w = db_world
    alice = w.user("alice")
    w.group("Approvers")
    w.group("Admins", w.admin)
    w.group("Helpdesk")
    w.policy("Exchange\\Move Mailboxes", type=PolicyType.ROLE, approver_group="Approvers")
    organizations.enable_access_control(w.ctx, caller=w.admin.caller, admin_group="Admins")
    configure(w, {"Approvers": "sg-a", "Admins": "sg-b", "Helpdesk": "sg-c"})
    sign_in(w, alice, frozenset({"sg-a", "sg-b", "sg-c"}))
    assert alice.upn in members(w, "Helpdesk")
    assert records(w, "Sign-In")[0].details["groups_skipped"] == {
        "Approvers": "approver group not opted in (scim_approver_groups)",
        "Admins": "approver group not opted in (scim_approver_groups)",
    }
