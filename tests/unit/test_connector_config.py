"""Connector configuration files: both kinds parse; every problem names file, line and field;
secrets are references only; the user mapping and RFC 4514 escaping."""

from __future__ import annotations

import pytest

from jitpam.domain.connectors import (
    Bound,
    BoundKind,
    ConnectorKind,
    LdapTarget,
    PostgresqlTarget,
    Reconcile,
    escape_rdn_value,
    parse_connector,
    split_dn,
)
from jitpam.domain.errors import ConnectorInvalid, InvalidInput
from jitpam.domain.names import QualifiedName

SOURCE = "/etc/jitpam/connectors/contoso/analytics.toml"

POSTGRESQL = """\
kind = "postgresql"
dsn = "env:ANALYTICS_DSN"
login = "{local_lower}"
terminate_sessions = false
reconcile = "repair"
max_failures_before_alert = 3

[[bindings]]
role = "Data\\\\Analytics Admin"
grant = "analytics_admin"

[[bindings]]
role_group = "Data\\\\Operators"
grant = "analytics_admin"
"""

LDAP = """\
kind = "ldap"
url = "ldaps://ldap.example.test:636"
bind_dn = "cn=jitpam,ou=services,dc=example,dc=test"
password = "file:ldap-password"
user_dn = "uid={local},ou=people,dc=example,dc=test"

[[bindings]]
role = "Data\\\\Analytics Admin"
group_dn = "cn=analysts,ou=groups,dc=example,dc=test"
"""


def line_of(text: str, snippet: str) -> int:
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if snippet in line]
    assert hits, snippet
    return hits[0]


def problems_of(text: str, source: str = SOURCE) -> list[str]:
    with pytest.raises(ConnectorInvalid) as caught:
        parse_connector(text, source=source)
    assert caught.value.code == "connector_invalid"
    return caught.value.problems


def has(problems: list[str], line: int, field: str, words: str = "") -> bool:
    start = f"{SOURCE}:{line}: {field}: "
    return any(p.startswith(start) and words in p for p in problems)


def test_a_postgresql_connector() -> None:
    config = parse_connector(POSTGRESQL, source=SOURCE)
    assert config.name == "analytics"
    assert config.kind is ConnectorKind.POSTGRESQL
    assert config.target == PostgresqlTarget("env:ANALYTICS_DSN", "{local_lower}", False)
    assert config.reconcile is Reconcile.REPAIR
    assert config.max_failures_before_alert == 3
    assert [(b.bound.kind, str(b.bound.name), b.target) for b in config.bindings] == [
        (BoundKind.ROLE, "Data\\Analytics Admin", "analytics_admin"),
        (BoundKind.ROLE_GROUP, "Data\\Operators", "analytics_admin"),
    ]
    assert config.member_for("Alice.Smith@contoso.com") == "alice.smith"
    assert config.protected("analytics_admin") == frozenset()


def test_an_ldap_connector_and_its_defaults() -> None:
    config = parse_connector(LDAP, source="/x/contoso/directory.toml")
    assert config.name == "directory"
    assert config.kind is ConnectorKind.LDAP
    assert isinstance(config.target, LdapTarget)
    assert config.target.password == "file:ldap-password"
    assert config.reconcile is Reconcile.REPORT
    assert config.max_failures_before_alert == 5
    group = "cn=analysts,ou=groups,dc=example,dc=test"
    assert config.targets == {group}
    assert config.protected(group) == {group}  # the placeholder is the group's own DN
    assert config.member_for("bob@contoso.com") == "uid=bob,ou=people,dc=example,dc=test"
    other = parse_connector(
        LDAP.replace(
            "[[bindings]]", 'placeholder_member = "cn=nobody,dc=example,dc=test"\n\n[[bindings]]'
        ),
        source=SOURCE,
    )
    assert other.protected(group) == {"cn=nobody,dc=example,dc=test"}


def test_postgresql_defaults_terminate_sessions() -> None:
    text = POSTGRESQL.replace("terminate_sessions = false\n", "")
    config = parse_connector(text, source=SOURCE)
    assert isinstance(config.target, PostgresqlTarget)
    assert config.target.terminate_sessions is True


def test_needed_counts_every_binding_to_a_target() -> None:
    config = parse_connector(POSTGRESQL, source=SOURCE)
    admin = Bound(BoundKind.ROLE, QualifiedName("data", "analytics admin"))  # case ignored
    operators = Bound(BoundKind.ROLE_GROUP, QualifiedName("Data", "Operators"))
    needed = config.needed({admin: frozenset({"alice"}), operators: frozenset({"alice", "bob"})})
    assert needed == {"analytics_admin": {"alice", "bob"}}
    assert config.needed({}) == {"analytics_admin": frozenset()}
    # a role named like the role group is a different thing
    as_role = Bound(BoundKind.ROLE, QualifiedName("Data", "Operators"))
    assert config.needed({as_role: frozenset({"carol"})}) == {"analytics_admin": frozenset()}


@pytest.mark.parametrize(
    ("text", "snippet", "field", "words"),
    [
        (
            POSTGRESQL.replace('"env:ANALYTICS_DSN"', '"postgresql://u:pw@db/x"'),
            "dsn =",
            "dsn",
            "never written here",
        ),
        (
            POSTGRESQL.replace('"env:ANALYTICS_DSN"', '"env:JITPAM_DATABASE_URL"'),
            "dsn =",
            "dsn",
            "JITPAM_",
        ),
        (
            LDAP.replace('"file:ldap-password"', '"hunter2"'),
            "password =",
            "password",
            "never written here",
        ),
        (LDAP.replace('"file:ldap-password"', "42"), "password =", "password", "env:NAME"),
    ],
)
def test_secrets_are_references_never_values(
    text: str, snippet: str, field: str, words: str
) -> None:
    problems = problems_of(text)
    assert has(problems, line_of(text, snippet), field, words), problems
    assert not any("hunter2" in p or "pw@" in p for p in problems)  # never repeated either


def test_every_problem_with_file_line_and_field() -> None:
    text = """\
kind = "postgresql"
name = "other"
dsn = "env:DSN"
login = "{first_name}"
terminate_sessions = "yes"
reconcile = "fix"
max_failures_before_alert = 0
url = "ldap://x"

[[bindings]]
role = "Data\\\\Admin"
role_group = "Data\\\\Ops"
grant = "public"

[[bindings]]
role = "NoScope"
grant = "reader"
colour = "blue"

[[bindings]]
grant = "reader"
"""
    problems = problems_of(text)
    expected = [
        (2, "name", "named by its file"),
        (4, "login", "{first_name}"),
        (5, "terminate_sessions", "true or false"),
        (6, "reconcile", '"report" or "repair"'),
        (7, "max_failures_before_alert", "from 1 to"),
        (8, "url", "not a field"),
        (11, "bindings[1].role", "exactly one of role and role_group"),
        (13, "bindings[1].grant", "reserves"),
        (16, "bindings[2].role", "Scope\\Name"),
        (18, "bindings[2].colour", "not a field of a binding"),
        (20, "bindings[3].role", "exactly one"),
    ]
    for line, field, words in expected:
        assert has(problems, line, field, words), (line, field, problems)
    assert len(problems) == len(expected), problems


def test_ldap_problems() -> None:
    text = """\
kind = "ldap"
url = "https://ldap.example.test"
bind_dn = "not a dn"
password = "env:LDAP_PASSWORD"
user_dn = "{local},ou=people,dc=example,dc=test"
placeholder_member = "cn=,dc=x"
terminate_sessions = true

[[bindings]]
role = "Data\\\\Admin"
group_dn = "cn=admins,dc=example,dc=test"
grant = "admins"

[[bindings]]
role = "Data\\\\Admin"
group_dn = "cn=admins,dc=example,dc=test"
"""
    problems = problems_of(text)
    expected = [
        (2, "url", "ldap://"),
        (3, "bind_dn", "must be a DN"),
        (5, "user_dn", "placeholders stand in values"),
        (6, "placeholder_member", "must be a DN"),
        (7, "terminate_sessions", "not a field"),
        (12, "bindings[1].grant", "not a field of a binding (kind = ldap)"),
        (14, "bindings[2]", "repeats an earlier binding"),
    ]
    for line, field, words in expected:
        assert has(problems, line, field, words), (line, field, problems)
    assert len(problems) == len(expected), problems


@pytest.mark.parametrize(
    ("replace", "by", "field", "words"),
    [
        ('kind = "ldap"\n', 'kind = "ad"\n', "kind", '"postgresql" or "ldap"'),
        ('kind = "ldap"\n', "", "kind", '"postgresql" or "ldap"'),
        ('user_dn = "uid={local},', 'user_dn = "uid=fixed,', "user_dn", "each user needs a name"),
        (
            'user_dn = "uid={local},',
            'user_dn = "uid={local}}x,',
            "user_dn",
            "outside a placeholder",
        ),
        ('password = "file:ldap-password"\n', "", "password", "is required"),
        ("[[bindings]]", "[[nothing]]", "bindings", "at least one"),
    ],
)
def test_ldap_fields_one_at_a_time(replace: str, by: str, field: str, words: str) -> None:
    text = LDAP.replace(replace, by)
    problems = problems_of(text)
    assert any(f": {field}: " in p and words in p for p in problems), problems


def test_a_file_name_that_cannot_name_a_connector() -> None:
    problems = problems_of(POSTGRESQL, source="/x/contoso/my connector.toml")
    assert problems == [
        "/x/contoso/my connector.toml:1: name: the file's name 'my connector' is the "
        "connector's: letters, digits, '.', '_' or '-', up to 64"
    ]


def test_not_toml() -> None:
    problems = problems_of('kind = "ldap\n')
    assert len(problems) == 1
    assert problems[0].startswith(f"{SOURCE}: not valid TOML")


def test_a_login_template_needs_a_placeholder() -> None:
    problems = problems_of(POSTGRESQL.replace('"{local_lower}"', '"shared_admin"'))
    assert has(problems, 3, "login", "each user needs a name")


# -- the mapping ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "upn", "login"),
    [
        ("{local}", "Alice@contoso.com", "Alice"),
        ("{local_lower}", "Alice@contoso.com", "alice"),
        ("{upn}", "Alice@contoso.com", "Alice@contoso.com"),
        ("ext_{local_lower}", "gus_fabrikam.com#EXT#@contoso.com", "ext_gus_fabrikam.com#ext#"),
    ],
)
def test_postgresql_logins(template: str, upn: str, login: str) -> None:
    config = parse_connector(POSTGRESQL.replace('"{local_lower}"', f'"{template}"'), source=SOURCE)
    assert config.member_for(upn) == login


@pytest.mark.parametrize(
    ("template", "upn", "words"),
    [
        ("{local}", "x" * 64 + "@contoso.com", "longer than 63 bytes"),
        ("{local}", "é" * 32 + "@contoso.com", "longer than 63 bytes"),  # 64 bytes in UTF-8
        ("{local}", "public@contoso.com", "reserves"),
        ("{local}", "Current_User@contoso.com", "reserves"),
        ("{local}", "pg_monitor@contoso.com", "pg_"),
        ("{local}", "analytics_admin@contoso.com", "roles this connector grants"),
        ("{local}", "tab\there@contoso.com", "control character"),
        ("{local}", "@contoso.com", "is empty"),
    ],
)
def test_the_mapping_refuses_a_login_postgresql_cannot_hold(
    template: str, upn: str, words: str
) -> None:
    config = parse_connector(POSTGRESQL.replace('"{local_lower}"', f'"{template}"'), source=SOURCE)
    with pytest.raises(InvalidInput, match=words):
        config.member_for(upn)


@pytest.mark.parametrize(
    ("grant", "words"),
    [
        ("PUBLIC", "reserves"),
        ("x" * 64, "longer than 63 bytes"),
        ("", "is empty"),
        ("a\\u0007b", "control character"),
        ("7", "must be text"),
    ],
)
def test_a_grant_postgresql_cannot_take(grant: str, words: str) -> None:
    value = grant if grant == "7" else f'"{grant}"'
    text = POSTGRESQL.replace('grant = "analytics_admin"', f"grant = {value}", 1)
    problems = problems_of(text)
    assert has(problems, line_of(text, "grant = "), "bindings[1].grant", words), problems


def test_postgresql_predefined_roles_may_be_granted() -> None:
    text = POSTGRESQL.replace('"analytics_admin"', '"pg_read_all_data"', 1)
    config = parse_connector(text, source=SOURCE)
    assert config.bindings[0].target == "pg_read_all_data"


def test_63_bytes_is_still_a_login() -> None:
    config = parse_connector(POSTGRESQL, source=SOURCE)
    assert config.member_for("x" * 63 + "@contoso.com") == "x" * 63


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        ("plain", "plain"),
        ("a,b", "a\\,b"),
        ("a+b", "a\\+b"),
        ('say "hi"', 'say \\"hi\\"'),
        ("back\\slash", "back\\\\slash"),
        ("<tag>", "\\<tag\\>"),
        ("a;b", "a\\;b"),
        ("a=b", "a\\=b"),
        ("#first", "\\#first"),
        ("mid#dle", "mid#dle"),
        (" lead", "\\ lead"),
        ("trail ", "trail\\ "),
        (" ", "\\ "),
        ("in side", "in side"),
        ("line\nbreak", "line\\0abreak"),
        ("gus_fabrikam.com#EXT#", "gus_fabrikam.com#EXT#"),
        ("Zoë", "Zoë"),
    ],
)
def test_rdn_value_escaping(value: str, escaped: str) -> None:
    assert escape_rdn_value(value) == escaped
    # the escaped value stands as exactly one attribute value of one RDN
    rdns = split_dn(f"uid={escaped},dc=example,dc=test")
    assert rdns is not None
    assert rdns[0] == [("uid", escaped)]
    assert len(rdns) == 3


def test_a_nul_never_reaches_a_dn() -> None:
    with pytest.raises(InvalidInput, match="NUL"):
        escape_rdn_value("a\x00b")
    config = parse_connector(LDAP, source=SOURCE)
    with pytest.raises(InvalidInput, match="NUL"):
        config.member_for("a\x00b@contoso.com")


def test_an_ldap_user_dn_cannot_be_steered_by_the_user_name() -> None:
    config = parse_connector(LDAP, source=SOURCE)
    dn = config.member_for("x,ou=admins+cn=root@contoso.com")
    assert dn == "uid=x\\,ou\\=admins\\+cn\\=root,ou=people,dc=example,dc=test"
    rdns = split_dn(dn)
    assert rdns is not None
    assert len(rdns) == 4
    assert len(rdns[0]) == 1


@pytest.mark.parametrize(
    "dn", ["", "cn", "=x", "cn=", "cn=a,", "cn=a,,dc=b", "cn=a\\", "c n=a", "cn=a+", "cn=a\x00"]
)
def test_split_dn_refuses_what_is_not_a_dn(dn: str) -> None:
    assert split_dn(dn) is None


def test_split_dn_reads_multivalued_rdns_and_oids() -> None:
    assert split_dn("cn=a+uid=b,2.5.4.11=x") == [[("cn", "a"), ("uid", "b")], [("2.5.4.11", "x")]]


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("ldaps://ldap.example.test", True),
        ("ldaps://ldap.example.test:636", True),
        ("ldap://127.0.0.1:3890", True),
        ("ldap://localhost", True),
        ("ldap://[::1]:389", True),
        ("ldap://ldap.example.test", False),
        ("ldap://10.0.0.5:389", False),
        ("ldap://127.0.0.1.example.test", False),
    ],
)
def test_a_bind_password_never_crosses_the_network_in_clear(url: str, allowed: bool) -> None:
    text = (
        f'kind = "ldap"\nurl = "{url}"\nbind_dn = "cn=jitpam,dc=example,dc=test"\n'
        'password = "env:P"\nuser_dn = "uid={local},dc=example,dc=test"\n'
        '[[bindings]]\nrole = "Data\\\\Ops"\ngroup_dn = "cn=ops,dc=example,dc=test"\n'
    )
    problems = problems_of(text) if not allowed else []
    if allowed:
        parse_connector(text, source="/x/contoso/directory.toml")
    else:
        assert has(problems, 2, "url", "must be ldaps://"), problems
