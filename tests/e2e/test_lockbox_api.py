"""Customer Lockbox through real ``jitpam serve`` processes, on each database: the operator is
designated on the server (``jitpam lockbox operator``), an operator's engineer files with the
CLI, the customer's administrator requires approval and approves with the API, the check over
HTTP allows, the customer revokes and the check refuses (on PostgreSQL, on a second server
process on the same database too); the engineer withdraws another with ``jitpam ps``
(``Set-AccessToCustomerDataRequest -ApprovalDecision Cancel``); bad input answers
problem+json; ``access`` filters the request listings by kind. And the README's Customer
Lockbox commands run as written.

One database of its own per run: designating the operator writes to every organization's chain.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from tests.e2e.conftest import (
    DEMO_PASSWORD,
    FAST,
    JITPAM,
    Cli,
    Server,
    call,
    ok,
    on_the_server,
    problem,
    shell,
    start_server,
    token_for,
)

CUSTOMER, OPERATOR = "contoso", "fabrikam"
ADMIN, ALICE, OPERATOR_ADMIN = "admin@contoso.com", "alice@contoso.com", "admin@fabrikam.com"
ENGINEER = "engineer@fabrikam.com"
REASON = "Mailbox database repair for the customer's support case"


def check(server: Server, token: str) -> dict[str, Any]:
    body = {"user": ENGINEER, "organization": CUSTOMER, "service": "Exchange"}
    doc: dict[str, Any] = ok(call(server, token, "POST", "/check", json=body))
    return doc


def set_up_operator(tmp: Path, db: str) -> tuple[Server, str]:
    """The operator organization and its designation, made on the server before it starts (a
    server command on SQLite wants the database to itself); then the demo server, and the
    operator's administrator's token."""
    made = on_the_server(db, "org", "create", OPERATOR, "--admin", OPERATOR_ADMIN)
    assert made["organization"] == OPERATOR
    assert on_the_server(db, "lockbox", "operator") == {"operator": None, "since": None}
    designated = on_the_server(db, "lockbox", "operator", OPERATOR)
    assert designated["operator"] == OPERATOR
    assert designated["since"]
    return start_server(tmp, "--demo", "--db", db), str(made["token"])


def test_a_lockbox_request_from_filing_to_check_to_revocation(
    fresh_database: str, tmp_path: Path
) -> None:
    server, operator_admin = set_up_operator(tmp_path, fresh_database)
    try:
        flow(server, operator_admin, fresh_database, tmp_path)
    finally:
        server.stop()


def flow(server: Server, operator_admin: str, db: str, tmp: Path) -> None:
    # The operator's administrator makes an engineer holding jitpam\Lockbox Requester.
    ok(call(server, operator_admin, "POST", "/users", json={"upn": ENGINEER}), 201)
    ok(
        call(
            server,
            operator_admin,
            "POST",
            "/assignments",
            json={"role": "jitpam\\Lockbox Requester", "user": ENGINEER},
        ),
        201,
    )
    set_pw = call(
        server,
        operator_admin,
        "PUT",
        f"/users/{ENGINEER}/password",
        json={"password": DEMO_PASSWORD},
    )
    assert set_pw.status_code in (200, 204), set_pw.text
    engineer = token_for(server, ENGINEER)
    admin = token_for(server, ADMIN)

    # The customer requires approval and lowers the cap to 3 hours, with the CLI.
    customer_cli = Cli(server, tmp / "customer", token=admin)
    settings = customer_cli.json(
        "config", "set", "--lockbox-approval-required", "--lockbox-max-hours", "3"
    )
    assert (settings["lockbox_approval_required"], settings["lockbox_max_hours"]) == (True, 3)
    shown = ok(call(server, admin, "GET", "/control"))
    assert (shown["lockbox_approval_required"], shown["lockbox_max_hours"]) == (True, 3)

    # The engineer files with the CLI: 4 hours is over the customer's cap; 2 hours is filed.
    engineer_cli = Cli(server, tmp / "engineer", token=engineer)
    too_long, filed_run = engineer_cli.run_all(
        ["lockbox", "request", CUSTOMER, "--service", "Exchange", "--reason", REASON,
         "--case", "EXSR123456", "--hours", "4"],
        ["lockbox", "request", CUSTOMER, "--service", "exchange", "--reason", REASON,
         "--case", "EXSR123456", "--hours", "2", "--json"],
    )  # fmt: skip
    assert too_long.returncode == 1, too_long.stderr
    assert "3 hours" in too_long.stderr
    assert filed_run.returncode == 0, filed_run.stderr
    filed = json.loads(filed_run.stdout)
    rid = filed["id"]
    assert filed["requested_access"] == "Customer Lockbox"
    assert (filed["status"], filed["customer"], filed["operator"]) == (
        "pending",
        CUSTOMER,
        OPERATOR,
    )
    assert (filed["service"], filed["requester"], filed["duration_hours"]) == (
        "Exchange",
        ENGINEER,
        2,
    )
    assert (filed["case_reference"], filed["valid_until"]) == ("EXSR123456", None)

    # Pending: no access yet.
    assert check(server, engineer) == {
        "allowed": False,
        "reason": "lockbox_request_required",
        "authorization_id": None,
        "exempt": False,
    }

    # Bad input is problem+json.
    unknown = {**_filing(), "customer": "nosuchcustomer"}
    assert problem(call(server, engineer, "POST", "/lockbox/requests", json=unknown), 404)
    five = {**_filing(), "duration_hours": 5}
    assert problem(call(server, engineer, "POST", "/lockbox/requests", json=five), 422)
    bad = call(
        server, admin, "POST", f"/lockbox/requests/{rid}/decision", json={"decision": "Maybe"}
    )
    assert "Approve" in problem(bad, 422)["detail"]
    both = {"task": "Exchange\\New-MoveRequest", "organization": CUSTOMER, "service": "Exchange"}
    problem(call(server, engineer, "POST", "/check", json=both), 422)
    problem(call(server, engineer, "GET", "/lockbox/requests/not-a-uuid"), 422)

    # The customer's administrator (Global Administrator holds the approver role) approves.
    approved = ok(
        call(
            server,
            admin,
            "POST",
            f"/lockbox/requests/{rid}/decision",
            json={"decision": "Approve", "comment": "go ahead", "service": "Exchange"},
        )
    )
    assert (approved["status"], approved["decided_by"]) == ("approved", ADMIN)
    assert approved["valid_until"] == approved["end"]
    assert approved["start"]
    seen_by_operator = ok(call(server, engineer, "GET", f"/lockbox/requests/{rid}"))
    assert seen_by_operator["status"] == "approved"
    allowed = check(server, engineer)
    assert (allowed["allowed"], allowed["reason"]) == (True, "lockbox_approved")
    assert allowed["authorization_id"] == rid
    by_cli = engineer_cli.run("check", "--organization", CUSTOMER, "--service", "Exchange")
    assert by_cli.returncode == 0, by_cli.stderr
    assert f"lockbox request {rid}" in by_cli.stdout

    access_filter(server, admin, engineer, rid, customer_cli)

    # On PostgreSQL (where several servers share a database) a second server process sees the
    # access, and then its end, at once.
    second = None
    if db.startswith("postgres"):
        (tmp / "second").mkdir()
        second = start_server(tmp / "second", "--db", db)
    try:
        if second is not None:
            assert check(second, engineer)["reason"] == "lockbox_approved"
        # The customer revokes; the check refuses here and on every other server process.
        revoked = ok(
            call(server, admin, "POST", f"/lockbox/requests/{rid}/revoke", json={"comment": "done"})
        )
        assert (revoked["status"], revoked["revoked_by"]) == ("revoked", ADMIN)
        assert revoked["revocation_comment"] == "done"
        for each in (server, second) if second is not None else (server,):
            refused = check(each, engineer)
            assert (refused["allowed"], refused["reason"]) == (False, "lockbox_request_required")
    finally:
        if second is not None:
            second.stop()
    listed = ok(call(server, admin, "GET", "/lockbox/requests", params={"status": "revoked"}))
    assert [r["id"] for r in listed["items"]] == [rid]

    # Every step is in the customer's chain.
    operations = {
        r["operation"]
        for r in ok(call(server, admin, "GET", "/audit", params={"limit": 200}))["items"]
    }
    assert {
        "Set-LockboxOperator",
        "New-AccessToCustomerDataRequest",
        "Set-AccessToCustomerDataRequest",
        "Revoke-AccessToCustomerDataRequest",
        "Test-AccessToCustomerData",
    } <= operations

    # The engineer withdraws a second request with jitpam ps, which spells it as M365 does.
    withdrawn = ok(call(server, engineer, "POST", "/lockbox/requests", json=_filing()), 201)["id"]
    lines = [
        f"Set-AccessToCustomerDataRequest -ApprovalDecision Cancel -RequestId {withdrawn} "
        "-ServiceName Exchange | select ApprovalStatus, DecidedBy",
        "Get-AccessToCustomerDataRequest -ApprovalStatus Canceled | select RequestId, TenantName",
    ]
    by_ps = engineer_cli.run("ps", stdin="\n".join(lines))
    assert by_ps.returncode == 0, by_ps.stderr
    assert by_ps.stdout.splitlines() == [
        "ApprovalStatus : Canceled",
        f"DecidedBy      : {ENGINEER}",
        "",
        f"RequestId  : {withdrawn}",
        f"TenantName : {CUSTOMER}",
    ]
    assert ok(call(server, admin, "GET", f"/lockbox/requests/{withdrawn}"))["status"] == "cancelled"


def _filing() -> dict[str, Any]:
    return {
        "customer": CUSTOMER,
        "service": "Exchange",
        "reason": REASON,
        "case_reference": "EXSR123456",
        "duration_hours": 2,
    }


def access_filter(server: Server, admin: str, engineer: str, rid: str, cli: Cli) -> None:
    """``access`` keeps one kind of request; customer_lockbox lists the caller's lockbox
    requests in the same page shape, for the customer and for the operator."""
    alice = token_for(server, ALICE)
    for kind, target in (("task", "Exchange\\New-MoveRequest"), ("role", "Mailbox Search")):
        asked = {"type": kind, "target": target, "reason": "mailbox move for a user"}
        ok(call(server, alice, "POST", "/requests", json=asked), 201)
    tasks = ok(call(server, admin, "GET", "/requests", params={"access": "task"}))["items"]
    assert tasks
    assert {r["requested_access"] for r in tasks} == {"Task"}
    roles = ok(call(server, admin, "GET", "/requests", params={"access": "role"}))["items"]
    assert roles
    assert {r["requested_access"] for r in roles} == {"Role"}
    none = ok(call(server, admin, "GET", "/requests", params={"access": "data_access"}))
    assert none == {"items": [], "next_cursor": None}
    for token in (admin, engineer):
        page = ok(call(server, token, "GET", "/requests", params={"access": "customer_lockbox"}))
        assert [(r["id"], r["requested_access"]) for r in page["items"]] == [
            (rid, "Customer Lockbox")
        ]
    problem(call(server, admin, "GET", "/requests", params={"access": "lockbox"}), 422)
    listed = cli.json("request", "list", "--access", "customer-lockbox")
    assert [r["id"] for r in listed] == [rid]


README = Path(__file__).resolve().parents[2] / "README.md"
# The exit code each command of the README's Customer Lockbox walk-through ends with, in order:
# the check denies while the request is pending and after the revocation.
README_EXPECTED = [0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 3]


def readme_commands() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Customer Lockbox") :]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.S)
    assert block, "the README's Customer Lockbox section has its commands"
    joined = block.group(1).replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip() and line[0] != "#"]


def test_the_readme_lockbox_commands_run_as_written(tmp_path: Path) -> None:
    lines = readme_commands()
    assert lines[0].startswith("export ")
    commands = lines[1:]
    assert len(commands) == len(README_EXPECTED)
    server = start_server(tmp_path, "--demo")
    env = {
        **os.environ,
        **FAST,
        "JITPAM_URL": server.url,
        "JITPAM_CONFIG_DIR": str(tmp_path / "config"),
        "JITPAM_DATA_DIR": str(server.data_dir),  # the server commands open its database
        "PATH": f"{Path(JITPAM).parent}:{os.environ['PATH']}",
    }
    env.pop("JITPAM_TOKEN", None)
    env.pop("JITPAM_DATABASE_URL", None)
    lockbox_id = None
    try:
        for command, expected in zip(commands, README_EXPECTED, strict=True):
            if lockbox_id is not None:
                command = command.replace("LOCKBOX_ID", lockbox_id)
            done = shell(command, env)
            assert done.returncode == expected, f"{command}\n{done.stdout}\n{done.stderr}"
            if command.startswith("jitpam lockbox request "):
                found = re.search(r"^id\s+(\S+)", done.stdout, flags=re.M)
                assert found, done.stdout
                lockbox_id = found.group(1)
            if command.startswith("jitpam lockbox revoke "):
                assert re.search(r"^status\s+revoked$", done.stdout, flags=re.M), done.stdout
    finally:
        server.stop()
    assert lockbox_id is not None
