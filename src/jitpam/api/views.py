"""The API's JSON shapes (field names are part of the contract; see docs/reference.md)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from jitpam.domain.audit import AuditRecord
from jitpam.domain.check import Decision
from jitpam.domain.connectors import ChangeOutcome, FailedChange, Membership, Recorded
from jitpam.domain.directory import User
from jitpam.domain.lockbox import REQUESTED_ACCESS
from jitpam.domain.requests import AccessRequest
from jitpam.domain.timeutil import iso
from jitpam.services.auth import TokenView
from jitpam.services.connectors import ConnectorView, PassReport
from jitpam.services.directory import GroupView
from jitpam.services.lockbox import LockboxView
from jitpam.services.organizations import ControlView
from jitpam.services.policies import PolicyView
from jitpam.services.ports import RoleMember
from jitpam.services.requests import RequestView


def when(at: datetime | None) -> str | None:
    return iso(at) if at is not None else None


def user(u: User) -> dict[str, Any]:
    return {
        "id": str(u.id),
        "upn": u.upn,
        "display_name": u.display_name,
        "email": u.email,
        "kind": u.kind.value,
        "enabled": u.enabled,
        "source": u.source.value,
    }


def _name(names: Mapping[UUID, str], id_: UUID) -> str:
    """The name a read model carries for ``id_`` (the id itself when it names nothing now)."""
    return names.get(id_, str(id_))


def group(v: GroupView) -> dict[str, Any]:
    g, names = v.group, v.names
    return {
        "id": str(g.id),
        "name": g.name,
        "email": g.email,
        "description": g.description,
        "members": sorted(_name(names, m) for m in g.member_ids),
    }


def control(v: ControlView) -> dict[str, Any]:
    c, names = v.control, v.names
    group_id = c.default_approver_group_id
    return {
        "enabled": c.enabled,
        "default_approver_group": _name(names, group_id) if group_id else None,
        "system_accounts": sorted(_name(names, i) for i in c.system_account_ids),
        "ticket_pattern": c.ticket_pattern,
        "max_policies": c.max_policies,
        "pending_hours": c.pending_hours,
        "lockbox_approval_required": c.lockbox_approval_required,
        "lockbox_max_hours": c.lockbox_max_hours,
        "scim_approver_groups": sorted(_name(names, i) for i in c.synced_approver_group_ids),
    }


def policy(v: PolicyView) -> dict[str, Any]:
    p, names = v.policy, v.names
    return {
        "id": str(p.id),
        "type": p.type.value,
        "target": str(p.target),
        "approval_type": p.approval_type.value,
        "approver_group": _name(names, p.approver_group_id) if p.approver_group_id else None,
        "eligible": sorted(_name(names, i) for i in p.eligible_user_ids | p.eligible_group_ids),
        "approvals_required": p.approvals_required,
        "max_duration_hours": p.max_duration_hours,
        "require_ticket": p.require_ticket,
        "created_at": iso(p.created_at),
    }


def request(v: RequestView) -> dict[str, Any]:
    r: AccessRequest = v.request
    auth = r.authorization
    return {
        "id": str(r.id),
        "requested_access": r.type.label,
        "status": v.status.value,
        "requester": r.requester_upn,
        "type": r.type.value,
        "target": str(r.target),
        "service": r.target.scope,
        "application": r.subject_upn,
        "resources": list(r.resources),
        "reason": r.reason,
        "duration_hours": r.duration_hours,
        "approvals_required": r.approvals_required,
        "policy_id": str(r.policy_id),
        "created_at": iso(r.created_at),
        "pending_until": iso(r.pending_until),
        "decided_at": when(r.decided_at),
        "approved_at": when(auth.start) if auth else None,
        "valid_until": when(auth.end) if auth else None,
        "authorization_id": str(auth.id) if auth else None,
        "revoked_at": when(auth.revoked_at) if auth else None,
        "revoked_by": _name(v.names, auth.revoked_by) if auth and auth.revoked_by else None,
        "revocation_comment": auth.revocation_comment if auth else None,
        "reviews": [
            {
                "approver": _name(v.names, rv.approver_id),
                "decision": rv.decision.value,
                "comment": rv.comment,
                "at": iso(rv.at),
            }
            for rv in r.reviews
        ],
        "signature": {"key_id": r.key_id, "value": r.signature},
        "still_present_in": list(v.still_present_in),
    }


def lockbox_request(v: LockboxView) -> dict[str, Any]:
    """A Customer Lockbox request as the caller's side sees it (``decided_by`` and
    ``revoked_by`` are "customer" for the operator's users other than the requester, "automatic"
    when the customer's setting approved it). ``end`` and ``valid_until`` are the same instant:
    the end of the access, named as the other request documents name it."""
    r = v.request
    return {
        "id": str(r.id),
        "requested_access": REQUESTED_ACCESS,
        "status": v.status.value,
        "customer": v.customer,
        "operator": v.operator,
        "requester": r.requester_upn,
        "service": r.service,
        "reason": r.reason,
        "case_reference": r.case_reference,
        "duration_hours": r.duration_hours,
        "created_at": iso(r.created_at),
        "pending_until": iso(r.pending_until),
        "decided_at": when(r.decided_at),
        "decided_by": v.decided_by,
        "decision_comment": r.decision_comment,
        "start": when(r.start),
        "end": when(r.end),
        "valid_until": when(r.end),
        "revoked_at": when(r.revoked_at),
        "revoked_by": v.revoked_by,
        "revocation_comment": r.revocation_comment,
    }


def authorization(v: RequestView) -> dict[str, Any]:
    auth = v.request.authorization
    assert auth is not None
    return {
        "id": str(auth.id),
        "request_id": str(v.request.id),
        "user": v.request.grantee_upn,  # a data access request's application
        "type": auth.type.value,
        "target": str(auth.target),
        "status": v.status.value,
        "valid_from": iso(auth.start),
        "valid_until": iso(auth.end),
        "revoked_at": when(auth.revoked_at),
        "revoked_by": _name(v.names, auth.revoked_by) if auth.revoked_by else None,
        "still_present_in": list(v.still_present_in),
    }


def decision(d: Decision) -> dict[str, Any]:
    return {
        "allowed": d.allowed,
        "reason": d.reason.value,
        "authorization_id": str(d.authorization_id) if d.authorization_id else None,
        "exempt": d.exempt,
    }


def audit_record(a: AuditRecord) -> dict[str, Any]:
    return {
        "seq": a.seq,
        "at": iso(a.at),
        "actor_id": a.actor_id,
        "actor": a.actor_name,
        "operation": a.operation,
        "target": a.target,
        "outcome": a.outcome.value,
        "details": a.details,
        "prev_hash": a.prev_hash,
        "hash": a.hash,
    }


def token(v: TokenView) -> dict[str, Any]:
    t, names = v.token, v.names
    return {
        "id": str(t.id),
        "user": _name(names, t.user_id),
        "name": t.name,
        "created_at": iso(t.created_at),
        "expires_at": iso(t.expires_at),
        "revoked_at": when(t.revoked_at),
        "created_by": _name(names, t.created_by),
    }


def role_member(m: RoleMember) -> dict[str, Any]:
    return {
        "kind": m.principal_kind.value,
        "name": m.name,
        "via": m.via,
        "just_in_time": m.just_in_time,
        "until": when(m.until),
        "authorization_id": str(m.authorization_id) if m.authorization_id else None,
    }


def page(items: list[dict[str, Any]], next_cursor: str | None = None) -> dict[str, Any]:
    return {"items": items, "next_cursor": next_cursor}


def membership(m: Membership) -> dict[str, Any]:
    return {"target": m.target, "member": m.member}


def failed_change(f: FailedChange) -> dict[str, Any]:
    return {
        "change": f.change.value,
        **membership(f.membership),
        "user": f.upn,
        "error": f.error,
        "since": iso(f.since),
    }


def connector_record(r: Recorded) -> dict[str, Any]:
    return {
        **membership(r.applied.membership),
        "origin": r.applied.origin.value,
        "user": r.upn,
        "recorded_at": iso(r.at),
    }


def connector(v: ConnectorView, *, records: bool = False) -> dict[str, Any]:
    """A connector's status; with ``records``, what jitpam recorded in it too. Never a secret:
    the configuration's secret references are not shown, nor is anything read through them."""
    s = v.state
    doc = {
        "name": v.name,
        "kind": v.kind,
        "health": v.health,
        "problem": v.problem,
        "bindings": [{"kind": k, "name": n, "target": t} for k, n, t in v.bindings],
        "added": v.added,
        "pre_existing": v.pre_existing,
        "failures": s.failures,
        "last_run_at": when(s.last_run_at),
        "last_success_at": when(s.last_success_at),
        "next_attempt_at": when(s.next_attempt_at) if s.failures else None,
        "last_error": s.last_error,
        "still_present": [failed_change(f) for f in s.still_present],
        "failing": [failed_change(f) for f in s.failing],
        "drift": [membership(m) for m in s.drift],
    }
    if records:
        doc["records"] = [connector_record(r) for r in v.records]
    return doc


def change_outcome(o: ChangeOutcome) -> dict[str, Any]:
    return {"change": o.change.value, **membership(o.membership), "done": o.done, "error": o.error}


def pass_report(r: PassReport) -> dict[str, Any]:
    """A pass asked for now: its plan (None when the target could not be read), what each change
    came to, the grants' holders the mapping refused, and the pass's error."""
    p = r.plan
    return {
        "connector": r.connector,
        "dry_run": r.dry_run,
        "plan": {
            key: [membership(m) for m in sorted(getattr(p, key))]
            for key in ("adds", "removes", "adopt", "forget", "drift")
        }
        if p is not None
        else None,
        "outcomes": [change_outcome(o) for o in r.outcomes],
        "unmappable": list(r.unmappable),
        "error": r.error,
    }
