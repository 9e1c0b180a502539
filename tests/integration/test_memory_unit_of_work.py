"""The in-memory unit of work (tests/fakes/memory.py) agrees with the SQL adapter.

The rule tests run on the fake; these scenes run on both, the fake and each database, and
compare what a user would see: the answers, the refusals and the audit chain. Where the two
ever disagree, a rule test on the fake proves nothing, so this module is what lets them move."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import Engine

from jitpam.adapters.clock import FixedClock
from jitpam.domain.audit import JITPAM, AuditEvent, verify_chain
from jitpam.domain.directory import User, UserKind
from jitpam.domain.errors import (
    AlreadyVoted,
    AuditUnavailable,
    ConcurrentChange,
    JitpamError,
)
from jitpam.domain.names import QualifiedName
from jitpam.domain.operations import AuditOperation
from jitpam.domain.policy import PolicyType
from jitpam.domain.requests import AccessRequest, RequestStatus, Review, ReviewDecision
from jitpam.services import access, audit_log, directory, organizations, policies, requests
from jitpam.services.context import ServiceContext
from jitpam.services.ports import AuditFilter, RequestFilter, UnitOfWork
from tests.fakes.memory import MemoryDatabase, factory
from tests.integration.conftest import SIGNER, START
from tests.integration.test_audit_integrity import audit_storage_fails
from tests.integration.world import Person, World, own_process

MOVE = "Exchange\\New-MoveRequest"
SEARCH = "Exchange\\Search-Mailbox"
DISABLE = "jitpam\\Disable-ElevatedAccessControl"
GLOBAL_ADMIN = "jitpam\\Global Administrator"

_UUID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}")


class Transcript:
    """What a scene showed, with ids and the world's random names made comparable: each id
    becomes the order in which it first appeared."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.lines: list[str] = []
        self._ids: dict[str, str] = {}

    def _id(self, match: re.Match[str]) -> str:
        key = match.group(0).replace("-", "")
        return self._ids.setdefault(key, f"<id{len(self._ids)}>")

    def add(self, *what: object) -> None:
        text = repr(what).replace(self.world.domain, "<domain>")
        text = text.replace(self.world.org.name, "<org>")
        self.lines.append(_UUID.sub(self._id, text))

    def attempt(self, label: str, action: Callable[[], object]) -> None:
        try:
            action()
        except JitpamError as err:
            self.add(label, "refused", type(err).__name__, err.code)
        else:
            self.add(label, "done")

    def audit(self) -> None:
        """The whole chain, in order, without its hashes (they cover the ids); and that it
        verifies."""
        ctx, admin = self.world.ctx, self.world.admin.caller
        records = audit_log.search_audit(ctx, caller=admin, flt=AuditFilter(), limit=1000).items
        for r in reversed(records):
            self.add(
                r.seq, r.at.isoformat(), r.actor_name, r.operation, r.target, r.outcome, r.details
            )
        self.add("verified", audit_log.verify_audit(ctx, caller=admin).report.ok)


def request_story(ctx: ServiceContext, clock: FixedClock) -> list[str]:
    """Control on, a policy with two approvers, a request voted on, checked, revoked and
    listed; the refusals on the way (self-approval, a second vote, a duplicate request)."""
    world = World(ctx, clock)
    t = Transcript(world)
    ann, ben = world.user("ann"), world.user("ben")
    world.group("Approvers", ann, ben)
    rita = world.user("rita", roles=("Exchange\\Move Mailboxes",))
    organizations.enable_access_control(ctx, caller=world.admin.caller, admin_group="Approvers")
    world.policy(MOVE, approvals_required=2)

    def ask(who: Any, target: str = MOVE) -> Any:
        return requests.new_request(
            ctx, caller=who.caller, type=PolicyType.TASK, target=target, reason="stuck move"
        )

    def check() -> tuple[bool, str]:
        decision = access.check_access(ctx, caller=rita.caller, user=rita.upn, task=MOVE)
        return decision.allowed, decision.reason.value

    t.attempt("no policy", lambda: ask(rita, SEARCH))
    view = ask(rita)
    rid = view.request.id
    t.add("asked", view.status, view.request.pending_until.isoformat())
    t.attempt("again", lambda: ask(rita))
    t.attempt("self", lambda: requests.approve_request(ctx, caller=rita.caller, request_id=rid))
    t.add("check before", check())
    first = requests.approve_request(ctx, caller=ann.caller, request_id=rid)
    t.add("one vote", first.status, sorted(first.names.values()))
    t.attempt(
        "second vote", lambda: requests.approve_request(ctx, caller=ann.caller, request_id=rid)
    )
    second = requests.approve_request(ctx, caller=ben.caller, request_id=rid)
    t.add("two votes", second.status, str(second.request.authorization))
    t.add("check granted", check())
    t.add("pending for ann", requests.pending_reviews(ctx, caller=ann.caller))
    clock.advance(timedelta(minutes=5))
    listed = requests.list_requests(ctx, caller=ann.caller)
    t.add("ann sees", [(v.request.requester_upn, v.status) for v in listed.items])
    revoked = requests.revoke_authorization(ctx, caller=ann.caller, request_id=rid)
    t.add("revoked", revoked.status, sorted(revoked.names.values()))
    t.add("check revoked", check())
    t.attempt("ask again", lambda: ask(rita))
    t.add("pending for ben", requests.pending_reviews(ctx, caller=ben.caller))
    t.add(
        "policies",
        [str(p.target) for p in policies.list_policies(ctx, caller=world.admin.caller)],
    )
    t.audit()
    return t.lines


def separation_story(ctx: ServiceContext, clock: FixedClock) -> list[str]:
    """An administrator who made an approver's account asks: that approver's vote is refused,
    the other approver's counts; the count of waiting votes agrees."""
    world = World(ctx, clock)
    t = Transcript(world)
    boss = world.user("boss", role_groups=(GLOBAL_ADMIN,))
    made = world.user("made", by=boss)
    other = world.user("other")
    world.group("Approvers", made, other)
    organizations.enable_access_control(ctx, caller=world.admin.caller, admin_group="Approvers")
    world.policy(DISABLE)
    rid = requests.new_request(
        ctx, caller=boss.caller, type=PolicyType.TASK, target=DISABLE, reason="window CHG-7"
    ).request.id
    t.add("made waits on", requests.pending_reviews(ctx, caller=made.caller))
    t.add("other waits on", requests.pending_reviews(ctx, caller=other.caller))
    t.attempt(
        "made votes", lambda: requests.approve_request(ctx, caller=made.caller, request_id=rid)
    )
    t.attempt(
        "other votes", lambda: requests.approve_request(ctx, caller=other.caller, request_id=rid)
    )
    t.add("status", requests.get_request(ctx, caller=boss.caller, request_id=rid).status)
    directory.set_user(ctx, caller=world.admin.caller, upn=boss.upn, enabled=False)
    t.add(
        "after disabling",
        requests.get_request(ctx, caller=world.admin.caller, request_id=rid).status,
    )
    t.audit()
    return t.lines


@pytest.fixture
def memory() -> MemoryDatabase:
    return MemoryDatabase()


def memory_ctx_of(db: MemoryDatabase, clock: FixedClock) -> ServiceContext:
    return own_process(ServiceContext(uow=factory(db), clock=clock, signer=SIGNER))


@pytest.mark.parametrize("story", [request_story, separation_story])
def test_the_fake_tells_the_same_story_as_the_database(
    db_ctx: ServiceContext,
    clock: FixedClock,
    memory: MemoryDatabase,
    story: Callable[[ServiceContext, FixedClock], list[str]],
) -> None:
    on_database = story(db_ctx, clock)
    memory_clock = FixedClock(START)
    on_memory = story(memory_ctx_of(memory, memory_clock), memory_clock)
    assert on_memory == on_database


# --- one transaction ---------------------------------------------------------------------------


def a_user(org_id: Any, name: str) -> User:
    return User(uuid4(), org_id, f"{name}-{uuid4().hex[:8]}@example.com", name, "", UserKind.PERSON)


def an_event(org_id: Any, what: str) -> AuditEvent:
    """An audit record told apart from others by its target."""
    return AuditEvent(
        org_id=org_id,
        at=datetime(2026, 11, 24, 9, tzinfo=UTC),
        actor=JITPAM,
        operation=AuditOperation.EXPORT_AUDIT_CHECKPOINT,
        target=what,
    )


def both(db_ctx: ServiceContext, memory: MemoryDatabase) -> list[tuple[str, World]]:
    """A world on the database and one on the fake."""
    memory_clock = FixedClock(START)
    assert isinstance(db_ctx.clock, FixedClock)
    return [
        ("database", World(db_ctx, db_ctx.clock)),
        ("memory", World(memory_ctx_of(memory, memory_clock), memory_clock)),
    ]


def add_audited(ctx: ServiceContext, user: User, event: AuditEvent) -> None:
    with ctx.uow() as uow:
        uow.users.add(user, at=START)
        uow.record(event)
        uow.commit()


def vote_again(ctx: ServiceContext, request_id: Any, review: Review) -> None:
    """Store a second review by the same approver, past the rule that refuses it first."""
    with ctx.uow() as uow:
        request = uow.requests.get(request_id, for_update=True)
        assert request is not None
        request.reviews.append(review)
        uow.requests.save(request)
        uow.commit()


def test_a_change_and_its_audit_record_commit_together_or_not_at_all(
    db_ctx: ServiceContext, memory: MemoryDatabase
) -> None:
    seen = {}
    for name, world in both(db_ctx, memory):
        org = world.org.id
        kept, dropped = a_user(org, "kept"), a_user(org, "dropped")
        uow: UnitOfWork
        with world.ctx.uow() as uow:
            head = uow.audit.head(org)
            uow.users.add(dropped, at=START)
            uow.record(an_event(org, "Add-Dropped"))
            # leaving the block without commit rolls both back
        with world.ctx.uow() as uow:
            uow.users.add(kept, at=START)
            uow.record(an_event(org, "Add-Kept"))
            uow.commit()
        with world.ctx.uow() as uow:
            records = list(uow.audit.records(org))
            seen[name] = (
                uow.users.get(kept.id) == kept,
                uow.users.get(dropped.id),
                uow.audit.head(org)[0] - head[0],
                [r.target for r in records][-1],
                verify_chain(records, stored_head=uow.audit.head(org)).ok,
            )
    assert seen["memory"] == seen["database"] == (True, None, 1, "Add-Kept", True)


@contextmanager
def memory_audit_fails(db: MemoryDatabase) -> Iterator[None]:
    db.refuse_audit = True
    try:
        yield
    finally:
        db.refuse_audit = False


def test_when_the_audit_cannot_be_written_the_change_is_not_made(
    db_ctx: ServiceContext, engine: Engine, memory: MemoryDatabase
) -> None:
    seen = {}
    for name, world in both(db_ctx, memory):
        org = world.org.id
        user = a_user(org, "lost")
        failing: AbstractContextManager[None] = (
            audit_storage_fails(engine, world) if name == "database" else memory_audit_fails(memory)
        )
        with failing, pytest.raises(AuditUnavailable):
            add_audited(world.ctx, user, an_event(org, "Add-Lost"))
        with world.ctx.uow() as uow:
            seen[name] = (uow.users.get(user.id), uow.audit.head(org)[0])
    assert seen["memory"][0] is seen["database"][0] is None
    assert seen["memory"][1] == seen["database"][1]  # neither chain moved


def test_a_taken_name_is_a_concurrent_change(
    db_ctx: ServiceContext, memory: MemoryDatabase
) -> None:
    for _, world in both(db_ctx, memory):
        first = a_user(world.org.id, "twin")
        twin = User(uuid4(), world.org.id, first.upn, "Twin", "", UserKind.PERSON)
        with world.ctx.uow() as uow:
            uow.users.add(first, at=START)
            uow.commit()
        with pytest.raises(ConcurrentChange):
            add_audited(world.ctx, twin, an_event(world.org.id, "Add-Twin"))


def test_a_second_review_by_the_same_approver_is_already_voted(
    db_ctx: ServiceContext, memory: MemoryDatabase
) -> None:
    for _, world in both(db_ctx, memory):
        ctx = world.ctx
        ann = world.user("ann")
        world.group("Approvers", ann)
        rita = world.user("rita", roles=("Exchange\\Move Mailboxes",))
        organizations.enable_access_control(ctx, caller=world.admin.caller, admin_group="Approvers")
        world.policy(MOVE, approvals_required=2)
        rid = requests.new_request(
            ctx, caller=rita.caller, type=PolicyType.TASK, target=MOVE, reason="stuck"
        ).request.id
        requests.approve_request(ctx, caller=ann.caller, request_id=rid)
        # The rule refuses a second vote before it is written; the store refuses it too.
        with pytest.raises(AlreadyVoted):
            vote_again(ctx, rid, Review(ann.caller.user_id, ReviewDecision.APPROVE, "", START))


# --- data access requests ----------------------------------------------------------------------

MAIL_READ = QualifiedName("Office365", "Mail.Read")


def _user(ctx: ServiceContext, person: Person) -> User:
    with ctx.reader() as uow:
        found = uow.users.get(person.caller.user_id)
    assert found is not None
    return found


def _awaiting(ctx: ServiceContext, org: Any, voter: Person, at: datetime) -> tuple[int, int]:
    """How many pending requests wait on ``voter``'s vote: listed, and counted."""
    flt = RequestFilter(status=RequestStatus.PENDING, awaiting_vote_of=voter.caller.user_id)
    with ctx.reader() as uow:
        listed = uow.requests.page(org, flt, at=at, cursor=None, limit=50).items
        return len(listed), uow.requests.count(org, flt, at=at, limit=50)


def data_access_story(world: World) -> dict[str, Any]:
    """An installer files a data access request for an application account that a steward made
    (and the steward's own maker steers through them): the request reads back whole, is the
    application's one open request for the scope, waits on the vote of none of those who steer
    the application, and its grant is the application's."""
    ctx, org, at = world.ctx, world.org.id, world.clock.now()
    boss = world.user("boss", role_groups=(GLOBAL_ADMIN,))
    steward = world.user("steward", role_groups=(GLOBAL_ADMIN,), by=boss)
    app = world.user("mailer", kind=UserKind.APPLICATION, by=steward)
    other_app = world.user("other-app", kind=UserKind.APPLICATION)
    installer, ann = world.user("installer"), world.user("ann")
    ann_user = _user(ctx, ann)
    request = AccessRequest.open(
        org_id=org,
        requester=_user(ctx, installer),
        policy_id=uuid4(),
        type=PolicyType.DATA_ACCESS,
        target=MAIL_READ,
        reason="the mail archiver",
        duration_hours=8,
        approvals_required=1,
        at=at,
        pending_hours=24,
        subject=_user(ctx, app),
        resources=("group:Sales", "mailbox:CEO@example.com"),
    )
    with ctx.uow() as uow:
        uow.requests.add(request)
        uow.commit()
    found: dict[str, Any] = {}

    def open_for(uow: UnitOfWork, requester: Person, subject: Person | None) -> UUID | None:
        got = uow.requests.open_for(
            org,
            requester.caller.user_id,
            PolicyType.DATA_ACCESS,
            str(MAIL_READ),
            at,
            subject_id=subject.caller.user_id if subject else None,
        )
        return got.id if got else None

    with ctx.reader() as uow:
        read = uow.requests.get(request.id)
        found["read back whole"] = read == request
        found["read"] = read and (
            (read.subject_upn or "").split("@")[0],
            read.resources,
            read.grantee_upn.split("@")[0],
        )

        found["open for the app"] = open_for(uow, ann, app) == request.id
        found["open for another app"] = open_for(uow, installer, other_app)
        found["the app's requests"] = {
            p.upn.split("@")[0]: [
                r.id == request.id
                for r in uow.requests.page(
                    org, RequestFilter(subject_id=p.caller.user_id), at=at, cursor=None, limit=5
                ).items
            ]
            for p in (app, other_app, installer)
        }
        found["pending for the app"] = [
            r.id == request.id for r in uow.requests.pending_for_user(org, app.caller.user_id, at)
        ]
    found["awaiting"] = {
        p.upn.split("@")[0]: _awaiting(ctx, org, p, at)
        for p in (ann, installer, app, steward, boss, world.admin)
    }
    with ctx.uow() as uow:
        stored = uow.requests.get(request.id, for_update=True)
        assert stored is not None
        stored.review(
            approver=ann_user,
            in_approver_group=True,
            decision=ReviewDecision.APPROVE,
            comment="ok",
            at=at,
        )
        uow.requests.save(stored)
        uow.commit()
    with ctx.reader() as uow:
        approved = uow.requests.get(request.id)
        assert approved is not None
        assert approved.authorization is not None
        found["grantee"] = approved.authorization.user_id == app.caller.user_id
        found["grants"] = {
            p.upn.split("@")[0]: [
                (g.type, g.target) for g in uow.requests.grants(org, p.caller.user_id, at)
            ]
            for p in (app, installer)
        }
        found["active"] = {
            p.upn.split("@")[0]: len(uow.requests.active_for_user(org, p.caller.user_id, at))
            for p in (app, installer)
        }
        found["still open for the app"] = open_for(uow, ann, app) == request.id
    return found


def test_a_data_access_request_round_trips_on_the_fake_as_on_the_database(
    db_ctx: ServiceContext, memory: MemoryDatabase
) -> None:
    seen = {name: data_access_story(world) for name, world in both(db_ctx, memory)}
    assert seen["memory"] == seen["database"]
    story = seen["database"]
    assert story["read back whole"] is True
    assert story["read"] == ("mailer", ("group:Sales", "mailbox:ceo@example.com"), "mailer")
    assert (story["open for the app"], story["open for another app"]) == (True, None)
    assert story["pending for the app"] == [True]
    assert story["the app's requests"] == {"mailer": [True], "other-app": [], "installer": []}
    # only ann may vote: not the installer, nor the application, nor whoever steers it
    assert story["awaiting"] == {
        "ann": (1, 1),
        "installer": (0, 0),
        "mailer": (0, 0),
        "steward": (0, 0),
        "boss": (0, 0),
        "admin": (0, 0),
    }
    assert story["grantee"] is True
    assert story["grants"] == {
        "mailer": [(PolicyType.DATA_ACCESS, str(MAIL_READ))],
        "installer": [],
    }
    assert story["active"] == {"mailer": 1, "installer": 0}
    assert story["still open for the app"] is True
