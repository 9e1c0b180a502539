"""Every cmdlet line of the seeds (tests/seeds/*.txt), run as written with ``jitpam ps`` against
a demo server, after its placeholders are replaced by the demo organization's real objects.

Lines are found generically (a line that starts with a cmdlet ``jitpam ps`` knows), ordered so
each has what it needs (control and policies before requests, requests before their votes), and
checked by their cmdlet's effect, not one by one: a line added to the seeds is covered as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jitpam.cli.ps import cmdlets
from jitpam.cli.ps.syntax import ParseError, parse
from jitpam.sdk import ApiError, Client
from tests.e2e.conftest import DEMO_PASSWORD, Cli, Server, on_the_server, start_server, token_for

SEEDS = Path(__file__).resolve().parents[1] / "seeds"
README = Path(__file__).resolve().parents[2] / "README.md"
ADMIN, ALICE, BOB = "admin@contoso.com", "alice@contoso.com", "bob@contoso.com"
# Customer Lockbox: the operator organization (designated before the server starts) and its
# engineer, who files the requests contoso's administrator (a Global Administrator) decides.
OPERATOR, OPERATOR_ADMIN, ENGINEER = "fabrikam", "admin@fabrikam.com", "engineer@fabrikam.com"
MOVE = "Exchange\\New-MoveRequest"
SPARE = "Exchange\\Set-Mailbox"  # a task the demo has no policy for
# Filled in by a line's preparation (ids that parse and bind, standing for the real ones).
REQUEST, POLICY = "00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-00000000000b"
LOCKBOX = "00000000-0000-4000-8000-00000000000c"

# The seeds' placeholders and example names -> the demo organization's objects.
NAMES = {
    "<default approver group>": "pamapprovers",
    "<default/custom approver group>": "pamapprovers",
    "pamapprovers@fabrikam.onmicrosoft.com": "pamapprovers",
    "mbmanagers@fabrikamorg.onmicrosoft.com": "pamapprovers",
    "PAMAdminGroup": "pamapprovers",
    "<systemAccountUPN1>": "sys@contoso.com",
    "<systemAccountUPN2>": "sys@contoso.com",
    "sys1@fabrikamorg.onmicrosoft.com": "sys@contoso.com",
    "sys2@fabrikamorg.onmicrosoft.com": "sys@contoso.com",
    "<exchange management cmdlet name>": "New-MoveRequest",
    "<Manual, Auto>": "Manual",
    "<appropriate reason>": "Seed line: a mailbox move",
    "<duration in hours>": "2",
    "<approval comment>": "Approved by the seed test",
    "<denial comment>": "Denied by the seed test",
    "<request ID>": REQUEST,
    "<request id>": REQUEST,
    "28560ed0-419d-4cc3-8f5b-603911cbd450": REQUEST,
    "a4bc1bdf-00a1-42b4-be65-b6c63d6be279": REQUEST,
    "<identity GUID of the policy you want to delete>": POLICY,
    "<policy identity>": POLICY,
    "<lockbox request id>": LOCKBOX,
}
# The cmdlets no seed uses yet, run the same way (their effects checked as a seed line's would be).
EXTRA = [
    "Get-ElevatedAccessApprovalPolicy | ft Identity, Type, Task, ApprovalType",
    "Set-ElevatedAccessApprovalPolicy -Identity <policy identity> -ApprovalType Auto",
    "Get-ElevatedAccessAuthorization | select Identity, AuthorizedAccess, Revoked",
    "Revoke-ElevatedAccessAuthorization -RequestId <request id> -Comment 'case closed'",
    # The README's example (test_the_readme_lockbox_example_is_run_here holds them equal).
    "Get-AccessToCustomerDataRequest -ApprovalStatus Pending | ft Identity, RequestorUPN, "
    "ServiceName, CaseReference, DurationHours",
    "Get-AccessToCustomerDataRequest -RequestId <lockbox request id> -CreatedAfter 1/1/2026 | "
    "select Identity, ApprovalStatus, TenantName, RequestedAccess",
    "Set-AccessToCustomerDataRequest -ApprovalDecision Approve -RequestId <lockbox request id> "
    "-Comment 'Case reviewed' -ServiceName Exchange",
    "Set-AccessToCustomerDataRequest -ApprovalDecision deny -RequestId <lockbox request id> "
    "-Comment 'Not for this case'",
]
# The order the cmdlets run in, so that each line has what it needs.
ORDER = [
    "Enable-ElevatedAccessControl",
    "New-ElevatedAccessApprovalPolicy",
    "Get-ElevatedAccessApprovalPolicy",
    "Set-ElevatedAccessApprovalPolicy",
    "New-ElevatedAccessRequest",
    "Get-ElevatedAccessRequest",
    "Approve-ElevatedAccessRequest",
    "Deny-ElevatedAccessRequest",
    "Get-ElevatedAccessAuthorization",
    "Revoke-ElevatedAccessAuthorization",
    "Get-AccessToCustomerDataRequest",
    "Set-AccessToCustomerDataRequest",
    "Remove-ElevatedAccessApprovalPolicy",
    "Disable-ElevatedAccessControl",
]


@dataclass(frozen=True)
class SeedLine:
    source: str
    text: str  # as written in the seed

    @property
    def cmdlet(self) -> str:
        return cmdlets.find(self.text.split()[0]).name


def seed_lines() -> list[SeedLine]:
    known = "|".join(re.escape(n) for n in cmdlets.names())
    starts = re.compile(rf"^\s*({known})(?![\w-])", re.I)
    found = [
        SeedLine(f"{path.name}:{number}", line.strip())
        for path in sorted(SEEDS.glob("*.txt"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if starts.match(line)
    ]
    return sorted(found, key=lambda s: ORDER.index(s.cmdlet))


def every_line() -> list[SeedLine]:
    extra = [SeedLine(f"EXTRA[{n}]", text) for n, text in enumerate(EXTRA)]
    return sorted(seed_lines() + extra, key=lambda s: ORDER.index(s.cmdlet))


def substituted(text: str) -> str:
    for placeholder, value in NAMES.items():
        text = text.replace(placeholder, value)
    left = re.findall(r"<[^<>'\"]+>", text)
    assert not left, f"a placeholder with no mapping in NAMES: {left}"
    return text


class Demo:
    """The demo organization, through the SDK, as its people."""

    def __init__(self, server: Server, operator_admin: str) -> None:
        self.server = server
        self._data_request: str | None = None
        with Client(server.url, operator_admin) as api:  # the operator's engineer
            api.new_user(ENGINEER)
            api.assign(role="jitpam\\Lockbox Requester", user=ENGINEER)
            api.set_password(ENGINEER, password=DEMO_PASSWORD)
        self.tokens = {upn: token_for(server, upn) for upn in (ADMIN, ALICE, BOB, ENGINEER)}
        with self.api(ADMIN) as api:  # contoso decides every lockbox request itself
            api.set_organization_config(lockbox_approval_required=True)

    def api(self, upn: str) -> Client:
        return Client(self.server.url, self.tokens[upn])

    def policy_for(self, target: str) -> dict[str, Any] | None:
        with self.api(ADMIN) as api:
            return next((p.raw for p in api.policies() if p.target == target), None)

    def ensure_policy(self, target: str, kind: str = "task") -> str:
        with self.api(ADMIN) as api:
            if not api.access_control().enabled:
                api.enable_control(admin_group="pamapprovers", system_accounts=["sys@contoso.com"])
        found = self.policy_for(target)
        if found:
            return str(found["id"])
        with self.api(ADMIN) as api:
            made = api.new_policy(
                type=kind, target=target, approval_type="manual", approver_group="pamapprovers"
            )
            return made.id

    def remove_policy(self, target: str) -> None:
        found = self.policy_for(target)
        if found:
            with self.api(ADMIN) as api:
                api.remove_policy(found["id"])

    def clear_requests(self, target: str) -> None:
        """Alice's open requests for ``target`` withdrawn or revoked (one may be open at once)."""
        with self.api(ALICE) as api:
            mine = [r for r in api.requests(mine=True) if r.target == target]
            for r in mine:
                if r.status == "pending":
                    api.cancel(r.id)
        with self.api(BOB) as api:
            for r in mine:
                if r.status == "approved":
                    api.revoke(r.id, "cleared by the seed test")

    def pending_request(self, target: str = MOVE) -> str:
        self.ensure_policy(target)
        self.clear_requests(target)
        with self.api(ALICE) as api:
            return api.request_access(type="task", target=target, reason="prepared").id

    def data_access_request(self) -> str:
        """Alice's application's data access request (the demo's Alice is an Application
        Installer, and the demo has a policy on Office365\\Mail.Read), filed once."""
        if self._data_request is None:
            with self.api(ALICE) as api:
                installed = api.install_application(
                    "Seed Insights",
                    service="Office365",
                    scopes=["Mail.Read"],
                    resources=["group:helpdesk"],
                    reason="Seed test: managed access to Microsoft Graph",
                )
            self._data_request = installed.requests[0].id
        return self._data_request

    def request(self, request_id: str) -> dict[str, Any]:
        with self.api(ADMIN) as api:
            return api.get_request(request_id).raw

    def pending_lockbox_request(self) -> str:
        with self.api(ENGINEER) as api:
            filed = api.file_lockbox_request(
                "contoso",
                service="Exchange",
                reason="Seed test: a mailbox repair",
                case_reference="EXSR123456",
                duration_hours=2,
            )
        assert filed.status == "pending"
        return filed.id

    def lockbox_request(self, request_id: str) -> dict[str, Any]:
        with self.api(ADMIN) as api:
            return api.lockbox_request(request_id).raw


@dataclass(frozen=True)
class Effect:
    """Who runs a cmdlet's lines, what is prepared first (the ids it fills in), what is checked."""

    runner: str
    prepare: Callable[[Demo, dict[str, Any]], dict[str, str]]
    check: Callable[[Demo, dict[str, Any], dict[str, str], str], None]


def _nothing(demo: Demo, bound: dict[str, Any]) -> dict[str, str]:
    return {}


def _target(bound: dict[str, Any]) -> tuple[str, str]:
    kind, name = next((k, bound[k]) for k in ("Task", "Role", "RoleGroup") if k in bound)
    return {"Task": "task", "Role": "role", "RoleGroup": "role_group"}[kind], str(name)


def _fl(text: str) -> list[dict[str, str]]:
    """The objects of a Format-List output."""
    objects = []
    for block in re.split(r"\n\s*\n", text.strip()):
        if block.strip():
            pairs = (re.match(r"^(\S+)\s+: ?(.*)$", line) for line in block.splitlines())
            objects.append({m.group(1): m.group(2) for m in pairs if m})
    return objects


def _selected(line: str) -> list[str]:
    """The properties a line's ``| select`` names (none: no select)."""
    stages = parse(line).commands[1:]
    for stage in stages:
        if stage.name.lower() in ("select", "select-object"):
            value = stage.elements[0].value
            return list(value) if isinstance(value, tuple) else [str(value)]
    return []


def _formatted(line: str) -> list[str]:
    """The properties a line's ``| ft`` or ``| fl`` names."""
    last = parse(line).commands[-1]
    if last.name.lower() in ("ft", "fl", "format-table", "format-list") and last.elements:
        value = last.elements[0].value
        return list(value) if isinstance(value, tuple) else [str(value)]
    return []


def prepare_new_policy(demo: Demo, bound: dict[str, Any]) -> dict[str, str]:
    demo.remove_policy(_target(bound)[1])  # one policy per target: the line makes it anew
    return {}


def check_new_policy(demo: Demo, bound: dict[str, Any], ids: dict[str, str], out: str) -> None:
    made = demo.policy_for(_target(bound)[1])
    assert made is not None
    assert made["type"] == _target(bound)[0]
    assert made["approval_type"] == bound["ApprovalType"].lower()
    assert made["approver_group"] == bound.get("ApproverGroup", made["approver_group"])
    assert _fl(out)[0]["Identity"] == made["id"]


def prepare_new_request(demo: Demo, bound: dict[str, Any]) -> dict[str, str]:
    kind, target = _target(bound)
    demo.ensure_policy(target, kind)
    demo.clear_requests(target)
    return {}


def check_new_request(demo: Demo, bound: dict[str, Any], ids: dict[str, str], out: str) -> None:
    shown = _fl(out)[0]
    doc = demo.request(shown["Identity"])
    assert doc["status"] == "pending"
    assert doc["requester"] == ALICE
    assert doc["target"] == _target(bound)[1]
    assert doc["reason"] == bound["Reason"]
    assert doc["duration_hours"] == bound.get("DurationHours", 4)
    assert shown["RequestStatus"] == "Pending"


def prepare_pending(demo: Demo, bound: dict[str, Any]) -> dict[str, str]:
    return {REQUEST: demo.pending_request()}


def prepare_requests(demo: Demo, bound: dict[str, Any]) -> dict[str, str]:
    """A pending request of Alice's, and her application's data access request."""
    demo.data_access_request()
    return prepare_pending(demo, bound)


def check_get_request(demo: Demo, bound: dict[str, Any], ids: dict[str, str], out: str) -> None:
    shown = _fl(out)
    wanted = _selected(ids["line"])
    for each in shown:
        assert not wanted or sorted(each) == sorted(wanted), each
    if "Data Access Request" in ids["line"]:  # the seeds' filter on the kind: the demo has one
        assert shown, out
        for each in shown:
            assert each.get("RequestedAccess", "Data Access Request") == "Data Access Request"
            assert each.get("Service", "Office365") == "Office365"
            assert each.get("RequestorUPN", ALICE) == ALICE
    if "Identity" in bound:
        assert len(shown) == 1
        status = demo.request(bound["Identity"])["status"].capitalize()
        assert shown[0].get("RequestStatus", status) == status


def _decided(status: str) -> Callable[[Demo, dict[str, Any], dict[str, str], str], None]:
    def check(demo: Demo, bound: dict[str, Any], ids: dict[str, str], out: str) -> None:
        doc = demo.request(bound["RequestId"])
        assert doc["status"] == status
        assert any(r["comment"] == bound["Comment"] for r in doc["reviews"])
        assert _fl(out)[0]["RequestStatus"] == status.capitalize()

    return check


def prepare_approved(demo: Demo, bound: dict[str, Any]) -> dict[str, str]:
    request_id = demo.pending_request()
    with demo.api(BOB) as api:
        api.approve(request_id, "prepared")
    return {REQUEST: request_id}


def check_revoked(demo: Demo, bound: dict[str, Any], ids: dict[str, str], out: str) -> None:
    doc = demo.request(bound["RequestId"])
    assert doc["status"] == "revoked"
    shown = _fl(out)[0]
    assert shown["Revoked"] == "True"
    assert shown["AuthorizedBy"] == BOB  # who approved it when it was prepared
    assert shown["RevocationComment"] == bound["Comment"]


def check_listed(demo: Demo, bound: dict[str, Any], ids: dict[str, str], out: str) -> None:
    """Every object printed, as a list or as a table, with the properties asked for."""
    wanted = _selected(ids["line"]) or _formatted(ids["line"])
    if re.search(r"\|\s*(ft|format-table)\b", ids["line"], flags=re.I):
        header = out.splitlines()[0].split()
        assert not wanted or header == wanted, header
        assert len(out.splitlines()) >= 3  # a header, its rule and a row at least
        return
    shown = _fl(out)
    assert shown
    for each in shown:
        assert not wanted or sorted(each) == sorted(wanted), each


def prepare_policy(demo: Demo, bound: dict[str, Any]) -> dict[str, str]:
    return {POLICY: demo.ensure_policy(SPARE)}


def check_policy_removed(demo: Demo, bound: dict[str, Any], ids: dict[str, str], out: str) -> None:
    with demo.api(ADMIN) as api, pytest.raises(ApiError) as gone:
        api.get_policy(bound["Identity"])
    assert gone.value.status == 404


def check_control(enabled: bool) -> Callable[[Demo, dict[str, Any], dict[str, str], str], None]:
    def check(demo: Demo, bound: dict[str, Any], ids: dict[str, str], out: str) -> None:
        with demo.api(ADMIN) as api:
            control = api.access_control()
        assert control.enabled is enabled
        if enabled:
            assert control.default_approver_group == bound["AdminGroup"]
            assert set(bound.get("SystemAccounts", [])) <= set(control.system_accounts)
        assert _fl(out)[0]["ElevatedAccessControl"] == ("Enabled" if enabled else "Disabled")

    return check


def check_set_policy(demo: Demo, bound: dict[str, Any], ids: dict[str, str], out: str) -> None:
    with demo.api(ADMIN) as api:
        policy = api.get_policy(bound["Identity"])
    if "ApprovalType" in bound:
        assert policy.approval_type == bound["ApprovalType"].lower()
        assert _fl(out)[0]["ApprovalType"] == bound["ApprovalType"]


def prepare_lockbox(demo: Demo, bound: dict[str, Any]) -> dict[str, str]:
    return {LOCKBOX: demo.pending_lockbox_request()}


def check_lockbox_listed(demo: Demo, bound: dict[str, Any], ids: dict[str, str], out: str) -> None:
    with demo.api(ADMIN) as api:
        status = bound.get("ApprovalStatus", "").lower().replace("canceled", "cancelled") or None
        found = list(
            api.lockbox_requests(
                status=status,
                created_after=bound.get("CreatedAfter"),
                request_id=bound.get("RequestId"),
            )
        )
    assert found  # the request the line's preparation filed, at least
    check_listed(demo, bound, ids, out)
    if re.search(r"\|\s*(ft|format-table)\b", ids["line"], flags=re.I):
        assert len(out.splitlines()) == 2 + len(found)  # a header, its rule, a row each
        return
    shown = _fl(out)
    assert [s["Identity"] for s in shown] == [r.id for r in found]
    for each in shown:
        assert each.get("ApprovalStatus", "Pending") == "Pending"
        assert each.get("TenantName", "contoso") == "contoso"
        assert each.get("RequestedAccess", "Customer Lockbox") == "Customer Lockbox"


def check_lockbox_decided(demo: Demo, bound: dict[str, Any], ids: dict[str, str], out: str) -> None:
    doc = demo.lockbox_request(bound["RequestId"])
    status = {"Approve": "approved", "Deny": "denied"}[bound["ApprovalDecision"]]
    assert doc["status"] == status
    assert doc["decided_by"] == ADMIN
    assert doc["decision_comment"] == bound.get("Comment", "")
    shown = _fl(out)[0]
    assert shown["Identity"] == shown["RequestId"] == bound["RequestId"]
    assert shown["ApprovalStatus"] == status.capitalize()
    assert shown["DecidedBy"] == ADMIN
    assert shown["TenantName"] == "contoso"
    assert shown["ServiceName"] == "Exchange"
    assert bool(shown["StartTimeUtc"]) is (status == "approved")


EFFECTS: dict[str, Effect] = {
    "Enable-ElevatedAccessControl": Effect(ADMIN, _nothing, check_control(True)),
    "Disable-ElevatedAccessControl": Effect(ADMIN, _nothing, check_control(False)),
    "New-ElevatedAccessApprovalPolicy": Effect(ADMIN, prepare_new_policy, check_new_policy),
    "Get-ElevatedAccessApprovalPolicy": Effect(ADMIN, prepare_policy, check_listed),
    "Set-ElevatedAccessApprovalPolicy": Effect(ADMIN, prepare_policy, check_set_policy),
    "Remove-ElevatedAccessApprovalPolicy": Effect(ADMIN, prepare_policy, check_policy_removed),
    "New-ElevatedAccessRequest": Effect(ALICE, prepare_new_request, check_new_request),
    "Get-ElevatedAccessRequest": Effect(ALICE, prepare_requests, check_get_request),
    "Approve-ElevatedAccessRequest": Effect(BOB, prepare_pending, _decided("approved")),
    "Deny-ElevatedAccessRequest": Effect(BOB, prepare_pending, _decided("denied")),
    "Get-ElevatedAccessAuthorization": Effect(ALICE, _nothing, check_listed),
    "Revoke-ElevatedAccessAuthorization": Effect(BOB, prepare_approved, check_revoked),
    "Get-AccessToCustomerDataRequest": Effect(ADMIN, prepare_lockbox, check_lockbox_listed),
    "Set-AccessToCustomerDataRequest": Effect(ADMIN, prepare_lockbox, check_lockbox_decided),
}


def _parse_error(text: str) -> str | None:
    try:
        parse(text)
    except ParseError as exc:
        return str(exc)
    return None


@pytest.fixture(scope="module")
def lockbox_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    """The demo server with an operator organization designated for Customer Lockbox, made on
    its database before it starts (a server command on SQLite wants the database to itself);
    and the operator's administrator's token."""
    tmp = tmp_path_factory.mktemp("demo")
    db = f"sqlite:///{tmp / 'jitpam.db'}"
    made = on_the_server(db, "org", "create", OPERATOR, "--admin", OPERATOR_ADMIN)
    on_the_server(db, "lockbox", "operator", OPERATOR)
    server = start_server(tmp, "--demo", "--db", db)
    yield server, str(made["token"])
    server.stop()


@pytest.fixture(scope="module")
def demo_server(lockbox_demo: tuple[Server, str]) -> Server:
    """This module's demo server is the one with a lockbox operator."""
    return lockbox_demo[0]


@pytest.fixture(scope="module")
def demo(lockbox_demo: tuple[Server, str]) -> Demo:
    return Demo(*lockbox_demo)


def test_every_cmdlet_has_its_effect_declared() -> None:
    assert sorted(EFFECTS) == sorted(cmdlets.names()) == sorted(ORDER)


def test_the_readme_lockbox_example_is_run_here() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[
        text.index("## The seeds' commands as written") : text.index("## Customer Lockbox")
    ]
    shown = re.findall(r'^jitpam ps "(\S+-AccessToCustomerDataRequest[^"]*)"$', section, flags=re.M)
    assert shown, "the README shows a Customer Lockbox cmdlet"
    assert set(shown) <= set(EXTRA)


def test_the_seeds_hold_cmdlet_lines() -> None:
    lines = seed_lines()
    assert len(lines) >= 30
    assert {s.cmdlet for s in lines} >= {
        "Enable-ElevatedAccessControl",
        "New-ElevatedAccessApprovalPolicy",
        "New-ElevatedAccessRequest",
        "Get-ElevatedAccessRequest",
        "Approve-ElevatedAccessRequest",
        "Deny-ElevatedAccessRequest",
        "Remove-ElevatedAccessApprovalPolicy",
        "Disable-ElevatedAccessControl",
    }


def test_every_seed_line_runs_as_written(demo: Demo, demo_server: Server, tmp_path: Path) -> None:
    cli = Cli(demo_server, tmp_path / "config")
    malformed = 0
    for seed in every_line():
        text = substituted(seed.text)
        effect = EFFECTS[seed.cmdlet]
        refused = _parse_error(text)
        if refused is not None:  # as written in the seed: refused, nothing sent
            malformed += 1
            done = cli.run("ps", text, token=demo.tokens[effect.runner])
            assert done.returncode == 2, (seed, done.stderr)
            assert done.stderr.strip() == refused, seed
            continue
        tree = parse(text)
        cmdlet = cmdlets.find(tree.commands[0].name)
        ids = effect.prepare(demo, cmdlet.bind(tree.commands[0]))
        for placeholder, value in ids.items():
            text = text.replace(placeholder, value)
        bound = cmdlet.bind(parse(text).commands[0])
        done = cli.run("ps", text, token=demo.tokens[effect.runner])
        assert done.returncode == 0, (seed, text, done.stderr)
        assert done.stderr == "", seed
        effect.check(demo, bound, {"line": text}, done.stdout)
    assert malformed >= 1  # the seeds' @('sys1@…', sys2@…') with its missing quote
