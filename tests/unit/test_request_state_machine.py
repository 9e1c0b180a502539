"""Random sequences of votes, withdrawals, revocations and clock moves against a plain model.

Guarantee 4 (RELIABILITY.md): terminal states are final. Guarantee 8: expiry is decided by the
check at check time. Whatever happens, in whatever order, the request's status read from the clock
matches a model that restates the product rules, a terminal status never moves, and the access
check allows exactly while the request is approved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from jitpam.domain.check import CheckFacts, Grant, Reason, decide
from jitpam.domain.directory import User, UserKind
from jitpam.domain.errors import (
    AlreadyVoted,
    AuthorizationNotActive,
    JitpamError,
    NotAnApprover,
    NotPermitted,
    RequestNotPending,
    SelfApprovalNotAllowed,
)
from jitpam.domain.names import QualifiedName
from jitpam.domain.policy import PolicyType
from jitpam.domain.requests import AccessRequest, RequestStatus, ReviewDecision

ORG = uuid4()
START = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
TASK = QualifiedName("Exchange", "Search-Mailbox")
ROLE = "Exchange\\Mailbox Search"


def _user(name: str, kind: UserKind = UserKind.PERSON, *, enabled: bool = True) -> User:
    upn = f"{name}@contoso.com"
    return User(uuid4(), ORG, upn, name, upn, kind, enabled)


REQUESTER = _user("rita")
MEMBERS = (_user("alice"), _user("bob"), _user("carol"))
OUTSIDER = _user("oscar")
GUEST = _user("gina", UserKind.GUEST)
DISABLED = _user("dora", enabled=False)
PEOPLE = (REQUESTER, *MEMBERS, OUTSIDER, GUEST, DISABLED)
# The requester, the guest and the disabled user are in the approver group: membership alone must
# not let them decide.
APPROVER_GROUP = frozenset({REQUESTER.id, GUEST.id, DISABLED.id, *(m.id for m in MEMBERS)})

P, A = RequestStatus.PENDING, RequestStatus.APPROVED
Refusal = type[JitpamError] | None


@dataclass
class Model:
    """What the product rules say about one request, kept without any of the domain's code."""

    approvals_required: int
    pending_until: datetime
    duration: timedelta
    decided: RequestStatus = P  # pending, approved, denied, cancelled or revoked
    voters: set[UUID] = field(default_factory=set)
    approvals: int = 0
    window_end: datetime | None = None
    was_approved: bool = False

    def status(self, now: datetime) -> RequestStatus:
        if self.decided is P and now >= self.pending_until:
            return RequestStatus.EXPIRED
        if self.decided is A and self.window_end is not None and now >= self.window_end:
            return RequestStatus.COMPLETED
        return self.decided

    def review(
        self, actor: User, decision: ReviewDecision, now: datetime
    ) -> type[JitpamError] | None:
        if actor.id == REQUESTER.id:
            return SelfApprovalNotAllowed
        if self.status(now) is not P:
            return RequestNotPending
        if not actor.enabled or actor.kind is UserKind.GUEST or actor.id not in APPROVER_GROUP:
            return NotAnApprover
        if actor.id in self.voters:
            return AlreadyVoted
        self.voters.add(actor.id)
        if decision is ReviewDecision.DENY:
            self.decided = RequestStatus.DENIED
            return None
        self.approvals += 1
        if self.approvals >= self.approvals_required:
            self.decided, self.was_approved = A, True
            self.window_end = now + self.duration
        return None

    def cancel(self, actor: User, now: datetime) -> Refusal:
        if actor.id != REQUESTER.id:
            return NotPermitted
        if self.status(now) is not P:
            return RequestNotPending
        self.decided = RequestStatus.CANCELLED
        return None

    def revoke(self, now: datetime) -> Refusal:
        if self.status(now) is not A:
            return AuthorizationNotActive
        self.decided = RequestStatus.REVOKED
        return None


def _facts(request: AccessRequest) -> CheckFacts:
    """The requester holds the task by a standing role; a task policy covers it; control is on."""
    grants: tuple[Grant, ...] = ()
    if request.authorization is not None:
        auth = request.authorization
        grants = (
            Grant(
                auth.id, PolicyType.TASK, str(auth.target), auth.start, auth.end, auth.revoked_at
            ),
        )
    return CheckFacts(
        task=str(TASK),
        user_exists=True,
        user_enabled=True,
        task_exists=True,
        task_roles=frozenset({ROLE}),
        standing_roles=frozenset({ROLE}),
        grants=grants,
        control_enabled=True,
        task_policy=True,
    )


def _outcome(action: Callable[[], object]) -> Refusal:
    """The error the action was refused with, or None when it was accepted."""
    try:
        action()
    except JitpamError as exc:
        return type(exc)
    return None


clock_steps = st.one_of(
    st.sampled_from(
        [
            timedelta(microseconds=1),
            timedelta(seconds=1),
            timedelta(minutes=10),
            timedelta(hours=1),
        ]
    ),
    st.integers(min_value=1, max_value=40 * 3600).map(lambda s: timedelta(seconds=s)),
)


class RequestLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = START
        self.requests: list[AccessRequest] = []
        self.models: list[Model] = []
        self.seen: list[RequestStatus] = []

    @initialize(
        shapes=st.lists(
            st.tuples(
                st.integers(1, 3),  # approvals required
                st.integers(1, 24),  # pending hours
                st.integers(1, 8),  # duration hours
            ),
            min_size=1,
            max_size=3,
        )
    )
    def open_requests(self, shapes: list[tuple[int, int, int]]) -> None:
        for required, pending_hours, duration in shapes:
            request = AccessRequest.open(
                org_id=ORG,
                requester=REQUESTER,
                policy_id=uuid4(),
                type=PolicyType.TASK,
                target=TASK,
                reason="eDiscovery hold, CASE-77",
                duration_hours=duration,
                approvals_required=required,
                at=self.now,
                pending_hours=pending_hours,
            )
            self.requests.append(request)
            self.models.append(
                Model(
                    required, self.now + timedelta(hours=pending_hours), timedelta(hours=duration)
                )
            )
            self.seen.append(P)

    def _pick(self, index: int) -> tuple[AccessRequest, Model]:
        i = index % len(self.requests)
        return self.requests[i], self.models[i]

    @rule(
        index=st.integers(0, 2),
        actor=st.sampled_from(PEOPLE),
        decision=st.sampled_from(list(ReviewDecision)),
    )
    def review(self, index: int, actor: User, decision: ReviewDecision) -> None:
        request, model = self._pick(index)
        got = _outcome(
            lambda: request.review(
                approver=actor,
                in_approver_group=actor.id in APPROVER_GROUP,
                decision=decision,
                comment=None,
                at=self.now,
            )
        )
        assert got is model.review(actor, decision, self.now)

    @rule(index=st.integers(0, 2), actor=st.sampled_from(PEOPLE))
    def cancel(self, index: int, actor: User) -> None:
        request, model = self._pick(index)
        got = _outcome(lambda: request.cancel(by=actor.id, at=self.now))
        assert got is model.cancel(actor, self.now)

    @rule(index=st.integers(0, 2), actor=st.sampled_from(PEOPLE))
    def revoke(self, index: int, actor: User) -> None:
        request, model = self._pick(index)
        got = _outcome(lambda: request.revoke(by=actor.id, comment="done", at=self.now))
        assert got is model.revoke(self.now)

    @rule(index=st.integers(0, 2))
    def approve_automatically(self, index: int) -> None:
        request, model = self._pick(index)
        got = _outcome(lambda: request.approve_automatically(at=self.now))
        if model.status(self.now) is P:
            assert got is None
            model.decided, model.was_approved = A, True
            model.window_end = self.now + model.duration
        else:
            assert got is RequestNotPending

    @rule(index=st.integers(0, 2))
    def sweeper_settles(self, index: int) -> None:
        request, _ = self._pick(index)
        before = request.status_at(self.now)
        request.settle(at=self.now)
        assert request.status == before  # settling writes down what the clock decided, no more

    @rule(step=clock_steps)
    def clock_advances(self, step: timedelta) -> None:
        self.now += step

    @rule(
        index=st.integers(0, 2),
        nudge=st.sampled_from([-1, 0, 1]).map(lambda n: timedelta(microseconds=n)),
    )
    def clock_reaches_a_deadline(self, index: int, nudge: timedelta) -> None:
        """Land on (or 1 us around) the next deadline or window end, where bugs live."""
        _, model = self._pick(index)
        edges = [model.pending_until + nudge]
        if model.window_end is not None:
            edges.append(model.window_end + nudge)
        ahead = [edge for edge in edges if edge > self.now]
        if ahead:
            self.now = min(ahead)

    @invariant()
    def status_matches_the_model(self) -> None:
        for request, model in zip(self.requests, self.models, strict=True):
            assert request.status_at(self.now) is model.status(self.now)

    @invariant()
    def terminal_states_never_move(self) -> None:
        for i, request in enumerate(self.requests):
            current = request.status_at(self.now)
            if self.seen[i].is_terminal:
                assert current is self.seen[i]
            self.seen[i] = current

    @invariant()
    def an_authorization_exists_exactly_when_the_request_was_approved(self) -> None:
        for request, model in zip(self.requests, self.models, strict=True):
            assert (request.authorization is not None) is model.was_approved

    @invariant()
    def the_check_allows_exactly_while_the_request_is_approved(self) -> None:
        for request in self.requests:
            decision = decide(_facts(request), self.now)
            approved = request.status_at(self.now) is A
            assert decision.allowed is approved
            if approved:
                assert request.authorization is not None
                assert decision.reason is Reason.AUTHORIZED
                assert decision.authorization_id == request.authorization.id
            else:
                assert decision.reason is Reason.AUTHORIZATION_REQUIRED


RequestLifecycle.TestCase.settings = settings(
    max_examples=500,
    stateful_step_count=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRequestLifecycle = RequestLifecycle.TestCase
