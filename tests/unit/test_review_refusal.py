"""``review_refusal`` is how a page decides to show the approve and deny buttons; ``review`` is what
pressing one does. For any request, in any state, and anyone asking at any moment, the two agree:
no refusal exactly when the vote is counted, and otherwise the very error the vote would raise.
Separately, the refusal follows the product rules, in their documented order, restated here."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jitpam.domain.directory import User, UserKind
from jitpam.domain.errors import (
    AlreadyVoted,
    JitpamError,
    NotAnApprover,
    RequestNotPending,
    SelfApprovalNotAllowed,
)
from jitpam.domain.names import QualifiedName
from jitpam.domain.policy import PolicyType
from jitpam.domain.requests import (
    AccessRequest,
    Authorization,
    RequestStatus,
    Review,
    ReviewDecision,
)

ORG = uuid4()
START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
TARGET = QualifiedName("Exchange", "Search-Mailbox")


def _user(name: str, kind: UserKind = UserKind.PERSON, *, enabled: bool = True) -> User:
    upn = f"{name}@contoso.com"
    return User(uuid4(), ORG, upn, name.title(), upn, kind, enabled)


REQUESTER = _user("rita")
MEMBERS = (_user("alice"), _user("bob"), _user("carol"))  # may vote, when in the group
PEOPLE = (
    REQUESTER,
    *MEMBERS,
    _user("gina", UserKind.GUEST),
    _user("sven", UserKind.SERVICE),
    _user("app", UserKind.APPLICATION),
    _user("dora", enabled=False),
    _user("dan", UserKind.GUEST, enabled=False),
)
PROFILE = settings(
    max_examples=1500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
hours_offset = st.integers(min_value=-72, max_value=72).map(lambda h: timedelta(hours=h))
instants = st.builds(
    lambda base, micro: base + timedelta(microseconds=micro),
    st.sampled_from([START + timedelta(hours=h) for h in range(-48, 49, 6)]),
    st.sampled_from([-1, 0, 1]),  # around the deadlines, to the microsecond
)


@dataclass(frozen=True)
class Case:
    request: AccessRequest
    approver: User
    in_group: bool
    at: datetime
    decision: ReviewDecision
    comment: str | None


@st.composite
def requests(draw: st.DrawFn) -> AccessRequest:
    """Any request: any stored status, deadline, votes and grant, consistent or not."""
    created = START + draw(hours_offset)
    pending_until = draw(st.sampled_from([START + timedelta(hours=h) for h in range(-48, 49, 6)]))
    status = draw(st.one_of(st.just(RequestStatus.PENDING), st.sampled_from(list(RequestStatus))))
    voters = draw(st.lists(st.sampled_from(PEOPLE), unique_by=lambda u: u.id, max_size=4))
    reviews = [
        Review(u.id, draw(st.sampled_from(list(ReviewDecision))), "", created) for u in voters
    ]
    request = AccessRequest(
        id=uuid4(),
        org_id=ORG,
        requester_id=REQUESTER.id,
        requester_upn=REQUESTER.upn,
        policy_id=uuid4(),
        type=PolicyType.TASK,
        target=TARGET,
        reason="CHG-1 search",
        duration_hours=draw(st.integers(1, 24)),
        approvals_required=draw(st.integers(1, 4)),
        created_at=created,
        pending_until=pending_until,
        status=status,
        reviews=reviews,
    )
    if status is not RequestStatus.PENDING and draw(st.booleans()):
        start = draw(instants)
        request.authorization = Authorization(
            id=uuid4(),
            org_id=ORG,
            request_id=request.id,
            user_id=REQUESTER.id,
            type=request.type,
            target=request.target,
            start=start,
            end=start + timedelta(hours=request.duration_hours),
        )
    return request


cases = st.builds(
    Case,
    request=requests(),
    approver=st.one_of(st.sampled_from(MEMBERS), st.sampled_from(PEOPLE)),
    in_group=st.one_of(st.just(True), st.booleans()),
    at=instants,
    decision=st.sampled_from(list(ReviewDecision)),
    comment=st.one_of(st.none(), st.text(alphabet="abc xyz.", max_size=20)),
)


def snapshot(request: AccessRequest) -> tuple[object, ...]:
    auth = request.authorization
    return (
        request.status,
        request.decided_at,
        list(request.reviews),
        None if auth is None else (auth.id, auth.start, auth.end, auth.revoked_at),
    )


@PROFILE
@given(case=cases)
def test_no_refusal_exactly_when_the_vote_is_counted(case: Case) -> None:
    request = case.request
    refusal = request.review_refusal(
        approver=case.approver, in_approver_group=case.in_group, at=case.at
    )
    before = snapshot(request)
    voted = copy.deepcopy(request)

    def vote() -> RequestStatus:
        return voted.review(
            approver=case.approver,
            in_approver_group=case.in_group,
            decision=case.decision,
            comment=case.comment,
            at=case.at,
        )

    if refusal is None:
        vote()  # counted, without an error
        assert voted.reviews[-1].approver_id == case.approver.id
        assert len(voted.reviews) == len(request.reviews) + 1
    else:
        with pytest.raises(type(refusal)) as raised:
            vote()
        assert type(raised.value) is type(refusal)
        assert raised.value.message == refusal.message
        assert snapshot(voted) == before  # a refused vote changes nothing
    assert snapshot(request) == before  # asking changes nothing


def expected_refusal(case: Case) -> type[JitpamError] | None:
    """The rules as PRODUCT.md orders them, restated without the domain's code."""
    request, approver, at = case.request, case.approver, case.at
    if approver.id == REQUESTER.id:
        return SelfApprovalNotAllowed
    pending = request.status is RequestStatus.PENDING and at < request.pending_until
    if not pending:
        return RequestNotPending
    if not approver.enabled or approver.kind is not UserKind.PERSON or not case.in_group:
        return NotAnApprover
    if approver.id in {r.approver_id for r in request.reviews}:
        return AlreadyVoted
    return None


@PROFILE
@given(case=cases)
def test_refusal_follows_the_rules_in_order(case: Case) -> None:
    refusal = case.request.review_refusal(
        approver=case.approver, in_approver_group=case.in_group, at=case.at
    )
    expected = expected_refusal(case)
    assert (None if refusal is None else type(refusal)) is expected
    if isinstance(refusal, RequestNotPending):
        assert case.request.status_at(case.at).value in refusal.message
    if isinstance(refusal, NotAnApprover | AlreadyVoted):
        assert case.approver.upn in refusal.message


def test_the_requester_is_told_self_approval_is_not_allowed_even_in_the_group() -> None:
    request = AccessRequest.open(
        org_id=ORG,
        requester=REQUESTER,
        policy_id=uuid4(),
        type=PolicyType.TASK,
        target=TARGET,
        reason="CHG-2",
        duration_hours=1,
        approvals_required=1,
        at=START,
        pending_hours=24,
    )
    refusal = request.review_refusal(approver=REQUESTER, in_approver_group=True, at=START)
    assert isinstance(refusal, SelfApprovalNotAllowed)
    assert refusal.message == "Requestor and approver are the same. Self-approval is not allowed."
