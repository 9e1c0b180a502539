"""The Microsoft 365 PAM cmdlets ``jitpam ps`` runs: one declaration each (its parameters, the
SDK call it makes, the M365 shape of what it prints). A cmdlet more is an entry of ``CMDLETS``.

Binding and shaping are pure; only a declaration's ``call`` talks to the server, through the
SDK client it is given.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from jitpam.cli.ps.binding import BindError, Param, bind
from jitpam.cli.ps.syntax import Command
from jitpam.sdk import Client

Doc = dict[str, Any]
Bound = dict[str, Any]

TYPE_LABELS = {
    "task": "Task",
    "role": "Role",
    "role_group": "RoleGroup",
    "data_access": "Data Access Request",
}
TARGETS = ("Task", "Role", "RoleGroup")
# What a policy may cover: a request's targets, and a data scope ('Office365\Mail.Read').
POLICY_TARGETS = (*TARGETS, "DataScope")
_KINDS = {"Task": "task", "Role": "role", "RoleGroup": "role_group", "DataScope": "data_access"}


def _label(value: str | None) -> str | None:
    return value.capitalize() if value else None


def _service(target: str) -> str | None:
    scope, sep, _ = target.partition("\\")
    return scope if sep else None


_VOTES = {"approve": "approved", "deny": "denied"}  # a review's decision, as a past tense


def _signature(doc: Doc) -> str | None:
    sig = doc.get("signature")
    if isinstance(sig, dict):
        value = sig.get("value")
        return str(value) if value is not None else None
    return None if sig is None else str(sig)


# ---------------------------------------------------------------- M365 shapes
def request_shape(doc: Doc) -> Doc:
    """A request as Get-ElevatedAccessRequest prints it. A data access request also has
    ``Context``, as M365 shows it: JSON naming the application, its installer (the requester of
    record) and the data it covers."""
    kind = str(doc.get("type", ""))
    target = str(doc.get("target", ""))
    context: Doc = {}
    if kind == "data_access":
        context = {
            "Context": json.dumps(
                {
                    "ApplicationName": doc.get("application"),
                    "InstallerIdentity": doc.get("requester"),
                    "Resources": list(doc.get("resources") or []),
                }
            )
        }
    return {
        "Identity": doc.get("id"),
        "RequestStatus": _label(doc.get("status")),
        "RequestorUPN": doc.get("requester"),
        "RequestedAccess": doc.get("requested_access") or TYPE_LABELS.get(kind, kind),
        "Service": doc.get("service") or _service(target),
        "Target": target,
        **context,
        "Reason": doc.get("reason"),
        "DurationHours": doc.get("duration_hours"),
        "ApprovalsRequired": doc.get("approvals_required"),
        "ApprovalPolicyId": doc.get("policy_id"),
        "CreatedUtc": doc.get("created_at"),
        "PendingUntilUtc": doc.get("pending_until"),
        "DecidedUtc": doc.get("decided_at"),
        "ApprovedUtc": doc.get("approved_at"),
        "EndTimeUtc": doc.get("valid_until"),
        "AuthorizationId": doc.get("authorization_id"),
        "Reviews": [
            f"{r.get('approver')} {_VOTES.get(str(r.get('decision')), r.get('decision'))}"
            + (f": {r.get('comment')}" if r.get("comment") else "")
            for r in doc.get("reviews") or []
        ],
        "RevocationDateTimeUtc": doc.get("revoked_at"),
        "RevokedBy": doc.get("revoked_by"),
        "RevocationComment": doc.get("revocation_comment"),
        "Signature": _signature(doc),
    }


def policy_shape(doc: Doc) -> Doc:
    """A policy as Get-ElevatedAccessApprovalPolicy prints it (a data scope's: Type DataScope,
    and its DataScope)."""
    kind = next((k for k, v in _KINDS.items() if v == doc.get("type")), str(doc.get("type")))
    target = doc.get("target")
    scope = {"DataScope": target} if kind == "DataScope" else {}
    return {
        "Identity": doc.get("id"),
        "Type": kind,
        "Task": target if kind == "Task" else None,
        "Role": target if kind == "Role" else None,
        "RoleGroup": target if kind == "RoleGroup" else None,
        **scope,
        "ApprovalType": _label(doc.get("approval_type")),
        "ApproverGroup": doc.get("approver_group"),
        "Eligible": list(doc.get("eligible") or []),
        "ApprovalsRequired": doc.get("approvals_required"),
        "MaxDurationHours": doc.get("max_duration_hours"),
        "RequireTicket": doc.get("require_ticket"),
        "CreatedUtc": doc.get("created_at"),
    }


def control_shape(doc: Doc) -> Doc:
    """Access control as Enable-/Disable-ElevatedAccessControl print it."""
    return {
        "ElevatedAccessControl": "Enabled" if doc.get("enabled") else "Disabled",
        "AdminGroup": doc.get("default_approver_group"),
        "SystemAccounts": list(doc.get("system_accounts") or []),
        "TicketPattern": doc.get("ticket_pattern"),
        "MaxPolicies": doc.get("max_policies"),
        "PendingHours": doc.get("pending_hours"),
    }


def authorization_shape(doc: Doc) -> Doc:
    """A grant as Revoke-/Get-ElevatedAccessAuthorization print it (``request`` is its request's
    document, when the call fetched it: who approved, the revocation comment)."""
    request = doc.get("request") or {}
    approvers = [
        str(r.get("approver"))
        for r in request.get("reviews") or []
        if r.get("decision") == "approve"
    ]
    kind = str(doc.get("type", ""))
    return {
        "AuthorizedBy": ", ".join(approvers) or None,
        "User": doc.get("user"),
        "Type": TYPE_LABELS.get(kind, kind),
        "AuthorizedAccess": doc.get("target"),
        "StartTimeUtc": doc.get("valid_from"),
        "EndTimeUtc": doc.get("valid_until"),
        "Status": _label(doc.get("status")),
        "Revoked": doc.get("revoked_at") is not None,
        "RevocationDateTimeUtc": doc.get("revoked_at"),
        "RevokedBy": doc.get("revoked_by"),
        "RevocationComment": request.get("revocation_comment"),
        "RequestId": doc.get("request_id"),
        "Identity": doc.get("id"),
    }


# M365 spells it "Canceled"; the other statuses are jitpam's, capitalized.
_LOCKBOX_STATUS = {"cancelled": "Canceled"}
LOCKBOX_STATUSES = ("Approved", "Canceled", "Denied", "Pending")  # -ApprovalStatus takes these


def lockbox_shape(doc: Doc) -> Doc:
    """A Customer Lockbox request as Get-/Set-AccessToCustomerDataRequest print it: TenantName
    is the customer, CaseReference the service request number, DurationHours the estimated
    access time (who decided or revoked reads "customer" for the operator's users other than
    the requester)."""
    status = str(doc.get("status") or "")
    return {
        "Identity": doc.get("id"),
        "RequestId": doc.get("id"),
        "ApprovalStatus": _LOCKBOX_STATUS.get(status) or _label(status),
        "RequestedAccess": doc.get("requested_access") or "Customer Lockbox",
        "TenantName": doc.get("customer"),
        "Operator": doc.get("operator"),
        "ServiceName": doc.get("service"),
        "RequestorUPN": doc.get("requester"),
        "Reason": doc.get("reason"),
        "CaseReference": doc.get("case_reference"),
        "DurationHours": doc.get("duration_hours"),
        "CreatedUtc": doc.get("created_at"),
        "PendingUntilUtc": doc.get("pending_until"),
        "DecidedUtc": doc.get("decided_at"),
        "DecidedBy": doc.get("decided_by"),
        "DecisionComment": doc.get("decision_comment") or None,
        "StartTimeUtc": doc.get("start"),
        "EndTimeUtc": doc.get("end") or doc.get("valid_until"),
        "RevokedBy": doc.get("revoked_by"),
        "RevocationDateTimeUtc": doc.get("revoked_at"),
        "RevocationComment": doc.get("revocation_comment"),
    }


# ---------------------------------------------------------------- the calls
def _target(bound: Bound) -> tuple[str, str]:
    given = [(name, bound[name]) for name in POLICY_TARGETS if bound.get(name) is not None]
    name, target = given[0]
    return _KINDS[name], str(target)


def _eligible(bound: Bound) -> tuple[list[str] | None, list[str] | None]:
    names = bound.get("Eligible")
    if names is None:
        return None, None
    return [n for n in names if "@" in n], [n for n in names if "@" not in n]


def _approval(bound: Bound) -> str | None:
    value = bound.get("ApprovalType")
    return str(value).lower() if value else None


def _enable(api: Client, b: Bound) -> list[Doc]:
    made = api.enable_control(
        admin_group=b["AdminGroup"], system_accounts=b.get("SystemAccounts") or []
    )
    return [made.raw]


def _new_policy(api: Client, b: Bound) -> list[Doc]:
    kind, target = _target(b)
    users, groups = _eligible(b)
    made = api.new_policy(
        type=kind,
        target=target,
        approval_type=_approval(b) or "manual",
        approver_group=b.get("ApproverGroup"),
        eligible_users=users or [],
        eligible_groups=groups or [],
        approvals_required=b.get("ApprovalsRequired", 1),
        max_duration_hours=b.get("MaxDurationHours"),
        require_ticket=bool(b.get("RequireTicket", False)),
    )
    return [made.raw]


def _get_policies(api: Client, b: Bound) -> list[Doc]:
    if b.get("Identity"):
        return [api.get_policy(b["Identity"]).raw]
    return [p.raw for p in api.policies()]


def _set_policy(api: Client, b: Bound) -> list[Doc]:
    users, groups = _eligible(b)
    changed = api.set_policy(
        b["Identity"],
        approval_type=_approval(b),
        approver_group=b.get("ApproverGroup"),
        eligible_users=users,
        eligible_groups=groups,
        approvals_required=b.get("ApprovalsRequired"),
        max_duration_hours=b.get("MaxDurationHours"),
        require_ticket=b.get("RequireTicket"),
    )
    return [changed.raw]


def _new_request(api: Client, b: Bound) -> list[Doc]:
    kind, target = _target(b)
    made = api.request_access(
        type=kind, target=target, reason=b["Reason"], duration_hours=b.get("DurationHours", 4)
    )
    return [made.raw]


def _get_requests(api: Client, b: Bound) -> list[Doc]:
    if b.get("Identity"):
        return [api.get_request(b["Identity"]).raw]
    return [r.raw for r in api.requests()]


def _with_requests(api: Client, grants: list[Doc]) -> list[Doc]:
    """Each grant with its request's document (one listing of the requests for them all)."""
    wanted = {str(g.get("request_id")) for g in grants}
    if len(wanted) == 1:
        (only,) = wanted
        found = {only: api.get_request(only).raw}
    else:
        found = {r.id: r.raw for r in api.requests() if r.id in wanted} if wanted else {}
    return [{**g, "request": found.get(str(g.get("request_id")))} for g in grants]


def _get_authorizations(api: Client, b: Bound) -> list[Doc]:
    grants = [a.raw for a in api.authorizations(user=b.get("User"), active=b.get("Active", False))]
    return _with_requests(api, grants)


def _revoke(api: Client, b: Bound) -> list[Doc]:
    return _with_requests(api, [api.revoke(b["RequestId"], b["Comment"]).raw])


def _get_lockbox(api: Client, b: Bound) -> list[Doc]:
    status = b.get("ApprovalStatus")
    found = api.lockbox_requests(
        status=None if status is None else "cancelled" if status == "Canceled" else status.lower(),
        created_after=b.get("CreatedAfter"),
        request_id=b.get("RequestId"),
    )
    return [r.raw for r in found]


def _set_lockbox(api: Client, b: Bound) -> list[Doc]:
    decided = api.decide_lockbox_request(
        b["RequestId"],
        b["ApprovalDecision"],
        comment=b.get("Comment"),
        service=b.get("ServiceName"),
    )
    return [decided.raw]


# ---------------------------------------------------------------- the table
@dataclass(frozen=True)
class Cmdlet:
    """One cmdlet: its parameters, the SDK call it makes and the shape of what it prints.
    ``one_of``: exactly one of these parameters must be given (a parameter set)."""

    name: str
    params: tuple[Param, ...]
    call: Callable[[Client, Bound], list[Doc]]
    shape: Callable[[Doc], Doc]
    one_of: tuple[str, ...] = ()
    synopsis: str = ""

    def bind(self, command: Command) -> Bound:
        bound = bind(self.name, self.params, command.elements)
        if bound.pop("Confirm", False):
            raise BindError(
                f"{self.name} : jitpam ps asks no confirmation: give -Confirm:$false or leave "
                "-Confirm out."
            )
        if self.one_of:
            given = [n for n in self.one_of if n in bound]
            if len(given) != 1:
                raise BindError(
                    f"{self.name} : Parameter set cannot be resolved using the specified named "
                    f"parameters: give exactly one of {', '.join('-' + n for n in self.one_of)}."
                )
        return bound


_TARGET_PARAMS = tuple(Param(n, help="'Scope\\Name'") for n in TARGETS)
_DATA_SCOPE = Param("DataScope", help="'Service\\Scope', e.g. 'Office365\\Mail.Read'")
_APPROVAL = Param("ApprovalType", "choice", choices=("Manual", "Auto"))
_REQUIRED_APPROVAL = Param("ApprovalType", "choice", True, choices=_APPROVAL.choices)
_POLICY_OPTIONS = (
    Param("ApproverGroup"),
    Param("Eligible", "strings", help="UPNs (with @) and groups who may ask"),
    Param("ApprovalsRequired", "int", minimum=1, maximum=10),
    Param("MaxDurationHours", "int", minimum=1),
    Param("RequireTicket", "switch"),
)
# Accepted where M365 scripts write -Confirm:$false (nothing is asked: -Confirm alone is refused).
_CONFIRM = Param("Confirm", "switch")
_REQUEST_ID = Param("RequestId", "guid", required=True, position=0, aliases=("Identity",))
_COMMENT = Param("Comment", required=True)

CMDLETS: tuple[Cmdlet, ...] = (
    Cmdlet(
        "Enable-ElevatedAccessControl",
        (Param("AdminGroup", required=True), Param("SystemAccounts", "strings")),
        _enable,
        control_shape,
        synopsis="turn access control on with a default approver group",
    ),
    Cmdlet(
        "Disable-ElevatedAccessControl",
        (_CONFIRM,),
        lambda api, b: [api.disable_control().raw],
        control_shape,
        synopsis="turn access control off (policies and requests are kept)",
    ),
    Cmdlet(
        "New-ElevatedAccessApprovalPolicy",
        (*_TARGET_PARAMS, _DATA_SCOPE, _REQUIRED_APPROVAL, *_POLICY_OPTIONS),
        _new_policy,
        policy_shape,
        one_of=POLICY_TARGETS,
    ),
    Cmdlet(
        "Get-ElevatedAccessApprovalPolicy",
        (Param("Identity", "guid", position=0),),
        _get_policies,
        policy_shape,
    ),
    Cmdlet(
        "Set-ElevatedAccessApprovalPolicy",
        (Param("Identity", "guid", True, position=0), _APPROVAL, *_POLICY_OPTIONS),
        _set_policy,
        policy_shape,
    ),
    Cmdlet(
        "Remove-ElevatedAccessApprovalPolicy",
        (Param("Identity", "guid", True, position=0), _CONFIRM),
        lambda api, b: [api.remove_policy(b["Identity"]).raw],
        policy_shape,
    ),
    Cmdlet(
        "New-ElevatedAccessRequest",
        (
            *_TARGET_PARAMS,
            Param("Reason", required=True),
            Param("DurationHours", "int", minimum=1),
        ),
        _new_request,
        request_shape,
        one_of=TARGETS,
    ),
    Cmdlet(
        "Get-ElevatedAccessRequest",
        (Param("Identity", "guid", position=0, aliases=("RequestId",)),),
        _get_requests,
        request_shape,
    ),
    Cmdlet(
        "Approve-ElevatedAccessRequest",
        (_REQUEST_ID, _COMMENT),
        lambda api, b: [api.approve(b["RequestId"], b["Comment"]).raw],
        request_shape,
    ),
    Cmdlet(
        "Deny-ElevatedAccessRequest",
        (_REQUEST_ID, _COMMENT),
        lambda api, b: [api.deny(b["RequestId"], b["Comment"]).raw],
        request_shape,
    ),
    Cmdlet(
        "Get-ElevatedAccessAuthorization",
        (Param("User", help="a UPN, or * for everyone"), Param("Active", "switch")),
        _get_authorizations,
        authorization_shape,
    ),
    Cmdlet(
        "Revoke-ElevatedAccessAuthorization",
        (_REQUEST_ID, _COMMENT, _CONFIRM),
        _revoke,
        authorization_shape,
    ),
    Cmdlet(
        "Get-AccessToCustomerDataRequest",
        (
            Param("ApprovalStatus", "choice", choices=LOCKBOX_STATUSES),
            Param("CreatedAfter", "date", help="a date, UTC unless it names an offset"),
            Param("RequestId", "guid", aliases=("Identity",)),
        ),
        _get_lockbox,
        lockbox_shape,
        synopsis="Customer Lockbox requests addressed to your organization (filed by it, for "
        "the operator), newest first",
    ),
    Cmdlet(
        "Set-AccessToCustomerDataRequest",
        (
            Param("ApprovalDecision", "choice", True, choices=("Approve", "Deny", "Cancel")),
            Param("RequestId", "guid", True, aliases=("Identity",)),
            Param("Comment"),
            Param("ServiceName", "choice", choices=("EOP", "Exchange", "SharePoint", "Teams")),
        ),
        _set_lockbox,
        lockbox_shape,
        synopsis="the customer approves or denies a lockbox request, the engineer cancels it",
    ),
)

BY_NAME = {c.name.lower(): c for c in CMDLETS}


class UnknownCmdlet(Exception):
    """No cmdlet of that name (exit code 2)."""


def find(name: str) -> Cmdlet:
    found = BY_NAME.get(name.lower())
    if found is None:
        raise UnknownCmdlet(
            f"The term '{name}' is not recognized as a name of a cmdlet jitpam ps runs "
            f"({', '.join(sorted(c.name for c in CMDLETS))})."
        )
    return found


def names() -> Sequence[str]:
    return [c.name for c in CMDLETS]
