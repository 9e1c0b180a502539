"""Customer Lockbox rules on the pure domain: random sequences of decisions, cancellations,
revocations and clock moves against a plain model of the product's rules. Whatever happens, the
engineer is allowed exactly while an approved request's window is open and not revoked, a
request not decided in 12 hours is expired and stays so, and no access outlasts the cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from jitpam.domain.directory import User, UserKind
from jitpam.domain.errors import (
    AuthorizationNotActive,
    InvalidInput,
    JitpamError,
    NotAnApprover,
    NotPermitted,
    RequestNotPending,
)
from jitpam.domain.lockbox import (
    MAX_ACCESS_HOURS,
    PENDING_HOURS,
    LockboxRequest,
    LockboxSettings,
    check_max_hours,
    parse_decision,
    service_name,
)
from jitpam.domain.requests import RequestStatus

OPERATOR, CUSTOMER, OTHER = uuid4(), uuid4(), uuid4()
START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def person(org: object, name: str, kind: UserKind = UserKind.PERSON) -> User:
    return User(uuid4(), org, f"{name}@x.test", name.title(), f"{name}@x.test", kind)  # type: ignore[arg-type]


ENGINEER = person(OPERATOR, "engineer")
APPROVER = person(CUSTOMER, "approver")


def filed(hours: int = 2, settings: LockboxSettings | None = None) -> LockboxRequest:
    return LockboxRequest.file(
        customer_org_id=CUSTOMER,
        operator_org_id=OPERATOR,
        requester=ENGINEER,
        service="Exchange",
        reason="Mailbox corruption, case opened by the customer",
        case_reference="EXSR123456",
        duration_hours=hours,
        settings=settings or LockboxSettings(),
        at=START,
    )


def test_the_customer_cap_bounds_the_duration_and_no_cap_exceeds_four_hours() -> None:
    with pytest.raises(InvalidInput, match="1 to 4 hours"):
        filed(hours=5)
    with pytest.raises(InvalidInput, match="1 to 2 hours"):
        filed(hours=3, settings=LockboxSettings(max_hours=2))
    for cap in (0, 5, True, "4"):
        with pytest.raises(InvalidInput):
            check_max_hours(cap)
    assert filed(hours=4).duration_hours == 4


def test_only_the_operators_users_file_and_never_against_the_operator() -> None:
    with pytest.raises(NotPermitted):
        LockboxRequest.file(
            customer_org_id=CUSTOMER,
            operator_org_id=OPERATOR,
            requester=person(OTHER, "intruder"),
            service="Exchange",
            reason="r",
            case_reference="c",
            duration_hours=1,
            settings=LockboxSettings(),
            at=START,
        )
    with pytest.raises(InvalidInput, match="its customers only"):
        LockboxRequest.file(
            customer_org_id=OPERATOR,
            operator_org_id=OPERATOR,
            requester=ENGINEER,
            service="Exchange",
            reason="r",
            case_reference="c",
            duration_hours=1,
            settings=LockboxSettings(),
            at=START,
        )


def test_services_are_named_in_their_own_spelling_or_refused() -> None:
    assert service_name("sharepoint") == "SharePoint"
    assert service_name(" eop ") == "EOP"
    assert service_name("contoso payroll", catalog_scopes=("Contoso Payroll",)) == (
        "Contoso Payroll"
    )
    with pytest.raises(InvalidInput, match="no service named 'Dynamics'"):
        service_name("Dynamics")
    assert parse_decision("approve") == "Approve"
    with pytest.raises(InvalidInput):
        parse_decision("maybe")


def test_only_the_customers_people_holding_the_role_decide() -> None:
    request = filed()
    outsider = person(OPERATOR, "colleague")
    guest = person(CUSTOMER, "guest", UserKind.GUEST)
    app = person(CUSTOMER, "app", UserKind.APPLICATION)
    for who, holds in ((outsider, True), (guest, True), (app, True), (APPROVER, False)):
        with pytest.raises(NotAnApprover):
            request.decide(
                approver=who, holds_approver_role=holds, decision="Approve", comment="", at=START
            )
    with pytest.raises(InvalidInput, match="engineer cancels"):
        request.decide(
            approver=APPROVER, holds_approver_role=True, decision="Cancel", comment="", at=START
        )
    with pytest.raises(NotPermitted):
        request.cancel(by=APPROVER.id, comment=None, at=START)
    assert request.status is RequestStatus.PENDING


class Lockbox(RuleBasedStateMachine):
    """The request against a model: ``approved_at``/``ended`` say when access may be used."""

    @initialize(hours=st.integers(1, MAX_ACCESS_HOURS), cap=st.integers(1, MAX_ACCESS_HOURS))
    def start(self, hours: int, cap: int) -> None:
        self.cap = cap
        self.request = filed(hours=min(hours, cap), settings=LockboxSettings(max_hours=cap))
        self.now = START
        self.window: tuple[datetime, datetime] | None = None  # the model's open access
        self.closed: RequestStatus | None = None  # a final status the model expects
        self.seen_final: RequestStatus | None = None

    def _pending(self) -> bool:
        return (
            self.window is None
            and self.closed is None
            and self.now < START + timedelta(hours=PENDING_HOURS)
        )

    @rule(minutes=st.integers(0, 16 * 60))
    def wait(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    @rule(decision=st.sampled_from(["Approve", "Deny"]))
    def decide(self, decision: str) -> None:
        pending = self._pending()
        try:
            self.request.decide(
                approver=APPROVER,
                holds_approver_role=True,
                decision=decision,
                comment="ok",
                at=self.now,
            )
        except RequestNotPending:
            assert not pending
            return
        assert pending
        if decision == "Approve":
            self.window = (self.now, self.now + timedelta(hours=self.request.duration_hours))
        else:
            self.closed = RequestStatus.DENIED

    @rule()
    def automatic(self) -> None:
        pending = self._pending()
        try:
            self.request.approve_automatically(at=self.now)
        except RequestNotPending:
            assert not pending
            return
        assert pending
        self.window = (self.now, self.now + timedelta(hours=self.request.duration_hours))

    @rule()
    def cancel(self) -> None:
        pending = self._pending()
        try:
            self.request.cancel(by=ENGINEER.id, comment=None, at=self.now)
        except RequestNotPending:
            assert not pending
            return
        assert pending
        self.closed = RequestStatus.CANCELLED

    @rule()
    def revoke(self) -> None:
        active = self.window is not None and self.closed is None and self.now < self.window[1]
        try:
            self.request.revoke(by=APPROVER.id, comment="done", at=self.now)
        except AuthorizationNotActive:
            assert not active
            return
        assert active
        self.closed = RequestStatus.REVOKED

    @rule()
    def settle(self) -> None:
        self.request.settle(at=self.now)

    @invariant()
    def allowed_exactly_inside_the_open_window(self) -> None:
        if not hasattr(self, "request"):
            return
        expected = (
            self.window is not None
            and self.closed is None
            and self.window[0] <= self.now < self.window[1]
        )
        for service in ("Exchange", "exchange"):
            assert (
                self.request.allows(user_id=ENGINEER.id, service=service, at=self.now) == expected
            )
        assert not self.request.allows(user_id=APPROVER.id, service="Exchange", at=self.now)
        assert not self.request.allows(user_id=ENGINEER.id, service="Teams", at=self.now)

    @invariant()
    def no_access_outlasts_the_cap_and_final_states_stay(self) -> None:
        if not hasattr(self, "request"):
            return
        r = self.request
        if r.start is not None and r.end is not None:
            assert r.end - r.start <= timedelta(hours=min(self.cap, MAX_ACCESS_HOURS))
        status = r.status_at(self.now)
        if self.seen_final is not None:
            assert status is self.seen_final
        elif status.is_terminal:
            self.seen_final = status
        if self.window is None and self.closed is None and not self._pending():
            assert status is RequestStatus.EXPIRED


TestLockbox = Lockbox.TestCase
TestLockbox.settings = settings(
    max_examples=300, stateful_step_count=12, suppress_health_check=[HealthCheck.too_slow]
)


def test_every_refusal_is_a_jitpam_error() -> None:
    """Each refusal reaches callers as one of jitpam's errors (a clean 4xx), never a crash."""
    request = filed()
    request.approve_automatically(at=START)
    for action in (
        lambda: request.cancel(by=ENGINEER.id, comment=None, at=START),
        lambda: request.approve_automatically(at=START),
    ):
        with pytest.raises(JitpamError):
            action()


def test_a_time_before_the_first_instant_is_invalid_input_not_a_crash() -> None:
    from datetime import timezone

    from jitpam.domain.timeutil import require_utc

    with pytest.raises(InvalidInput, match="years 1 to 9999"):
        require_utc(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))))
