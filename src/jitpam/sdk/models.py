"""What the SDK's typed calls return: plain dataclasses built from the API's JSON.

Each keeps the server's whole document in ``raw`` (left out of ``repr`` and of comparisons), so a
caller that shows answers as the server gave them (the ``jitpam`` command does) shows every
field, including those this version of the SDK does not know yet. Times are the API's ISO 8601
strings (UTC, with a ``Z``).
"""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, Self, Union, get_args, get_origin, get_type_hints

UNREACHABLE = "server_unreachable"

# How a field is read from the JSON key of its name, beside its declared type (``metadata``):
# ``_WHEN_ABSENT`` holds what it takes when the key is absent, ``_REQUIRED`` (absent: KeyError) or
# ``_NOT_READ`` (never read: the SDK fills it itself). Without it, an absent key gives the field's
# default, else None, False, () or {} by its type, else a KeyError.
_WHEN_ABSENT = "jitpam.when_absent"
_REQUIRED: Any = object()
_NOT_READ: Any = object()


def _absent(value: Any) -> dict[str, Any]:
    return {_WHEN_ABSENT: value}


def _reader(kind: Any) -> Callable[[Any], Any]:
    """How a JSON value becomes a value of the declared type ``kind``."""
    origin, args = get_origin(kind), get_args(kind)
    if origin in (Union, types.UnionType):
        (inner,) = [a for a in args if a is not type(None)]  # only ``X | None`` is declared
        read = _reader(inner)
        return lambda value: None if value is None else read(value)
    if kind is bool:
        return lambda value: value is True
    if kind in (str, int):
        return kind  # type: ignore[no-any-return] # str or int itself
    if origin is tuple:
        item = _reader(args[0])
        return lambda value: tuple(item(v) for v in value or ())
    if origin is dict:
        return lambda value: dict(value or {})
    if isinstance(kind, type) and issubclass(kind, _Model):
        return kind.from_json
    raise TypeError(f"no JSON reader for {kind!r}")


def _when_absent(f: Field[Any], kind: Any) -> Any:
    """What field ``f`` takes when its key is absent (``_REQUIRED``: none)."""
    if _WHEN_ABSENT in f.metadata:
        return f.metadata[_WHEN_ABSENT]
    if f.default is not MISSING:
        return f.default
    origin = get_origin(kind)
    if origin in (Union, types.UnionType):
        return None
    if kind is bool:
        return False
    if origin is tuple:
        return ()
    if origin is dict:
        return {}
    return _REQUIRED


_Plan = tuple[tuple[tuple[str, Callable[[Any], Any], Any], ...], bool]
_PLANS: dict[type[Any], _Plan] = {}


def _plan(cls: type[Any]) -> _Plan:
    """Each field ``cls`` reads from JSON (its name, its reader and what it takes when absent),
    and whether it keeps the document in ``raw``."""
    if cls not in _PLANS:
        hints = get_type_hints(cls)
        reads = tuple(
            (f.name, _reader(hints[f.name]), _when_absent(f, hints[f.name]))
            for f in fields(cls)
            if f.name != "raw" and f.metadata.get(_WHEN_ABSENT) is not _NOT_READ
        )
        _PLANS[cls] = reads, any(f.name == "raw" for f in fields(cls))
    return _PLANS[cls]


class _Model:
    """Gives a model dataclass its ``from_json``: each field from the JSON key of its name, read
    by its declared type, and the whole document in ``raw`` (the models that have one)."""

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Self:
        reads, keeps_raw = _plan(cls)
        values: dict[str, Any] = {}
        for name, read, absent in reads:
            if name in doc:
                values[name] = read(doc[name])
            elif absent is _REQUIRED:
                raise KeyError(name)
            else:
                values[name] = absent
        if keeps_raw:
            values["raw"] = doc
        return cls(**values)


@dataclass(frozen=True)
class Decision(_Model):
    """The answer to a check. ``reason`` is one of the server's reason codes, or
    ``server_unreachable`` when no answer came: then ``allowed`` is False (never a silent allow)
    and ``detail`` says why."""

    allowed: bool
    reason: str = field(metadata=_absent(""))
    authorization_id: str | None = None
    exempt: bool = False
    detail: str = field(default="", metadata=_absent(_NOT_READ))  # the SDK's own
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Review(_Model):
    """One approver's vote on a request: ``decision`` approved or denied."""

    approver: str
    decision: str
    comment: str = field(metadata=_absent(""))
    at: str


@dataclass(frozen=True)
class AccessRequest(_Model):
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
    requested_access: str = ""  # Task, Role, RoleGroup or Data Access Request
    service: str = ""  # the target's scope: Exchange, Office365
    # A data access request's application (who receives the grant; ``requester`` is its
    # installer) and the data it covers (group:Sales, mailbox:ceo@contoso.com).
    application: str | None = None
    resources: tuple[str, ...] = ()
    authorization_id: str | None = None
    valid_until: str | None = None
    reviews: tuple[Review, ...] = ()
    policy_id: str | None = None
    decided_at: str | None = None
    approved_at: str | None = None
    revoked_at: str | None = None
    revoked_by: str | None = None
    revocation_comment: str | None = None
    # A role or role-group grant that is over, where a connector could not take the access away
    # ("connector (target)").
    still_present_in: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class LockboxRequest(_Model):
    """A Customer Lockbox request: the operator's engineer (``requester``) asks the
    ``customer`` to reach one ``service`` of its data for ``duration_hours``. ``decided_by`` is
    "automatic" when the customer's setting approved it, "customer" for the operator's users
    other than the requester; ``valid_until`` (``end``) is when approved access ends."""

    id: str
    status: str
    customer: str
    operator: str
    requester: str
    service: str
    reason: str
    case_reference: str
    duration_hours: int
    created_at: str
    pending_until: str
    requested_access: str = "Customer Lockbox"
    decided_at: str | None = None
    decided_by: str | None = None
    decision_comment: str = field(default="", metadata=_absent(""))
    start: str | None = None
    end: str | None = None
    valid_until: str | None = None
    revoked_at: str | None = None
    revoked_by: str | None = None
    revocation_comment: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class RequestSignature(_Model):
    """Whether a request still matches the signature made when it was submitted."""

    id: str
    signature_valid: bool = field(metadata=_absent(_REQUIRED))
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Authorization(_Model):
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
    still_present_in: tuple[str, ...] = ()  # over, yet a connector could not take it away
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Policy(_Model):
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


@dataclass(frozen=True)
class AccessControl(_Model):
    """An organization's access control: on or off, its default approver group, the exempt
    system accounts and its settings."""

    enabled: bool = field(metadata=_absent(_REQUIRED))
    default_approver_group: str | None
    system_accounts: tuple[str, ...]
    ticket_pattern: str | None
    max_policies: int | None
    pending_hours: int
    lockbox_approval_required: bool = False
    lockbox_max_hours: int = 4
    # The approver groups whose memberships SCIM may set (the organization opted them in).
    scim_approver_groups: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class User(_Model):
    """A user of the organization."""

    id: str
    upn: str
    display_name: str
    email: str | None
    kind: str  # person, service, application or guest
    enabled: bool = field(metadata=_absent(_REQUIRED))
    source: str = "jitpam"  # or "scim": the identity provider manages the user
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class InstalledApplication(_Model):
    """Install-Application's answer: the application's new account and its data access
    requests, one per scope (an Auto policy's already approved)."""

    application: User
    requests: tuple[AccessRequest, ...]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Group(_Model):
    """A group (approver groups are groups)."""

    id: str
    name: str
    email: str | None
    description: str = field(metadata=_absent(""))
    members: tuple[str, ...]  # the members' UPNs
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class CatalogEntry(_Model):
    """A task, role or role group of the catalog, by name (``type`` for roles and role groups)."""

    name: str
    type: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class RoleMember(_Model):
    """A holder of a role: ``kind`` user or group; ``via`` the role group or group it holds it
    through, if any; a just-in-time member holds it ``until`` its authorization ends."""

    kind: str
    name: str
    via: str | None
    just_in_time: bool
    until: str | None
    authorization_id: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class RolePage(_Model):
    """A role or role group with the first page of its tasks and one page of its members; the
    cursors go on (``None`` at the end)."""

    name: str
    type: str  # role or role_group
    tasks: tuple[str, ...] = field(metadata=_absent(_REQUIRED))
    tasks_next_cursor: str | None
    members: tuple[RoleMember, ...] = field(metadata=_absent(_REQUIRED))
    members_next_cursor: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Role(_Model):
    """A role or role group with all its tasks and members. ``raw`` is the server's document
    for it with every page followed (its cursors ``None``)."""

    name: str
    type: str
    tasks: tuple[str, ...]
    members: tuple[RoleMember, ...]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Assignment(_Model):
    """A standing role (or role group) assignment made or removed."""

    type: str
    target: str
    principal_kind: str  # user or group
    principal: str
    removed: bool
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class CatalogImported(_Model):
    """What an imported catalog holds: its scope and how many tasks, roles and role groups."""

    scope: str
    tasks: int
    roles: int
    role_groups: int
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class IssuedToken(_Model):
    """A new bearer token: ``token`` is its secret, shown this once (never in the repr)."""

    token: str = field(repr=False)
    id: str
    user: str
    expires_at: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class ApiToken(_Model):
    """A token as listed (never its secret)."""

    id: str
    user: str
    name: str
    created_at: str
    expires_at: str
    revoked_at: str | None
    created_by: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class RevokedToken(_Model):
    """A token revoked: from now on every call made with it is refused."""

    id: str
    revoked: bool
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class AuditRecord(_Model):
    """One record of the audit chain. Read leniently: a field the server leaves out is empty."""

    seq: int
    at: str = field(metadata=_absent(""))
    actor: str | None
    actor_id: str | None
    operation: str = field(metadata=_absent(""))
    target: str | None
    outcome: str = field(metadata=_absent(""))
    details: dict[str, Any]
    prev_hash: str = field(metadata=_absent(""))
    hash: str = field(metadata=_absent(""))
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Checkpoint(_Model):
    """A signed chain head, to keep outside the database; ``raw`` is what to store, and what
    ``verify_audit`` takes back."""

    org_id: str
    seq: int
    head_hash: str
    at: str
    key_id: str
    signature: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class ChainReport(_Model):
    """The audit chain verified: ``ok``, or the ``problem`` and the first ``bad_seq``;
    ``checkpoint_signature_valid`` is None when no checkpoint was given."""

    ok: bool = field(metadata=_absent(_REQUIRED))
    records: int
    head_seq: int
    head_hash: str
    problem: str | None
    bad_seq: int | None
    checkpoint_signature_valid: bool | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Webhook(_Model):
    """A webhook endpoint; ``secret`` (its signing secret) only in the answer that added it."""

    id: str
    url: str
    events: tuple[str, ...]
    format: str  # json or slack
    created_at: str
    secret: str | None = field(default=None, repr=False)  # never in the repr
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class OutboxMessage(_Model):
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


@dataclass(frozen=True)
class Connector(_Model):
    """A connector (a grant made real in PostgreSQL or LDAP) and how its passes go: ``health``
    (ok, failing, removal failing, misconfigured, not run yet, removed), the failed passes in a
    row, the removals that failed (``still_present``: access that should be gone), the drift;
    ``records`` (what jitpam recorded in it) only in the answer about one connector."""

    name: str
    kind: str | None
    health: str
    problem: str | None
    bindings: tuple[dict[str, Any], ...]
    added: int
    pre_existing: int
    failures: int
    last_run_at: str | None
    last_success_at: str | None
    next_attempt_at: str | None
    last_error: str | None
    still_present: tuple[dict[str, Any], ...]
    failing: tuple[dict[str, Any], ...]
    drift: tuple[dict[str, Any], ...]
    records: tuple[dict[str, Any], ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class ConnectorPass(_Model):
    """A pass of a connector asked for now: its ``plan`` (adds, removes, adopt, forget, drift;
    None when the target could not be read), each change's outcome, the holders the mapping
    refused (``unmappable``) and the pass's ``error``."""

    connector: str
    dry_run: bool
    plan: dict[str, Any] | None
    outcomes: tuple[dict[str, Any], ...]
    unmappable: tuple[str, ...]
    error: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class TaskDefinition(_Model):
    """A task jitpam runs: its parameters (name, type, required, description, pattern,
    choices) and limits; never its secrets."""

    task: str
    description: str = field(metadata=_absent(""))
    executor: str
    parameters: tuple[dict[str, Any], ...]
    timeout_seconds: int
    concurrency: int
    keeps_output: bool
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class TaskRun(_Model):
    """A task run by the server, ended: its output (secrets masked) and exit code."""

    run_id: str
    task: str
    outcome: str  # succeeded, failed or timed_out
    exit_code: int | None
    http_status: int | None
    duration_ms: int = field(metadata=_absent(0))
    output: str = field(metadata=_absent(""))
    error: str | None
    outlived_grant: bool
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
