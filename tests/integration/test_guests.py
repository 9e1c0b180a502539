"""Guests: people of other organizations, stored under Entra's form of their own address in a
domain the inviting organization owns, and found by either name wherever a user is named in
that organization. Names stay unique per installation; guests never approve."""

from __future__ import annotations

import pytest

from jitpam.domain.check import Reason
from jitpam.domain.directory import UserKind, guest_upn
from jitpam.domain.errors import AlreadyExists, InvalidInput, NotAnApprover, NotFound
from jitpam.domain.policy import ApprovalType, PolicyType
from jitpam.services import access, auth, directory, organizations, policies, requests
from jitpam.services.context import Caller, ServiceContext
from tests.integration.world import Person, World

HOME = "gus@fabrikam.com"
MOVE = "Exchange\\New-MoveRequest"
MOVERS = "Exchange\\Move Mailboxes"


@pytest.fixture
def ctx(memory_ctx: ServiceContext) -> ServiceContext:
    """The rules run on the in-memory unit of work; one test runs on the databases."""
    return memory_ctx


def invite(world: World, typed: str = HOME, **options: object) -> Person:
    user = directory.add_user(
        world.ctx,
        caller=world.admin.caller,
        upn=typed,
        display_name="Gus",
        kind=UserKind.GUEST,
        **options,  # type: ignore[arg-type]
    )
    return Person(Caller(world.org.id, user.id), user.upn)


def test_a_guest_is_stored_in_entras_form_under_the_creators_domain(world: World) -> None:
    gus = invite(world)
    assert gus.upn == f"gus_fabrikam.com#EXT#@{world.domain}"
    found = directory.get_user(world.ctx, caller=world.admin.caller, upn=gus.upn)
    assert (found.email, found.kind, found.org_id) == (HOME, UserKind.GUEST, world.org.id)
    # either name finds them; the stored name in any case too
    for typed in (HOME, "GUS@Fabrikam.com", gus.upn, gus.upn.lower(), gus.upn.upper()):
        assert directory.get_user(world.ctx, caller=world.admin.caller, upn=typed).id == found.id


def test_a_guest_named_in_entras_form_is_stored_so_and_an_email_can_be_given(
    world: World,
) -> None:
    stored = guest_upn("gail@fabrikam.com", world.domain)
    gail = invite(world, stored.lower())
    assert gail.upn == stored
    other = invite(world, "otto@northwind.example", email="otto@mail.northwind.example")
    found = directory.get_user(world.ctx, caller=world.admin.caller, upn="otto@northwind.example")
    assert (found.upn, found.email) == (other.upn, "otto@mail.northwind.example")


def test_a_guest_is_created_once_whichever_name_or_domain_names_them(world: World) -> None:
    invite(world)
    organizations.add_domain(world.ctx, org_name=world.org.name, domain=f"b.{world.domain}")
    for typed in (HOME, guest_upn(HOME, world.domain), guest_upn(HOME, f"b.{world.domain}")):
        with pytest.raises(AlreadyExists, match=f"guest {HOME}"):
            invite(world, typed)


def test_a_guest_from_the_organizations_own_domain_is_refused(world: World) -> None:
    with pytest.raises(InvalidInput, match="create a person"):
        invite(world, world.upn("gus"))
    with pytest.raises(InvalidInput, match="create a person"):
        invite(world, guest_upn(world.upn("gus"), world.domain))


def test_only_a_guest_is_named_in_entras_form(world: World) -> None:
    for kind in (UserKind.PERSON, UserKind.SERVICE, UserKind.APPLICATION):
        with pytest.raises(InvalidInput, match="guest's name"):
            directory.add_user(
                world.ctx,
                caller=world.admin.caller,
                upn=guest_upn(HOME, world.domain),
                display_name="Gus",
                kind=kind,
            )
    with pytest.raises(InvalidInput, match="not a domain of this organization"):
        directory.add_user(world.ctx, caller=world.admin.caller, upn=HOME, display_name="Gus")


def test_two_organizations_each_have_the_guest_and_none_squats_the_others(
    world: World, ctx: ServiceContext
) -> None:
    other = World(ctx, world.clock)
    mine, theirs = invite(world), invite(other)
    assert mine.upn != theirs.upn
    assert directory.get_user(world.ctx, caller=world.admin.caller, upn=HOME).id == (
        mine.caller.user_id
    )
    assert directory.get_user(other.ctx, caller=other.admin.caller, upn=HOME).id == (
        theirs.caller.user_id
    )
    # the other organization can neither create nor find a name in this one's domain
    for typed in (mine.upn, guest_upn("newcomer@fabrikam.com", world.domain)):
        with pytest.raises(InvalidInput, match="not a domain of this organization"):
            invite(other, typed)
        with pytest.raises(InvalidInput, match="only a guest is named so"):
            directory.add_user(other.ctx, caller=other.admin.caller, upn=typed, display_name="X")
    with pytest.raises(InvalidInput, match="not a domain of this organization"):
        directory.add_user(
            other.ctx, caller=other.admin.caller, upn=world.upn("gus"), display_name="X"
        )
    with pytest.raises(NotFound):
        directory.get_user(
            other.ctx, caller=other.admin.caller, upn=guest_upn("x@y.com", world.domain)
        )


def test_a_home_address_that_is_a_member_elsewhere_means_the_guest_here(
    world: World, ctx: ServiceContext
) -> None:
    home = World(ctx, world.clock)
    gus_at_home = home.user("gus")
    gus_here = invite(world, gus_at_home.upn)
    assert gus_here.upn == guest_upn(gus_at_home.upn, world.domain)
    here = directory.get_user(world.ctx, caller=world.admin.caller, upn=gus_at_home.upn)
    there = directory.get_user(home.ctx, caller=home.admin.caller, upn=gus_at_home.upn)
    assert (here.id, there.id) == (gus_here.caller.user_id, gus_at_home.caller.user_id)


def test_the_home_address_names_the_guest_everywhere_in_the_organization(world: World) -> None:
    gus = invite(world)
    admin = world.admin.caller
    view = directory.change_membership(
        world.ctx, caller=admin, group=world.group("Helpdesk"), upn=HOME, add=True
    )
    assert view.changed
    assert list(view.group.names.values()) == [gus.upn]
    directory.change_assignment(world.ctx, caller=admin, role=MOVERS, user=HOME, add=True)
    assert any(
        m.name == gus.upn for m in directory.role_members(world.ctx, caller=admin, role=MOVERS)
    )
    # the check API answers for the guest by either name, from the decision index
    for typed in (HOME, gus.upn.lower()):
        assert access.check_access(world.ctx, caller=admin, user=typed, task=MOVE).allowed
    policy = policies.new_policy(
        world.ctx,
        caller=admin,
        type=PolicyType.TASK,
        target="Exchange\\Search-Mailbox",
        approval_type=ApprovalType.MANUAL,
        eligible_users=[HOME],
    )
    assert set(policy.names.values()) >= {gus.upn}
    token = auth.create_token(world.ctx, caller=gus.caller, name="ci")
    listed = auth.list_tokens(world.ctx, caller=admin, user=HOME)
    assert [t.token.id for t in listed] == [token.token.id]
    directory.set_user(world.ctx, caller=admin, upn=HOME, display_name="Gus of Fabrikam")
    assert directory.get_user(world.ctx, caller=admin, upn=gus.upn).display_name == (
        "Gus of Fabrikam"
    )
    directory.change_assignment(world.ctx, caller=admin, role=MOVERS, user=HOME, add=False)
    # the index dropped what it knew of the guest under either name
    for typed in (HOME, gus.upn):
        assert not access.check_access(world.ctx, caller=admin, user=typed, task=MOVE).allowed


def test_a_guests_grant_ending_is_seen_by_a_check_that_names_their_home_address(
    world: World,
) -> None:
    gus = invite(world)
    ann = world.user("ann")
    world.group("Approvers", ann)
    organizations.enable_access_control(
        world.ctx, caller=world.admin.caller, admin_group="Approvers"
    )
    directory.change_assignment(
        world.ctx, caller=world.admin.caller, role=MOVERS, user=HOME, add=True
    )
    world.policy(MOVE)

    def may_move() -> bool:
        return access.check_access(
            world.ctx, caller=world.admin.caller, user=HOME, task=MOVE
        ).allowed

    assert not may_move()
    asked = requests.new_request(
        world.ctx, caller=gus.caller, type=PolicyType.TASK, target=MOVE, reason="Move a mailbox"
    )
    requests.approve_request(world.ctx, caller=ann.caller, request_id=asked.request.id)
    assert may_move()
    listed = requests.list_requests(world.ctx, caller=world.admin.caller, requester=HOME)
    assert [v.request.id for v in listed.items] == [asked.request.id]
    for caller in (world.admin.caller, gus.caller):  # the guest names themself so, no right
        mine = requests.list_authorizations(world.ctx, caller=caller, user=HOME)
        assert [v.request.id for v in mine.items] == [asked.request.id]
    assert access.check_access(world.ctx, caller=gus.caller, user=HOME, task=MOVE).allowed
    requests.revoke_authorization(
        world.ctx, caller=world.admin.caller, request_id=asked.request.id, comment="done"
    )
    assert not may_move()


def test_a_guest_in_the_approver_group_never_approves(world: World) -> None:
    ann, rita = world.user("ann"), world.user("rita", roles=(MOVERS,))
    gus = invite(world)
    world.group("Approvers", ann)
    directory.change_membership(
        world.ctx, caller=world.admin.caller, group="Approvers", upn=HOME, add=True
    )
    organizations.enable_access_control(
        world.ctx, caller=world.admin.caller, admin_group="Approvers"
    )
    world.policy(MOVE)
    asked = requests.new_request(
        world.ctx, caller=rita.caller, type=PolicyType.TASK, target=MOVE, reason="Move a mailbox"
    )
    with pytest.raises(NotAnApprover, match="guest"):
        requests.approve_request(world.ctx, caller=gus.caller, request_id=asked.request.id)
    requests.approve_request(world.ctx, caller=ann.caller, request_id=asked.request.id)


def test_guests_on_the_databases(db_world: World) -> None:
    """The stored form, its uniqueness and the lookup by home address, through the SQL
    adapter."""
    gus = invite(db_world)
    assert gus.upn == guest_upn(HOME, db_world.domain)
    found = directory.get_user(db_world.ctx, caller=db_world.admin.caller, upn=HOME)
    assert (found.id, found.upn, found.email) == (gus.caller.user_id, gus.upn, HOME)
    with pytest.raises(AlreadyExists):
        invite(db_world)
    view = directory.change_membership(
        db_world.ctx,
        caller=db_world.admin.caller,
        group=db_world.group("Helpdesk"),
        upn=HOME,
        add=True,
    )
    assert list(view.group.names.values()) == [gus.upn]
    directory.change_assignment(
        db_world.ctx, caller=db_world.admin.caller, role=MOVERS, user=HOME, add=True
    )
    assert access.check_access(
        db_world.ctx, caller=db_world.admin.caller, user=HOME, task=MOVE
    ).allowed


def test_an_address_too_long_for_a_guests_name_names_nobody(world: World) -> None:
    typed = f"{'g' * 230}@fabrikam.com"  # fits; its guest form would not
    with pytest.raises(NotFound):
        directory.get_user(world.ctx, caller=world.admin.caller, upn=typed)
    checked = access.check_access(world.ctx, caller=world.admin.caller, user=typed, task=MOVE)
    assert checked.reason is Reason.UNKNOWN_USER
    with pytest.raises(InvalidInput):
        invite(world, typed)
