"""SCIM's use cases (services/scim.py): what the identity provider may change, and the rules that
still hold when it does. Each test runs on the in-memory unit of work and on each database.

- Users and groups SCIM manages refuse hand edits, except disabling a user, which always works.
- Memberships of an approver group arrive from SCIM only for groups the organization opted in,
  and a change that is refused leaves nothing half-written.
- A membership SCIM adds is added by the sync account: a requester who steers that account (set
  up its credentials) has a hand in the votes of the approvers it placed.
- DELETE disables the user (grants revoked) and hides them from SCIM; the record stays.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import pytest

from jitpam.domain.directory import Source, UserKind
from jitpam.domain.errors import (
    AlreadyExists,
    ApproverGroupNotSynced,
    InvalidInput,
    ManagedElsewhere,
    NotFound,
    NotPermitted,
    NotSignedIn,
    SeparationOfDuties,
)
from jitpam.domain.policy import PolicyType
from jitpam.domain.requests import RequestStatus
from jitpam.domain.scim import (
    PATCH_SCHEMA,
    GroupFields,
    ScimInvalid,
    UserFields,
    page_bounds,
    parse_patch,
)
from jitpam.services import audit_log, auth, directory, organizations, requests, scim
from jitpam.services.context import Caller, ServiceContext
from jitpam.services.ports import AuditFilter
from tests.integration.world import Person, World

GLOBAL_ADMIN = "jitpam\\Global Administrator"
DISABLE = "jitpam\\Disable-ElevatedAccessControl"
MOVE = "Exchange\\New-MoveRequest"


@pytest.fixture(params=["memory", "database"])
def ctx(
    request: pytest.FixtureRequest, memory_ctx: ServiceContext, db_ctx: ServiceContext
) -> ServiceContext:
    return memory_ctx if request.param == "memory" else db_ctx


@dataclass(frozen=True)
class Scene:
    """eve (a Global Administrator made by the world's admin) created the sync account and
    minted its token: she steers it. bob is in pamapprovers, the default approver group, added
    by the world's admin."""

    world: World
    eve: Person
    bob: Person
    sync: Caller


@pytest.fixture
def scene(world: World) -> Scene:
    eve = world.user("eve", role_groups=(GLOBAL_ADMIN,))
    bob = world.user("bob")
    world.group("pamapprovers", bob)
    organizations.enable_access_control(
        world.ctx, caller=world.admin.caller, admin_group="pamapprovers"
    )
    account = directory.add_user(
        world.ctx,
        caller=eve.caller,
        upn=world.upn("scim-sync"),
        display_name="SCIM",
        kind=UserKind.APPLICATION,
    )
    directory.change_assignment(
        world.ctx,
        caller=world.admin.caller,
        role="jitpam\\Directory Sync",
        user=account.upn,
        add=True,
    )
    auth.create_token(world.ctx, caller=eve.caller, user=account.upn, name="scim")
    return Scene(world, eve, bob, Caller(world.org.id, account.id))


def patch(*ops: dict[str, object], schema: str) -> list[scim.Operation]:
    return parse_patch({"schemas": [PATCH_SCHEMA], "Operations": list(ops)}, schema=schema)


USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


def provision(scene: Scene, name: str, **fields: object) -> str:
    """A user SCIM creates; their id."""
    w = scene.world
    made = scim.create_user(
        w.ctx,
        caller=scene.sync,
        fields=UserFields(w.upn(name), name.title(), **fields),  # type: ignore[arg-type]
    )
    return str(made.item.id)


def test_scim_creates_a_user_it_manages_audited_as_the_sync_account_naming_who_set_it_up(
    scene: Scene,
) -> None:
    w = scene.world
    user_id = provision(scene, "dave", external_id="00u1")
    dave = directory.get_user(w.ctx, caller=w.admin.caller, upn=w.upn("dave"))
    assert (dave.source, dave.external_id, dave.enabled) == (Source.SCIM, "00u1", True)
    assert str(dave.id) == user_id
    (record,) = audit_log.search_audit(
        w.ctx, caller=w.admin.caller, flt=AuditFilter(operation="New-User", target=dave.upn)
    ).items
    assert record.actor_name == w.upn("scim-sync")
    assert record.details["via"] == "scim"
    assert record.details["set_up_by"] == [scene.eve.upn]
    with pytest.raises(AlreadyExists):
        provision(scene, "dave")
    with pytest.raises(InvalidInput, match="not a domain of this organization"):
        scim.create_user(
            w.ctx, caller=scene.sync, fields=UserFields("erin@elsewhere.example", "Erin")
        )


def test_entra_ids_guests_arrive_as_guests_with_their_own_address_as_email(scene: Scene) -> None:
    w = scene.world
    name = f"gus_fabrikam.com#EXT#@{w.domain}"
    made = scim.create_user(w.ctx, caller=scene.sync, fields=UserFields(name, "Gus"))
    assert (made.item.kind, made.item.email) == (UserKind.GUEST, "gus@fabrikam.com")
    assert directory.get_user(w.ctx, caller=w.admin.caller, upn="gus@fabrikam.com").id == (
        made.item.id
    )
    total, _ = scim.list_users(
        w.ctx, caller=scene.sync, where=scim.Filter("username", name.lower()), offset=0, limit=5
    )
    assert total == 1
    person = patch({"op": "replace", "path": "userName", "value": w.upn("gus")}, schema=USER)
    with pytest.raises(InvalidInput, match="only a guest"):
        scim.modify_user(w.ctx, caller=scene.sync, user_id=str(made.item.id), operations=person)


def test_only_an_application_account_holding_directory_sync_may_use_scim(scene: Scene) -> None:
    w = scene.world
    fields = UserFields(w.upn("dave"), "Dave")
    with pytest.raises(NotPermitted, match="Sync-Directory"):  # not in Global Administrator
        scim.create_user(w.ctx, caller=scene.eve.caller, fields=fields)
    directory.change_assignment(
        w.ctx, caller=w.admin.caller, role="jitpam\\Directory Sync", user=scene.eve.upn, add=True
    )
    with pytest.raises(NotPermitted, match=r"eve@.* is a person account"):  # the role is not enough
        scim.create_user(w.ctx, caller=scene.eve.caller, fields=fields)
    other = w.user("other-app", kind=UserKind.APPLICATION)
    with pytest.raises(NotPermitted, match="Sync-Directory"):
        scim.create_user(w.ctx, caller=other.caller, fields=fields)
    with pytest.raises(NotPermitted):
        scim.list_users(w.ctx, caller=other.caller, where=None, offset=0, limit=10)


def test_hand_edits_of_what_scim_manages_are_refused_but_disabling_always_works(
    scene: Scene,
) -> None:
    w = scene.world
    provision(scene, "dave")
    dave = w.upn("dave")
    scim.create_group(w.ctx, caller=scene.sync, fields=GroupFields("Sales"))
    admin = w.admin.caller
    with pytest.raises(ManagedElsewhere, match="managed by the identity provider"):
        directory.set_user(w.ctx, caller=admin, upn=dave, display_name="By Hand")
    with pytest.raises(ManagedElsewhere, match="change it there"):
        directory.change_membership(w.ctx, caller=admin, group="Sales", upn=dave, add=True)
    with pytest.raises(ManagedElsewhere):
        directory.remove_group(w.ctx, caller=admin, name="Sales")
    assert directory.set_user(w.ctx, caller=admin, upn=dave, enabled=False).enabled is False
    # The identity provider sees the disabling at its next sync.
    total, found = scim.list_users(
        w.ctx, caller=scene.sync, where=scim.Filter("username", dave), offset=0, limit=5
    )
    assert total == 1
    assert found[0].item.enabled is False
    # A user made in jitpam stays jitpam's: SCIM changes none of it.
    bob_id = str(directory.get_user(w.ctx, caller=admin, upn=scene.bob.upn).id)
    ops = patch({"op": "Replace", "path": "displayName", "value": "Robert"}, schema=USER)
    with pytest.raises(ScimInvalid, match="made in jitpam"):
        scim.modify_user(w.ctx, caller=scene.sync, user_id=bob_id, operations=ops)
    assert directory.set_user(w.ctx, caller=admin, upn=scene.bob.upn, display_name="Bob")


def second_sync_account(scene: Scene, name: str) -> Caller:
    """Another sync account, created by the world's admin (eve does not steer it)."""
    w = scene.world
    account = w.user(name, kind=UserKind.APPLICATION)
    directory.change_assignment(
        w.ctx, caller=w.admin.caller, role="jitpam\\Directory Sync", user=account.upn, add=True
    )
    return account.caller


def test_scim_never_takes_over_a_user_made_in_jitpam(scene: Scene) -> None:
    """Renaming eve (a Global Administrator made by hand) to an address an attacker signs in
    with would hand them her account: SCIM changes only the users it created."""
    w = scene.world
    eve_id = str(scene.eve.caller.user_id)
    rename = patch({"op": "replace", "path": "userName", "value": w.upn("mallory")}, schema=USER)
    for change in (
        lambda: scim.modify_user(w.ctx, caller=scene.sync, user_id=eve_id, operations=rename),
        lambda: scim.replace_user(
            w.ctx, caller=scene.sync, user_id=eve_id, fields=UserFields(w.upn("mallory"), "M")
        ),
        lambda: scim.delete_user(w.ctx, caller=scene.sync, user_id=eve_id),
    ):
        with pytest.raises(ScimInvalid, match="made in jitpam") as refused:
            change()
        assert refused.value.scim_type == "mutability"
    eve = directory.get_user(w.ctx, caller=w.admin.caller, upn=scene.eve.upn)
    assert (eve.upn, eve.source, eve.enabled) == (scene.eve.upn, Source.JITPAM, True)
    with pytest.raises(AlreadyExists, match="SCIM does not take over"):
        scim.create_user(w.ctx, caller=scene.sync, fields=UserFields(scene.eve.upn, "Eve"))


def test_a_scim_rename_drops_oidc_links_and_makes_the_sync_account_a_steward(
    scene: Scene,
) -> None:
    w = scene.world
    dave_id = provision(scene, "dave")
    issuer = "https://idp.example"
    linked = auth.authenticate_oidc(
        w.ctx, issuer=issuer, subject="s-dave", email=w.upn("dave"), email_verified=True
    )
    assert str(linked.user_id) == dave_id
    other = second_sync_account(scene, "scim-two")
    rename = patch({"op": "replace", "path": "userName", "value": w.upn("david")}, schema=USER)
    scim.modify_user(w.ctx, caller=other, user_id=dave_id, operations=rename)
    with pytest.raises(NotSignedIn):  # the old identity no longer signs in as dave
        auth.authenticate_oidc(
            w.ctx, issuer=issuer, subject="s-dave", email=None, email_verified=False
        )
    with w.ctx.reader() as uow:
        assert other.user_id in uow.users.stewards([UUID(dave_id)])[UUID(dave_id)]
    (record,) = audit_log.search_audit(
        w.ctx, caller=w.admin.caller, flt=AuditFilter(operation="Set-User", target=w.upn("david"))
    ).items
    assert record.details["oidc_links_dropped"] == 1
    # A new email counts the same.
    auth.authenticate_oidc(
        w.ctx, issuer=issuer, subject="s-david", email=w.upn("david"), email_verified=True
    )
    email = patch(
        {"op": "replace", "path": "emails", "value": [{"value": w.upn("d2")}]}, schema=USER
    )
    scim.modify_user(w.ctx, caller=scene.sync, user_id=dave_id, operations=email)
    with pytest.raises(NotSignedIn):
        auth.authenticate_oidc(
            w.ctx, issuer=issuer, subject="s-david", email=None, email_verified=False
        )


def _pamapprovers(scene: Scene) -> str:
    w = scene.world
    return str(directory.get_group(w.ctx, caller=w.admin.caller, name="pamapprovers").group.id)


def test_approver_group_members_arrive_from_scim_only_when_the_organization_opted_in(
    scene: Scene,
) -> None:
    w = scene.world
    carol = provision(scene, "carol")
    group_id = _pamapprovers(scene)
    ops = patch(
        {"op": "replace", "path": "displayName", "value": "renamed"},
        {"op": "add", "path": "members", "value": [{"value": carol}]},
        schema=GROUP,
    )
    with pytest.raises(ApproverGroupNotSynced, match="not let SCIM"):
        scim.modify_group(w.ctx, caller=scene.sync, group_id=group_id, operations=ops)
    unchanged = directory.get_group(w.ctx, caller=w.admin.caller, name="pamapprovers")
    assert set(unchanged.names.values()) == {scene.bob.upn}  # nothing half-written
    assert unchanged.group.source is Source.JITPAM
    removal = patch(
        {"op": "remove", "path": f'members[value eq "{scene.bob.caller.user_id}"]'}, schema=GROUP
    )
    with pytest.raises(ApproverGroupNotSynced):
        scim.modify_group(w.ctx, caller=scene.sync, group_id=group_id, operations=removal)

    view = organizations.set_organization_config(
        w.ctx, caller=w.admin.caller, scim_approver_groups=["pamapprovers"]
    )
    assert view.control.synced_approver_group_ids == {unchanged.group.id}
    (record,) = audit_log.search_audit(
        w.ctx, caller=w.admin.caller, flt=AuditFilter(operation="Set-OrganizationConfig")
    ).items
    assert record.details["scim_approver_groups"] == ["pamapprovers"]
    assert record.actor_name == w.admin.upn
    done = scim.modify_group(w.ctx, caller=scene.sync, group_id=group_id, operations=ops)
    assert done.item.name == "renamed"
    assert {str(m) for m in done.item.member_ids} == {carol, str(scene.bob.caller.user_id)}
    organizations.set_organization_config(w.ctx, caller=w.admin.caller, scim_approver_groups=[])
    with pytest.raises(ApproverGroupNotSynced):
        scim.modify_group(w.ctx, caller=scene.sync, group_id=group_id, operations=removal)


def test_a_group_scim_manages_becomes_an_approver_group_only_once_opted_in(
    scene: Scene,
) -> None:
    w = scene.world
    carol = provision(scene, "carol")
    scim.create_group(w.ctx, caller=scene.sync, fields=GroupFields("Okta Admins", None, (carol,)))
    with pytest.raises(ApproverGroupNotSynced, match="opt it in"):
        w.policy(DISABLE, approver_group="Okta Admins")
    with pytest.raises(ApproverGroupNotSynced):
        organizations.enable_access_control(w.ctx, caller=w.admin.caller, admin_group="Okta Admins")
    organizations.set_organization_config(
        w.ctx, caller=w.admin.caller, scim_approver_groups=["Okta Admins"]
    )
    assert w.policy(DISABLE, approver_group="Okta Admins").approver_group_id is not None


def test_a_vote_by_an_approver_scim_placed_does_not_count_for_who_steers_the_sync_account(
    scene: Scene,
) -> None:
    w = scene.world
    carol = w.user("carol")  # made by the world's admin: eve does not steer her account
    w.policy(DISABLE, approver_group="pamapprovers")
    organizations.set_organization_config(
        w.ctx, caller=w.admin.caller, scim_approver_groups=["pamapprovers"]
    )
    ops = patch(
        {"op": "add", "path": "members", "value": [{"value": str(carol.caller.user_id)}]},
        schema=GROUP,
    )
    scim.modify_group(w.ctx, caller=scene.sync, group_id=_pamapprovers(scene), operations=ops)
    asked = requests.new_request(
        w.ctx, caller=scene.eve.caller, type=PolicyType.TASK, target=DISABLE, reason="CHG-7"
    )
    with pytest.raises(SeparationOfDuties, match="added carol"):
        requests.approve_request(w.ctx, caller=carol.caller, request_id=asked.request.id)
    # Someone who never set up the sync account may count on carol's vote.
    frank = w.user("frank", role_groups=(GLOBAL_ADMIN,))
    theirs = requests.new_request(
        w.ctx, caller=frank.caller, type=PolicyType.TASK, target=DISABLE, reason="CHG-8"
    )
    voted = requests.approve_request(w.ctx, caller=carol.caller, request_id=theirs.request.id)
    assert voted.status is RequestStatus.APPROVED


def test_delete_disables_revokes_and_hides_from_scim_but_keeps_the_record(scene: Scene) -> None:
    w = scene.world
    dave_id = provision(scene, "dave")
    dave = w.upn("dave")
    directory.change_assignment(
        w.ctx, caller=w.admin.caller, role="Move Mailboxes", user=dave, add=True
    )
    w.policy(MOVE, approver_group="pamapprovers")
    dave_caller = Caller(w.org.id, directory.get_user(w.ctx, caller=w.admin.caller, upn=dave).id)
    asked = requests.new_request(
        w.ctx, caller=dave_caller, type=PolicyType.TASK, target=MOVE, reason="move a mailbox"
    )
    requests.approve_request(w.ctx, caller=scene.bob.caller, request_id=asked.request.id)

    scim.delete_user(w.ctx, caller=scene.sync, user_id=dave_id)

    with pytest.raises(NotFound):
        scim.get_user(w.ctx, caller=scene.sync, user_id=dave_id)
    total, found = scim.list_users(w.ctx, caller=scene.sync, where=None, offset=0, limit=50)
    assert dave not in {s.item.upn for s in found}
    assert total == len(found)
    kept = directory.get_user(w.ctx, caller=w.admin.caller, upn=dave)
    assert (kept.enabled, kept.scim_deleted) == (False, True)
    grant = requests.get_request(w.ctx, caller=w.admin.caller, request_id=asked.request.id)
    assert grant.request.status is RequestStatus.REVOKED
    (revoked,) = audit_log.search_audit(
        w.ctx,
        caller=w.admin.caller,
        flt=AuditFilter(operation="Revoke-ElevatedAccessAuthorization"),
    ).items
    assert revoked.actor_name == w.upn("scim-sync")
    (deleted,) = audit_log.search_audit(
        w.ctx,
        caller=w.admin.caller,
        flt=AuditFilter(operation="Set-User", target=dave),
    ).items
    assert deleted.details["scim_deleted"] is True
    assert deleted.details["via"] == "scim"
    with pytest.raises(AlreadyExists):  # the name stays taken by the record kept
        provision(scene, "dave")


def test_scim_renames_and_finds_users_and_groups_by_filter(scene: Scene) -> None:
    w = scene.world
    dave_id = provision(scene, "dave", external_id="ext-dave")
    ops = patch(
        {"op": "replace", "value": {"userName": w.upn("david"), "active": "False"}},
        schema=USER,
    )
    done = scim.modify_user(w.ctx, caller=scene.sync, user_id=dave_id, operations=ops)
    assert (done.item.upn, done.item.enabled) == (w.upn("david"), False)
    for where in (
        scim.Filter("username", w.upn("David").upper()),
        scim.Filter("externalid", "ext-dave"),
        scim.Filter("displayname", "DAVE"),
    ):
        total, found = scim.list_users(w.ctx, caller=scene.sync, where=where, offset=0, limit=5)
        assert (total, [s.item.upn for s in found]) == (1, [w.upn("david")])
    taken = patch({"op": "replace", "path": "userName", "value": scene.bob.upn}, schema=USER)
    with pytest.raises(AlreadyExists):
        scim.modify_user(w.ctx, caller=scene.sync, user_id=dave_id, operations=taken)
    scim.create_group(w.ctx, caller=scene.sync, fields=GroupFields("Sales", "g-1", (dave_id,)))
    total, groups = scim.list_groups(
        w.ctx, caller=scene.sync, where=scim.Filter("externalid", "g-1"), offset=0, limit=5
    )
    assert total == 1
    assert groups[0].item.name == "Sales"
    assert {str(m) for m in groups[0].item.member_ids} == {dave_id}
    total, page = scim.list_groups(w.ctx, caller=scene.sync, where=None, offset=1, limit=1)
    assert (total, len(page)) == (2, 1)  # pamapprovers and Sales
    far = page_bounds(10**30, 5)
    assert (
        scim.list_users(w.ctx, caller=scene.sync, where=None, offset=far[0], limit=far[1])[1] == []
    )


def test_scim_never_takes_over_a_group_made_in_jitpam(scene: Scene) -> None:
    w = scene.world
    w.group("Finance", scene.bob)
    admin = w.admin.caller
    finance = str(directory.get_group(w.ctx, caller=admin, name="Finance").group.id)
    external = patch({"op": "replace", "path": "externalId", "value": "g-9"}, schema=GROUP)
    with pytest.raises(ScimInvalid, match="made in jitpam") as refused:
        scim.modify_group(w.ctx, caller=scene.sync, group_id=finance, operations=external)
    assert refused.value.scim_type == "mutability"
    with pytest.raises(ScimInvalid, match="made in jitpam"):
        scim.replace_group(w.ctx, caller=scene.sync, group_id=finance, fields=GroupFields("F"))
    with pytest.raises(ScimInvalid, match="made in jitpam"):
        scim.delete_group(w.ctx, caller=scene.sync, group_id=finance)
    with pytest.raises(AlreadyExists, match="SCIM does not take over"):
        scim.create_group(w.ctx, caller=scene.sync, fields=GroupFields("Finance"))
    # An approver group the organization did not opt in: not even its externalId.
    with pytest.raises(ApproverGroupNotSynced):
        scim.modify_group(
            w.ctx, caller=scene.sync, group_id=_pamapprovers(scene), operations=external
        )
    for name in ("Finance", "pamapprovers"):
        kept = directory.get_group(w.ctx, caller=admin, name=name).group
        assert (kept.source, kept.external_id) == (Source.JITPAM, None)
    assert directory.change_membership(
        w.ctx, caller=admin, group="Finance", upn=scene.eve.upn, add=True
    )


def test_scim_sets_no_members_of_a_group_holding_a_jitpam_role(scene: Scene) -> None:
    w = scene.world
    carol = provision(scene, "carol")
    dave = provision(scene, "dave")
    made = scim.create_group(w.ctx, caller=scene.sync, fields=GroupFields("Admins", None, (dave,)))
    directory.change_assignment(
        w.ctx, caller=w.admin.caller, role_group=GLOBAL_ADMIN, group="Admins", add=True
    )
    group_id = str(made.item.id)
    for ops in (
        patch({"op": "add", "path": "members", "value": [{"value": carol}]}, schema=GROUP),
        patch({"op": "remove", "path": f'members[value eq "{dave}"]'}, schema=GROUP),
    ):
        with pytest.raises(ScimInvalid, match="holding a jitpam role") as refused:
            scim.modify_group(w.ctx, caller=scene.sync, group_id=group_id, operations=ops)
        assert refused.value.scim_type == "mutability"
    with pytest.raises(ScimInvalid, match="holding a jitpam role"):
        scim.replace_group(
            w.ctx, caller=scene.sync, group_id=group_id, fields=GroupFields("Admins", None, ())
        )
    kept = scim.get_group(w.ctx, caller=scene.sync, group_id=group_id).item
    assert {str(m) for m in kept.member_ids} == {dave}
    # Its name is still the identity provider's to change.
    rename = patch({"op": "replace", "path": "displayName", "value": "Admins 2"}, schema=GROUP)
    assert scim.modify_group(w.ctx, caller=scene.sync, group_id=group_id, operations=rename)


def test_members_scim_cannot_see_stay_as_they_are(scene: Scene) -> None:
    w = scene.world
    admin = w.admin.caller
    app = w.user("svc-app", kind=UserKind.APPLICATION)
    directory.change_membership(w.ctx, caller=admin, group="pamapprovers", upn=app.upn, add=True)
    organizations.set_organization_config(
        w.ctx, caller=admin, scim_approver_groups=["pamapprovers"]
    )
    carol = provision(scene, "carol")
    group_id = _pamapprovers(scene)
    bob, svc = str(scene.bob.caller.user_id), str(app.caller.user_id)
    seen = scim.get_group(w.ctx, caller=scene.sync, group_id=group_id).item
    assert {str(m) for m in seen.member_ids} == {bob, svc}
    add = patch({"op": "add", "path": "members", "value": [{"value": carol}]}, schema=GROUP)
    done = scim.modify_group(w.ctx, caller=scene.sync, group_id=group_id, operations=add)
    assert {str(m) for m in done.item.member_ids} == {bob, svc, carol}
    put = scim.replace_group(
        w.ctx,
        caller=scene.sync,
        group_id=group_id,
        fields=GroupFields("pamapprovers", None, (carol,)),
    )
    assert {str(m) for m in put.item.member_ids} == {svc, carol}

    # A user SCIM deletes leaves their groups, each removal audited.
    sales = scim.create_group(w.ctx, caller=scene.sync, fields=GroupFields("Sales", None, (carol,)))
    scim.delete_user(w.ctx, caller=scene.sync, user_id=carol)
    for group in ("Sales", "pamapprovers"):
        left = directory.get_group(w.ctx, caller=admin, name=group)
        assert w.upn("carol") not in left.names.values()
        records = audit_log.search_audit(
            w.ctx, caller=admin, flt=AuditFilter(operation="Remove-GroupMember", target=group)
        ).items
        (record,) = [r for r in records if r.details["member"] == w.upn("carol")]
        assert record.details["scim_deleted"] is True
    rename = patch({"op": "replace", "path": "displayName", "value": "Sales EU"}, schema=GROUP)
    assert scim.modify_group(
        w.ctx, caller=scene.sync, group_id=str(sales.item.id), operations=rename
    )


def test_scim_guests_follow_the_guest_rules_of_add_user(scene: Scene) -> None:
    w = scene.world
    other = f"eu.{w.domain}"
    organizations.add_domain(w.ctx, org_name=w.org.name, domain=other)
    own = w.upn("ann").replace("@", "_") + f"#EXT#@{w.domain}"  # a home address of the org's own
    with pytest.raises(InvalidInput, match="create a person"):
        scim.create_user(w.ctx, caller=scene.sync, fields=UserFields(own, "Ann"))
    scim.create_user(
        w.ctx, caller=scene.sync, fields=UserFields(f"gus_fabrikam.com#EXT#@{w.domain}", "Gus")
    )
    twin = UserFields(f"gus_fabrikam.com#EXT#@{other}", "Gus again")
    with pytest.raises(AlreadyExists, match=r"the guest gus@fabrikam\.com"):
        scim.create_user(w.ctx, caller=scene.sync, fields=twin)
    hal = scim.create_user(
        w.ctx, caller=scene.sync, fields=UserFields(f"hal_fabrikam.com#EXT#@{w.domain}", "Hal")
    )
    rename = patch({"op": "replace", "path": "userName", "value": twin.user_name}, schema=USER)
    with pytest.raises(AlreadyExists, match=r"the guest gus@fabrikam\.com"):
        scim.modify_user(w.ctx, caller=scene.sync, user_id=str(hal.item.id), operations=rename)
    # A guest may move to another of the organization's domains, keeping their own address.
    move = patch(
        {"op": "replace", "path": "userName", "value": f"hal_fabrikam.com#EXT#@{other}"},
        schema=USER,
    )
    moved = scim.modify_user(w.ctx, caller=scene.sync, user_id=str(hal.item.id), operations=move)
    assert moved.item.upn == f"hal_fabrikam.com#EXT#@{other}"


def test_scim_does_not_enable_a_user_an_administrator_disabled(scene: Scene) -> None:
    w = scene.world
    admin = w.admin.caller
    dave_id = provision(scene, "dave")
    dave = w.upn("dave")
    directory.set_user(w.ctx, caller=admin, upn=dave, enabled=False)
    enable = patch({"op": "replace", "path": "active", "value": True}, schema=USER)
    with pytest.raises(ScimInvalid, match="an administrator must enable them again") as refused:
        scim.modify_user(w.ctx, caller=scene.sync, user_id=dave_id, operations=enable)
    assert refused.value.scim_type == "mutability"
    with pytest.raises(ScimInvalid, match="an administrator must"):
        scim.replace_user(
            w.ctx, caller=scene.sync, user_id=dave_id, fields=UserFields(dave, "Dave")
        )
    assert directory.get_user(w.ctx, caller=admin, upn=dave).enabled is False
    # The administrator enables them again (the one hand edit besides disabling); then SCIM's
    # own disabling and enabling work as before.
    assert directory.set_user(w.ctx, caller=admin, upn=dave, enabled=True).enabled is True
    scim.modify_user(
        w.ctx,
        caller=scene.sync,
        user_id=dave_id,
        operations=patch({"op": "replace", "path": "active", "value": False}, schema=USER),
    )
    with pytest.raises(ManagedElsewhere):  # enabling what SCIM disabled is the provider's call
        directory.set_user(w.ctx, caller=admin, upn=dave, enabled=True)
    assert scim.modify_user(
        w.ctx, caller=scene.sync, user_id=dave_id, operations=enable
    ).item.enabled


def test_external_ids_are_unique_among_users_and_among_groups(scene: Scene) -> None:
    w = scene.world
    dave = provision(scene, "dave", external_id="x-1")
    with pytest.raises(AlreadyExists, match="externalId"):
        provision(scene, "erin", external_id="x-1")
    erin = provision(scene, "erin", external_id="x-2")
    taken = patch({"op": "replace", "path": "externalId", "value": "x-1"}, schema=USER)
    with pytest.raises(AlreadyExists, match="externalId"):
        scim.modify_user(w.ctx, caller=scene.sync, user_id=erin, operations=taken)
    scim.create_group(w.ctx, caller=scene.sync, fields=GroupFields("Sales", "x-1"))  # groups apart
    with pytest.raises(AlreadyExists, match="externalId"):
        scim.create_group(w.ctx, caller=scene.sync, fields=GroupFields("Marketing", "x-1"))
    made = scim.create_group(w.ctx, caller=scene.sync, fields=GroupFields("Marketing", "x-3"))
    with pytest.raises(AlreadyExists, match="externalId"):
        scim.modify_group(
            w.ctx,
            caller=scene.sync,
            group_id=str(made.item.id),
            operations=patch({"op": "replace", "path": "externalId", "value": "x-1"}, schema=GROUP),
        )
    # A user SCIM deleted frees their externalId: the provider may create them anew.
    scim.delete_user(w.ctx, caller=scene.sync, user_id=dave)
    assert provision(scene, "dave2", external_id="x-1")
