"""What the SDK's typed calls return: plain dataclasses built from the API's JSON.

Each keeps the server's whole document in ``raw`` (left out of ``repr`` and of comparisons), so a
caller that shows answers as the server gave them (the ``jitpam`` command does) shows every
field, including those this version of the SDK does not know yet. Times are the API's ISO 8601
strings (UTC, with a ``Z``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

UNREACHABLE = "server_unreachable"


def _strings(values: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in values or ())


@dataclass(frozen=True)
class Decision:
    """The answer to a check. ``reason`` is one of the server's reason codes, or
    ``server_unreachable`` when no answer came: then ``allowed`` is False (never a silent allow)
    and ``detail`` says why."""

    allowed: bool
    reason: str
    authorization_id: str | None = None
    exempt: bool = False
    detail: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Decision:
        return cls(
            allowed=doc.get("allowed") is True,
            reason=str(doc.get("reason", "")),
            authorization_id=doc.get("authorization_id"),
            exempt=doc.get("exempt") is True,
            raw=doc,
        )


@dataclass(frozen=True)
class Review:
    """One approver's vote on a request: ``decision`` approved or denied."""

    approver: str
    decision: str
    comment: str
    at: str


@dataclass(frozen=True)
class AccessRequest:
    """A request for just-in-time access, as it is now (``status`` counts the clock: a pending
    request past its deadline is expired), with its votes and, once approved, its grant."""

    id: str
    status: str
    requester: str
    type: str
    target: str
    reason: str
    duration_hours: int
    approvals_required: int
    created_at: str
    pending_until: str
    authorization_id: str | None = None
    valid_until: str | None = None
    reviews: tuple[Review, ...] = ()
    policy_id: str | None = None
    decided_at: str | None = None
    approved_at: str | None = None
    revoked_at: str | None = None
    revoked_by: str | None = None
    revocation_comment: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> AccessRequest:
        return cls(
            id=doc["id"],
            status=doc["status"],
            requester=doc["requester"],
            type=doc["type"],
            target=doc["target"],
            reason=doc["reason"],
            duration_hours=int(doc["duration_hours"]),
            approvals_required=int(doc["approvals_required"]),
            created_at=doc["created_at"],
            pending_until=doc["pending_until"],
            authorization_id=doc.get("authorization_id"),
            valid_until=doc.get("valid_until"),
            reviews=tuple(
                Review(r["approver"], r["decision"], r.get("comment", ""), r["at"])
                for r in doc.get("reviews", [])
            ),
            policy_id=doc.get("policy_id"),
            decided_at=doc.get("decided_at"),
            approved_at=doc.get("approved_at"),
            revoked_at=doc.get("revoked_at"),
            revoked_by=doc.get("revoked_by"),
            revocation_comment=doc.get("revocation_comment"),
            raw=doc,
        )


@dataclass(frozen=True)
class RequestSignature:
    """Whether a request still matches the signature made when it was submitted."""

    id: str
    signature_valid: bool
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RequestSignature:
        return cls(id=doc["id"], signature_valid=doc["signature_valid"] is True, raw=doc)


@dataclass(frozen=True)
class Authorization:
    """A grant an approval made; ``status`` is its request's: approved while it lasts, completed
    once over, or revoked."""

    id: str
    request_id: str
    user: str
    type: str
    target: str
    status: str
    valid_from: str
    valid_until: str
    revoked_at: str | None = None
    revoked_by: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Authorization:
        return cls(
            id=doc["id"],
            request_id=doc["request_id"],
            user=doc["user"],
            type=doc["type"],
            target=doc["target"],
            status=doc["status"],
            valid_from=doc["valid_from"],
            valid_until=doc["valid_until"],
            revoked_at=doc.get("revoked_at"),
            revoked_by=doc.get("revoked_by"),
            raw=doc,
        )


@dataclass(frozen=True)
class Policy:
    """An approval policy: who may ask for a task, role or role group, and who approves."""

    id: str
    type: str
    target: str
    approval_type: str
    approver_group: str | None
    eligible: tuple[str, ...]
    approvals_required: int
    max_duration_hours: int | None
    require_ticket: bool
    created_at: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Policy:
        return cls(
            id=doc["id"],
            type=doc["type"],
            target=doc["target"],
            approval_type=doc["approval_type"],
            approver_group=doc.get("approver_group"),
            eligible=_strings(doc.get("eligible")),
            approvals_required=int(doc["approvals_required"]),
            max_duration_hours=doc.get("max_duration_hours"),
            require_ticket=doc.get("require_ticket") is True,
            created_at=doc["created_at"],
            raw=doc,
        )


@dataclass(frozen=True)
class AccessControl:
    """An organization's access control: on or off, its default approver group, the exempt
    system accounts and its settings."""

    enabled: bool
    default_approver_group: str | None
    system_accounts: tuple[str, ...]
    ticket_pattern: str | None
    max_policies: int | None
    pending_hours: int
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> AccessControl:
        return cls(
            enabled=doc["enabled"] is True,
            default_approver_group=doc.get("default_approver_group"),
            system_accounts=_strings(doc.get("system_accounts")),
            ticket_pattern=doc.get("ticket_pattern"),
            max_policies=doc.get("max_policies"),
            pending_hours=int(doc["pending_hours"]),
            raw=doc,
        )


@dataclass(frozen=True)
class User:
    """A user of the organization."""

    id: str
    upn: str
    display_name: str
    email: str | None
    kind: str  # person, service, application or guest
    enabled: bool
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> User:
        return cls(
            id=doc["id"],
            upn=doc["upn"],
            display_name=doc["display_name"],
            email=doc.get("email"),
            kind=doc["kind"],
            enabled=doc["enabled"] is True,
            raw=doc,
        )


@dataclass(frozen=True)
class Group:
    """A group (approver groups are groups)."""

    id: str
    name: str
    email: str | None
    description: str
    members: tuple[str, ...]  # the members' UPNs
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Group:
        return cls(
            id=doc["id"],
            name=doc["name"],
            email=doc.get("email"),
            description=doc.get("description", ""),
            members=_strings(doc.get("members")),
            raw=doc,
        )


@dataclass(frozen=True)
class CatalogEntry:
    """A task, role or role group of the catalog, by name (``type`` for roles and role groups)."""

    name: str
    type: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> CatalogEntry:
        return cls(name=doc["name"], type=doc.get("type"), raw=doc)


@dataclass(frozen=True)
class RoleMember:
    """A holder of a role: ``kind`` user or group; ``via`` the role group or group it holds it
    through, if any; a just-in-time member holds it ``until`` its authorization ends."""

    kind: str
    name: str
    via: str | None
    just_in_time: bool
    until: str | None
    authorization_id: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RoleMember:
        return cls(
            kind=doc["kind"],
            name=doc["name"],
            via=doc.get("via"),
            just_in_time=doc.get("just_in_time") is True,
            until=doc.get("until"),
            authorization_id=doc.get("authorization_id"),
            raw=doc,
        )


@dataclass(frozen=True)
class RolePage:
    """A role or role group with the first page of its tasks and one page of its members; the
    cursors go on (``None`` at the end)."""

    name: str
    type: str  # role or role_group
    tasks: tuple[str, ...]
    tasks_next_cursor: str | None
    members: tuple[RoleMember, ...]
    members_next_cursor: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RolePage:
        return cls(
            name=doc["name"],
            type=doc["type"],
            tasks=_strings(doc["tasks"]),
            tasks_next_cursor=doc.get("tasks_next_cursor"),
            members=tuple(RoleMember.from_json(m) for m in doc["members"]),
            members_next_cursor=doc.get("members_next_cursor"),
            raw=doc,
        )


@dataclass(frozen=True)
class Role:
    """A role or role group with all its tasks and members. ``raw`` is the server's document
    for it with every page followed (its cursors ``None``)."""

    name: str
    type: str
    tasks: tuple[str, ...]
    members: tuple[RoleMember, ...]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Assignment:
    """A standing role (or role group) assignment made or removed."""

    type: str
    target: str
    principal_kind: str  # user or group
    principal: str
    removed: bool
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Assignment:
        return cls(
            type=doc["type"],
            target=doc["target"],
            principal_kind=doc["principal_kind"],
            principal=doc["principal"],
            removed=doc.get("removed") is True,
            raw=doc,
        )


@dataclass(frozen=True)
class CatalogImported:
    """What an imported catalog holds: its scope and how many tasks, roles and role groups."""

    scope: str
    tasks: int
    roles: int
    role_groups: int
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> CatalogImported:
        return cls(
            scope=doc["scope"],
            tasks=int(doc["tasks"]),
            roles=int(doc["roles"]),
            role_groups=int(doc["role_groups"]),
            raw=doc,
        )


@dataclass(frozen=True)
class IssuedToken:
    """A new bearer token: ``token`` is its secret, shown this once (never in the repr)."""

    token: str = field(repr=False)
    id: str
    user: str
    expires_at: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> IssuedToken:
        return cls(
            token=doc["token"],
            id=doc["id"],
            user=doc["user"],
            expires_at=doc["expires_at"],
            raw=doc,
        )


@dataclass(frozen=True)
class ApiToken:
    """A token as listed (never its secret)."""

    id: str
    user: str
    name: str
    created_at: str
    expires_at: str
    revoked_at: str | None
    created_by: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ApiToken:
        return cls(
            id=doc["id"],
            user=doc["user"],
            name=doc["name"],
            created_at=doc["created_at"],
            expires_at=doc["expires_at"],
            revoked_at=doc.get("revoked_at"),
            created_by=doc["created_by"],
            raw=doc,
        )


@dataclass(frozen=True)
class RevokedToken:
    """A token revoked: from now on every call made with it is refused."""

    id: str
    revoked: bool
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RevokedToken:
        return cls(id=doc["id"], revoked=doc.get("revoked") is True, raw=doc)


@dataclass(frozen=True)
class AuditRecord:
    """One record of the audit chain. Read leniently: a field the server leaves out is empty."""

    seq: int
    at: str
    actor: str | None
    actor_id: str | None
    operation: str
    target: str | None
    outcome: str
    details: dict[str, Any]
    prev_hash: str
    hash: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> AuditRecord:
        return cls(
            seq=int(doc["seq"]),
            at=str(doc.get("at", "")),
            actor=doc.get("actor"),
            actor_id=doc.get("actor_id"),
            operation=str(doc.get("operation", "")),
            target=doc.get("target"),
            outcome=str(doc.get("outcome", "")),
            details=dict(doc.get("details") or {}),
            prev_hash=str(doc.get("prev_hash", "")),
            hash=str(doc.get("hash", "")),
            raw=doc,
        )


@dataclass(frozen=True)
class Checkpoint:
    """A signed chain head, to keep outside the database; ``raw`` is what to store, and what
    ``verify_audit`` takes back."""

    org_id: str
    seq: int
    head_hash: str
    at: str
    key_id: str
    signature: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Checkpoint:
        return cls(
            org_id=doc["org_id"],
            seq=int(doc["seq"]),
            head_hash=doc["head_hash"],
            at=doc["at"],
            key_id=doc["key_id"],
            signature=doc["signature"],
            raw=doc,
        )


@dataclass(frozen=True)
class ChainReport:
    """The audit chain verified: ``ok``, or the ``problem`` and the first ``bad_seq``;
    ``checkpoint_signature_valid`` is None when no checkpoint was given."""

    ok: bool
    records: int
    head_seq: int
    head_hash: str
    problem: str | None
    bad_seq: int | None
    checkpoint_signature_valid: bool | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ChainReport:
        return cls(
            ok=doc["ok"] is True,
            records=int(doc["records"]),
            head_seq=int(doc["head_seq"]),
            head_hash=doc["head_hash"],
            problem=doc.get("problem"),
            bad_seq=doc.get("bad_seq"),
            checkpoint_signature_valid=doc.get("checkpoint_signature_valid"),
            raw=doc,
        )


@dataclass(frozen=True)
class Webhook:
    """A webhook endpoint; ``secret`` (its signing secret) only in the answer that added it."""

    id: str
    url: str
    events: tuple[str, ...]
    format: str  # json or slack
    created_at: str
    secret: str | None = field(default=None, repr=False)  # never in the repr
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Webhook:
        return cls(
            id=doc["id"],
            url=doc["url"],
            events=_strings(doc.get("events")),
            format=doc["format"],
            created_at=doc["created_at"],
            secret=doc.get("secret"),
            raw=doc,
        )


@dataclass(frozen=True)
class OutboxMessage:
    """A notification waiting, delivered or dead (``state``)."""

    id: str
    channel: str
    event: str
    state: str
    attempts: int
    next_attempt_at: str
    last_error: str | None
    created_at: str
    delivered_at: str | None
    destination: str | None
    recipients: tuple[str, ...]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> OutboxMessage:
        return cls(
            id=doc["id"],
            channel=doc["channel"],
            event=doc["event"],
            state=doc["state"],
            attempts=int(doc["attempts"]),
            next_attempt_at=doc["next_attempt_at"],
            last_error=doc.get("last_error"),
            created_at=doc["created_at"],
            delivered_at=doc.get("delivered_at"),
            destination=doc.get("destination"),
            recipients=_strings(doc.get("recipients")),
            raw=doc,
        )


@dataclass(frozen=True)
class TaskDefinition:
    """A task jitpam runs: its parameters (name, type, required, description, pattern,
    choices) and limits; never its secrets."""

    task: str
    description: str
    executor: str
    parameters: tuple[dict[str, Any], ...]
    timeout_seconds: int
    concurrency: int
    keeps_output: bool
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> TaskDefinition:
        return cls(
            task=doc["task"],
            description=doc.get("description", ""),
            executor=doc["executor"],
            parameters=tuple(doc.get("parameters") or ()),
            timeout_seconds=int(doc["timeout_seconds"]),
            concurrency=int(doc["concurrency"]),
            keeps_output=doc.get("keeps_output") is True,
            raw=doc,
        )


@dataclass(frozen=True)
class TaskRun:
    """A task run by the server, ended: its output (secrets masked) and exit code."""

    run_id: str
    task: str
    outcome: str  # succeeded, failed or timed_out
    exit_code: int | None
    http_status: int | None
    duration_ms: int
    output: str
    error: str | None
    outlived_grant: bool
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> TaskRun:
        return cls(
            run_id=doc["run_id"],
            task=doc["task"],
            outcome=doc["outcome"],
            exit_code=doc.get("exit_code"),
            http_status=doc.get("http_status"),
            duration_ms=int(doc.get("duration_ms", 0)),
            output=doc.get("output", ""),
            error=doc.get("error"),
            outlived_grant=doc.get("outlived_grant") is True,
            raw=doc,
        )
