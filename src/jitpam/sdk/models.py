"""What the SDK's typed calls return: plain dataclasses built from the API's JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

UNREACHABLE = "server_unreachable"


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

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Decision:
        return cls(
            allowed=doc.get("allowed") is True,
            reason=str(doc.get("reason", "")),
            authorization_id=doc.get("authorization_id"),
            exempt=doc.get("exempt") is True,
        )


@dataclass(frozen=True)
class Review:
    approver: str
    decision: str
    comment: str
    at: str


@dataclass(frozen=True)
class AccessRequest:
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
            raw=doc,
        )


@dataclass(frozen=True)
class Authorization:
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
        )


@dataclass(frozen=True)
class TaskRun:
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
