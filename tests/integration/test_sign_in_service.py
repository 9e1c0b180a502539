"""Sign-in and tokens as use cases, with the clock under the test's control."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta

import pytest

from jitpam.adapters.passwords import Argon2Passwords
from jitpam.adapters.throttle import MemoryLoginThrottle
from jitpam.domain.directory import UserKind
from jitpam.domain.errors import (
    ConcurrentChange,
    InvalidInput,
    NotPermitted,
    NotSignedIn,
    TooManyAttempts,
)
from jitpam.services import auth, directory
from jitpam.services.context import ServiceContext
from tests.integration.world import World, own_process

PASSWORD = "a-long-enough-password"
NEW = "a-new-long-enough-password"
OTHER = "yet-another-long-password"


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


class HeldHasher:
    """Argon2 whose hash and verify, once ``hold`` is set, wait for ``release``: a hash that takes
    as long as the test wants, without a clock."""

    def __init__(self) -> None:
        self.real = Argon2Passwords(time_cost=1, memory_cost_kib=8)
        self.hold = False
        self.entered = threading.Event()
        self.release = threading.Event()

    def _wait(self) -> None:
        if self.hold:
            self.entered.set()
            assert self.release.wait(60), "the test never released the hash"

    def hash(self, password: str) -> str:
        self._wait()
        return self.real.hash(password)

    def verify(self, hash: str, password: str) -> bool:
        self._wait()
        return self.real.verify(hash, password)


@pytest.fixture
def held(signed: World) -> tuple[World, HeldHasher]:
    hasher = HeldHasher()
    signed.ctx = replace(signed.ctx, passwords=hasher)
    return signed, hasher


def _while_hashing(hasher: HeldHasher, use_case: Callable[[], object]) -> Future[object]:
    """``use_case`` started on a thread of its own, once it is inside the password hash."""
    hasher.hold = True
    pool = ThreadPoolExecutor(max_workers=1)
    running = pool.submit(use_case)
    pool.shutdown(wait=False)
    assert hasher.entered.wait(60), "the use case never reached the password hash"
    return running


@pytest.mark.parametrize("use_case", ["sign_in", "change_own", "set_anothers"])
def test_other_writes_commit_while_a_password_is_hashed(
    held: tuple[World, HeldHasher], use_case: str
) -> None:
    """A password hash is slow on purpose; it is done outside any write transaction, so on
    SQLite (one writer at a time) it holds no one up. Were it inside, the write below would wait
    for the write lock until the busy timeout and fail."""
    w, hasher = held
    alice, sam = w.user("alice"), w.user("sam", kind=UserKind.SERVICE)
    auth.set_password(w.ctx, caller=alice.caller, upn=None, password=PASSWORD)
    work: dict[str, Callable[[], object]] = {
        "sign_in": lambda: auth.sign_in(w.ctx, upn=alice.upn, password=PASSWORD, client="t"),
        "change_own": lambda: auth.set_password(
            w.ctx, caller=alice.caller, upn=None, password=NEW, current_password=PASSWORD
        ),
        "set_anothers": lambda: auth.set_password(
            w.ctx, caller=w.admin.caller, upn=sam.upn, password=NEW
        ),
    }
    running = _while_hashing(hasher, work[use_case])
    try:
        made = directory.add_user(
            w.ctx, caller=w.admin.caller, upn=w.upn("bystander"), display_name="Bystander"
        )
        assert not running.done()  # the hash is still held: the write went past it
    finally:
        hasher.release.set()
    running.result(timeout=60)
    hasher.hold = False
    assert directory.get_user(w.ctx, caller=w.admin.caller, upn=made.upn).id == made.id
    if use_case == "change_own":
        assert auth.sign_in(w.ctx, upn=alice.upn, password=NEW, client="t").secret
    if use_case == "set_anothers":
        assert auth.sign_in(w.ctx, upn=sam.upn, password=NEW, client="t").secret


def test_a_password_changed_while_the_old_one_is_checked_does_not_sign_in(
    held: tuple[World, HeldHasher],
) -> None:
    """The sign-in checked the password read before the change: it is refused, not let in with
    a password that is no longer the account's."""
    w, hasher = held
    alice = w.user("alice")
    auth.set_password(w.ctx, caller=alice.caller, upn=None, password=PASSWORD)
    running = _while_hashing(
        hasher, lambda: auth.sign_in(w.ctx, upn=alice.upn, password=PASSWORD, client="t")
    )
    try:
        hasher.hold = False  # the change's own hash is not held
        auth.set_password(
            w.ctx, caller=alice.caller, upn=None, password=NEW, current_password=PASSWORD
        )
    finally:
        hasher.release.set()
    with pytest.raises(NotSignedIn):
        running.result(timeout=60)
    assert auth.sign_in(w.ctx, upn=alice.upn, password=NEW, client="t").secret


def test_a_password_changed_while_the_current_one_is_checked_is_a_conflict(
    held: tuple[World, HeldHasher],
) -> None:
    w, hasher = held
    alice = w.user("alice")
    auth.set_password(w.ctx, caller=alice.caller, upn=None, password=PASSWORD)
    running = _while_hashing(
        hasher,
        lambda: auth.set_password(
            w.ctx, caller=alice.caller, upn=None, password=NEW, current_password=PASSWORD
        ),
    )
    try:
        hasher.hold = False
        auth.set_password(
            w.ctx, caller=alice.caller, upn=None, password=OTHER, current_password=PASSWORD
        )
    finally:
        hasher.release.set()
    with pytest.raises(ConcurrentChange):
        running.result(timeout=60)
    assert auth.sign_in(w.ctx, upn=alice.upn, password=OTHER, client="t").secret
