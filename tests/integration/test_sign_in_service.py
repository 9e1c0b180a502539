"""Sign-in and tokens as use cases, with the clock under the test's control."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jitpam.adapters.passwords import Argon2Passwords
from jitpam.adapters.throttle import MemoryLoginThrottle
from jitpam.domain.errors import InvalidInput, NotPermitted, NotSignedIn, TooManyAttempts
from jitpam.services import auth
from jitpam.services.context import ServiceContext
from tests.integration.world import World, own_process

PASSWORD = "a-long-enough-password"


@pytest.fixture
def ctx(memory_ctx: ServiceContext) -> ServiceContext:
    """The rules run on the in-memory unit of work."""
    return memory_ctx


@pytest.fixture
def signed(world: World) -> World:
    """The world's context, with cheap password hashing and a strict sign-in throttle."""
    world.ctx = own_process(
        ServiceContext(
            uow=world.ctx.uow,
            clock=world.ctx.clock,
            signer=world.ctx.signer,
            passwords=Argon2Passwords(time_cost=1, memory_cost_kib=8),
            throttle=MemoryLoginThrottle(max_failures=3, window_seconds=300, lockout_seconds=60),
        )
    )
    return world


def test_expired_unknown_and_revoked_tokens_are_refused_alike(signed: World) -> None:
    w = signed
    alice = w.user("alice")
    short = auth.create_token(w.ctx, caller=alice.caller, name="short", expires_in_days=1)
    revoked = auth.create_token(w.ctx, caller=alice.caller, name="revoked")
    auth.revoke_token(w.ctx, caller=alice.caller, token_id=revoked.token.id)
    assert auth.authenticate(w.ctx, secret=short.secret) == alice.caller
    w.later(days=1)
    messages = set()
    for secret in (short.secret, revoked.secret, "jpt_unknown"):
        with pytest.raises(NotSignedIn) as refused:
            auth.authenticate(w.ctx, secret=secret)
        messages.add(refused.value.message)
    assert len(messages) == 1
    w.later(microseconds=-1)
    with pytest.raises(NotSignedIn):
        auth.authenticate(w.ctx, secret=revoked.secret)


def test_token_expires_exactly_at_its_end(signed: World) -> None:
    w = signed
    alice = w.user("alice")
    token = auth.create_token(w.ctx, caller=alice.caller, expires_in_days=1)
    w.later(days=1, microseconds=-1)
    assert auth.authenticate(w.ctx, secret=token.secret) == alice.caller
    w.later(microseconds=1)
    with pytest.raises(NotSignedIn):
        auth.authenticate(w.ctx, secret=token.secret)


def test_changing_ones_password_needs_the_current_one(signed: World) -> None:
    w = signed
    alice = w.user("alice")
    auth.set_password(w.ctx, caller=alice.caller, upn=alice.upn, password=PASSWORD)
    with pytest.raises(NotPermitted):
        auth.set_password(
            w.ctx, caller=alice.caller, upn=alice.upn, password="another-long-password"
        )
    auth.set_password(
        w.ctx,
        caller=alice.caller,
        upn=alice.upn,
        password="another-long-password",
        current_password=PASSWORD,
    )
    assert auth.sign_in(
        w.ctx, upn=alice.upn, password="another-long-password", client="t"
    ).token.user_id == (alice.caller.user_id)
    with pytest.raises(InvalidInput):
        auth.set_password(
            w.ctx,
            caller=alice.caller,
            upn=alice.upn,
            password="short",
            current_password="another-long-password",
        )


def test_nobody_sets_another_users_password_without_the_right(signed: World) -> None:
    w = signed
    alice, bob = w.user("alice"), w.user("bob")
    with pytest.raises(NotPermitted):
        auth.set_password(w.ctx, caller=alice.caller, upn=bob.upn, password=PASSWORD)
    auth.set_password(w.ctx, caller=w.admin.caller, upn=bob.upn, password=PASSWORD)


def test_failed_sign_ins_lock_the_account_for_a_while(signed: World) -> None:
    w = signed
    alice = w.user("alice")
    auth.set_password(w.ctx, caller=w.admin.caller, upn=alice.upn, password=PASSWORD)
    for _ in range(3):
        with pytest.raises(NotSignedIn):
            auth.sign_in(w.ctx, upn=alice.upn, password="wrong", client="10.0.0.1")
    with pytest.raises(TooManyAttempts):
        auth.sign_in(w.ctx, upn=alice.upn, password=PASSWORD, client="10.0.0.2")
    w.later(seconds=61)
    assert auth.sign_in(w.ctx, upn=alice.upn, password=PASSWORD, client="10.0.0.2").secret


def test_unknown_account_and_wrong_password_look_the_same(signed: World) -> None:
    w = signed
    alice = w.user("alice")
    auth.set_password(w.ctx, caller=w.admin.caller, upn=alice.upn, password=PASSWORD)
    with pytest.raises(NotSignedIn) as wrong:
        auth.sign_in(w.ctx, upn=alice.upn, password="wrong", client="a")
    with pytest.raises(NotSignedIn) as unknown:
        auth.sign_in(w.ctx, upn=w.upn("nobody"), password="wrong", client="b")
    assert wrong.value.message == unknown.value.message


def test_a_session_token_lasts_the_configured_hours(signed: World) -> None:
    w = signed
    alice = w.user("alice")
    auth.set_password(w.ctx, caller=w.admin.caller, upn=alice.upn, password=PASSWORD)
    issued = auth.sign_in(w.ctx, upn=alice.upn, password=PASSWORD, client="a")
    assert issued.token.expires_at - issued.token.created_at == timedelta(hours=12)
