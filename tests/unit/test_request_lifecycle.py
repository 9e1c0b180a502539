"""Every transition of an access request, allowed and refused, as one table.

Product rules (PRODUCT.md, "Requests"; RELIABILITY.md guarantees 2, 4 and 7): approvers approve or
deny while the request is pending and before its deadline, never their own request, never as a
guest, once each; one deny decides; the requester alone withdraws; an approval creates an
authorization for exactly the asked duration; terminal states never move.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from jitpam.domain.directory import User, UserKind
from jitpam.domain.errors import (
    AlreadyVoted,
    AuthorizationNotActive,
    InvalidInput,
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
CREATED = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
PENDING_HOURS = 24
DURATION_HOURS = 4
US = timedelta(microseconds=1)
HOUR = timedelta(hours=1)
TARGET = QualifiedName("Exchange", "New-MoveRequest")
YEAR = timedelta(days=365)


def user(name: str, kind: UserKind = UserKind.PERSON, *, enabled: bool = True) -> User:
    upn = f"{name}@contoso.com"
    return User(uuid4(), ORG, upn, name.title(), upn, kind, enabled)


REQUESTER = user("rita")
APPROVER = user("alice")
SECOND_APPROVER = user("bob")
THIRD_APPROVER = user("carol")
OUTSIDER = user("oscar")  # a person who is not in the approver group
GUEST = user("gina", UserKind.GUEST)  # in the approver group, but a guest
DISABLED = user("dora", enabled=False)  # in the approver group, but disabled

ACTORS = {
    "requester": REQUESTER,
    "approver": APPROVER,
    "second approver": SECOND_APPROVER,
    "third approver": THIRD_APPROVER,
    "outsider": OUTSIDER,
    "guest": GUEST,
    "disabled user": DISABLED,
}
APPROVER_GROUP = frozenset(
    {REQUESTER.id, APPROVER.id, SECOND_APPROVER.id, THIRD_APPROVER.id, GUEST.id, DISABLED.id}
)


def open_request(*, approvals_required: int = 1, at: datetime = CREATED) -> AccessRequest:
    return AccessRequest.open(
        org_id=ORG,
        requester=REQUESTER,
        policy_id=uuid4(),
        type=PolicyType.TASK,
        target=TARGET,
        reason="Move the CEO's mailbox, CHG-1234",
        duration_hours=DURATION_HOURS,
        approvals_required=approvals_required,
        at=at,
        pending_hours=PENDING_HOURS,
    )


def review(
    request: AccessRequest, actor: User, decision: ReviewDecision, at: datetime
) -> RequestStatus:
    return request.review(
        approver=actor,
        # The requester is in the approver group too: self-approval is refused for its own sake.
        in_approver_group=actor.id in APPROVER_GROUP,
        decision=decision,
        comment="ok",
        at=at,
    )


# --- start states: each returns the request and the instant the tested action happens ----------

StartState = Callable[[], tuple[AccessRequest, datetime]]


def pending() -> tuple[AccessRequest, datetime]:
    return open_request(), CREATED + HOUR


def pending_one_of_two() -> tuple[AccessRequest, datetime]:
    """Needs 2 approvals; the approver has already approved."""
    request = open_request(approvals_required=2)
    review(request, APPROVER, ReviewDecision.APPROVE, CREATED + HOUR)
    return request, CREATED + 2 * HOUR


def approved() -> tuple[AccessRequest, datetime]:
    request = open_request()
    review(request, APPROVER, ReviewDecision.APPROVE, CREATED + HOUR)
    return request, CREATED + 2 * HOUR


def denied() -> tuple[AccessRequest, datetime]:
    request = open_request()
    review(request, APPROVER, ReviewDecision.DENY, CREATED + HOUR)
    return request, CREATED + 2 * HOUR


def cancelled() -> tuple[AccessRequest, datetime]:
    request = open_request()
    request.cancel(by=REQUESTER.id, at=CREATED + HOUR)
    return request, CREATED + 2 * HOUR


def revoked() -> tuple[AccessRequest, datetime]:
    request = open_request()
    review(request, APPROVER, ReviewDecision.APPROVE, CREATED + HOUR)
    request.revoke(by=APPROVER.id, comment="done early", at=CREATED + 2 * HOUR)
    return request, CREATED + 3 * HOUR


def expired() -> tuple[AccessRequest, datetime]:
    """Nobody decided before the deadline; no sweeper has run."""
    request = open_request()
    return request, request.pending_until + HOUR


def completed() -> tuple[AccessRequest, datetime]:
    """Approved, and the window has ended; no sweeper has run."""
    request = open_request()
    review(request, APPROVER, ReviewDecision.APPROVE, CREATED + HOUR)
    return request, CREATED + HOUR + DURATION_HOURS * HOUR + HOUR


def settled(build: StartState) -> StartState:
    """The same state after a sweeper has written down what the clock decided."""

    def build_settled() -> tuple[AccessRequest, datetime]:
        request, at = build()
        assert request.settle(at=at) is not None
        return request, at

    return build_settled


STATES: dict[str, StartState] = {
    "pending": pending,
    "pending 1 of 2 approvals": pending_one_of_two,
    "approved": approved,
    "denied": denied,
    "cancelled": cancelled,
    "revoked": revoked,
    "expired": expired,
    "completed": completed,
    "expired (settled)": settled(expired),
    "completed (settled)": settled(completed),
}


def act(request: AccessRequest, action: str, actor: User | None, at: datetime) -> datetime:
    """Do the action at ``at``; returns the instant at which to read the outcome."""
    if action == "deadline passes":
        return request.pending_until
    if action == "window ends":
        assert request.authorization is not None
        return request.authorization.end
    if action == "a year passes":
        return at + YEAR
    if action == "approve":
        assert actor is not None
        review(request, actor, ReviewDecision.APPROVE, at)
    elif action == "deny":
        assert actor is not None
        review(request, actor, ReviewDecision.DENY, at)
    elif action == "cancel":
        assert actor is not None
        request.cancel(by=actor.id, at=at)
    elif action == "revoke":
        assert actor is not None
        request.revoke(by=actor.id, comment="no longer needed", at=at)
    elif action == "approve automatically":
        request.approve_automatically(at=at)
    else:  # pragma: no cover - a typo in the table
        raise AssertionError(action)
    return at


Expected = RequestStatus | type[JitpamError]
P, A, D, X, C, R, DONE = (
    RequestStatus.PENDING,
    RequestStatus.APPROVED,
    RequestStatus.DENIED,
    RequestStatus.EXPIRED,
    RequestStatus.CANCELLED,
    RequestStatus.REVOKED,
    RequestStatus.COMPLETED,
)

TRANSITIONS: list[tuple[str, str, str | None, Expected]] = [
    # pending: decided by an approver, withdrawn by the requester, approved by an auto policy
    ("pending", "approve", "approver", A),
    ("pending", "deny", "approver", D),
    ("pending", "cancel", "requester", C),
    ("pending", "approve automatically", None, A),
    ("pending", "approve", "requester", SelfApprovalNotAllowed),
    ("pending", "deny", "requester", SelfApprovalNotAllowed),
    ("pending", "approve", "guest", NotAnApprover),
    ("pending", "deny", "guest", NotAnApprover),
    ("pending", "approve", "disabled user", NotAnApprover),
    ("pending", "deny", "disabled user", NotAnApprover),
    ("pending", "approve", "outsider", NotAnApprover),
    ("pending", "deny", "outsider", NotAnApprover),
    ("pending", "cancel", "approver", NotPermitted),
    ("pending", "cancel", "outsider", NotPermitted),
    ("pending", "revoke", "approver", AuthorizationNotActive),
    ("pending", "revoke", "requester", AuthorizationNotActive),
    # the clock alone expires a pending request at its deadline (no sweeper needed)
    ("pending", "deadline passes", None, X),
    ("pending", "a year passes", None, X),
    # N of M: distinct approvers approve; one deny decides even after approvals
    ("pending 1 of 2 approvals", "approve", "second approver", A),
    ("pending 1 of 2 approvals", "deny", "second approver", D),
    ("pending 1 of 2 approvals", "approve", "approver", AlreadyVoted),
    ("pending 1 of 2 approvals", "deny", "approver", AlreadyVoted),
    ("pending 1 of 2 approvals", "approve", "requester", SelfApprovalNotAllowed),
    ("pending 1 of 2 approvals", "approve", "guest", NotAnApprover),
    ("pending 1 of 2 approvals", "cancel", "requester", C),
    ("pending 1 of 2 approvals", "cancel", "approver", NotPermitted),
    ("pending 1 of 2 approvals", "revoke", "approver", AuthorizationNotActive),
    ("pending 1 of 2 approvals", "deadline passes", None, X),
    # approved: only revocation moves it (by an approver, or by the grantee giving access back)
    ("approved", "revoke", "approver", R),
    ("approved", "revoke", "requester", R),
    ("approved", "approve", "second approver", RequestNotPending),
    ("approved", "deny", "second approver", RequestNotPending),
    ("approved", "approve", "approver", RequestNotPending),
    ("approved", "approve", "requester", SelfApprovalNotAllowed),
    ("approved", "cancel", "requester", RequestNotPending),
    ("approved", "approve automatically", None, RequestNotPending),
    # the clock alone completes an approved request at the end of its window
    ("approved", "window ends", None, DONE),
    ("approved", "a year passes", None, DONE),
]
TERMINAL = {
    "denied": D,
    "cancelled": C,
    "revoked": R,
    "expired": X,
    "completed": DONE,
    "expired (settled)": X,
    "completed (settled)": DONE,
}
# Terminal states never move, whoever tries whatever.
for _state, _status in TERMINAL.items():
    TRANSITIONS += [
        (_state, "a year passes", None, _status),
        (_state, "approve", "second approver", RequestNotPending),
        (_state, "deny", "second approver", RequestNotPending),
        (_state, "approve", "requester", SelfApprovalNotAllowed),
        (_state, "cancel", "requester", RequestNotPending),
        (_state, "cancel", "outsider", NotPermitted),
        (_state, "revoke", "approver", AuthorizationNotActive),
        (_state, "revoke", "requester", AuthorizationNotActive),
        (_state, "approve automatically", None, RequestNotPending),
    ]


def _id(state: str, action: str, actor: str | None, expected: Expected) -> str:
    outcome = expected.value if isinstance(expected, RequestStatus) else expected.__name__
    return f"{state}: {action}{f' by {actor}' if actor else ''} -> {outcome}"


@pytest.mark.parametrize(
    ("state", "action", "actor", "expected"),
    [pytest.param(*row, id=_id(*row)) for row in TRANSITIONS],
)
def test_request_transition(state: str, action: str, actor: str | None, expected: Expected) -> None:
    request, at = STATES[state]()
    before = request.status_at(at)
    reviews_before = list(request.reviews)
    grant_before = copy.copy(request.authorization)
    if isinstance(expected, RequestStatus):
        at = act(request, action, ACTORS[actor] if actor else None, at)
        assert request.status_at(at) is expected
        # Only an approval creates an authorization, and it outlives the approved state.
        assert (request.authorization is not None) is (expected in (A, R, DONE))
        if expected.is_terminal:
            assert request.status_at(at + YEAR) is expected
    else:
        with pytest.raises(expected):
            act(request, action, ACTORS[actor] if actor else None, at)
        # A refused action changes nothing: no status move, no vote counted.
        assert request.status_at(at) is before
        assert request.reviews == reviews_before
        assert request.authorization == grant_before


# --- the rules behind the table, with their exact figures ---------------------------------------


def test_requester_cannot_approve_own_request() -> None:
    request = open_request()
    with pytest.raises(SelfApprovalNotAllowed) as refused:
        review(request, REQUESTER, ReviewDecision.APPROVE, CREATED + HOUR)
    assert refused.value.message == (
        "Requestor and approver are the same. Self-approval is not allowed."
    )
    assert str(refused.value) == refused.value.message
    assert request.status is RequestStatus.PENDING
    assert request.authorization is None


def test_requester_with_a_second_identity_object_is_still_the_requester() -> None:
    # The same account, loaded again (say, through another token): same id, same refusal.
    same_account = User(
        REQUESTER.id, ORG, REQUESTER.upn, "Rita (admin)", REQUESTER.email, UserKind.PERSON
    )
    request = open_request()
    with pytest.raises(SelfApprovalNotAllowed):
        review(request, same_account, ReviewDecision.APPROVE, CREATED + HOUR)


@pytest.mark.parametrize("actor", [GUEST, DISABLED], ids=["guest", "disabled"])
def test_guests_and_disabled_users_never_approve_even_in_the_approver_group(actor: User) -> None:
    request = open_request()
    with pytest.raises(NotAnApprover, match=actor.upn):
        review(request, actor, ReviewDecision.APPROVE, CREATED + HOUR)
    assert request.approvals == 0


def test_approver_outside_the_approver_group_is_refused_by_name() -> None:
    request = open_request()
    with pytest.raises(NotAnApprover, match="not a member of the approver group"):
        review(request, OUTSIDER, ReviewDecision.APPROVE, CREATED + HOUR)


def test_one_approver_cannot_approve_twice_to_reach_the_threshold() -> None:
    request = open_request(approvals_required=2)
    review(request, APPROVER, ReviewDecision.APPROVE, CREATED + HOUR)
    with pytest.raises(AlreadyVoted):
        review(request, APPROVER, ReviewDecision.APPROVE, CREATED + 2 * HOUR)
    assert request.approvals == 1
    assert request.status_at(CREATED + 2 * HOUR) is RequestStatus.PENDING


def test_n_of_m_approval_needs_n_distinct_approvers() -> None:
    request = open_request(approvals_required=3)
    assert review(request, APPROVER, ReviewDecision.APPROVE, CREATED + HOUR) is P
    assert review(request, SECOND_APPROVER, ReviewDecision.APPROVE, CREATED + 2 * HOUR) is P
    assert request.authorization is None
    assert review(request, THIRD_APPROVER, ReviewDecision.APPROVE, CREATED + 3 * HOUR) is A
    assert request.authorization is not None
    # The window starts with the deciding (last) approval, not the first.
    assert request.authorization.start == CREATED + 3 * HOUR
    assert request.decided_at == CREATED + 3 * HOUR


def test_one_deny_decides_even_after_approvals() -> None:
    request = open_request(approvals_required=3)
    review(request, APPROVER, ReviewDecision.APPROVE, CREATED + HOUR)
    review(request, SECOND_APPROVER, ReviewDecision.APPROVE, CREATED + HOUR)
    assert review(request, THIRD_APPROVER, ReviewDecision.DENY, CREATED + 2 * HOUR) is D
    assert request.authorization is None
    assert request.decided_at == CREATED + 2 * HOUR


def test_review_is_accepted_until_one_microsecond_before_the_deadline() -> None:
    request = open_request()
    assert request.pending_until == CREATED + PENDING_HOURS * HOUR
    at = request.pending_until - US
    assert review(request, APPROVER, ReviewDecision.APPROVE, at) is A


@pytest.mark.parametrize("late", [timedelta(0), US, timedelta(seconds=1)], ids=["0", "1us", "1s"])
@pytest.mark.parametrize("decision", list(ReviewDecision))
def test_review_at_or_after_the_deadline_is_refused_as_expired(
    late: timedelta, decision: ReviewDecision
) -> None:
    request = open_request()
    with pytest.raises(RequestNotPending, match="expired"):
        review(request, APPROVER, decision, request.pending_until + late)
    assert request.authorization is None


def test_requester_can_withdraw_until_one_microsecond_before_the_deadline() -> None:
    in_time = open_request()
    in_time.cancel(by=REQUESTER.id, at=in_time.pending_until - US)
    assert in_time.status_at(in_time.pending_until + HOUR) is RequestStatus.CANCELLED
    too_late = open_request()
    with pytest.raises(RequestNotPending, match="expired"):
        too_late.cancel(by=REQUESTER.id, at=too_late.pending_until)
    assert too_late.status_at(too_late.pending_until) is RequestStatus.EXPIRED


def test_pending_request_is_expired_from_its_deadline_without_a_sweeper() -> None:
    request = open_request()
    assert request.status_at(request.pending_until - US) is RequestStatus.PENDING
    assert request.status_at(request.pending_until) is RequestStatus.EXPIRED
    assert request.status_at(request.pending_until + US) is RequestStatus.EXPIRED
    assert request.status is RequestStatus.PENDING  # nothing was written: the clock decides


def test_authorization_runs_from_approval_for_exactly_the_asked_hours() -> None:
    request = open_request()
    approved_at = CREATED + timedelta(hours=1, minutes=17, microseconds=5)
    review(request, APPROVER, ReviewDecision.APPROVE, approved_at)
    grant = request.authorization
    assert grant is not None
    assert grant.start == approved_at
    assert grant.end == approved_at + timedelta(hours=DURATION_HOURS)
    assert (grant.user_id, grant.type, grant.target) == (REQUESTER.id, PolicyType.TASK, TARGET)
    assert grant.request_id == request.id
    assert grant.is_active(grant.end - US)
    assert not grant.is_active(grant.end)
    assert request.status_at(grant.end - US) is RequestStatus.APPROVED
    assert request.status_at(grant.end) is RequestStatus.COMPLETED


def test_automatic_approval_grants_the_same_window() -> None:
    request = open_request()
    grant = request.approve_automatically(at=CREATED)
    assert (grant.start, grant.end) == (CREATED, CREATED + DURATION_HOURS * HOUR)
    assert request.reviews == []
    assert request.status is RequestStatus.APPROVED


def test_revocation_ends_the_authorization_at_once_and_records_who_and_why() -> None:
    request, at = approved()
    grant = request.revoke(by=SECOND_APPROVER.id, comment="  incident closed  ", at=at)
    assert grant is request.authorization
    assert (grant.revoked_at, grant.revoked_by) == (at, SECOND_APPROVER.id)
    assert grant.revocation_comment == "incident closed"
    assert grant.is_active(at - US)
    assert not grant.is_active(at)
    assert request.status_at(grant.end + HOUR) is RequestStatus.REVOKED


def test_revocation_at_the_window_end_is_refused_as_completed() -> None:
    request, _ = approved()
    assert request.authorization is not None
    with pytest.raises(AuthorizationNotActive, match="completed"):
        request.revoke(by=APPROVER.id, comment=None, at=request.authorization.end)


def test_settle_writes_down_an_expiry_at_the_deadline() -> None:
    request = open_request()
    assert request.settle(at=request.pending_until - US) is None
    assert request.status is RequestStatus.PENDING
    assert request.settle(at=request.pending_until + 3 * HOUR) is RequestStatus.EXPIRED
    assert request.status is RequestStatus.EXPIRED
    assert request.decided_at == request.pending_until
    assert request.settle(at=request.pending_until + 4 * HOUR) is None


def test_settle_writes_down_a_completed_window() -> None:
    request, at = approved()
    assert request.settle(at=at) is None
    assert request.authorization is not None
    end = request.authorization.end
    assert request.settle(at=end) is RequestStatus.COMPLETED
    assert request.status is RequestStatus.COMPLETED
    with pytest.raises(AuthorizationNotActive):
        request.revoke(by=APPROVER.id, comment=None, at=end + HOUR)


def test_settle_never_changes_a_decided_request() -> None:
    for build in (denied, cancelled, revoked):
        request, at = build()
        status = request.status
        assert request.settle(at=at + YEAR) is None
        assert request.status is status


def test_pending_deadline_is_creation_plus_the_organizations_pending_hours() -> None:
    request = AccessRequest.open(
        org_id=ORG,
        requester=REQUESTER,
        policy_id=uuid4(),
        type=PolicyType.ROLE,
        target=QualifiedName("Exchange", "Move Mailboxes"),
        reason="quarterly moves",
        duration_hours=2,
        approvals_required=1,
        at=CREATED,
        pending_hours=12,
    )
    assert request.pending_until == CREATED + 12 * HOUR
    assert request.status is RequestStatus.PENDING


def test_request_times_must_carry_a_time_zone() -> None:
    with pytest.raises(InvalidInput, match="naive"):
        open_request(at=datetime(2025, 3, 3, 8, 0))
    request = open_request()
    with pytest.raises(InvalidInput, match="naive"):
        review(request, APPROVER, ReviewDecision.APPROVE, datetime(2025, 3, 3, 9, 0))


@pytest.mark.parametrize("reason", ["", "   "])
def test_request_needs_a_reason(reason: str) -> None:
    with pytest.raises(InvalidInput, match="reason is required"):
        AccessRequest.open(
            org_id=ORG,
            requester=REQUESTER,
            policy_id=uuid4(),
            type=PolicyType.TASK,
            target=TARGET,
            reason=reason,
            duration_hours=1,
            approvals_required=1,
            at=CREATED,
            pending_hours=PENDING_HOURS,
        )
