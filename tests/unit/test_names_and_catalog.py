"""Scope\\Name names and task catalogs.

Product rules (PRODUCT.md, "Directory and RBAC"): tasks, roles and role groups are named
``Scope\\Name``; a bare name is accepted where it is unambiguous; a realistic Exchange catalog ships
as data; admins import their own workloads from TOML files, and a broken file is reported with its
file name, line and field.
"""

from __future__ import annotations

import pytest

from jitpam.catalogs import shipped_catalog
from jitpam.domain.catalog import Catalog, parse_catalog
from jitpam.domain.errors import AmbiguousName, CatalogInvalid, InvalidInput, NotFound
from jitpam.domain.names import QualifiedName, resolve_name


def load(name: str) -> Catalog:
    return parse_catalog(
        shipped_catalog(name), source=f"{name}.toml", allow_builtin=name == "jitpam"
    )


EXCHANGE = load("exchange")
JITPAM = load("jitpam")
ROLES = [r.name for r in EXCHANGE.roles] + [r.name for r in JITPAM.roles]
TASKS = list(EXCHANGE.tasks) + list(JITPAM.tasks)


def role(catalog: Catalog, name: str) -> set[str]:
    """The task names the named role holds."""
    (found,) = [r for r in catalog.roles if r.name.name == name]
    assert all(t.scope == catalog.scope for t in found.tasks)
    return {t.name for t in found.tasks}


def role_group(catalog: Catalog, name: str) -> set[str]:
    (found,) = [g for g in catalog.role_groups if g.name.name == name]
    return {r.name for r in found.roles}


# --- names --------------------------------------------------------------------------------------


def test_scoped_name_resolves_exactly() -> None:
    found = resolve_name("Exchange\\Role Management", ROLES, kind="role")
    assert found == QualifiedName("Exchange", "Role Management")
    assert str(found) == "Exchange\\Role Management"


def test_scoped_name_picks_the_scope_asked_for() -> None:
    found = resolve_name("jitpam\\Role Management", ROLES, kind="role")
    assert found == QualifiedName("jitpam", "Role Management")


def test_bare_name_is_accepted_when_only_one_scope_has_it() -> None:
    assert resolve_name("New-MoveRequest", TASKS, kind="task") == QualifiedName(
        "Exchange", "New-MoveRequest"
    )
    assert resolve_name("Audit Reader", ROLES, kind="role") == QualifiedName(
        "jitpam", "Audit Reader"
    )


def test_ambiguous_bare_name_is_refused_listing_every_match() -> None:
    with pytest.raises(AmbiguousName) as refused:
        resolve_name("Role Management", ROLES, kind="role")
    message = refused.value.message
    assert "'Exchange\\Role Management'" in message
    assert "'jitpam\\Role Management'" in message
    assert message.startswith("role name 'Role Management' is ambiguous")


def test_ambiguous_bare_task_name_is_refused_too() -> None:
    with pytest.raises(AmbiguousName, match="Enable-ElevatedAccessControl"):
        resolve_name("enable-elevatedaccesscontrol", TASKS, kind="task")


@pytest.mark.parametrize(
    "text",
    ["Exchange\\Nope", "Nope", "jitpam\\Move Mailboxes", "Teams\\Move Mailboxes"],
)
def test_unknown_name_is_refused_as_not_found(text: str) -> None:
    with pytest.raises(NotFound) as refused:
        resolve_name(text, ROLES, kind="role")
    assert refused.value.message == f"no role named {text!r}"


@pytest.mark.parametrize(
    "text",
    ["exchange\\move mailboxes", "EXCHANGE\\MOVE MAILBOXES", "move MAILBOXES", " Move Mailboxes "],
)
def test_names_are_matched_without_case_and_come_back_as_written_in_the_catalog(
    text: str,
) -> None:
    found = resolve_name(text, ROLES, kind="role")
    assert found == QualifiedName("Exchange", "Move Mailboxes")


def test_case_insensitive_keys_make_two_spellings_one_name() -> None:
    assert QualifiedName("Exchange", "New-MoveRequest").key == (
        QualifiedName("EXCHANGE", "new-moverequest").key
    )


@pytest.mark.parametrize("text", ["", "   ", "\\Move Mailboxes", "Exchange\\", "Exchange\\a\\b"])
def test_malformed_names_are_refused_as_invalid(text: str) -> None:
    with pytest.raises(InvalidInput):
        resolve_name(text, ROLES, kind="role")


# --- the shipped catalogs -----------------------------------------------------------------------


def test_shipped_exchange_catalog_parses_into_the_exchange_scope() -> None:
    assert EXCHANGE.scope == "Exchange"
    assert QualifiedName("Exchange", "New-MoveRequest") in EXCHANGE.tasks
    assert {str(r.name) for r in EXCHANGE.roles} >= {
        "Exchange\\Role Management",
        "Exchange\\Mail Recipients",
        "Exchange\\Mail Recipient Creation",
        "Exchange\\Move Mailboxes",
        "Exchange\\Mailbox Search",
    }
    assert {str(g.name) for g in EXCHANGE.role_groups} >= {
        "Exchange\\Organization Management",
        "Exchange\\Recipient Management",
    }


def test_move_mailboxes_role_holds_new_moverequest() -> None:
    assert "New-MoveRequest" in role(EXCHANGE, "Move Mailboxes")
    assert "Search-Mailbox" not in role(EXCHANGE, "Move Mailboxes")


def test_mailbox_search_role_holds_search_mailbox() -> None:
    assert "Search-Mailbox" in role(EXCHANGE, "Mailbox Search")
    assert "New-MoveRequest" not in role(EXCHANGE, "Mailbox Search")


def test_role_management_holds_the_privileged_access_cmdlets() -> None:
    assert {"Enable-ElevatedAccessControl", "Disable-ElevatedAccessControl"} <= role(
        EXCHANGE, "Role Management"
    )


def test_organization_management_includes_role_management() -> None:
    assert "Role Management" in role_group(EXCHANGE, "Organization Management")


def test_recipient_management_includes_mail_recipients_but_not_role_management() -> None:
    members = role_group(EXCHANGE, "Recipient Management")
    assert "Mail Recipients" in members
    assert "Role Management" not in members


def test_discovery_management_is_the_only_group_that_can_search_mailboxes() -> None:
    holders = {
        g.name.name
        for g in EXCHANGE.role_groups
        if "Mailbox Search" in role_group(EXCHANGE, g.name.name)
    }
    assert holders == {"Discovery Management"}


def test_every_role_of_the_shipped_catalog_holds_at_least_one_task() -> None:
    assert all(r.tasks for r in EXCHANGE.roles)
    assert all(r.roles for r in EXCHANGE.role_groups)


def test_shipped_jitpam_catalog_is_built_in_and_gives_global_administrator_every_role() -> None:
    """Every role but the operator's Lockbox Requester, which is assigned on its own (an
    organization's administrators are not its engineers at the customers), and Directory Sync,
    the identity provider's application account's (administrators change SCIM's users in the
    identity provider)."""
    assert JITPAM.scope == "jitpam"
    assert role_group(JITPAM, "Global Administrator") == {
        "Role Management",
        "Audit Reader",
        "Access Checker",
        "Customer Lockbox Access Approver",
        "Application Installer",
    }
    assert {r.name.name for r in JITPAM.roles} - role_group(JITPAM, "Global Administrator") == {
        "Lockbox Requester",
        "Directory Sync",
    }
    assert role(JITPAM, "Directory Sync") == {"Sync-Directory"}
    assert "Disable-ElevatedAccessControl" in role(JITPAM, "Role Management")


def test_only_the_shipped_catalogs_are_available_by_name() -> None:
    with pytest.raises(KeyError):
        shipped_catalog("teams")


# --- invalid catalogs: file, line and field -----------------------------------------------------

VALID = """\
scope = "Contoso"
description = "Contoso's line-of-business app"

[tasks]
"Export-Payroll" = "Export the payroll"
"Approve-Invoice" = "Approve an invoice"

[[roles]]
name = "Payroll"
tasks = ["Export-Payroll"]

[[role_groups]]
name = "Finance"
roles = ["Payroll"]
"""


def problems_of(text: str, source: str = "contoso.toml") -> list[str]:
    with pytest.raises(CatalogInvalid) as refused:
        parse_catalog(text, source=source)
    return refused.value.problems


def test_a_valid_custom_catalog_parses_with_names_in_its_scope() -> None:
    catalog = parse_catalog(VALID, source="contoso.toml")
    assert catalog.scope == "Contoso"
    assert set(catalog.tasks) == {
        QualifiedName("Contoso", "Export-Payroll"),
        QualifiedName("Contoso", "Approve-Invoice"),
    }
    (payroll,) = catalog.roles
    assert payroll.tasks == (QualifiedName("Contoso", "Export-Payroll"),)
    (finance,) = catalog.role_groups
    assert finance.roles == (QualifiedName("Contoso", "Payroll"),)


def test_a_role_holding_an_unknown_task_is_reported_with_line_and_field() -> None:
    text = VALID.replace('tasks = ["Export-Payroll"]', 'tasks = ["Export-Payroll", "Pay-Myself"]')
    assert problems_of(text) == [
        "contoso.toml, line 10, field roles[0].tasks: unknown task 'Pay-Myself'"
    ]


def test_a_role_group_holding_an_unknown_role_is_reported_with_line_and_field() -> None:
    text = VALID.replace('roles = ["Payroll"]', 'roles = ["Payroll", "Treasury"]')
    assert problems_of(text) == [
        "contoso.toml, line 14, field role_groups[0].roles: unknown role 'Treasury'"
    ]


def test_an_unknown_top_level_field_is_reported_with_its_line() -> None:
    text = VALID.replace('description = "', 'owner = "bob"\ndescription = "')
    assert problems_of(text) == ["contoso.toml, line 2, field owner: unknown field"]


def test_an_unknown_field_in_a_role_is_reported_with_its_line() -> None:
    text = VALID.replace('name = "Payroll"\n', 'name = "Payroll"\ncolour = "red"\n')
    assert problems_of(text) == ["contoso.toml, line 10, field roles[0].colour: unknown field"]


def test_a_role_defined_twice_is_reported_at_the_second_definition() -> None:
    text = VALID.replace(
        "[[role_groups]]",
        '[[roles]]\nname = "PAYROLL"\ntasks = ["Approve-Invoice"]\n\n[[role_groups]]',
    )
    assert problems_of(text) == [
        "contoso.toml, line 13, field roles[1].name: 'PAYROLL' is defined twice"
    ]


def test_a_missing_scope_is_reported() -> None:
    text = VALID.replace('scope = "Contoso"\n', "")
    problems = problems_of(text)
    assert problems == [
        "contoso.toml, line 1, field scope: a scope name such as 'Exchange' is required"
    ]


@pytest.mark.parametrize("scope", ['"jitpam"', '"JITPAM"'])
def test_importing_the_built_in_jitpam_scope_is_refused(scope: str) -> None:
    text = VALID.replace('scope = "Contoso"', f"scope = {scope}")
    assert problems_of(text) == [
        "contoso.toml, line 1, field scope: the 'jitpam' scope is built in and cannot be imported"
    ]


def test_the_shipped_jitpam_catalog_cannot_be_imported_as_a_workload() -> None:
    problems = problems_of(shipped_catalog("jitpam"), source="jitpam.toml")
    assert problems == [
        "jitpam.toml, line 3, field scope: the 'jitpam' scope is built in and cannot be imported"
    ]


def test_bad_toml_syntax_is_reported_with_file_and_line() -> None:
    text = VALID.replace("[[role_groups]]", "[[role_groups]")
    (problem,) = problems_of(text, source="broken.toml")
    assert problem.startswith("broken.toml: not valid TOML: ")
    assert "line 12" in problem


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    text = (
        VALID.replace('scope = "Contoso"\n', 'scope = "jitpam"\nowner = "bob"\n')
        .replace('tasks = ["Export-Payroll"]', 'tasks = ["Nope"]')
        .replace('roles = ["Payroll"]', 'roles = ["Nada"]')
    )
    problems = problems_of(text)
    assert len(problems) == 4
    assert [p.split(", field ")[1].split(":")[0] for p in problems] == [
        "owner",
        "scope",
        "roles[0].tasks",
        "role_groups[0].roles",
    ]
    assert str(CatalogInvalid(problems)) == "; ".join(problems)
