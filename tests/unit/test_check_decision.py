"""The access decision: may this user run this task now?

Product rule (PRODUCT.md, "Check and execution"): the user must hold the task through RBAC
(standing or just-in-time role) -> control disabled: allowed -> system account: allowed, marked
exempt -> a task policy covers it: allowed only with an active authorization -> otherwise allowed.
Anything not shown to be allowed is denied (RELIABILITY.md guarantees 1 and 8).
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta, timezone
from itertools import product
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jitpam.domain.check import ALLOWING, CheckFacts, Decision, Grant, Reason, decide
from jitpam.domain.policy import PolicyType

NOW = datetime(2025, 3, 3, 9, 30, tzinfo=UTC)
US = timedelta(microseconds=1)

TASK = "Exchange\\New-MoveRequest"
OTHER_TASK = "Exchange\\Search-Mailbox"
ROLE = "Exchange\\Move Mailboxes"
OTHER_ROLE = "Exchange\\Mailbox Search"
ROLE_GROUP = "Exchange\\Recipient Management"
OTHER_ROLE_GROUP = "Exchange\\Discovery Management"


def facts(**changes: object) -> CheckFacts:
    """A known, enabled user who holds TASK through a standing role, control off, no policy."""
    base = CheckFacts(
        task=TASK,
        user_exists=True,
        user_enabled=True,
        task_exists=True,
        task_roles=frozenset({ROLE}),
        standing_roles=frozenset({ROLE}),
        role_group_roles={ROLE_GROUP: frozenset({ROLE}), OTHER_ROLE_GROUP: frozenset({OTHER_ROLE})},
    )
    return dataclasses.replace(base, **changes)


def protected(**changes: object) -> CheckFacts:
    """Control on and a task policy covering TASK, for a user who holds TASK by standing role."""
    return facts(control_enabled=True, task_policy=True, **changes)


def grant(
    type: PolicyType = PolicyType.TASK,
    target: str = TASK,
    *,
    start: datetime = NOW - timedelta(hours=1),
    end: datetime = NOW + timedelta(hours=3),
    revoked_at: datetime | None = None,
) -> Grant:
    return Grant(uuid4(), type, target, start, end, revoked_at)


# --- the documented order, one reason code at a time -------------------------------------------


def test_unknown_user_is_denied_even_where_everything_else_would_allow() -> None:
    decision = decide(facts(user_exists=False, control_enabled=False, system_account=True), NOW)
    assert decision == Decision(False, Reason.UNKNOWN_USER)


def test_disabled_user_is_denied_even_with_a_standing_role_and_control_off() -> None:
    decision = decide(facts(user_enabled=False), NOW)
    assert decision == Decision(False, Reason.USER_DISABLED)


def test_disabled_user_holds_nothing_even_with_an_active_authorization() -> None:
    decision = decide(protected(user_enabled=False, grants=(grant(),)), NOW)
    assert decision == Decision(False, Reason.USER_DISABLED)


def test_disabled_system_account_is_denied() -> None:
    decision = decide(protected(user_enabled=False, system_account=True), NOW)
    assert decision == Decision(False, Reason.USER_DISABLED)


def test_unknown_task_is_denied() -> None:
    decision = decide(facts(task_exists=False, task_roles=frozenset()), NOW)
    assert decision == Decision(False, Reason.UNKNOWN_TASK)


def test_user_without_a_role_holding_the_task_is_denied() -> None:
    decision = decide(facts(standing_roles=frozenset({OTHER_ROLE})), NOW)
    assert decision == Decision(False, Reason.TASK_NOT_HELD)


@pytest.mark.parametrize(
    ("control_enabled", "system_account"),
    [(False, False), (False, True), (True, True)],
    ids=["control-off", "control-off-system-account", "system-account"],
)
def test_rbac_is_checked_before_control_switch_and_system_account_exemption(
    control_enabled: bool, system_account: bool
) -> None:
    decision = decide(
        facts(
            standing_roles=frozenset(),
            control_enabled=control_enabled,
            system_account=system_account,
        ),
        NOW,
    )
    assert decision == Decision(False, Reason.TASK_NOT_HELD)


def test_an_approved_task_authorization_grants_no_role() -> None:
    decision = decide(protected(standing_roles=frozenset(), grants=(grant(),)), NOW)
    assert decision == Decision(False, Reason.TASK_NOT_HELD)


def test_control_disabled_falls_back_to_plain_rbac_even_for_a_policy_covered_task() -> None:
    decision = decide(facts(control_enabled=False, task_policy=True), NOW)
    assert decision == Decision(True, Reason.CONTROL_DISABLED)
    assert not decision.exempt


def test_system_account_is_allowed_without_authorization_and_marked_exempt() -> None:
    decision = decide(protected(system_account=True), NOW)
    assert decision == Decision(True, Reason.SYSTEM_ACCOUNT)
    assert decision.exempt


def test_policy_covered_task_without_authorization_is_denied() -> None:
    decision = decide(protected(), NOW)
    assert decision == Decision(False, Reason.AUTHORIZATION_REQUIRED)


def test_policy_covered_task_is_allowed_with_an_active_authorization_which_is_named() -> None:
    approved = grant()
    decision = decide(protected(grants=(approved,)), NOW)
    assert decision == Decision(True, Reason.AUTHORIZED, approved.authorization_id)
    assert not decision.exempt


def test_authorization_for_another_task_does_not_unlock_this_one() -> None:
    decision = decide(protected(grants=(grant(target=OTHER_TASK),)), NOW)
    assert decision == Decision(False, Reason.AUTHORIZATION_REQUIRED)


@pytest.mark.parametrize("type", [PolicyType.ROLE, PolicyType.ROLE_GROUP])
def test_only_a_task_authorization_unlocks_a_policy_covered_task(type: PolicyType) -> None:
    # A role or role-group grant whose target happens to spell the task name is not a task grant.
    decision = decide(protected(grants=(grant(type, TASK),)), NOW)
    assert decision == Decision(False, Reason.AUTHORIZATION_REQUIRED)


def test_held_task_without_a_policy_is_allowed_as_not_protected() -> None:
    decision = decide(facts(control_enabled=True), NOW)
    assert decision == Decision(True, Reason.NOT_PROTECTED)
    assert not decision.exempt


def test_every_reason_code_is_either_allowing_or_denying_as_documented() -> None:
    """docs/reference.md's reason tables say, for every code, whether it allows."""
    reference = (Path(__file__).parents[2] / "docs" / "reference.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([a-z_]+)` \| (yes|no) \|", reference, re.M)
    documented = {code: allowed == "yes" for code, allowed in rows}
    assert set(documented) == {r.value for r in Reason}
    assert {Reason(code) for code, allows in documented.items() if allows} == ALLOWING
    assert len({(code, allowed) for code, allowed in rows}) == len(documented)  # no code both


# --- just-in-time roles and role groups ---------------------------------------------------------


def test_active_role_grant_makes_the_user_hold_the_task_and_is_named() -> None:
    jit = grant(PolicyType.ROLE, ROLE)
    decision = decide(facts(standing_roles=frozenset(), control_enabled=True, grants=(jit,)), NOW)
    assert decision == Decision(True, Reason.NOT_PROTECTED, jit.authorization_id)


def test_active_role_grant_with_control_disabled_names_the_grant() -> None:
    jit = grant(PolicyType.ROLE, ROLE)
    decision = decide(facts(standing_roles=frozenset(), grants=(jit,)), NOW)
    assert decision == Decision(True, Reason.CONTROL_DISABLED, jit.authorization_id)


def test_role_grant_for_a_role_without_the_task_does_not_hold_it() -> None:
    decision = decide(
        facts(standing_roles=frozenset(), grants=(grant(PolicyType.ROLE, OTHER_ROLE),)), NOW
    )
    assert decision == Decision(False, Reason.TASK_NOT_HELD)


def test_active_role_group_grant_holds_every_role_of_the_group() -> None:
    jit = grant(PolicyType.ROLE_GROUP, ROLE_GROUP)
    decision = decide(facts(standing_roles=frozenset(), control_enabled=True, grants=(jit,)), NOW)
    assert decision == Decision(True, Reason.NOT_PROTECTED, jit.authorization_id)


def test_role_group_grant_for_a_group_without_the_role_does_not_hold_the_task() -> None:
    decision = decide(
        facts(standing_roles=frozenset(), grants=(grant(PolicyType.ROLE_GROUP, OTHER_ROLE_GROUP),)),
        NOW,
    )
    assert decision == Decision(False, Reason.TASK_NOT_HELD)


def test_role_group_grant_for_an_unknown_group_holds_nothing() -> None:
    decision = decide(
        facts(standing_roles=frozenset(), grants=(grant(PolicyType.ROLE_GROUP, "Exchange\\Nope"),)),
        NOW,
    )
    assert decision == Decision(False, Reason.TASK_NOT_HELD)


def test_standing_role_is_used_before_a_just_in_time_one() -> None:
    decision = decide(facts(grants=(grant(PolicyType.ROLE, ROLE),)), NOW)
    assert decision == Decision(True, Reason.CONTROL_DISABLED, None)


def test_policy_covered_task_with_jit_role_names_the_task_authorization() -> None:
    role_grant = grant(PolicyType.ROLE, ROLE)
    task_grant = grant(PolicyType.TASK, TASK)
    decision = decide(protected(standing_roles=frozenset(), grants=(role_grant, task_grant)), NOW)
    assert decision == Decision(True, Reason.AUTHORIZED, task_grant.authorization_id)


def test_policy_covered_task_with_jit_role_but_no_task_authorization_is_denied() -> None:
    role_grant = grant(PolicyType.ROLE, ROLE)
    decision = decide(protected(standing_roles=frozenset(), grants=(role_grant,)), NOW)
    assert decision == Decision(False, Reason.AUTHORIZATION_REQUIRED)


# --- time: expiry is decided in the check, to the microsecond ------------------------------------

END = NOW + timedelta(hours=4)
START = NOW - timedelta(hours=1)
WINDOW_EDGES = [
    pytest.param(START - US, False, id="start-1us"),
    pytest.param(START, True, id="start"),
    pytest.param(END - US, True, id="end-1us"),
    pytest.param(END, False, id="end"),
    pytest.param(END + US, False, id="end+1us"),
]


@pytest.mark.parametrize(("at", "active"), WINDOW_EDGES)
def test_task_authorization_is_active_from_its_start_until_just_before_its_end(
    at: datetime, active: bool
) -> None:
    approved = grant(start=START, end=END)
    decision = decide(protected(grants=(approved,)), at)
    if active:
        assert decision == Decision(True, Reason.AUTHORIZED, approved.authorization_id)
    else:
        assert decision == Decision(False, Reason.AUTHORIZATION_REQUIRED)


@pytest.mark.parametrize(("at", "active"), WINDOW_EDGES)
@pytest.mark.parametrize(
    ("type", "target"), [(PolicyType.ROLE, ROLE), (PolicyType.ROLE_GROUP, ROLE_GROUP)]
)
def test_just_in_time_role_is_held_from_its_start_until_just_before_its_end(
    type: PolicyType, target: str, at: datetime, active: bool
) -> None:
    jit = grant(type, target, start=START, end=END)
    decision = decide(facts(standing_roles=frozenset(), control_enabled=True, grants=(jit,)), at)
    if active:
        assert decision == Decision(True, Reason.NOT_PROTECTED, jit.authorization_id)
    else:
        assert decision == Decision(False, Reason.TASK_NOT_HELD)


@pytest.mark.parametrize(
    ("revoked_at", "active"),
    [
        pytest.param(NOW - US, False, id="revoked-1us-before"),
        pytest.param(NOW, False, id="revoked-at-this-instant"),
        pytest.param(NOW + US, True, id="revocation-still-ahead"),
    ],
)
def test_revoked_authorization_denies_from_the_instant_of_revocation(
    revoked_at: datetime, active: bool
) -> None:
    approved = grant(revoked_at=revoked_at)
    decision = decide(protected(grants=(approved,)), NOW)
    assert decision.allowed is active
    assert decision.reason is (Reason.AUTHORIZED if active else Reason.AUTHORIZATION_REQUIRED)


def test_revoked_role_grant_no_longer_holds_the_task() -> None:
    jit = grant(PolicyType.ROLE, ROLE, revoked_at=NOW)
    decision = decide(facts(standing_roles=frozenset(), grants=(jit,)), NOW)
    assert decision == Decision(False, Reason.TASK_NOT_HELD)


def test_a_live_authorization_still_counts_when_an_older_one_has_expired() -> None:
    old = grant(start=NOW - timedelta(hours=8), end=NOW - timedelta(hours=4))
    fresh = grant()
    decision = decide(protected(grants=(old, fresh)), NOW)
    assert decision == Decision(True, Reason.AUTHORIZED, fresh.authorization_id)


def test_expiry_is_the_same_instant_whatever_the_time_zone_of_the_check() -> None:
    approved = grant(start=START, end=END)
    plus_two = timezone(timedelta(hours=2))
    assert decide(protected(grants=(approved,)), (END - US).astimezone(plus_two)).allowed
    assert not decide(protected(grants=(approved,)), END.astimezone(plus_two)).allowed


# --- property: decide agrees with a small independent reference model (guarantee 1) -----------

TASKS = ("Exchange\\New-MoveRequest", "Exchange\\Search-Mailbox", "jitpam\\New-User")
ROLES = ("Exchange\\Move Mailboxes", "Exchange\\Mailbox Search", "jitpam\\Role Management", "R4")
GROUPS = ("Exchange\\Organization Management", "jitpam\\Global Administrator", "G3")
# Grant boundaries and check instants come from one small grid, so that checks land exactly on,
# just before and just after every start, end and revocation.
GRID = tuple(
    NOW + timedelta(minutes=10 * step) + offset * US
    for step in range(-6, 7)
    for offset in (-1, 0, 1)
)
POLICY_FLAGS = tuple(product((False, True), repeat=3))  # control on, system account, task policy


def reference_decision(facts: CheckFacts, at: datetime) -> tuple[bool, Reason, set[UUID | None]]:
    """The product rules restated plainly: (allowed, reason, acceptable authorization ids)."""

    def live(g: Grant) -> bool:
        not_revoked = g.revoked_at is None or at < g.revoked_at
        return not_revoked and g.start <= at and at < g.end

    def gives_role(g: Grant, role: str) -> bool:
        if g.type == "role":
            return g.target == role
        if g.type == "role_group":
            return role in facts.role_group_roles.get(g.target, frozenset())
        return False

    if not facts.user_exists:
        return False, Reason.UNKNOWN_USER, {None}
    if not facts.user_enabled:
        return False, Reason.USER_DISABLED, {None}
    if not facts.task_exists:
        return False, Reason.UNKNOWN_TASK, {None}
    if any(role in facts.standing_roles for role in facts.task_roles):
        via: set[UUID | None] = {None}
    else:
        via = {
            g.authorization_id
            for g in facts.grants
            for role in facts.task_roles
            if live(g) and gives_role(g, role)
        }
        if not via:
            return False, Reason.TASK_NOT_HELD, {None}
    if not facts.control_enabled:
        return True, Reason.CONTROL_DISABLED, via
    if facts.system_account:
        return True, Reason.SYSTEM_ACCOUNT, via
    if facts.task_policy:
        task_grants: set[UUID | None] = {
            g.authorization_id
            for g in facts.grants
            if g.type == "task" and g.target == facts.task and live(g)
        }
        if task_grants:
            return True, Reason.AUTHORIZED, task_grants
        return False, Reason.AUTHORIZATION_REQUIRED, {None}
    return True, Reason.NOT_PROTECTED, via


grid_instants = st.sampled_from(GRID)
grants_strategy = st.builds(
    Grant,
    authorization_id=st.uuids(version=4),
    type=st.sampled_from(list(PolicyType)),
    target=st.sampled_from(TASKS + ROLES + GROUPS),
    start=grid_instants,
    end=grid_instants,
    revoked_at=st.none() | grid_instants,
)
facts_strategy = st.builds(
    CheckFacts,
    task=st.sampled_from(TASKS),
    # Mostly known, enabled users and tasks, so that most cases reach the later rules.
    user_exists=st.sampled_from([True, True, True, False]),
    user_enabled=st.sampled_from([True, True, True, False]),
    task_exists=st.sampled_from([True, True, True, False]),
    task_roles=st.frozensets(st.sampled_from(ROLES), max_size=3),
    standing_roles=st.frozensets(st.sampled_from(ROLES), max_size=2),
    grants=st.lists(grants_strategy, max_size=6).map(tuple),
    role_group_roles=st.dictionaries(
        st.sampled_from(GROUPS), st.frozensets(st.sampled_from(ROLES), max_size=3)
    ),
)

PROPERTY_EXAMPLES = 2000


def test_decide_agrees_with_the_reference_model_and_never_wrongly_allows() -> None:
    tally = {"decisions": 0, "mismatches": 0, "wrong_allows": 0}
    first_mismatch: list[tuple[CheckFacts, datetime, Decision]] = []

    @settings(
        max_examples=PROPERTY_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(generated=facts_strategy)
    def compare(generated: CheckFacts) -> None:
        for control_enabled, system_account, task_policy in POLICY_FLAGS:
            case = dataclasses.replace(
                generated,
                control_enabled=control_enabled,
                system_account=system_account,
                task_policy=task_policy,
            )
            for at in GRID:
                got = decide(case, at)
                allowed, reason, ids = reference_decision(case, at)
                tally["decisions"] += 1
                if got.allowed and not allowed:
                    tally["wrong_allows"] += 1
                agrees = (got.allowed, got.reason) == (allowed, reason)
                if not agrees or got.authorization_id not in ids:
                    tally["mismatches"] += 1
                    if not first_mismatch:
                        first_mismatch.append((case, at, got))

    compare()
    assert tally["wrong_allows"] == 0, first_mismatch
    assert tally["mismatches"] == 0, first_mismatch
    # Hypothesis may stop early on a small search space; this many cases must still be compared.
    assert tally["decisions"] >= 100_000, tally
