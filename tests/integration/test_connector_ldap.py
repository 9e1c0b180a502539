"""The LDAP connector's adapter against a real OpenLDAP server (tests/slapd.py, one for the
module), bound as the least-privileged account a deployment gives it: it may write the ``member``
values of the groups under ou=groups and nothing else. Each test makes groups of its own."""

from __future__ import annotations

import ssl
import time
from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path
from uuid import uuid4

import ldap3
import pytest

from jitpam.adapters.connectors.ldap import LdapConnector
from jitpam.adapters.executors import SecretUnavailable
from jitpam.domain.connectors import (
    Applied,
    Bound,
    BoundKind,
    Change,
    ConnectorConfig,
    LdapTarget,
    Membership,
    Origin,
    Plan,
    escape_rdn_value,
    fill_mapping,
    normalize_dn,
    parse_connector,
    plan,
)
from jitpam.domain.errors import ConnectorUnavailable
from jitpam.domain.names import QualifiedName
from tests.slapd import CONNECTOR_DN, GROUPS, PEOPLE, SUFFIX, SlapdServer

OPERATORS = Bound(BoundKind.ROLE, QualifiedName("Data", "Operators"))
READERS = Bound(BoundKind.ROLE_GROUP, QualifiedName("Data", "Readers"))
NOBODY = f"cn=nobody,{SUFFIX}"
HOSTILE_LOCAL = ' a,b+c"d\\e<f>g;h=i#j '


def toml(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class Groups:
    server: SlapdServer
    operators: str  # as the server names them
    readers: str

    def config(
        self,
        *,
        reconcile: str = "report",
        placeholder: str | None = None,
        operators_as: str | None = None,  # the operators group's DN as the file spells it
        url: str | None = None,
    ) -> ConnectorConfig:
        text = (
            f'kind = "ldap"\nurl = {toml(url or self.server.url)}\n'
            f"bind_dn = {toml(CONNECTOR_DN)}\n"
            'password = "env:LDAP_PASSWORD"\n'
            f"user_dn = {toml('uid={local},' + PEOPLE)}\n"
            f"reconcile = {toml(reconcile)}\n"
        )
        if placeholder is not None:
            text += f"placeholder_member = {toml(placeholder)}\n"
        text += (
            f'[[bindings]]\nrole = "Data\\\\Operators"\n'
            f"group_dn = {toml(operators_as or self.operators)}\n"
            f'[[bindings]]\nrole_group = "Data\\\\Readers"\ngroup_dn = {toml(self.readers)}\n'
        )
        return parse_connector(text, source="/x/contoso/directory.toml")

    def adapter(self, config: ConnectorConfig | None = None) -> LdapConnector:
        return LdapConnector(
            config or self.config(), self.server.connector_password, connect_timeout_seconds=2
        )


def user(uid: str) -> str:
    return f"uid={uid},{PEOPLE}"


def make_group(server: SlapdServer, cn: str, *members: str) -> str:
    dn = f"cn={cn},{GROUPS}"
    server.add(dn, ["groupOfNames"], {"cn": cn, "member": list(members) or [dn]})
    return dn


def hand(server: SlapdServer, group: str, operation: str, member: str) -> None:
    """A change made by hand, as the root DN: not jitpam's."""
    with server.root() as conn:
        assert conn.modify(group, {"member": [(operation, [member])]}), conn.result


@pytest.fixture
def groups(slapd: SlapdServer) -> Groups:
    tag = uuid4().hex[:8]
    # each group holds only itself: the default placeholder member
    return Groups(slapd, make_group(slapd, f"operators-{tag}"), make_group(slapd, f"readers-{tag}"))


def only(adds: Collection[Membership] = (), removes: Collection[Membership] = ()) -> Plan:
    empty: frozenset[Membership] = frozenset()
    return Plan(frozenset(adds), frozenset(removes), empty, empty, empty)


def records(p: Plan, before: frozenset[Applied] = frozenset()) -> frozenset[Applied]:
    """The adapter's records after ``p`` was applied (as the connector pass will keep them)."""
    kept = {a for a in before if a.membership not in p.removes | p.forget}
    kept |= {Applied(m, Origin.ADDED) for m in p.adds}
    kept |= {Applied(m, Origin.PRE_EXISTING) for m in p.adopt}
    return frozenset(kept)


def test_add_shows_in_present_add_again_changes_nothing_and_remove_takes_it_away(
    groups: Groups,
) -> None:
    adapter = groups.adapter()
    ops = groups.operators
    assert adapter.present() == {ops: {ops}, groups.readers: {groups.readers}}
    grant = Membership(ops, user("alice"))

    for _ in range(2):  # the second add meets attributeOrValueExists: done all the same
        [outcome] = adapter.apply(only(adds={grant}))
        assert (outcome.change, outcome.membership, outcome.done) == (Change.ADD, grant, True)
        assert adapter.present()[ops] == {ops, user("alice")}
        assert groups.server.members(ops) == sorted([ops, user("alice")])

    for _ in range(2):  # deleting a non-member meets noSuchAttribute: done all the same
        [outcome] = adapter.apply(only(removes={grant}))
        assert (outcome.change, outcome.done) == (Change.REMOVE, True), outcome.error
        assert adapter.present()[ops] == {ops}


def test_present_covers_the_groups_records_name_and_leaves_out_the_bind_account(
    groups: Groups,
) -> None:
    server = groups.server
    tag = uuid4().hex[:8]
    unbound = make_group(server, f"former-{tag}", user("bob"))
    gone = f"cn=gone-{tag},{GROUPS}"
    hand(server, groups.operators, ldap3.MODIFY_ADD, CONNECTOR_DN)
    present = groups.adapter().present([unbound, gone])
    assert present == {
        groups.operators: {groups.operators},  # the bind account is a member, never drift
        groups.readers: {groups.readers},
        unbound: {user("bob")},
        gone: frozenset(),
    }
    config = groups.config(reconcile="repair")
    repaired = plan(config, holders=config.needed({}), applied=frozenset(), present=present)
    assert repaired.empty
    assert CONNECTOR_DN in server.members(groups.operators)


def test_an_add_to_a_group_that_does_not_exist_fails_alone_with_a_clear_message(
    groups: Groups,
) -> None:
    gone = f"cn=gone-{uuid4().hex[:8]},{GROUPS}"
    fine = Membership(groups.operators, user("alice"))
    outcomes = groups.adapter().apply(only(adds={Membership(gone, user("alice")), fine}))
    by_target = {o.membership.target: o for o in outcomes}
    failed = by_target[gone]
    assert not failed.done
    assert failed.error is not None
    assert f"the group {gone} does not exist" in failed.error
    assert "noSuchObject" in failed.error
    assert groups.server.connector_password not in failed.error
    assert by_target[groups.operators].done
    assert user("alice") in groups.server.members(groups.operators)


def test_the_bind_account_may_change_member_values_of_groups_and_nothing_else(
    groups: Groups,
) -> None:
    outside = f"cn=admins-{uuid4().hex[:8]},{PEOPLE}"  # a group, but not under ou=groups
    groups.server.add(outside, ["groupOfNames"], {"cn": "admins", "member": [outside]})
    [outcome] = groups.adapter().apply(only(adds={Membership(outside, user("mallory"))}))
    assert not outcome.done
    assert outcome.error is not None
    assert "insufficientAccessRights" in outcome.error
    assert groups.server.members(outside) == [outside]
    # the same account may not touch another attribute of a group
    with groups.server.bound(CONNECTOR_DN, groups.server.connector_password) as conn:
        assert not conn.modify(groups.operators, {"cn": [(ldap3.MODIFY_ADD, ["renamed"])]})
        assert conn.result["description"] == "insufficientAccessRights"


def test_the_domains_plan_applied_twice_is_idempotent_and_spares_what_was_there(
    groups: Groups,
) -> None:
    config = groups.config()
    adapter = groups.adapter(config)
    ops, readers = groups.operators, groups.readers
    # bob was a reader before jitpam, written in another spelling: adopted, never removed
    hand(
        server := groups.server, readers, ldap3.MODIFY_ADD, "UID=Bob, OU=People,DC=Example,DC=Test"
    )
    dn = {k: config.member_for(f"{k}@contoso.com") for k in ("alice", "bob", "carol")}
    needed = config.needed(
        {OPERATORS: frozenset({dn["alice"], dn["carol"]}), READERS: frozenset({dn["bob"]})}
    )
    first = plan(config, holders=needed, applied=frozenset(), present=adapter.present())
    assert first.adds == {Membership(ops, dn["alice"]), Membership(ops, dn["carol"])}
    assert first.adopt == {Membership(readers, dn["bob"])}
    assert not first.drift
    for _ in range(2):
        assert all(o.done for o in adapter.apply(first))
        assert adapter.present() == {
            ops: {ops, dn["alice"], dn["carol"]},
            readers: {readers, dn["bob"]},
        }
    applied = records(first)
    assert plan(config, holders=needed, applied=applied, present=adapter.present()).empty

    ended = plan(config, holders=config.needed({}), applied=applied, present=adapter.present())
    assert ended.removes == first.adds
    for _ in range(2):
        assert all(o.done for o in adapter.apply(ended))
        assert adapter.present() == {ops: {ops}, readers: {readers, dn["bob"]}}
    assert [normalize_dn(m) for m in server.members(readers)] == sorted([readers, dn["bob"]])


@pytest.mark.parametrize("reconcile", ["report", "repair"])
def test_the_last_member_leaving_lets_the_placeholder_in_first_and_it_stays(
    groups: Groups, reconcile: str
) -> None:
    server = groups.server
    lonely = make_group(server, f"lonely-{uuid4().hex[:8]}", user("alice"))
    config = groups.config(reconcile=reconcile, placeholder=NOBODY, operators_as=lonely)
    adapter = groups.adapter(config)
    alice = config.member_for("alice@contoso.com")
    applied = frozenset({Applied(Membership(lonely, alice), Origin.ADDED)})

    ended = plan(config, holders=config.needed({}), applied=applied, present=adapter.present())
    # (under repair the readers group's own DN, not this connector's placeholder, is drift)
    assert {m for m in ended.removes if m.target == lonely} == {Membership(lonely, alice)}
    assert Membership(lonely, NOBODY) in ended.adds
    outcomes = adapter.apply(ended)
    # the placeholder went in before alice left: a groupOfNames refuses to lose its last member
    assert [
        (o.change, o.membership.member, o.done) for o in outcomes if o.membership.target == lonely
    ] == [
        (Change.ADD, NOBODY, True),
        (Change.REMOVE, alice, True),
    ]
    assert server.members(lonely) == [NOBODY]

    applied = records(ended, applied)
    again = plan(config, holders=config.needed({}), applied=applied, present=adapter.present())
    assert Membership(lonely, NOBODY) not in again.removes | again.drift
    assert all(o.done for o in adapter.apply(again))
    assert server.members(lonely) == [NOBODY]

    # the placeholder alone is never the last member a removal could take away
    back = config.needed({OPERATORS: frozenset({alice})})
    returned = plan(
        config, holders=back, applied=records(again, applied), present=adapter.present()
    )
    assert returned.adds == {Membership(lonely, alice)}
    assert all(o.done for o in adapter.apply(returned))
    assert adapter.present()[lonely] == {NOBODY, alice}


def test_a_hostile_user_name_is_escaped_into_one_value_the_server_takes_and_reads_back(
    groups: Groups,
) -> None:
    server = groups.server
    config = groups.config()
    adapter = groups.adapter(config)
    upn = HOSTILE_LOCAL + "@contoso.com"
    member = config.member_for(upn)
    # the user's entry, named as the mapping writes it before normalization (spaces escaped)
    written = fill_mapping(f"uid={{local}},{PEOPLE}", upn, escape=escape_rdn_value)
    assert written.startswith('uid=\\ a\\,b\\+c\\"d\\\\e\\<f\\>g\\;h\\=i#j\\ ,ou=people')
    server.add(written, ["inetOrgPerson"], {"cn": "x", "sn": "y", "uid": HOSTILE_LOCAL})

    [outcome] = adapter.apply(only(adds={Membership(groups.operators, member)}))
    assert outcome.done, outcome.error
    assert adapter.present()[groups.operators] == {groups.operators, member}
    stored = [m for m in server.members(groups.operators) if m != groups.operators]
    assert len(stored) == 1  # one value, not a DN that broke out of its RDN
    with server.root() as conn:  # the member value names the user's entry, nothing else
        assert conn.search(stored[0], "(objectClass=*)", search_scope=ldap3.BASE)
        assert [normalize_dn(e["dn"]) for e in conn.response or []] == [member]

    needed = config.needed({OPERATORS: frozenset({member})})
    assert plan(
        config,
        holders=needed,
        applied=frozenset({Applied(Membership(groups.operators, member), Origin.ADDED)}),
        present=adapter.present(),
    ).empty
    [outcome] = adapter.apply(only(removes={Membership(groups.operators, member)}))
    assert outcome.done, outcome.error
    assert server.members(groups.operators) == [groups.operators]


def test_a_group_spelled_otherwise_in_the_file_is_the_group_the_server_names(
    groups: Groups,
) -> None:
    server = groups.server
    cn = groups.operators.split(",")[0].removeprefix("cn=")
    spelled = f"CN={cn.upper()}, OU=Groups,DC=example,DC=test"
    config = groups.config(operators_as=spelled)
    adapter = groups.adapter(config)
    assert config.targets == {groups.operators, groups.readers}
    # a member added by hand under other capitals and spaces is the same user
    hand(server, groups.operators, ldap3.MODIFY_ADD, f"UID=Alice , ou=PEOPLE,{SUFFIX.upper()}")
    alice = config.member_for("Alice@contoso.com")
    needed = config.needed({OPERATORS: frozenset({alice})})
    first = plan(config, holders=needed, applied=frozenset(), present=adapter.present())
    assert first.adopt == {Membership(groups.operators, alice)}
    assert first.adds == first.removes == first.drift == set()
    bob = config.member_for("bob@contoso.com")
    more = config.needed({OPERATORS: frozenset({alice, bob})})
    second = plan(config, holders=more, applied=records(first), present=adapter.present())
    assert second.adds == {Membership(groups.operators, bob)}
    assert all(o.done for o in adapter.apply(second))
    assert plan(
        config, holders=more, applied=records(second, records(first)), present=adapter.present()
    ).empty


def test_a_member_added_by_hand_is_drift_removed_only_under_repair(groups: Groups) -> None:
    server = groups.server
    mallory = user("mallory")
    hand(server, groups.operators, ldap3.MODIFY_ADD, mallory)
    for reconcile in ("report", "repair"):
        config = groups.config(reconcile=reconcile)
        adapter = groups.adapter(config)
        found = plan(
            config, holders=config.needed({}), applied=frozenset(), present=adapter.present()
        )
        assert found.drift == {Membership(groups.operators, mallory)}
        assert all(o.done for o in adapter.apply(found))
        after = adapter.present()[groups.operators]
        if reconcile == "report":
            assert found.removes == set()
            assert after == {groups.operators, mallory}
        else:
            assert found.removes == {Membership(groups.operators, mallory)}
            assert after == {groups.operators}  # the placeholder stays


def test_a_server_that_is_down_raises_unavailable_without_the_password(groups: Groups) -> None:
    with SlapdServer() as other:
        url = other.url
    config = groups.config(url=url)  # nothing listens there any more
    secret = "hunter2-" + uuid4().hex
    adapter = LdapConnector(config, secret, connect_timeout_seconds=2)
    started = time.monotonic()
    for call in (adapter.present, lambda: adapter.apply(only())):
        with pytest.raises(ConnectorUnavailable) as caught:
            call()
        assert caught.value.message.startswith("connector directory: cannot connect")
        assert secret not in caught.value.message
    assert time.monotonic() - started < 10


def test_a_wrong_password_raises_unavailable_without_it(groups: Groups) -> None:
    secret = "wrong-" + uuid4().hex
    adapter = LdapConnector(groups.config(), secret, connect_timeout_seconds=2)
    with pytest.raises(ConnectorUnavailable) as caught:
        adapter.present()
    message = caught.value.message
    assert message.startswith(f"connector directory: bind as {CONNECTOR_DN} refused")
    assert "invalidCredentials" in message
    assert secret not in message
    assert groups.server.connector_password not in message


def test_the_password_comes_from_the_secret_the_configuration_names(
    groups: Groups, tmp_path: Path
) -> None:
    config = groups.config()  # password = "env:LDAP_PASSWORD"
    with pytest.raises(SecretUnavailable):
        LdapConnector.from_config(config, secrets_dir=None, environ={})
    adapter = LdapConnector.from_config(
        config, secrets_dir=None, environ={"LDAP_PASSWORD": groups.server.connector_password}
    )
    assert adapter.present()[groups.operators] == {groups.operators}
    (tmp_path / "ldap-password").write_text(groups.server.connector_password + "\n", "utf-8")
    assert isinstance(config.target, LdapTarget)
    from_file = replace(config, target=replace(config.target, password="file:ldap-password"))
    adapter = LdapConnector.from_config(from_file, secrets_dir=tmp_path, environ={})
    assert adapter.present()[groups.operators] == {groups.operators}


def test_ldaps_to_a_server_without_tls_is_unavailable_not_sent_in_clear(groups: Groups) -> None:
    config = groups.config(url=groups.server.url.replace("ldap://", "ldaps://"))
    adapter = groups.adapter(config)
    with pytest.raises(ConnectorUnavailable) as caught:
        adapter.present()
    assert caught.value.message.startswith("connector directory: cannot connect")
    assert groups.server.connector_password not in caught.value.message


def test_ldaps_refuses_a_certificate_no_trusted_authority_signed() -> None:
    with SlapdServer(tls=True) as server:
        groups = Groups(server, f"cn=operators,{GROUPS}", f"cn=readers,{GROUPS}")
        trusting = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(server.certificate))
        conn = ldap3.Connection(
            ldap3.Server(server.ldaps_url, tls=trusting, connect_timeout=2),
            CONNECTOR_DN,
            server.connector_password,
        )
        try:  # the port speaks TLS: a client that trusts the certificate binds
            assert conn.bind(), conn.result
        finally:
            conn.unbind()
        adapter = groups.adapter(groups.config(url=server.ldaps_url))
        with pytest.raises(ConnectorUnavailable) as caught:
            adapter.present()
    message = caught.value.message
    assert message.startswith("connector directory: cannot connect")
    assert "certificate" in message.lower()
    assert server.connector_password not in message
