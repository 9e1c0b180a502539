"""Data access requests through a real ``jitpam serve --demo``, on each database: the demo's
Alice (an Application Installer) installs an application with the CLI, which files its data
access request in her name; she may not approve it, an approver does with the API; the check
over HTTP (asked by the administrator, an Access Checker) allows a covered resource (named, or a
member of a named group) and refuses another as resource_not_covered; the approver revokes and
the check refuses. Bad input answers problem+json; ``access=data_access`` lists the request;
``jitpam ps`` prints it as M365 does. And the README's data access commands run as written.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import (
    DEMO_PASSWORD,
    FAST,
    JITPAM,
    Cli,
    Server,
    call,
    ok,
    problem,
    shell,
    start_server,
    token_for,
)

ADMIN, ALICE, BOB = "admin@contoso.com", "alice@contoso.com", "bob@contoso.com"
APP = "contoso-insights@contoso.com"
REASON = "Insights reads the helpdesk's mail"


def check(server: Server, token: str, resource: str, scope: str = "Mail.Read") -> dict[str, Any]:
    body = {"user": APP, "service": "Office365", "scope": scope, "resource": resource}
    doc: dict[str, Any] = ok(call(server, token, "POST", "/check", json=body))
    return doc


def test_a_data_access_request_from_installing_to_check_to_revocation(
    fresh_database: str, tmp_path: Path
) -> None:
    server = start_server(tmp_path, "--demo", "--db", fresh_database)
    try:
        flow(server, tmp_path)
    finally:
        server.stop()


def flow(server: Server, tmp: Path) -> None:
    admin, bob, alice = (token_for(server, upn) for upn in (ADMIN, BOB, ALICE))
    installer = Cli(server, tmp / "alice", token=alice)

    # Alice installs the application with the CLI: its account, and one request in her name.
    installed = installer.json(
        "app", "install", "Contoso Insights", "--service", "Office365", "--scope", "Mail.Read",
        "--data", "group:helpdesk", "--data", "mailbox:carol@contoso.com",
        "--reason", REASON, "--hours", "2",
    )  # fmt: skip
    assert (installed["application"]["upn"], installed["application"]["kind"]) == (
        APP,
        "application",
    )
    (filed,) = installed["requests"]
    rid = filed["id"]
    assert (filed["status"], filed["requested_access"], filed["type"]) == (
        "pending",
        "Data Access Request",
        "data_access",
    )
    assert (filed["requester"], filed["application"], filed["service"]) == (
        ALICE,
        APP,
        "Office365",
    )
    assert (filed["target"], filed["duration_hours"]) == ("Office365\\Mail.Read", 2)
    assert filed["resources"] == ["group:helpdesk", "mailbox:carol@contoso.com"]

    # Pending: no access yet (the administrator holds Access Checker; Alice does not).
    pending = check(server, admin, "mailbox:alice@contoso.com")
    assert (pending["allowed"], pending["reason"]) == (False, "authorization_required")

    # Bad input is problem+json.
    install = {
        "name": "Other App",
        "service": "Office365",
        "scopes": ["Mail.Send"],  # no policy covers it
        "resources": ["group:helpdesk"],
        "reason": REASON,
    }
    no_policy = problem(call(server, alice, "POST", "/applications", json=install), 422)
    assert no_policy["code"] == "no_policy"
    nowhere = {**install, "scopes": ["Mail.Read"], "resources": ["nowhere"]}
    assert (
        "kind:name"
        in problem(call(server, alice, "POST", "/applications", json=nowhere), 422)["detail"]
    )
    problem(call(server, alice, "POST", "/applications", json={**install, "scopes": []}), 422)
    both = {"task": "Exchange\\New-MoveRequest", "scope": "Mail.Read", "resource": "group:x"}
    problem(call(server, admin, "POST", "/check", json=both), 422)
    no_service = {"scope": "Mail.Read", "resource": "mailbox:alice@contoso.com"}
    problem(call(server, admin, "POST", "/check", json=no_service), 422)
    refused = {**install, "name": "Bob App", "scopes": ["Mail.Read"]}  # no Application Installer
    problem(call(server, bob, "POST", "/applications", json=refused), 403)
    problem(call(server, alice, "POST", "/check", json={**no_service, "service": "Office365",
                                                        "user": APP}), 403)  # fmt: skip
    assert call(server, admin, "GET", "/users/other-app@contoso.com").status_code == 404

    # The installer may not approve what she filed; an approver does.
    problem(call(server, alice, "POST", f"/requests/{rid}/approve", json={"comment": "me"}), 403)
    approved = ok(call(server, bob, "POST", f"/requests/{rid}/approve", json={"comment": "ok"}))
    assert (approved["status"], approved["application"]) == ("approved", APP)

    # Covered: a member of the named group, and the named mailbox; not covered: anyone else.
    for resource in ("mailbox:alice@contoso.com", "mailbox:carol@contoso.com"):
        allowed = check(server, admin, resource)
        assert (allowed["allowed"], allowed["reason"]) == (True, "authorized"), resource
        assert allowed["authorization_id"] == approved["authorization_id"]
    other = check(server, admin, "mailbox:bob@contoso.com")
    assert (other["allowed"], other["reason"]) == (False, "resource_not_covered")
    another_scope = check(server, admin, "mailbox:alice@contoso.com", scope="Mail.Send")
    assert another_scope["allowed"] is False
    by_cli = Cli(server, tmp / "admin", token=admin).run(
        "check", "--user", APP, "--service", "Office365", "--scope", "Mail.Read",
        "--resource", "mailbox:alice@contoso.com",
    )  # fmt: skip
    assert by_cli.returncode == 0, by_cli.stderr
    assert f"allowed: authorized (authorization {approved['authorization_id']})" in by_cli.stdout

    # The access filter lists it; jitpam ps prints it as M365 does.
    listed = ok(call(server, admin, "GET", "/requests", params={"access": "data_access"}))
    assert [(r["id"], r["application"]) for r in listed["items"]] == [(rid, APP)]
    tasks = ok(call(server, admin, "GET", "/requests", params={"access": "task"}))["items"]
    assert rid not in {r["id"] for r in tasks}
    line = (
        "Get-ElevatedAccessRequest | where {$_.RequestedAccess -like '*Data Access Request*'} "
        "| select RequestorUPN, Service, RequestedAccess, Context | fl"
    )
    by_list, by_ps = installer.run_all(
        ["request", "list", "--access", "data-access", "--json"], ["ps", line, "--json"]
    )
    assert by_list.returncode == 0, by_list.stderr
    assert [r["id"] for r in json.loads(by_list.stdout)] == [rid]
    assert by_ps.returncode == 0, by_ps.stderr
    (shown,) = json.loads(by_ps.stdout)
    assert (shown["RequestorUPN"], shown["Service"], shown["RequestedAccess"]) == (
        ALICE,
        "Office365",
        "Data Access Request",
    )
    assert json.loads(shown["Context"]) == {
        "ApplicationName": APP,
        "InstallerIdentity": ALICE,
        "Resources": ["group:helpdesk", "mailbox:carol@contoso.com"],
    }

    web_pages(server, rid)
    data_scope_policies(server, admin, tmp)

    # The approver revokes; the check refuses.
    revoked = ok(
        call(server, bob, "POST", f"/authorizations/{rid}/revoke", json={"comment": "done"})
    )
    assert (revoked["status"], revoked["user"]) == ("revoked", APP)
    after = check(server, admin, "mailbox:alice@contoso.com")
    assert (after["allowed"], after["reason"]) == (False, "authorization_required")

    operations = {
        r["operation"]
        for r in ok(call(server, admin, "GET", "/audit", params={"limit": 200}))["items"]
    }
    assert {"Install-Application", "Test-DataAccess"} <= operations


def data_scope_policies(server: Server, admin: str, tmp: Path) -> None:
    """Policies on data scopes from the CLI (--data-scope) and jitpam ps (-DataScope)."""
    cli = Cli(server, tmp / "policies", token=admin)
    by_option, by_ps = cli.run_all(
        ["policy", "new", "--data-scope", "Office365\\Calendars.Read", "--approval-type",
         "manual", "--approver-group", "pamapprovers", "--json"],
        ["ps", "New-ElevatedAccessApprovalPolicy -DataScope 'Office365\\Contacts.Read' "
         "-ApprovalType Auto | select Type, DataScope, ApprovalType", "--json"],
    )  # fmt: skip
    assert by_option.returncode == 0, by_option.stderr
    made = json.loads(by_option.stdout)
    assert (made["type"], made["target"]) == ("data_access", "Office365\\Calendars.Read")
    assert by_ps.returncode == 0, by_ps.stderr
    assert json.loads(by_ps.stdout) == [
        {"Type": "DataScope", "DataScope": "Office365\\Contacts.Read", "ApprovalType": "Auto"}
    ]
    listed = cli.json("policy", "list", "--type", "data-access")
    assert sorted(p["target"] for p in listed) == [
        "Office365\\Calendars.Read",
        "Office365\\Contacts.Read",
        "Office365\\Mail.Read",
    ]


def web_pages(server: Server, rid: str) -> None:
    """The request's page shows the application and its data; the new-request page offers no
    data scope (data access is asked by installing); the policy form offers the kind, with the
    catalog's data scopes as suggestions."""
    with signed_in(server, BOB) as bob:
        shown = bob.get(f"/requests/{rid}").text
        assert f'<dd id="application">{APP} (installed by {ALICE}' in shown
        assert '<dd id="resources">group:helpdesk, mailbox:carol@contoso.com</dd>' in shown
    with signed_in(server, ALICE) as alice:
        offered = alice.get("/requests/new")
        assert offered.status_code == 200
        assert "Exchange\\New-MoveRequest" in offered.text
        assert "Office365" not in offered.text
        assert "Data Access Request" not in offered.text
    with signed_in(server, ADMIN) as admin:
        form = admin.get("/policies").text
        assert '<option value="data_access">Data Access Request</option>' in form
        names = admin.get(
            "/policies/targets", params={"type": "data_access", "q": "Office365\\Mail"}
        )
        assert "Office365\\Mail.Read" in names.json()["names"]


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None, page.text
    return found.group(1)


@contextmanager
def signed_in(server: Server, upn: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url) as browser:
        form = browser.get("/login")
        answer = browser.post(
            "/login",
            data={"user": upn, "password": DEMO_PASSWORD, "csrf": csrf_of(form), "next": "/"},
        )
        assert answer.status_code == 303, answer.text
        yield browser


README = Path(__file__).resolve().parents[2] / "README.md"
# The exit code each command of the README's data access walk-through ends with, in order: the
# check denies while the request is pending, for data the request does not cover, and after the
# revocation.
README_EXPECTED = [0, 0, 0, 3, 0, 0, 0, 0, 0, 3, 0, 3]


def readme_commands() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Data access requests") :]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.S)
    assert block, "the README's data access section has its commands"
    joined = block.group(1).replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip() and line[0] != "#"]


def test_the_readme_data_access_commands_run_as_written(tmp_path: Path) -> None:
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
        "PATH": f"{Path(JITPAM).parent}:{os.environ['PATH']}",
    }
    env.pop("JITPAM_TOKEN", None)
    request_id = None
    try:
        for command, expected in zip(commands, README_EXPECTED, strict=True):
            if request_id is not None:
                command = command.replace("REQUEST_ID", request_id)
            done = shell(command, env)
            assert done.returncode == expected, f"{command}\n{done.stdout}\n{done.stderr}"
            if command.startswith("jitpam app install "):
                assert re.search(r"^application\s+\S+@contoso\.com$", done.stdout, flags=re.M)
                found = re.search(r"^([0-9a-f-]{36})\s+pending\b", done.stdout, flags=re.M)
                assert found, done.stdout
                request_id = found.group(1)
            if command.startswith("jitpam authorization revoke "):
                assert re.search(r"^status\s+revoked$", done.stdout, flags=re.M), done.stdout
    finally:
        server.stop()
    assert request_id is not None
