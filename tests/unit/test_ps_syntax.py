"""``jitpam ps``'s parser, binding and pipeline stages: pure code, checked without a server."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jitpam.cli.ps import cmdlets, pipeline
from jitpam.cli.ps.binding import BindError
from jitpam.cli.ps.command import lines_of
from jitpam.cli.ps.syntax import (
    Argument,
    Command,
    Parameter,
    ParseError,
    Pipeline,
    Value,
    parse,
    quote,
    render,
)

QUOTES = "'\"\u2018\u2019\u201a\u201b\u201c\u201d\u201e`$@(),;|{}<>#- \t"
texts = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(QUOTES), max_size=40)
names = st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,12}", fullmatch=True)
values: st.SearchStrategy[Value] = st.one_of(
    texts,
    st.booleans(),
    st.none(),
    st.lists(texts, max_size=4).map(tuple),
)


@settings(max_examples=400, deadline=None)
@given(texts)
def test_any_text_parses_or_is_a_parse_error(text: str) -> None:
    try:
        parse(text)
    except ParseError as exc:
        message = str(exc)
    else:
        return
    assert message.startswith("ParserError: char ")


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=60))
def test_a_quoted_string_reads_back_as_itself(text: str) -> None:
    parsed = parse(f"Get-ElevatedAccessRequest -Identity {quote(text)}")
    assert parsed.commands[0].elements == (Parameter("Identity"), Argument(text))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(names, values, st.booleans()),
        max_size=5,
    ),
    st.lists(values, max_size=2),
)
def test_a_written_pipeline_reads_back_as_itself(
    named: list[tuple[str, Value, bool]], positional: list[Value]
) -> None:
    elements: list[Parameter | Argument] = [Argument(v) for v in positional]
    for name, value, attached in named:
        if attached:
            elements.append(Parameter(name, value, True))
        else:
            elements += [Parameter(name), Argument(value)]
    tree = Pipeline((Command("New-ElevatedAccessRequest", tuple(elements)), Command("fl")))
    assert parse(render(tree)) == tree


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("X -A 'it''s'", "it's"),
        ('X -A "say ""hi"""', 'say "hi"'),
        ('X -A "tab`there"', "tab\there"),
        ("X -A \u201cExchange\\Role Management\u201d", "Exchange\\Role Management"),
        ("X -A \u2018single\u2019", "single"),
        ("X -A PAMAdminGroup", "PAMAdminGroup"),
        ("X -A @('a','b')", ("a", "b")),
        ("X -A @( 'a' , b )", ("a", "b")),
        ("X -A 'a', 'b',c", ("a", "b", "c")),
        ("X -A @()", ()),
        ("X -A:$false", False),
        ("X -A:'v'", "v"),
        ("X -A:$null", None),
        ("X -A pre'fix'\"ed\"", "prefixed"),
    ],
)
def test_values_read_as_powershell_reads_them(line: str, value: Value) -> None:
    element = parse(line).commands[0].elements
    got = element[0].value if element[0].value is not None or len(element) == 1 else None
    if len(element) == 2:
        got = element[1].value
    assert got == value


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("X -A @('sys1@x.com', sys2@x.com')", "The string is missing the terminator: '."),
        ('X -A "open', 'The string is missing the terminator: ".'),
        ("X -Identity <request ID>", "The '<' operator (redirection) is not supported"),
        ("X -A 'a',", "Missing expression after ','."),
        ("X | | fl", "An empty pipe element is not allowed."),
        ("X |", "An empty pipe element is not allowed."),
        ("X -A $name", "Variables are not supported ($name)."),
        ("X | where {$_.A -like}", "Missing an expression in the script block."),
        ("X | where {$_.A -foo 'b'}", "Unexpected token '-foo' in the script block."),
        ("X -A @('a'", "Missing closing ')' in the array '@('."),
        ("X; Y", "Several statements on one line (';') are not supported."),
    ],
)
def test_malformed_lines_are_parse_errors(line: str, reason: str) -> None:
    with pytest.raises(ParseError) as refused:
        parse(line)
    assert refused.value.reason.startswith(reason)


def _bound(line: str) -> dict[str, object]:
    command = parse(line).commands[0]
    return cmdlets.find(command.name).bind(command)


def test_names_are_case_insensitive_and_prefixes_are_unique() -> None:
    bound = _bound("new-elevatedaccessrequest -ta 'Exchange\\X' -rea 'why' -dur 6")
    assert bound == {"Task": "Exchange\\X", "Reason": "why", "DurationHours": 6}
    assert _bound("get-elevatedaccessrequest -requestid 28560ed0-419d-4cc3-8f5b-603911cbd450") == {
        "Identity": "28560ed0-419d-4cc3-8f5b-603911cbd450"
    }


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "New-ElevatedAccessRequest -Task 'E\\X' -Reason r -Foo 1",
            "New-ElevatedAccessRequest : A parameter cannot be found that matches parameter "
            "name 'Foo'.",
        ),
        (
            "New-ElevatedAccessRequest -Task 'E\\X' -Re r -R x",
            "New-ElevatedAccessRequest : Parameter cannot be processed because the parameter "
            "name 'R' is ambiguous. Possible matches include: -Role -RoleGroup -Reason.",
        ),
        (
            "New-ElevatedAccessRequest -Task 'E\\X'",
            "New-ElevatedAccessRequest : Cannot process command because of one or more missing "
            "mandatory parameters: Reason.",
        ),
        (
            "New-ElevatedAccessRequest -Task 'E\\X' -Reason r -DurationHours four",
            "New-ElevatedAccessRequest : Cannot bind parameter 'DurationHours'. Cannot convert "
            'value "four" to type "System.Int32".',
        ),
        (
            "New-ElevatedAccessApprovalPolicy -Task 'E\\X' -ApprovalType Sometimes",
            "New-ElevatedAccessApprovalPolicy : Cannot validate argument on parameter "
            "'ApprovalType'. The argument \"Sometimes\" does not belong to the set "
            '"Manual,Auto".',
        ),
        (
            "New-ElevatedAccessRequest -Task 'E\\X' -Role 'E\\Y' -Reason r",
            "New-ElevatedAccessRequest : Parameter set cannot be resolved using the specified "
            "named parameters: give exactly one of -Task, -Role, -RoleGroup.",
        ),
        (
            "Approve-ElevatedAccessRequest -RequestId nope -Comment c",
            "Approve-ElevatedAccessRequest : Cannot bind parameter 'RequestId'. Cannot convert "
            'value "nope" to type "System.Guid".',
        ),
        (
            "Disable-ElevatedAccessControl extra",
            "Disable-ElevatedAccessControl : A positional parameter cannot be found that accepts "
            "argument 'extra'.",
        ),
    ],
)
def test_binding_errors_read_as_powershell_words_them(line: str, message: str) -> None:
    with pytest.raises(BindError) as refused:
        _bound(line)
    assert str(refused.value) == message


def test_a_switch_takes_no_value_and_can_be_turned_off() -> None:
    base = "New-ElevatedAccessApprovalPolicy -Task 'E\\X' -ApprovalType auto"
    assert _bound(base + " -RequireTicket -ApproverGroup g")["RequireTicket"] is True
    assert _bound(base + " -RequireTicket:$false")["RequireTicket"] is False
    assert _bound(base)["ApprovalType"] == "Auto"
    accounts = _bound("Enable-ElevatedAccessControl -AdminGroup g -SystemAccounts 'a','b'")
    assert accounts["SystemAccounts"] == ["a", "b"]


def test_confirm_false_is_accepted_and_confirm_refused() -> None:
    line = "Remove-ElevatedAccessApprovalPolicy 28560ed0-419d-4cc3-8f5b-603911cbd450"
    assert _bound(line + " -Confirm:$false") == {"Identity": "28560ed0-419d-4cc3-8f5b-603911cbd450"}
    with pytest.raises(BindError, match="asks no confirmation"):
        _bound(line + " -Confirm")
    assert _bound("Disable-ElevatedAccessControl -confirm:$False") == {}


def test_an_unknown_cmdlet_is_named() -> None:
    with pytest.raises(cmdlets.UnknownCmdlet, match="'Get-Mailbox' is not recognized"):
        cmdlets.find("Get-Mailbox")


REQUESTS = [
    {"Identity": "1", "RequestStatus": "Pending", "RequestedAccess": "Task", "Reviews": []},
    {"Identity": "2", "RequestStatus": "Approved", "RequestedAccess": "Role", "Reviews": ["b"]},
    {"Identity": "3", "RequestStatus": "Denied", "RequestedAccess": "Data Access Request"},
]


def _run(text: str, items: list[dict[str, object]] = REQUESTS) -> list[object]:
    stages = [pipeline.stage(c) for c in parse("X | " + text).commands[1:]]
    return pipeline.apply(stages, list(items))


@pytest.mark.parametrize(
    ("text", "identities"),
    [
        ("where {$_.RequestStatus -eq 'pending'}", ["1"]),
        ("Where-Object {$_.RequestStatus -ne 'Pending'}", ["2", "3"]),
        ("? {$_.RequestedAccess -like '*data access*'}", ["3"]),
        ("where {$_.RequestedAccess -notlike 'R*'}", ["1", "3"]),
        ("where {$_.RequestStatus -match '^(app|den)'}", ["2", "3"]),
        ("where {$_.RequestStatus -notmatch 'e'}", []),
        ("where {$_.RequestStatus -ceq 'pending'}", []),
        ("where {$_.Identity -eq 1 -or $_.Identity -eq 3}", ["1", "3"]),
        ("where {$_.Identity -gt 1 -and -not ($_.RequestStatus -eq 'Denied')}", ["2"]),
        ("where {$_.Reviews}", ["2"]),
        ("where RequestStatus -EQ Approved", ["2"]),
        ("select -First 2", ["1", "2"]),
        ("select -Last 1", ["3"]),
    ],
)
def test_where_filters_as_powershell_does(text: str, identities: list[str]) -> None:
    assert [i["Identity"] for i in _run(text)] == identities  # type: ignore[index]


def test_select_picks_expands_and_wildcards() -> None:
    assert _run("select requeststatus") == [
        {"RequestStatus": s} for s in ("Pending", "Approved", "Denied")
    ]
    assert _run("Select-Object -Property Identity, Request*")[0] == {
        "Identity": "1",
        "RequestStatus": "Pending",
        "RequestedAccess": "Task",
    }
    assert _run("select -ExpandProperty RequestStatus") == ["Pending", "Approved", "Denied"]
    assert _run("select Nothing")[0] == {"Nothing": None}
    with pytest.raises(pipeline.StageError, match='Property "Nothing" cannot be found'):
        _run("select -ExpandProperty Nothing")


def test_output_prints_as_fl_unless_ft() -> None:
    items = _run("select Identity, RequestStatus, Reviews")
    assert pipeline.render([], items[:2]) == (
        "Identity      : 1\nRequestStatus : Pending\nReviews       : {}\n\n"
        "Identity      : 2\nRequestStatus : Approved\nReviews       : {b}"
    )
    table = [pipeline.stage(c) for c in parse("X | ft").commands[1:]]
    assert pipeline.render(table, items) == (
        "Identity RequestStatus Reviews\n"
        "-------- ------------- -------\n"
        "1        Pending       {}\n"
        "2        Approved      {b}\n"
        "3        Denied"
    )
    json.dumps(items)  # what --json prints


def test_unknown_stages_and_misplaced_formats_are_refused() -> None:
    with pytest.raises(pipeline.StageError, match="'Sort-Object' is not recognized"):
        pipeline.stage(parse("X | Sort-Object").commands[1])
    stages = [pipeline.stage(c) for c in parse("X | fl | select A").commands[1:]]
    with pytest.raises(pipeline.StageError, match="must be the last"):
        pipeline.check_order(stages)


def test_scripts_skip_blank_lines_and_comments_and_join_continuations() -> None:
    text = "# a comment\n\nGet-ElevatedAccessRequest `\n  -Identity x\n  \nDisable-X\n"
    assert [(line.number, line.text) for line in lines_of(text)] == [
        (3, "Get-ElevatedAccessRequest    -Identity x"),
        (6, "Disable-X"),
    ]


def test_shapes_use_m365_names() -> None:
    request = cmdlets.request_shape(
        {
            "id": "r1",
            "status": "pending",
            "requester": "alice@contoso.com",
            "type": "role_group",
            "target": "Exchange\\Organization Management",
            "signature": {"key_id": "k", "value": "sig"},
        }
    )
    assert request["RequestStatus"] == "Pending"
    assert request["RequestedAccess"] == "RoleGroup"
    assert request["Service"] == "Exchange"
    assert request["Signature"] == "sig"
    named = cmdlets.request_shape({"type": "task", "requested_access": "Data Access Request"})
    assert named["RequestedAccess"] == "Data Access Request"
    assert "Context" not in request  # a data access request's only
    data = cmdlets.request_shape(
        {
            "type": "data_access",
            "requester": "dev@contoso.com",
            "target": "Office365\\Mail.Read",
            "service": "Office365",
            "application": "insights@contoso.com",
            "resources": ["group:Sales"],
        }
    )
    assert (data["RequestedAccess"], data["Service"]) == ("Data Access Request", "Office365")
    assert json.loads(data["Context"]) == {
        "ApplicationName": "insights@contoso.com",
        "InstallerIdentity": "dev@contoso.com",
        "Resources": ["group:Sales"],
    }
    scope = cmdlets.policy_shape({"type": "data_access", "target": "Office365\\Mail.Read"})
    assert (scope["Type"], scope["DataScope"], scope["Task"]) == (
        "DataScope",
        "Office365\\Mail.Read",
        None,
    )
    grant = cmdlets.authorization_shape(
        {
            "id": "a1",
            "revoked_at": "2026-01-01T00:00:00Z",
            "type": "task",
            "request": {
                "reviews": [
                    {"approver": "bob@contoso.com", "decision": "approve"},
                    {"approver": "carol@contoso.com", "decision": "deny"},
                ],
                "revocation_comment": "done",
            },
        }
    )
    assert grant["AuthorizedBy"] == "bob@contoso.com"
    assert grant["Revoked"] is True
    assert grant["RevocationComment"] == "done"


LOCKBOX_ID = "5b0a4c2e-93a1-4f7e-9f3c-0d8e2b6a7c11"


@pytest.mark.parametrize(
    ("line", "bound"),
    [
        ("Get-AccessToCustomerDataRequest", {}),
        (
            "get-accesstocustomerdatarequest -approvalstatus canceled -createdafter 2026-01-15",
            {"ApprovalStatus": "Canceled", "CreatedAfter": "2026-01-15T00:00:00Z"},
        ),
        (
            "Get-AccessToCustomerDataRequest -CreatedAfter '1/15/2026 08:30' -Identity "
            + LOCKBOX_ID.upper(),
            {"CreatedAfter": "2026-01-15T08:30:00Z", "RequestId": LOCKBOX_ID},
        ),
        (
            "Get-AccessToCustomerDataRequest -CreatedAfter 2026-01-15T10:00:00+02:00",
            {"CreatedAfter": "2026-01-15T08:00:00Z"},
        ),
        (
            f"Set-AccessToCustomerDataRequest -ApprovalDecision approve -RequestId {LOCKBOX_ID} "
            "-Comment 'Case reviewed' -ServiceName exchange",
            {
                "ApprovalDecision": "Approve",
                "RequestId": LOCKBOX_ID,
                "Comment": "Case reviewed",
                "ServiceName": "Exchange",
            },
        ),
        (
            f"Set-AccessToCustomerDataRequest -Appr Cancel -Req {LOCKBOX_ID}",
            {"ApprovalDecision": "Cancel", "RequestId": LOCKBOX_ID},
        ),
    ],
)
def test_the_lockbox_cmdlets_bind_m365_parameters(line: str, bound: dict[str, object]) -> None:
    assert _bound(line) == bound


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "Get-AccessToCustomerDataRequest -ApprovalStatus Expired",
            "Get-AccessToCustomerDataRequest : Cannot validate argument on parameter "
            "'ApprovalStatus'. The argument \"Expired\" does not belong to the set "
            '"Approved,Canceled,Denied,Pending".',
        ),
        (
            "Get-AccessToCustomerDataRequest -CreatedAfter 2026-02-30",
            "Get-AccessToCustomerDataRequest : Cannot bind parameter 'CreatedAfter'. Cannot "
            'convert value "2026-02-30" to type "System.DateTime".',
        ),
        (
            f"Set-AccessToCustomerDataRequest -RequestId {LOCKBOX_ID}",
            "Set-AccessToCustomerDataRequest : Cannot process command because of one or more "
            "missing mandatory parameters: ApprovalDecision.",
        ),
        (
            f"Set-AccessToCustomerDataRequest -ApprovalDecision Approve -RequestId {LOCKBOX_ID} "
            "-ServiceName Yammer",
            "Set-AccessToCustomerDataRequest : Cannot validate argument on parameter "
            "'ServiceName'. The argument \"Yammer\" does not belong to the set "
            '"EOP,Exchange,SharePoint,Teams".',
        ),
    ],
)
def test_the_lockbox_cmdlets_refuse_as_powershell_words_it(line: str, message: str) -> None:
    with pytest.raises(BindError) as refused:
        _bound(line)
    assert str(refused.value) == message


class _LockboxApi:
    """What the lockbox cmdlets ask of the SDK client, recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[object, ...], dict[str, object]]] = []

    def lockbox_requests(self, **kwargs: object) -> list[object]:
        self.calls.append(("lockbox_requests", (), kwargs))
        return []

    def decide_lockbox_request(self, *args: object, **kwargs: object) -> object:
        self.calls.append(("decide_lockbox_request", args, kwargs))
        return SimpleNamespace(raw={"id": LOCKBOX_ID, "status": "cancelled"})


def test_the_lockbox_cmdlets_call_the_sdk_with_jitpam_names() -> None:
    api = _LockboxApi()
    get = cmdlets.find("Get-AccessToCustomerDataRequest")
    get.call(api, _bound("Get-AccessToCustomerDataRequest -ApprovalStatus Canceled"))  # type: ignore[arg-type]
    get.call(api, _bound("Get-AccessToCustomerDataRequest -ApprovalStatus Pending"))  # type: ignore[arg-type]
    line = (
        f"Set-AccessToCustomerDataRequest -ApprovalDecision Deny -RequestId {LOCKBOX_ID} "
        "-Comment no -ServiceName Teams"
    )
    done = cmdlets.find(line.split()[0]).call(api, _bound(line))  # type: ignore[arg-type]
    assert api.calls == [
        (
            "lockbox_requests",
            (),
            {"status": "cancelled", "created_after": None, "request_id": None},
        ),
        ("lockbox_requests", (), {"status": "pending", "created_after": None, "request_id": None}),
        ("decide_lockbox_request", (LOCKBOX_ID, "Deny"), {"comment": "no", "service": "Teams"}),
    ]
    assert cmdlets.lockbox_shape(done[0])["ApprovalStatus"] == "Canceled"


def test_the_lockbox_shape_uses_m365_names() -> None:
    shown = cmdlets.lockbox_shape(
        {
            "id": LOCKBOX_ID,
            "requested_access": "Customer Lockbox",
            "status": "approved",
            "customer": "contoso",
            "operator": "fabrikam",
            "requester": "engineer@fabrikam.com",
            "service": "Exchange",
            "reason": "repair",
            "case_reference": "EXSR123456",
            "duration_hours": 2,
            "created_at": "2026-01-15T08:00:00Z",
            "pending_until": "2026-01-15T20:00:00Z",
            "decided_at": "2026-01-15T08:05:00Z",
            "decided_by": "admin@contoso.com",
            "decision_comment": "",
            "start": "2026-01-15T08:05:00Z",
            "end": "2026-01-15T10:05:00Z",
            "valid_until": "2026-01-15T10:05:00Z",
            "revoked_at": None,
            "revoked_by": None,
            "revocation_comment": None,
        }
    )
    assert shown["Identity"] == shown["RequestId"] == LOCKBOX_ID
    assert shown["ApprovalStatus"] == "Approved"
    assert shown["RequestedAccess"] == "Customer Lockbox"
    assert (shown["TenantName"], shown["ServiceName"]) == ("contoso", "Exchange")
    assert (shown["CaseReference"], shown["DurationHours"]) == ("EXSR123456", 2)
    assert (shown["DecidedBy"], shown["DecisionComment"]) == ("admin@contoso.com", None)
    assert (shown["StartTimeUtc"], shown["EndTimeUtc"]) == (
        "2026-01-15T08:05:00Z",
        "2026-01-15T10:05:00Z",
    )
    assert shown["RevocationDateTimeUtc"] is None
    statuses = ["pending", "approved", "denied", "cancelled", "expired", "revoked", "completed"]
    assert [cmdlets.lockbox_shape({"status": s})["ApprovalStatus"] for s in statuses] == [
        "Pending",
        "Approved",
        "Denied",
        "Canceled",
        "Expired",
        "Revoked",
        "Completed",
    ]


def test_the_reference_documents_every_cmdlet_and_lockbox_property() -> None:
    reference = (Path(__file__).parents[2] / "docs" / "reference.md").read_text(encoding="utf-8")
    start = reference.index("### `jitpam ps`")
    section = reference[start : reference.index("\n## ", start)]
    missing = [name for name in cmdlets.names() if f"`{name}`" not in section]
    assert not missing, missing
    rows = section[section.index("| lockbox request |") :]
    properties = cmdlets.lockbox_shape({})
    assert [p for p in properties if f"`{p}`" not in rows] == []
