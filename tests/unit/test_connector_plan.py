"""plan(): what a connector adds and removes, checked over random holders, records and target
states (hypothesis), and on the cases that matter most spelled out."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jitpam.domain.connectors import (
    Applied,
    Bound,
    BoundKind,
    ConnectorConfig,
    Membership,
    Origin,
    Plan,
    Reconcile,
    parse_connector,
    plan,
)
from jitpam.domain.names import QualifiedName

T1 = "cn=t1,dc=example,dc=test"  # two bindings lead here
T2 = "cn=t2,dc=example,dc=test"
OLD = "cn=old,dc=example,dc=test"  # a target whose binding was taken out of the configuration
ADMIN = Bound(BoundKind.ROLE, QualifiedName("Data", "Admin"))
OPERATORS = Bound(BoundKind.ROLE_GROUP, QualifiedName("Data", "Operators"))
READER = Bound(BoundKind.ROLE, QualifiedName("Data", "Reader"))
BOUND = (ADMIN, OPERATORS, READER)


def connector(kind: str, reconcile: str) -> ConnectorConfig:
    if kind == "postgresql":
        head = 'kind = "postgresql"\ndsn = "env:DSN"\nlogin = "{local}"\n'
        field = "grant"
    else:
        head = (
            'kind = "ldap"\nurl = "ldap://localhost:3389"\n'
            'bind_dn = "cn=admin,dc=example,dc=test"\n'
            'password = "env:LDAP_PASSWORD"\nuser_dn = "uid={local},dc=example,dc=test"\n'
        )
        field = "group_dn"
    text = (
        f'{head}reconcile = "{reconcile}"\n'
        f'[[bindings]]\nrole = "Data\\\\Admin"\n{field} = "{T1}"\n'
        f'[[bindings]]\nrole_group = "Data\\\\Operators"\n{field} = "{T1}"\n'
        f'[[bindings]]\nrole = "Data\\\\Reader"\n{field} = "{T2}"\n'
    )
    # PostgreSQL role names need no DN syntax: the same strings serve as role names here
    return parse_connector(text, source=f"/x/contoso/{kind}-{reconcile}.toml")


CONFIGS = [connector(k, r) for k in ("postgresql", "ldap") for r in ("report", "repair")]
TARGETS = (T1, T2, OLD)
MEMBERS = ("uid=a", "uid=b", "uid=c", "uid=d", T1, T2)  # the groups' own DNs: placeholders

members = st.frozensets(st.sampled_from(MEMBERS), max_size=len(MEMBERS))
holders_st = st.fixed_dictionaries(dict.fromkeys(BOUND, members))
present_st = st.fixed_dictionaries(dict.fromkeys(TARGETS, members))
applied_st = st.dictionaries(
    st.builds(Membership, st.sampled_from(TARGETS), st.sampled_from(MEMBERS)),
    st.sampled_from(list(Origin)),
    max_size=12,
).map(lambda d: frozenset(Applied(m, o) for m, o in d.items()))


def start(config: ConnectorConfig, **extra: frozenset[str]) -> dict[str, frozenset[str]]:
    """The targets as a new connector finds them: only LDAP groups' placeholders, and
    ``extra`` (t1=..., t2=...)."""
    return {
        t: config.protected(t) | extra.get(name, frozenset())
        for name, t in (("t1", T1), ("t2", T2))
    }


def apply(
    p: Plan, applied: frozenset[Applied], present: dict[str, frozenset[str]]
) -> tuple[frozenset[Applied], dict[str, frozenset[str]]]:
    """What the adapter does with a plan: the target changes, and so do its records."""
    after = {
        t: (ms | {m.member for m in p.adds if m.target == t})
        - {m.member for m in p.removes if m.target == t}
        for t, ms in present.items()
    }
    records = {r.membership: r.origin for r in applied}
    for m in p.adds:
        records[m] = Origin.ADDED
    for m in p.removes | p.forget:
        records.pop(m, None)
    for m in p.adopt:
        records[m] = Origin.PRE_EXISTING
    return frozenset(Applied(m, o) for m, o in records.items()), after


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
@settings(max_examples=300, deadline=None)
@given(holders=holders_st, applied=applied_st, present=present_st)
def test_the_rule_over_random_states(
    config: ConnectorConfig,
    holders: dict[Bound, frozenset[str]],
    applied: frozenset[Applied],
    present: dict[str, frozenset[str]],
) -> None:
    needed = config.needed(holders)
    first = plan(config, holders=needed, applied=applied, present=present)
    origin = {r.membership: r.origin for r in applied}
    repair = config.reconcile is Reconcile.REPAIR

    assert not first.adds & first.removes
    for m in first.removes:
        # only what jitpam added, or drift under repair; never what was there first
        assert origin.get(m) is Origin.ADDED or (repair and m in first.drift and m not in origin)
        assert origin.get(m) is not Origin.PRE_EXISTING
        assert m.member not in config.protected(m.target)
        # a member any binding needs is never removed
        assert m.member not in needed.get(m.target, frozenset())
        assert m.member in present[m.target]
    for m in first.drift:
        assert m.target in config.targets  # a target no binding names is not reported on
        assert m not in origin
    if not repair:
        assert not first.removes & first.drift

    records, after = apply(first, applied, present)
    for target, wanted in needed.items():
        assert wanted <= after[target]  # every needed member is present
    for target in TARGETS:
        kept = present[target] - after[target]
        for member in kept:
            assert origin.get(Membership(target, member)) is not Origin.PRE_EXISTING
        if config.kind == "ldap" and target in config.targets and present[target]:
            assert after[target]  # groupOfNames keeps a member
    # a target no binding names any more keeps nothing jitpam added
    assert not {m for m, o in origin.items() if m.target == OLD and o is Origin.ADDED} & {
        Membership(OLD, x) for x in after[OLD]
    }
    # the records tell jitpam's members from the ones it found, for every member it needs
    recorded = {r.membership for r in records}
    for target, wanted in needed.items():
        assert {Membership(target, x) for x in wanted} <= recorded
    assert all(r.membership.member in after[r.membership.target] for r in records)

    second = plan(config, holders=needed, applied=records, present=after)
    assert (second.adds, second.removes, second.adopt, second.forget) == (
        frozenset(),
        frozenset(),
        frozenset(),
        frozenset(),
    )
    assert second.drift == (frozenset() if repair else first.drift)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_grant_counting_across_two_bindings_to_one_target(config: ConnectorConfig) -> None:
    present = start(config)
    both = config.needed({ADMIN: frozenset({"uid=a"}), OPERATORS: frozenset({"uid=a"})})
    first = plan(config, holders=both, applied=frozenset(), present=present)
    assert first.adds == {Membership(T1, "uid=a")}
    records, after = apply(first, frozenset(), present)

    # the role's grant ends; the role group still needs the member
    one = config.needed({OPERATORS: frozenset({"uid=a"})})
    second = plan(config, holders=one, applied=records, present=after)
    assert second.empty

    # the last grant ends: now it goes
    third = plan(config, holders=config.needed({}), applied=records, present=after)
    assert third.removes == {Membership(T1, "uid=a")}
    assert not third.drift


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_a_member_found_present_is_adopted_and_never_removed(config: ConnectorConfig) -> None:
    present = start(config, t1=frozenset({"uid=a"}))
    needed = config.needed({ADMIN: frozenset({"uid=a"})})
    first = plan(config, holders=needed, applied=frozenset(), present=present)
    assert first.adopt == {Membership(T1, "uid=a")}
    assert not first.adds
    records, after = apply(first, frozenset(), present)
    assert records == {Applied(Membership(T1, "uid=a"), Origin.PRE_EXISTING)}

    ended = plan(config, holders=config.needed({}), applied=records, present=after)
    assert ended.empty  # neither removed nor drift, even under repair


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.name)
def test_hand_removed_member_is_forgotten(config: ConnectorConfig) -> None:
    records = frozenset({Applied(Membership(T1, "uid=a"), Origin.ADDED)})
    present = start(config)
    p = plan(config, holders=config.needed({}), applied=records, present=present)
    assert p.forget == {Membership(T1, "uid=a")}
    assert not p.removes
    # still needed: added again, and the record stays
    needed = config.needed({ADMIN: frozenset({"uid=a"})})
    again = plan(config, holders=needed, applied=records, present=present)
    assert again.adds == {Membership(T1, "uid=a")}
    assert not again.forget


def test_drift_is_reported_and_removed_only_under_repair() -> None:
    present = {T1: frozenset({T1, "uid=z"}), T2: frozenset({T2})}
    report = CONFIGS[2]  # ldap, report
    repair = CONFIGS[3]  # ldap, repair
    assert (report.reconcile, repair.reconcile) == (Reconcile.REPORT, Reconcile.REPAIR)
    seen = plan(report, holders=report.needed({}), applied=frozenset(), present=present)
    assert seen.drift == {Membership(T1, "uid=z")}
    assert not seen.removes
    fixed = plan(repair, holders=repair.needed({}), applied=frozenset(), present=present)
    assert fixed.drift == {Membership(T1, "uid=z")}
    assert fixed.removes == {Membership(T1, "uid=z")}  # the placeholder stays


def test_the_placeholder_goes_in_before_the_last_member_leaves() -> None:
    config = CONFIGS[2]
    records = frozenset({Applied(Membership(T1, "uid=a"), Origin.ADDED)})
    present = {T1: frozenset({"uid=a"}), T2: frozenset({T2})}
    p = plan(config, holders=config.needed({}), applied=records, present=present)
    assert p.adds == {Membership(T1, T1)}
    assert p.removes == {Membership(T1, "uid=a")}


def test_what_is_present_must_be_known_for_every_target() -> None:
    config = CONFIGS[0]
    records = frozenset({Applied(Membership(OLD, "uid=a"), Origin.ADDED)})
    with pytest.raises(ValueError, match="present"):
        plan(
            config,
            holders=config.needed({}),
            applied=records,
            present={T1: frozenset(), T2: frozenset()},
        )
    twice = records | {Applied(Membership(OLD, "uid=a"), Origin.PRE_EXISTING)}
    with pytest.raises(ValueError, match="two records"):
        plan(
            config,
            holders=config.needed({}),
            applied=twice,
            present={t: frozenset() for t in TARGETS},
        )
