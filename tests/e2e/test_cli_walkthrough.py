"""The README's walk-through, command for command, against a real demo server."""

from __future__ import annotations

from tests.e2e.conftest import Cli

MOVE = "Exchange\\New-MoveRequest"


def test_the_readme_walkthrough_from_the_command_line(cli: Cli) -> None:
    cli.login("alice@contoso.com")
    denied = cli.run("check", "--task", MOVE)
    assert denied.returncode == 3
    assert "denied: authorization_required" in denied.stdout

    asked = cli.json(
        "request",
        "new",
        "--task",
        MOVE,
        "--reason",
        "Attempting to fix the user mailbox error",
        "--duration-hours",
        "4",
    )
    assert asked["status"] == "pending"
    assert asked["requester"] == "alice@contoso.com"

    cli.sign_in("bob@contoso.com")
    pending = cli.run("request", "list", "--status", "pending")
    assert asked["id"] in pending.stdout
    approved = cli.json("request", "approve", asked["id"], "--comment", "Go ahead")
    assert approved["status"] == "approved"
    assert approved["reviews"][0]["approver"] == "bob@contoso.com"

    cli.sign_in("alice@contoso.com")
    allowed = cli.run("check", "--task", MOVE)
    assert allowed.returncode == 0, allowed.stderr
    assert "allowed: authorized" in allowed.stdout

    own = cli.run("request", "approve", asked["id"], "--comment", "me")
    assert own.returncode == 4
    assert "Self-approval is not allowed" in own.stderr

    role = cli.json(
        "request", "new", "--role", "Exchange\\Mailbox Search", "--reason", "eDiscovery case 12"
    )
    assert role["status"] == "approved"
    assert cli.run("check", "--task", "Search-Mailbox").returncode == 0
    active = cli.json("authorization", "list", "--active")
    assert {a["target"] for a in active} >= {MOVE, "Exchange\\Mailbox Search"}

    cli.sign_in("bob@contoso.com")
    revoked = cli.json(
        "authorization", "revoke", role["authorization_id"], "--comment", "case closed"
    )
    assert revoked["revoked_by"] == "bob@contoso.com"

    cli.sign_in("alice@contoso.com")
    after = cli.run("check", "--task", "Search-Mailbox")
    assert after.returncode == 3
    assert "task_not_held" in after.stdout

    cli.sign_in("admin@contoso.com")
    operations = {r["operation"] for r in cli.json("audit", "search", "--limit", "50")}
    assert {
        "New-ElevatedAccessRequest",
        "Approve-ElevatedAccessRequest",
        "Test-ElevatedAccess",
        "Revoke-ElevatedAccessAuthorization",
        "Sign-In",
    } <= operations
    verified = cli.json("audit", "verify")
    assert verified["ok"] is True


def test_json_output_is_one_document_and_lists_are_lists(cli: Cli) -> None:
    cli.sign_in("admin@contoso.com")
    policies = cli.json("policy", "list")
    assert isinstance(policies, list)
    assert {p["target"] for p in policies} >= {MOVE, "Exchange\\Mailbox Search"}
    assert set(policies[0]) >= {
        "id",
        "type",
        "target",
        "approval_type",
        "approver_group",
        "eligible",
        "approvals_required",
        "max_duration_hours",
        "require_ticket",
    }
    control = cli.json("control", "show")
    assert control["enabled"] is True
    assert control["default_approver_group"] == "pamapprovers"
    assert control["system_accounts"] == ["sys@contoso.com"]


def test_cli_errors_are_one_line_with_the_documented_exit_code(cli: Cli, tmp_path: object) -> None:
    cli.sign_in("alice@contoso.com")
    usage = cli.run("request", "new", "--reason", "no target given")
    assert usage.returncode == 2
    unknown = cli.run("request", "show", "00000000-0000-0000-0000-000000000000")
    assert unknown.returncode == 1
    assert unknown.stderr.count("\n") == 1
    assert "Traceback" not in unknown.stderr
    forbidden = cli.run("control", "disable")
    assert forbidden.returncode == 4
    bad_token = cli.run("request", "list", token="jpt_not-a-real-token")
    assert bad_token.returncode == 4
    assert "not signed in" in bad_token.stderr
    down = cli.run("--help")
    assert down.returncode == 0


def test_an_unreachable_server_exits_5(cli: Cli) -> None:
    done = cli.run("request", "list", "--server", "http://127.0.0.1:9")
    assert done.returncode == 5
    assert "cannot reach" in done.stderr
