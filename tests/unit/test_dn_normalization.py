"""normalize_dn: the one form an LDAP connector compares DNs in, so that the groups and members
its file names and those the directory returns meet however either was spelled (properties by
hypothesis, and the cases that matter spelled out)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jitpam.domain.connectors import escape_rdn_value, normalize_dn, parse_connector, split_dn
from jitpam.domain.errors import ConnectorInvalid, InvalidInput

# caseIgnore types by some of their names and OIDs, and types normalize_dn does not know
KNOWN = ["cn", "commonName", "2.5.4.3", "uid", "userid", "ou", "dc", "domainComponent", "o", "mail"]
UNKNOWN = ["employeeNumber", "x-jitpam-id", "1.3.6.1.4.1.99999.1"]
VALUES = st.text(
    st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=12,
)


def hex_escaped(value: str) -> str:
    """``value`` with every byte written as a ``\\xx`` pair: a spelling RFC 4514 allows."""
    return "".join(f"\\{b:02X}" for b in value.encode("utf-8"))


def any_case(draw: st.DrawFn, name: str) -> str:
    return "".join(c.upper() if draw(st.booleans()) else c.lower() for c in name)


@st.composite
def dns(draw: st.DrawFn) -> tuple[str, str]:
    """A DN written twice, two spellings of the same name: escaped as jitpam writes it, and
    with other capitals in the types, spaces around the separators and hex pairs for values."""
    plain, other = [], []
    for _ in range(draw(st.integers(1, 4))):
        rdn_plain, rdn_other = [], []
        kinds = draw(st.lists(st.sampled_from(KNOWN + UNKNOWN), min_size=1, max_size=2))
        for kind in kinds:
            value = draw(VALUES)
            rdn_plain.append(f"{kind}={escape_rdn_value(value)}")
            rdn_other.append(f" {any_case(draw, kind)} = {hex_escaped(value)} ")
        plain.append("+".join(rdn_plain))
        other.append("+".join(reversed(rdn_other)))
    return ",".join(plain), ",".join(other)


@given(dns())
def test_two_spellings_of_one_dn_normalize_alike_and_normalizing_again_changes_nothing(
    spellings: tuple[str, str],
) -> None:
    plain, other = spellings
    normalized = normalize_dn(plain)
    assert normalize_dn(other) == normalized
    assert normalize_dn(normalized) == normalized
    # the same RDNs, each with as many values: no value breaks out of its place
    assert [len(rdn) for rdn in split_dn(normalized) or []] == [
        len(rdn) for rdn in split_dn(plain) or []
    ]


@given(VALUES, VALUES)
def test_values_of_a_type_compared_exactly_stay_apart(a: str, b: str) -> None:
    same = normalize_dn(f"employeeNumber={escape_rdn_value(a)},dc=test") == normalize_dn(
        f"employeeNumber={escape_rdn_value(b)},dc=test"
    )
    assert same == (a == b)


@given(VALUES)
def test_a_value_normalizes_into_one_rdn_value_of_the_right_type(value: str) -> None:
    normalized = normalize_dn(f"UID={escape_rdn_value(value)},OU=People,DC=Example,DC=Test")
    rdns = split_dn(normalized)
    assert rdns is not None
    assert len(rdns) == 4
    [(kind, _)] = rdns[0]
    assert kind == "uid"
    assert normalized.endswith(",ou=people,dc=example,dc=test")


@pytest.mark.parametrize(
    ("dn", "normalized"),
    [
        ("CN=Operators, OU=Groups,DC=example,DC=test", "cn=operators,ou=groups,dc=example,dc=test"),
        ("cn = Operators , ou = groups", "cn=operators,ou=groups"),
        ("commonName=Ops,2.5.4.11=Groups,domainComponent=Test", "cn=ops,ou=groups,dc=test"),
        ("userid=Bob,0.9.2342.19200300.100.1.25=test", "uid=bob,dc=test"),
        ("cn=  Ada   Lovelace ,dc=test", "cn=ada lovelace,dc=test"),
        ("cn=Ada\u00a0Lovelace,dc=test", "cn=ada lovelace,dc=test"),  # NBSP is a space
        ("employeeNumber=\u00a0,dc=test", "employeenumber=\u00a0,dc=test"),  # a value
        ("uid=\\ bob\\ ,dc=test", "uid=bob,dc=test"),  # as the directory matches it
        ("uid=\\20bob\\20,dc=test", "uid=bob,dc=test"),
        ("cn=Zo\\C3\\AB,dc=test", "cn=zoë,dc=test"),
        ("cn=ZOË,dc=test", "cn=zoë,dc=test"),
        ("cn=Stra\\C3\\9Fe,dc=test", "cn=strasse,dc=test"),  # full case folding
        ("cn=\uff46\uff55\uff4c\uff4c,dc=test", "cn=full,dc=test"),  # NFKC
        ("uid=a\\2Cb\\2bc,dc=test", "uid=a\\,b\\+c,dc=test"),
        ("uid=x\\=y,dc=test", "uid=x\\=y,dc=test"),
        ("uid=\\#1,dc=test", "uid=\\#1,dc=test"),
        ("uid=b+cn=A,dc=test", "cn=a+uid=b,dc=test"),  # a multi-valued RDN's parts sorted
        ("employeeNumber=AbC,dc=test", "employeenumber=AbC,dc=test"),  # compared exactly
        ("employeeNumber=\\ AbC\\ ,dc=test", "employeenumber=\\ AbC\\ ,dc=test"),
        ("cn=#04034142,dc=test", "cn=#04034142,dc=test"),  # BER, kept
        ("cn=#0403ABCD,dc=test", "cn=#0403abcd,dc=test"),
        ("cn=\\ \\ ,dc=test", "cn=\\ ,dc=test"),  # white space only: one space
    ],
)
def test_normalized_forms(dn: str, normalized: str) -> None:
    assert normalize_dn(dn) == normalized


@pytest.mark.parametrize(
    "dn",
    [
        "",
        "cn",
        "cn=",
        "cn=a,,dc=b",
        "cn=a\\00b",
        "cn=\\ff",
        "cn=#zz",
        "cn=#",
        "cn=#01 02",
        "cn=\ud800",
    ],
)
def test_what_is_not_a_dn_is_refused(dn: str) -> None:
    with pytest.raises(InvalidInput):
        normalize_dn(dn)


LDAP = """\
kind = "ldap"
url = "ldaps://ldap.example.test"
bind_dn = "CN=jitpam, OU=Services,DC=example,DC=test"
password = "env:LDAP_PASSWORD"
user_dn = "UID={local}, OU=People,DC=example,DC=test"
placeholder_member = "CN=Nobody,DC=example,DC=test"

[[bindings]]
role = "Data\\\\Operators"
group_dn = "CN=Operators, OU=Groups,DC=example,DC=test"
"""


def test_a_connector_names_its_groups_placeholder_and_members_normalized() -> None:
    config = parse_connector(LDAP, source="/x/contoso/directory.toml")
    group = "cn=operators,ou=groups,dc=example,dc=test"
    assert config.targets == {group}
    assert config.protected(group) == {"cn=nobody,dc=example,dc=test"}
    assert config.member_for("Bob@contoso.com") == "uid=bob,ou=people,dc=example,dc=test"
    assert config.member_for(" bob @contoso.com") == "uid=bob,ou=people,dc=example,dc=test"
    assert (
        config.member_for('a,b+c"d\\e<f>g;h=i#j@contoso.com')
        == 'uid=a\\,b\\+c\\"d\\\\e\\<f\\>g\\;h\\=i#j,ou=people,dc=example,dc=test'
    )


def test_one_group_bound_twice_in_two_spellings_is_a_repeated_binding() -> None:
    twice = LDAP + (
        '\n[[bindings]]\nrole = "Data\\\\Operators"\n'
        'group_dn = "cn=operators,ou=groups,dc=example,dc=test"\n'
    )
    with pytest.raises(ConnectorInvalid) as caught:
        parse_connector(twice, source="/x/contoso/directory.toml")
    assert any("repeats an earlier binding" in p for p in caught.value.problems)


def test_no_user_maps_to_the_bind_account_or_to_no_name() -> None:
    config = parse_connector(
        LDAP.replace("UID={local}, OU=People", "cn={local},OU=Services"),
        source="/x/contoso/directory.toml",
    )
    with pytest.raises(InvalidInput, match="own bind DN"):
        config.member_for("JITPAM@contoso.com")
    with pytest.raises(InvalidInput, match="not a DN"):
        config.member_for("@contoso.com")
