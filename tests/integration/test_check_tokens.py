"""The check API authenticates its token inside the check's own transaction, from the decision
index once the token has been seen. A token that stops being usable stops working at once, in
this process and in any other on the same database: revoked, signed out, revoked with a
password reset, expired by the clock, or its user disabled."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from jitpam.adapters.passwords import Argon2Passwords
from jitpam.domain.errors import NotSignedIn
from jitpam.services import access, audit_log, auth, directory
from jitpam.services.context import Caller, ServiceContext
from jitpam.services.ports import AuditFilter
from tests.integration.world import Person, World, own_process

SEARCH = "Exchange\\Get-Recipient"


def other_process(ctx: ServiceContext) -> ServiceContext:
    """Another server on the same database: its own index and group commit."""
    return own_process(ctx)


def check(ctx: ServiceContext, secret: str) -> bool:
    (decision,) = access.check_with_token(ctx, secret=secret, pairs=[(None, SEARCH)])
    return decision.allowed


def checks_recorded(world: World) -> int:
    page = audit_log.search_audit(
        world.ctx,
        caller=world.admin.caller,
        flt=AuditFilter(operation=access.OPERATION),
        cursor=None,
        limit=1000,
    )
    return len(page.items)


def holder(world: World) -> tuple[Person, str]:
    carol = world.user("carol", roles=("Exchange\\Mail Recipients",))
    return carol, auth.create_token(world.ctx, caller=carol.caller, name="ci").secret


@pytest.fixture
def ctx(memory_ctx: ServiceContext) -> ServiceContext:
    """The rules run on the in-memory unit of work."""
    return memory_ctx


def test_a_token_is_answered_from_memory_once_seen_and_every_check_is_audited(
    world: World,
) -> None:
    _, secret = holder(world)
    before = checks_recorded(world)
    for _ in range(3):
        assert check(world.ctx, secret)
    assert world.ctx.index is not None
    assert world.ctx.index.token_org(auth.token_digest(secret)) == world.org.id
    assert checks_recorded(world) == before + 3


def test_unknown_and_malformed_tokens_are_not_signed_in_and_leave_no_record(
    world: World,
) -> None:
    _, secret = holder(world)
    assert check(world.ctx, secret)
    before = checks_recorded(world)
    for bad in ("", "x" * 201, secret + "x", "jitpam_" + "0" * 40):
        with pytest.raises(NotSignedIn):
            check(world.ctx, bad)
    assert checks_recorded(world) == before


RevokeWay = Callable[[World, Person, str], None]


def revoke_token(world: World, who: Person, secret: str) -> None:
    (mine,) = [
        v.token for v in auth.list_tokens(world.ctx, caller=who.caller) if v.token.name == "ci"
    ]
    auth.revoke_token(world.ctx, caller=who.caller, token_id=mine.id)


def sign_out(world: World, who: Person, secret: str) -> None:
    auth.sign_out(world.ctx, secret=secret)


def password_set_by_an_administrator(world: World, who: Person, secret: str) -> None:
    # Someone else's password set by an administrator revokes all that user's tokens.
    hashing = replace(world.ctx, passwords=Argon2Passwords(time_cost=1, memory_cost_kib=8))
    auth.set_password(
        hashing, caller=world.admin.caller, upn=who.upn, password="a new long password 2026"
    )


def user_disabled(world: World, who: Person, secret: str) -> None:
    directory.set_user(world.ctx, caller=world.admin.caller, upn=who.upn, enabled=False)


def expired(world: World, who: Person, secret: str) -> None:
    world.later(days=91)


@pytest.mark.parametrize(
    "way",
    [revoke_token, sign_out, password_set_by_an_administrator, user_disabled, expired],
    ids=lambda way: way.__name__,
)
def test_a_token_that_stops_being_usable_is_refused_at_once_on_every_process(
    world: World, way: RevokeWay
) -> None:
    carol, secret = holder(world)
    elsewhere = other_process(world.ctx)
    for _ in range(2):  # the first check authenticates; the second keeps the token in memory
        assert check(world.ctx, secret)
        assert check(elsewhere, secret)
    way(world, carol, secret)
    for ctx in (world.ctx, elsewhere):
        with pytest.raises(NotSignedIn):
            check(ctx, secret)


def test_a_token_of_another_organization_is_refused_even_when_its_digest_is_known(
    world: World,
) -> None:
    _, secret = holder(world)
    assert check(world.ctx, secret)
    assert world.ctx.index is not None
    digest = auth.token_digest(secret)
    other = World(world.ctx, world.clock)
    # A digest mapped to the wrong organization (it cannot happen by use): still refused.
    world.ctx.index.remember_token_org(digest, other.org.id)
    with pytest.raises(NotSignedIn):
        check(world.ctx, secret)


def test_checks_by_token_go_on_when_the_index_is_off(world: World) -> None:
    _, secret = holder(world)
    plain = replace(world.ctx, index=None, checks=None)
    assert check(plain, secret)
    world.later(days=91)
    with pytest.raises(NotSignedIn):
        check(plain, secret)


def test_a_new_token_for_the_same_user_works_after_the_old_one_is_revoked(world: World) -> None:
    carol, secret = holder(world)
    assert check(world.ctx, secret)
    assert check(world.ctx, secret)
    revoke_token(world, carol, secret)
    fresh = auth.create_token(world.ctx, caller=carol.caller, name="ci2").secret
    assert check(world.ctx, fresh)
    with pytest.raises(NotSignedIn):
        check(world.ctx, secret)


def test_a_token_revoked_between_its_first_sign_in_and_its_check_is_refused(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    carol, secret = holder(world)
    real = access.authenticate

    def then_revoked(ctx: ServiceContext, *, secret: str) -> Caller:
        caller = real(ctx, secret=secret)
        revoke_token(world, carol, secret)  # commits before the check's own transaction
        return caller

    monkeypatch.setattr(access, "authenticate", then_revoked)
    before = checks_recorded(world)
    with pytest.raises(NotSignedIn):
        check(world.ctx, secret)
    assert checks_recorded(world) == before


def test_a_refused_token_is_forgotten_so_it_costs_no_write_transaction_again(
    world: World,
) -> None:
    carol, secret = holder(world)
    for _ in range(2):
        assert check(world.ctx, secret)
    assert world.ctx.index is not None
    digest = auth.token_digest(secret)
    assert world.ctx.index.token_org(digest) == world.org.id
    revoke_token(world, carol, secret)
    with pytest.raises(NotSignedIn):
        check(world.ctx, secret)
    # Its next check is refused by a read-only sign-in, before any group transaction.
    assert world.ctx.index.token_org(digest) is None
    groups = world.ctx.checks.groups if world.ctx.checks else 0
    with pytest.raises(NotSignedIn):
        check(world.ctx, secret)
    assert (world.ctx.checks.groups if world.ctx.checks else 0) == groups
