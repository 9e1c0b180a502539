"""The SDK's models read from the API's JSON by their fields' declared types, without a server."""

from __future__ import annotations

from typing import Any

import pytest

from jitpam.sdk.models import AccessRequest, AuditRecord, Decision, Policy, Review, RolePage


def _request() -> dict[str, Any]:
    return {
        "id": "r1",
        "status": "approved",
        "requester": "ann@contoso.com",
        "type": "task",
        "target": "Exchange\\New-MoveRequest",
        "reason": "move a mailbox",
        "duration_hours": "4",
        "approvals_required": 1,
        "created_at": "2026-12-07T10:00:00Z",
        "pending_until": "2026-12-08T10:00:00Z",
        "authorization_id": "a1",
        "reviews": [
            {"approver": "bob@contoso.com", "decision": "approved", "at": "2026-12-07T10:05:00Z"}
        ],
        "a_field_of_a_newer_server": {"x": 1},
    }


def test_an_unknown_key_is_kept_in_raw_and_a_missing_optional_one_takes_its_default() -> None:
    doc = _request()
    request = AccessRequest.from_json(doc)
    assert request.raw is doc
    assert request.raw["a_field_of_a_newer_server"] == {"x": 1}
    assert request.duration_hours == 4  # read by its declared type
    assert request.valid_until is None  # absent: None
    assert request.revoked_by is None
    assert request.reviews == (
        Review("bob@contoso.com", "approved", "", "2026-12-07T10:05:00Z"),  # comment absent: ""
    )
    policy = Policy.from_json(
        {
            "id": "p1",
            "type": "task",
            "target": "t",
            "approval_type": "manual",
            "approvals_required": 2,
            "created_at": "2026-12-07T10:00:00Z",
        }
    )
    assert (policy.approver_group, policy.eligible, policy.require_ticket) == (None, (), False)
    assert policy.max_duration_hours is None
    assert policy.raw["approvals_required"] == 2


def test_a_missing_required_key_is_refused_whatever_its_type() -> None:
    doc = _request()
    del doc["pending_until"]
    with pytest.raises(KeyError, match="pending_until"):
        AccessRequest.from_json(doc)
    with pytest.raises(KeyError, match="members"):
        RolePage.from_json({"name": "r", "type": "role", "tasks": []})


def test_a_boolean_is_true_only_when_the_server_says_true() -> None:
    assert Decision.from_json({"allowed": "yes", "reason": "granted"}).allowed is False
    assert Decision.from_json({"allowed": True, "reason": "granted"}).allowed is True


def test_a_decision_never_takes_its_detail_from_the_server_and_an_audit_record_is_lenient() -> None:
    decision = Decision.from_json({"allowed": False, "reason": "task_not_held", "detail": "x"})
    assert decision.detail == ""
    assert Decision.from_json({"allowed": False}).reason == ""
    record = AuditRecord.from_json({"seq": 3})
    assert (record.seq, record.at, record.operation, record.hash, record.details) == (
        3,
        "",
        "",
        "",
        {},
    )
    assert record.actor is None
