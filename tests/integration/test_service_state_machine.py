"""The use cases against a small reference model, through random sequences of actions.

Whatever the order of requests, votes, cancellations, revocations, role changes, control
switches and the passing of time: no illegal transition happens, and ``check`` allows the
protected task exactly when the model says so (never to a user without the role, never without an
active authorization while control is on).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine

from jitpam.adapters.clock import FixedClock
from jitpam.adapters.signing import Ed25519Signer
from jitpam.adapters.sql.uow import SqlUnitOfWork, unit_of_work_factory
from jitpam.domain.directory import UserKind
from jitpam.domain.errors import JitpamError
from jitpam.domain.policy import PolicyType
from jitpam.domain.requests import RequestStatus
from jitpam.services import access, directory, organizations, requests
from jitpam.services.context import ServiceContext
from jitpam.services.ports import UnitOfWork, UnitOfWorkFactory
from tests.fakes.memory import MemoryDatabase, factory
from tests.integration.conftest import START
from tests.integration.world import Person, World, own_process

TASK = "Exchange\\New-MoveRequest"
ROLE = "Move Mailboxes"


@dataclass
class ModelRequest:
    id: object
    status: RequestStatus
    pending_until: datetime
    end: datetime | None = None
    voters: frozenset[str] = frozenset()

    def effective(self, now: datetime) -> RequestStatus:
        if self.status is RequestStatus.PENDING and now >= self.pending_until:
            return RequestStatus.EXPIRED
        if self.status is RequestStatus.APPROVED and self.end is not None and now >= self.end:
            return RequestStatus.COMPLETED
        return self.status


def on_database(engine: Engine) -> Callable[[], UnitOfWorkFactory]:
    sessions = unit_of_work_factory(engine)

    def new_uow() -> UnitOfWork:
        return SqlUnitOfWork(sessions)

    return lambda: new_uow


def in_memory() -> UnitOfWorkFactory:
    return factory(MemoryDatabase())  # a new store for every example


def machine_for(store: Callable[[], UnitOfWorkFactory]) -> type[RuleBasedStateMachine]:
    signer = Ed25519Signer.generate()

    class Lifecycle(RuleBasedStateMachine):
        @initialize()
        def build(self) -> None:
            self.clock = FixedClock(START)
            self.ctx = own_process(ServiceContext(uow=store(), clock=self.clock, signer=signer))
            self.world = World(self.ctx, self.clock)
            w = self.world
            self.requester = w.user("requester", roles=(ROLE,))
            self.people: dict[str, Person] = {
                "requester": self.requester,
                "approver1": w.user("approver1"),
                "approver2": w.user("approver2"),
                "guest": w.user("guest", kind=UserKind.GUEST),
                "outsider": w.user("outsider"),
            }
            w.group(
                "Approvers",
                self.people["approver1"],
                self.people["approver2"],
                self.people["guest"],
            )
            organizations.enable_access_control(
                self.ctx, caller=w.admin.caller, admin_group="Approvers"
            )
            w.policy(TASK, approver_group="Approvers")
            self.control = True
            self.holds_role = True
            self.requests: list[ModelRequest] = []
            self.durations: dict[object, int] = {}

        def now(self) -> datetime:
            return self.clock.now()

        def open_request(self) -> ModelRequest | None:
            for r in self.requests:
                if r.effective(self.now()) in (RequestStatus.PENDING, RequestStatus.APPROVED):
                    return r
            return None

        @rule(hours=st.sampled_from([1, 2, 5]))
        def ask(self, hours: int) -> None:
            expected_ok = self.control and self.holds_role and self.open_request() is None
            try:
                view = requests.new_request(
                    self.ctx,
                    caller=self.requester.caller,
                    type=PolicyType.TASK,
                    target=TASK,
                    reason="state machine",
                    duration_hours=hours,
                )
            except JitpamError:
                assert not expected_ok
                return
            assert expected_ok
            self.requests.append(
                ModelRequest(
                    view.request.id, RequestStatus.PENDING, self.now() + timedelta(hours=24)
                )
            )
            self.durations[view.request.id] = hours

        @precondition(lambda self: bool(self.requests))
        @rule(
            who=st.sampled_from(["requester", "approver1", "approver2", "guest", "outsider"]),
            approve=st.booleans(),
            index=st.integers(0, 2),
        )
        def vote(self, who: str, approve: bool, index: int) -> None:
            r = self.requests[-1 - index % len(self.requests)]
            may_vote = (
                who in ("approver1", "approver2")
                and r.effective(self.now()) is RequestStatus.PENDING
                and who not in r.voters
            )
            fn = requests.approve_request if approve else requests.deny_request
            try:
                fn(self.ctx, caller=self.people[who].caller, request_id=r.id, comment=who)  # type: ignore[arg-type]
            except JitpamError:
                assert not may_vote
                return
            assert may_vote
            r.voters |= {who}
            if approve:
                r.status, r.end = (
                    RequestStatus.APPROVED,
                    self.now() + timedelta(hours=self.durations[r.id]),
                )
            else:
                r.status = RequestStatus.DENIED

        @precondition(lambda self: bool(self.requests))
        @rule(approver=st.sampled_from(["approver1", "approver2"]))
        def approver_approves_latest(self, approver: str) -> None:
            self.vote(approver, True, 0)

        @precondition(lambda self: bool(self.requests))
        @rule(index=st.integers(0, 2))
        def cancel(self, index: int) -> None:
            r = self.requests[-1 - index % len(self.requests)]
            ok = r.effective(self.now()) is RequestStatus.PENDING
            try:
                requests.cancel_request(self.ctx, caller=self.requester.caller, request_id=r.id)  # type: ignore[arg-type]
            except JitpamError:
                assert not ok
                return
            assert ok
            r.status = RequestStatus.CANCELLED

        @precondition(lambda self: bool(self.requests))
        @rule(who=st.sampled_from(["requester", "approver1", "outsider"]), index=st.integers(0, 2))
        def revoke(self, who: str, index: int) -> None:
            r = self.requests[-1 - index % len(self.requests)]
            ok = who != "outsider" and r.effective(self.now()) is RequestStatus.APPROVED
            try:
                requests.revoke_authorization(
                    self.ctx,
                    caller=self.people[who].caller,
                    request_id=r.id,
                    comment="done",  # type: ignore[arg-type]
                )
            except JitpamError:
                assert not ok
                return
            assert ok
            r.status = RequestStatus.REVOKED

        @rule(minutes=st.sampled_from([1, 59, 60, 5 * 60, 25 * 60]))
        def time_passes(self, minutes: int) -> None:
            self.clock.advance(timedelta(minutes=minutes))

        @rule()
        def switch_control(self) -> None:
            admin = self.world.admin.caller
            if self.control:
                organizations.disable_access_control(self.ctx, caller=admin)
            else:
                organizations.enable_access_control(self.ctx, caller=admin, admin_group="Approvers")
            self.control = not self.control

        @rule()
        def switch_role(self) -> None:
            directory.change_assignment(
                self.ctx,
                caller=self.world.admin.caller,
                role=ROLE,
                user=self.requester.upn,
                add=not self.holds_role,
            )
            self.holds_role = not self.holds_role

        @invariant()
        def statuses_match_the_model(self) -> None:
            if not hasattr(self, "requests"):
                return
            for r in self.requests:
                view = requests.get_request(self.ctx, caller=self.requester.caller, request_id=r.id)  # type: ignore[arg-type]
                assert view.status is r.effective(self.now())

        @invariant()
        def check_allows_exactly_when_the_model_does(self) -> None:
            if not hasattr(self, "requests"):
                return
            active = any(r.effective(self.now()) is RequestStatus.APPROVED for r in self.requests)
            expected = self.holds_role and (not self.control or active)
            decision = access.check_access(
                self.ctx, caller=self.requester.caller, user=self.requester.upn, task=TASK
            )
            assert decision.allowed is expected, decision

    return Lifecycle


def test_lifecycle_and_check_follow_the_reference_model(engine: Engine) -> None:
    machine = machine_for(on_database(engine))
    # Against a database, 5 examples (each builds an organization and its catalog there); on
    # the fake, 50 (below); the pure model of the same lifecycle runs 500
    # (tests/unit/test_request_state_machine.py).
    run_state_machine_as_test(
        machine,
        settings=settings(settings.get_profile("db"), max_examples=5, stateful_step_count=30),
    )


def test_lifecycle_and_check_follow_the_reference_model_on_the_fake() -> None:
    run_state_machine_as_test(
        machine_for(in_memory),
        settings=settings(settings.get_profile("db"), max_examples=50, stateful_step_count=30),
    )


def test_reference_model_expires_pending_at_the_deadline() -> None:
    r = ModelRequest(1, RequestStatus.PENDING, START + timedelta(hours=24))
    assert (
        r.effective(START + timedelta(hours=24) - timedelta(microseconds=1))
        is RequestStatus.PENDING
    )
    assert r.effective(START + timedelta(hours=24)) is RequestStatus.EXPIRED
