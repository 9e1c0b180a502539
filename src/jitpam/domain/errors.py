"""Named errors of the domain and the use cases.

Each error carries a stable ``code`` (documented in docs/reference.md) and a ``kind`` that entry
points map to a status: the API maps kinds to HTTP statuses in one place, the CLI to one line and a
non-zero exit code.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    INVALID = "invalid"  # the input is malformed or breaks a rule about its form
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"  # the caller may not do this
    CONFLICT = "conflict"  # the state moved on, or the action repeats an existing thing
    UNAVAILABLE = "unavailable"  # a dependency failed; nothing changed
    UNAUTHENTICATED = "unauthenticated"  # no valid credential
    RATE_LIMITED = "rate_limited"  # too many failed attempts; wait


class JitpamError(Exception):
    """Base of every error jitpam reports to a user."""

    code = "error"
    kind = ErrorKind.INVALID

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(JitpamError):
    code = "invalid_input"


class AmbiguousName(JitpamError):
    code = "ambiguous_name"


class NotFound(JitpamError):
    code = "not_found"
    kind = ErrorKind.NOT_FOUND


class AlreadyExists(JitpamError):
    code = "already_exists"
    kind = ErrorKind.CONFLICT


class ManagedElsewhere(JitpamError):
    """A hand edit of a user or group the identity provider manages (SCIM)."""

    code = "managed_by_identity_provider"
    kind = ErrorKind.CONFLICT


class ApproverGroupNotSynced(JitpamError):
    """SCIM changed the members of an approver group the organization did not opt in."""

    code = "approver_group_not_synced"
    kind = ErrorKind.FORBIDDEN


class NotPermitted(JitpamError):
    """The caller does not hold the jitpam task the operation needs (or its grant is not active)."""

    code = "not_permitted"
    kind = ErrorKind.FORBIDDEN


class ControlDisabled(JitpamError):
    code = "control_disabled"
    kind = ErrorKind.CONFLICT


class NoPolicy(JitpamError):
    code = "no_policy"


class DuplicatePolicy(JitpamError):
    code = "duplicate_policy"
    kind = ErrorKind.CONFLICT


class PolicyLimitReached(JitpamError):
    code = "policy_limit_reached"
    kind = ErrorKind.CONFLICT


class DuplicateRequest(JitpamError):
    code = "duplicate_request"
    kind = ErrorKind.CONFLICT


class RequesterNotEligible(JitpamError):
    code = "requester_not_eligible"
    kind = ErrorKind.FORBIDDEN


class TaskNotHeld(JitpamError):
    code = "task_not_held"
    kind = ErrorKind.FORBIDDEN


class SelfApprovalNotAllowed(JitpamError):
    code = "self_approval"
    kind = ErrorKind.FORBIDDEN


class NotAnApprover(JitpamError):
    code = "not_an_approver"
    kind = ErrorKind.FORBIDDEN


class SeparationOfDuties(JitpamError):
    """The requester has a hand in the vote (docs/reference.md, "Separation of duties"): they made
    or set up the voter's account, placed the voter among the approvers, or chose the approval
    setup. Also refuses designating oneself, or an account one steers, as a system account."""

    code = "separation_of_duties"
    kind = ErrorKind.FORBIDDEN


class RequestNotPending(JitpamError):
    """The request was already decided, withdrawn or expired: the loser of a race gets this."""

    code = "request_not_pending"
    kind = ErrorKind.CONFLICT


class AlreadyVoted(JitpamError):
    code = "already_voted"
    kind = ErrorKind.CONFLICT


class AuthorizationNotActive(JitpamError):
    code = "authorization_not_active"
    kind = ErrorKind.CONFLICT


class RequestTampered(JitpamError):
    """The stored request no longer matches its signature: it is never granted."""

    code = "request_tampered"
    kind = ErrorKind.CONFLICT


class CatalogInvalid(JitpamError):
    code = "catalog_invalid"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class AuditUnavailable(JitpamError):
    """The audit record could not be written, so the action did not happen (fail closed)."""

    code = "audit_unavailable"
    kind = ErrorKind.UNAVAILABLE


class DatabaseUnavailable(JitpamError):
    """The database could not be reached or failed; nothing was changed (fail closed)."""

    code = "database_unavailable"
    kind = ErrorKind.UNAVAILABLE


class ConcurrentChange(JitpamError):
    """Another transaction changed the same thing first; nothing was changed by this one."""

    code = "concurrent_change"
    kind = ErrorKind.CONFLICT


class NotSignedIn(JitpamError):
    """No valid credential: unknown, expired and revoked tokens all look the same."""

    code = "not_signed_in"
    kind = ErrorKind.UNAUTHENTICATED


class TooManyAttempts(JitpamError):
    code = "too_many_attempts"
    kind = ErrorKind.RATE_LIMITED


class TaskDefinitionInvalid(JitpamError):
    """A task definition file is wrong; the message lists every problem as file:line: field."""

    code = "task_definition_invalid"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class TaskBusy(JitpamError):
    """The task already runs as many times at once as its definition allows."""

    code = "task_busy"
    kind = ErrorKind.CONFLICT


class ConnectorUnavailable(JitpamError):
    """A connector's target cannot be reached or spoken to: nothing was read or changed (or,
    when the connection broke mid-way, only what a later idempotent run does again)."""

    code = "connector_unavailable"
    kind = ErrorKind.UNAVAILABLE


class ConnectorInvalid(JitpamError):
    """A connector's configuration file is wrong; the message lists every problem as
    file:line: field."""

    code = "connector_invalid"

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
