"""``jitpam ps`` as a user runs it: one line, a file, stdin, ``--json``, and its exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from pathlib import Path

from tests.e2e.conftest import FAST, JITPAM, Cli

README = Path(__file__).resolve().parents[2] / "README.md"

ADMIN, ALICE, BOB = "admin@contoso.com", "alice@contoso.com", "bob@contoso.com"


def test_a_line_runs_as_the_signed_in_user_and_prints_m365_names(cli: Cli) -> None:
    cli.login(ALICE)  # the saved session, as the other commands use it
    done = cli.run(
        "ps",
        "New-ElevatedAccessRequest -Role 'Exchange\\Mailbox Search' -Reason 'case 12' "
        "| select RequestStatus, RequestorUPN, RequestedAccess, Service, DurationHours",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "RequestStatus   : Approved",  # the demo's Auto policy
        "RequestorUPN    : alice@contoso.com",
        "RequestedAccess : Role",
        "Service         : Exchange",
        "DurationHours   : 4",
    ]
    grants = cli.run(
        "ps",
        "get-elevatedaccessauthorization -act | ? {$_.AuthorizedAccess -like '*mailbox search'}"
        " | ft AuthorizedAccess, Revoked",
    )
    assert grants.returncode == 0, grants.stderr
    assert grants.stdout.splitlines()[:3] == [
        "AuthorizedAccess        Revoked",
        "----------------        -------",
        "Exchange\\Mailbox Search False",
    ]


def test_json_prints_an_array_of_objects_per_line(cli: Cli) -> None:
    cli.sign_in(ADMIN)
    done = cli.run(
        "ps",
        "Get-ElevatedAccessApprovalPolicy | where {$_.Task -eq 'Exchange\\New-MoveRequest'} "
        "| select Identity, Task, ApprovalType, ApproverGroup",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    (policy,) = json.loads(done.stdout)
    assert sorted(policy) == ["ApprovalType", "ApproverGroup", "Identity", "Task"]
    assert policy["ApprovalType"] == "Manual"
    assert policy["ApproverGroup"] == "pamapprovers"
    expanded = cli.run(
        "ps", "Get-ElevatedAccessApprovalPolicy | select -ExpandProperty Type", "--json"
    )
    assert expanded.returncode == 0, expanded.stderr
    assert set(json.loads(expanded.stdout)) <= {"Task", "Role", "RoleGroup", "DataScope"}


def test_stdin_runs_each_line_and_skips_comments(cli: Cli) -> None:
    cli.sign_in(ADMIN)
    script = (
        "# what the organization has\n"
        "\n"
        "Get-ElevatedAccessApprovalPolicy | select -First 1 | select Identity\n"
        "Get-ElevatedAccessRequest | select -First 0\n"
        "GET-ELEVATEDACCESSAPPROVALPOLICY | Select-Object -First 1 -Property Type\n"
    )
    done = cli.run("ps", "--json", stdin=script)
    assert done.returncode == 0, done.stderr
    first, second, third = (json.loads(line) for line in done.stdout.splitlines())
    assert list(first[0]) == ["Identity"]
    assert second == []
    assert list(third[0]) == ["Type"]


def test_a_file_stops_at_its_first_failing_line(cli: Cli, tmp_path: Path) -> None:
    cli.sign_in(ALICE)
    script = tmp_path / "pam.ps1"
    script.write_text(
        "Get-ElevatedAccessRequest | select -First 1 | select RequestStatus\n"
        "# a comment\n"
        "New-ElevatedAccessRequest -Task 'Exchange\\New-MoveRequest' -Foo 1 -Reason r\n"
        "Disable-ElevatedAccessControl\n",
        encoding="utf-8",
    )
    done = cli.run("ps", "-f", str(script))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "line 3: New-ElevatedAccessRequest : A parameter cannot be found that matches "
        "parameter name 'Foo'."
    )


def test_a_parse_error_anywhere_runs_nothing(cli: Cli, tmp_path: Path) -> None:
    cli.sign_in(ADMIN)
    script = tmp_path / "pam.ps1"
    script.write_text(
        "Disable-ElevatedAccessControl\n"
        "Enable-ElevatedAccessControl -AdminGroup pamapprovers -SystemAccounts @('a', b')\n",
        encoding="utf-8",
    )
    done = cli.run("ps", "--file", str(script))
    assert done.returncode == 2
    assert done.stderr.startswith("line 2: ParserError: char ")
    assert "missing the terminator" in done.stderr
    control = cli.json("control", "show")
    assert control["enabled"] is True  # line 1 never ran


def test_server_refusals_keep_the_cli_exit_codes(cli: Cli) -> None:
    cli.sign_in(ALICE)
    missing = cli.run("ps", f"Get-ElevatedAccessRequest -Identity {uuid.uuid4()}")
    assert missing.returncode == 1
    assert missing.stderr.startswith("Get-ElevatedAccessRequest : ")
    assert missing.stderr.strip().endswith("(404)")
    forbidden = cli.run("ps", "Disable-ElevatedAccessControl")
    assert forbidden.returncode == 4
    assert forbidden.stderr.startswith("Disable-ElevatedAccessControl : ")
    unknown = cli.run("ps", "Get-Mailbox -Identity alice")
    assert unknown.returncode == 2
    assert "'Get-Mailbox' is not recognized" in unknown.stderr
    bad = cli.run("ps", "New-ElevatedAccessRequest -Task x -Reason r -DurationHours 0")
    assert bad.returncode == 2
    assert "The 0 argument is not in the range 1..∞." in bad.stderr


def test_the_readme_ps_commands_run_as_written(cli: Cli) -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## The seeds' commands as written") :]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.S)
    assert block, "the README shows jitpam ps commands"
    env = {
        **os.environ,
        **FAST,
        "JITPAM_URL": cli.server.url,
        "JITPAM_CONFIG_DIR": str(cli.config_dir),
        "PATH": f"{Path(JITPAM).parent}:{os.environ['PATH']}",
    }
    env.pop("JITPAM_TOKEN", None)
    outputs = []
    commands = [
        line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")
    ]
    ids: dict[str, str] = {}
    for command in commands:
        for name, value in ids.items():
            command = command.replace(name, value)
        done = subprocess.run(
            ["bash", "-c", command], capture_output=True, text=True, env=env, timeout=60
        )
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        outputs.append(done.stdout)
        found = re.search(r"^Identity\s+: (\S+)$", done.stdout, flags=re.M)
        if "New-ElevatedAccessRequest" in command and found:
            ids["REQUEST_ID"] = found.group(1)
    assert outputs[1].splitlines()[1:] == [
        "RequestStatus   : Pending",
        "RequestedAccess : Task",
        "Service         : Exchange",
    ]
    assert "alice@contoso.com Exchange\\New-MoveRequest 4" in outputs[2]
    assert outputs[4].splitlines() == [
        "RequestStatus : Approved",
        "Reviews       : {bob@contoso.com approved: Go ahead}",
    ]
    assert outputs[5].startswith("RequestStatus : Approved\n\nType")
    rows = [line.split()[0] for line in outputs[5].splitlines()[4:]]  # past the table's rule
    assert {"Task", "Role", "DataScope"} <= set(rows)  # the demo's policies, each of its Type


def test_usage_mistakes_and_an_unreachable_server(cli: Cli, tmp_path: Path) -> None:
    script = tmp_path / "one.ps1"
    script.write_text("Get-ElevatedAccessRequest\n", encoding="utf-8")
    both = cli.run("ps", "Get-ElevatedAccessRequest", "-f", str(script))
    assert both.returncode == 2
    assert "not both" in both.stderr
    quoted = cli.run("ps", 'Approve-ElevatedAccessRequest -RequestId "a`nb" -Comment c')
    assert quoted.returncode == 2
    assert quoted.stderr.count("\n") == 1  # the value's line break does not split the message
    down = cli.run("ps", "Get-ElevatedAccessRequest", "--server", "http://127.0.0.1:9")
    assert down.returncode == 5
    assert down.stderr.startswith("Get-ElevatedAccessRequest : cannot reach")
