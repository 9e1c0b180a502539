"""Guests against a real demo server (contoso.com): created by their own address, printed and
returned under Entra's form, and found by their own address afterwards."""

from __future__ import annotations

from urllib.parse import quote

from tests.e2e.conftest import Cli, call, ok, problem, token_for


def test_a_guest_created_from_the_command_line_is_printed_and_found_by_either_name(
    cli: Cli,
) -> None:
    cli.sign_in("admin@contoso.com")
    made = cli.run("user", "create", "gus@fabrikam.com", "--kind", "guest")
    assert made.returncode == 0, made.stderr
    stored = "gus_fabrikam.com#EXT#@contoso.com"
    assert stored in made.stdout
    assert f"gus@fabrikam.com is stored as {stored}" in made.stdout

    joined = cli.json("group", "add-member", "helpdesk", "gus@fabrikam.com")
    assert stored in joined["members"]
    for typed in ("gus@fabrikam.com", stored):
        shown = cli.json("user", "show", typed)
        assert (shown["upn"], shown["email"], shown["kind"]) == (
            stored,
            "gus@fabrikam.com",
            "guest",
        )

    again = cli.run("user", "create", "gus@fabrikam.com", "--kind", "guest")
    assert again.returncode != 0
    assert "already exists" in again.stderr
    own = cli.run("user", "create", "gina@contoso.com", "--kind", "guest")
    assert own.returncode != 0
    assert "create a person" in own.stderr


def test_the_api_returns_the_stored_name_and_resolves_the_home_address(cli: Cli) -> None:
    token = token_for(cli.server, "admin@contoso.com")
    made = ok(
        call(
            cli.server, token, "POST", "/users", json={"upn": "gail@fabrikam.com", "kind": "guest"}
        ),
        201,
    )
    assert made["upn"] == "gail_fabrikam.com#EXT#@contoso.com"
    assert made["email"] == "gail@fabrikam.com"
    for typed in ("gail@fabrikam.com", made["upn"]):
        shown = ok(call(cli.server, token, "GET", f"/users/{quote(typed, safe='')}"))
        assert shown["id"] == made["id"]
    squat = call(
        cli.server,
        token,
        "POST",
        "/users",
        json={"upn": "gail_fabrikam.com#EXT#@northwind.com", "kind": "guest"},
    )
    assert "not a domain of this organization" in problem(squat, 422)["detail"]
