"""Requests and their decisions: New-, Get-, Approve-, Deny-ElevatedAccessRequest, cancel,
Revoke-ElevatedAccessAuthorization, signature verification, and the settling sweep."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from jitpam.domain.audit import JITPAM, Actor, AuditEvent
from jitpam.domain.check import holds_task
from jitpam.domain.control import AccessControl
from jitpam.domain.directory import User
from jitpam.domain.errors import (
    ControlDisabled,
    DuplicateRequest,
    InvalidInput,
    JitpamError,
    NoPolicy,
    NotFound,
    NotPermitted,
    RequesterNotEligible,
    RequestTampered,
    TaskNotHeld,
)
from jitpam.domain.names import QualifiedName
from jitpam.domain.notifications import EventType
from jitpam.domain.operations import REQUESTER, AuditOperation
from jitpam.domain.policy import DEFAULT_DURATION_HOURS, ApprovalType, Policy, PolicyType
from jitpam.domain.requests import (
    AccessRequest,
    RequestStatus,
    ReviewDecision,
    check_reason,
)
from jitpam.domain.separation import Hand
from jitpam.domain.timeutil import iso
from jitpam.services.authorization import caller_user, may
from jitpam.services.connectors import still_present_by_user
from jitpam.services.context import Caller, ServiceContext
from jitpam.services.directory import find_user, lookup_user, resolve_target
from jitpam.services.facts import gather_facts, roles_held
from jitpam.services.inputs import parse_enum
from jitpam.services.notifications import queue_request_event
from jitpam.services.ports import Page, RequestFilter, Reviewer, Signer, UnitOfWork
from jitpam.services.separation import (
    approver_group,
    hand_in,
    hands_in_votes,
    refuse_setup,
    steers_subject,
)
from jitpam.services.use_case import use_case

MAX_PAGE = 500
SWEEP_BATCH = 100  # rows a sweep writes per transaction: short holds of SQLite's write lock
SEE_ALL = AuditOperation.GET_REQUEST
REVOKE_ANY = AuditOperation.REVOKE_AUTHORIZATION


@dataclass(frozen=True)
class RequestView:
    """A request with its status as of the moment it was read, and the UPNs of the users it
    names by id (its reviewers, whoever revoked its grant), read in the same transaction."""

    request: AccessRequest
    status: RequestStatus
    names: Mapping[UUID, str]
    # A role or role-group grant that is over while a connector could not take its user's
    # access away: "connector (target)" for each place it is still present.
    still_present_in: tuple[str, ...] = ()


def _named(requests: Iterable[AccessRequest]) -> set[UUID]:
    """The users the requests name by id."""
    ids: set[UUID] = set()
    for r in requests:
        ids |= {review.approver_id for review in r.reviews}
        if r.authorization is not None and r.authorization.revoked_by is not None:
            ids.add(r.authorization.revoked_by)
    return ids


GRANT_OVER = frozenset({RequestStatus.REVOKED, RequestStatus.EXPIRED, RequestStatus.COMPLETED})


def _grant_over(request: AccessRequest, status: RequestStatus) -> bool:
    """Whether the request held a role or role-group grant that has ended (what connectors make
    real in target systems, and must take away again)."""
    return (
        request.authorization is not None
        and status in GRANT_OVER
        and request.type in (PolicyType.ROLE, PolicyType.ROLE_GROUP)
    )


def request_views(
    uow: UnitOfWork, org_id: UUID, requests: Sequence[AccessRequest], at: datetime
) -> list[RequestView]:
    """The requests as their callers show them, with the names they need read in ``uow``'s
    transaction (a use case that changes them: before it commits, so that nothing is left to
    fail once the change is made). Users the transaction read already cost no query."""
    names = uow.users.upns(org_id, _named(requests))
    statuses = [r.status_at(at) for r in requests]
    over = [_grant_over(r, status) for r, status in zip(requests, statuses, strict=True)]
    lingering = still_present_by_user(uow, org_id) if any(over) else {}  # one query at most
    return [
        RequestView(
            r, status, names, tuple(lingering.get(r.grantee_upn.casefold(), ())) if ended else ()
        )
        for r, status, ended in zip(requests, statuses, over, strict=True)
    ]


def _sign(signer: Signer, request: AccessRequest) -> None:
    request.key_id = signer.key_id
    request.signature = signer.sign(request.signing_payload())


def _verified(signer: Signer, request: AccessRequest) -> bool:
    return bool(request.signature) and signer.verify(
        key_id=request.key_id, payload=request.signing_payload(), signature=request.signature
    )


def _window(request: AccessRequest) -> dict[str, Any]:
    auth = request.authorization
    if auth is None:
        return {}
    return {"authorization_id": str(auth.id), "start": iso(auth.start), "end": iso(auth.end)}


def new_request(
    ctx: ServiceContext,
    *,
    caller: Caller,
    type: PolicyType,
    target: str,
    reason: str,
    duration_hours: int = DEFAULT_DURATION_HOURS,
) -> RequestView:
    """New-ElevatedAccessRequest. Refused (each refusal audited) while control is disabled, when no
    policy covers the target, when the requester is not eligible, when (task) the requester holds no
    role with the task, and as a duplicate of their pending or active request for the target.
    An Auto policy approves at once."""
    op = AuditOperation.NEW_REQUEST
    with use_case(ctx, caller=caller, operation=op, target=target) as uow:
        at = ctx.clock.now()
        # One request at a time per requester, decided on the row as it is once locked (the
        # caller's checks below read that locked row: users are read once per transaction).
        uow.users.get(caller.user_id, for_update=True)
        requester = caller_user(uow, caller)
        control = uow.orgs.control(caller.org_id)
        if not control.enabled:
            raise ControlDisabled(
                "access control is disabled in this organization: requests are not accepted"
            )
        kind = parse_enum(PolicyType, type, "type")
        if kind is PolicyType.DATA_ACCESS:
            raise InvalidInput(
                "data access is asked for an application when it is installed "
                "(jitpam app install), not for oneself"
            )
        policy, name = covering_policy(uow, caller.org_id, kind, target)
        admit(uow, requester=requester, policy=policy, control=control)
        if kind is PolicyType.TASK:
            facts = gather_facts(uow, user=requester, task=str(name), control=control, at=at)
            if not holds_task(facts, at):
                raise TaskNotHeld(
                    f"you hold no role that contains the task '{name}': "
                    "an approval would not let you run it"
                )
        request = open_request(
            ctx,
            uow,
            requester=requester,
            policy=policy,
            control=control,
            reason=reason,
            duration_hours=duration_hours,
            at=at,
        )
        (view,) = request_views(uow, caller.org_id, [request], at)
        uow.commit()
        return view


def covering_policy(
    uow: UnitOfWork, org_id: UUID, kind: PolicyType, target: str
) -> tuple[Policy, QualifiedName]:
    """The policy covering ``target`` and its canonical name; NoPolicy when none does."""
    try:
        name = resolve_target(uow, org_id, kind, target)
    except NotFound:
        raise NoPolicy(f"no privileged access policy covers {kind.label} '{target}'") from None
    policy = uow.policies.for_target(org_id, kind, name)
    if policy is None:
        raise NoPolicy(f"no privileged access policy covers {kind.label} '{name}'")
    return policy, name


def admit(uow: UnitOfWork, *, requester: User, policy: Policy, control: AccessControl) -> None:
    """Refuse a requester the policy does not name as eligible, or who chose its approval setup:
    no vote on their request could count, and Auto approval would be theirs alone (refused now,
    not left pending for ever)."""
    policy.ensure_eligible(requester.id, uow.users.group_ids(requester.id))
    refuse_setup(uow, requester=requester.id, policy=policy, control=control)


def open_request(
    ctx: ServiceContext,
    uow: UnitOfWork,
    *,
    requester: User,
    policy: Policy,
    control: AccessControl,
    reason: str,
    duration_hours: int,
    at: datetime,
    subject: User | None = None,
    resources: Sequence[str] = (),
) -> AccessRequest:
    """File a request under ``policy`` (that ``admit`` let the requester use) in ``uow``'s
    transaction, audited and notified, approved at once under an Auto policy: refused for a
    reason or a duration the policy refuses, and as a duplicate of an open request for the same
    target (for a data access request: of the same application)."""
    kind, name = policy.type, policy.target
    clean_reason = check_reason(reason)
    policy.check_reason(clean_reason, control.ticket_pattern)
    hours = policy.check_duration(duration_hours)
    existing = uow.requests.open_for(
        requester.org_id,
        requester.id,
        kind,
        str(name),
        at,
        subject_id=subject.id if subject is not None else None,
    )
    if existing is not None:
        whose = "you already have" if subject is None else f"{subject.upn} already has"
        raise DuplicateRequest(
            f"{whose} a {existing.status_at(at).value} request for "
            f"{kind.label} '{name}': {existing.id}"
        )
    request = AccessRequest.open(
        org_id=requester.org_id,
        requester=requester,
        policy_id=policy.id,
        type=kind,
        target=name,
        reason=clean_reason,
        duration_hours=hours,
        approvals_required=policy.approvals_required,
        at=at,
        pending_hours=control.pending_hours,
        subject=subject,
        resources=tuple(resources),
    )
    _sign(ctx.signer, request)
    uow.requests.add(request)
    for_application = (
        {"application": request.subject_upn, "resources": list(request.resources)}
        if subject is not None
        else {}
    )
    uow.record(
        AuditEvent(
            org_id=requester.org_id,
            actor=Actor.of(requester),
            operation=AuditOperation.NEW_REQUEST,
            target=str(request.id),
            at=at,
            details={
                "type": kind.value,
                "target": str(name),
                "reason": clean_reason,
                "duration_hours": hours,
                "policy_id": str(policy.id),
                "approval_type": policy.approval_type.value,
                "pending_until": iso(request.pending_until),
                **for_application,
            },
        )
    )
    if policy.approval_type is ApprovalType.AUTO:
        request.approve_automatically(at=at)
        uow.requests.save(request)
        uow.record(
            AuditEvent(
                org_id=requester.org_id,
                at=at,
                actor=JITPAM,
                operation=AuditOperation.APPROVE_REQUEST,
                target=str(request.id),
                details={
                    "approval_type": "auto",
                    REQUESTER: request.grantee_upn,
                    **_window(request),
                },
            )
        )
    notice = (
        EventType.REQUEST_AUTO_APPROVED
        if request.status is RequestStatus.APPROVED
        else EventType.REQUEST_CREATED
    )
    queue_request_event(ctx, uow, event=notice, request=request, at=at)
    return request


def _load(
    uow: UnitOfWork, caller: Caller, request_id: UUID, *, for_update: bool = False
) -> AccessRequest:
    request = uow.requests.get(request_id, for_update=for_update)
    if request is None or request.org_id != caller.org_id:
        raise NotFound(f"no request {request_id} in this organization")
    return request


def _approver_group(uow: UnitOfWork, caller: Caller, policy: Policy | None) -> UUID | None:
    return approver_group(policy, uow.orgs.control(caller.org_id))


def _is_approver(
    uow: UnitOfWork, caller: Caller, request: AccessRequest, user: User, *, lock: bool = True
) -> bool:
    """Membership of the policy's approver group (or the default one) right now; the membership
    row is locked, so a removal committed meanwhile is seen and one in flight waits."""
    policy = uow.policies.get(request.policy_id)
    if policy is None:
        return False
    group_id = _approver_group(uow, caller, policy)
    return group_id is not None and uow.groups.is_member(group_id, user.id, lock=lock)


def _current_approvers(
    uow: UnitOfWork, caller: Caller, request: AccessRequest, policy: Policy | None
) -> frozenset[UUID]:
    """Whose votes count on the request now: enabled person members of the policy's approver
    group in whose vote the requester has no hand (domain/separation.py)."""
    group_id = _approver_group(uow, caller, policy) if policy is not None else None
    group = uow.groups.get(group_id) if group_id is not None else None
    if group is None or policy is None:
        return frozenset()
    members = (uow.users.get(m) for m in group.member_ids)
    able = frozenset(u.id for u in members if u is not None and u.can_approve)
    hands = hands_in_votes(
        uow,
        request=request,
        policy=policy,
        control=uow.orgs.control(caller.org_id),
        voter_ids=able,
    )
    return frozenset(v for v in able if hands[v] is None and not steers_subject(uow, request, v))


def _hand(
    uow: UnitOfWork, caller: Caller, request: AccessRequest, policy: Policy | None, voter: User
) -> Hand | None:
    """How the requester has a hand in ``voter``'s vote now (None: none, or no policy left)."""
    if policy is None:
        return None
    control = uow.orgs.control(caller.org_id)
    return hand_in(uow, request=request, policy=policy, control=control, voter=voter.id)


def review_request(
    ctx: ServiceContext,
    *,
    caller: Caller,
    request_id: UUID,
    decision: ReviewDecision,
    comment: str | None = None,
) -> RequestView:
    """Approve- or Deny-ElevatedAccessRequest.

    Only members of the policy's approver group at this moment, never the requester, never a guest
    or disabled user, never someone in whose vote the requester has a hand (SeparationOfDuties),
    once each, while pending. The row is locked first, so concurrent decisions give exactly one
    outcome; losers get RequestNotPending.
    """
    decision = parse_enum(ReviewDecision, decision, "decision")
    op = (
        AuditOperation.APPROVE_REQUEST
        if decision is ReviewDecision.APPROVE
        else AuditOperation.DENY_REQUEST
    )
    with use_case(ctx, caller=caller, operation=op, target=str(request_id)) as uow:
        approver = uow.users.get(caller.user_id)
        if approver is None or approver.org_id != caller.org_id:
            raise NotPermitted("the caller is not a user of this organization")
        request = _load(uow, caller, request_id, for_update=True)
        at = ctx.clock.now()  # read once the row is ours: a vote that waited is judged now
        if not _visible(uow, caller, approver, request, at):
            raise NotFound(f"no request {request_id} in this organization")
        policy = uow.policies.get(request.policy_id)
        if policy is None and approver.id != request.requester_id:
            raise NoPolicy(
                f"the policy that covered {request.describe()} was removed; it cannot be decided"
            )
        if decision is ReviewDecision.APPROVE and approver.id != request.requester_id:
            if not _verified(ctx.signer, request):
                raise RequestTampered(
                    f"{request.describe()} does not match its signature; it cannot be approved"
                )
            if policy is not None:
                _still_allowed(uow, request, policy)
        status = request.review(
            approver=approver,
            in_approver_group=_is_approver(uow, caller, request, approver),
            decision=decision,
            current_approvers=_current_approvers(uow, caller, request, policy),
            hand=_hand(uow, caller, request, policy, approver),
            steers_subject=steers_subject(uow, request, approver.id),
            comment=comment,
            at=at,
        )
        uow.requests.save(request)
        uow.record(
            AuditEvent(
                org_id=caller.org_id,
                actor=Actor.of(approver),
                operation=op,
                target=str(request.id),
                at=at,
                details={
                    "comment": request.reviews[-1].comment,
                    "status": status.value,
                    REQUESTER: request.grantee_upn,
                    "approvals": request.approvals,
                    "approvals_required": request.approvals_required,
                    **_window(request),
                },
            )
        )
        decided = {
            RequestStatus.APPROVED: EventType.REQUEST_APPROVED,
            RequestStatus.DENIED: EventType.REQUEST_DENIED,
        }
        if status in decided:
            queue_request_event(ctx, uow, event=decided[status], request=request, at=at)
        (view,) = request_views(uow, caller.org_id, [request], at)
        uow.commit()
        return view


def _still_allowed(uow: UnitOfWork, request: AccessRequest, policy: Policy) -> None:
    """An approval is judged by the policy as it is now: a tightened maximum or a narrowed list of
    eligible requesters applies to requests still pending. Raises InvalidInput or
    RequesterNotEligible."""
    policy.check_duration(request.duration_hours)
    policy.check_reason(request.reason, uow.orgs.control(request.org_id).ticket_pattern)
    try:
        policy.ensure_eligible(request.requester_id, uow.users.group_ids(request.requester_id))
    except RequesterNotEligible:
        raise RequesterNotEligible(
            f"{request.requester_upn} is no longer an eligible requester of {policy.describe()}"
        ) from None


def approve_request(
    ctx: ServiceContext, *, caller: Caller, request_id: UUID, comment: str | None = None
) -> RequestView:
    return review_request(
        ctx, caller=caller, request_id=request_id, decision=ReviewDecision.APPROVE, comment=comment
    )


def deny_request(
    ctx: ServiceContext, *, caller: Caller, request_id: UUID, comment: str | None = None
) -> RequestView:
    return review_request(
        ctx, caller=caller, request_id=request_id, decision=ReviewDecision.DENY, comment=comment
    )


def cancel_request(ctx: ServiceContext, *, caller: Caller, request_id: UUID) -> RequestView:
    """Withdraw one's own pending request."""
    op = AuditOperation.CANCEL_REQUEST
    with use_case(ctx, caller=caller, operation=op, target=str(request_id)) as uow:
        at = ctx.clock.now()
        user = caller_user(uow, caller)
        request = _load(uow, caller, request_id, for_update=True)
        if not _visible(uow, caller, user, request, at):
            raise NotFound(f"no request {request_id} in this organization")
        request.cancel(by=user.id, at=at)
        uow.requests.save(request)
        uow.record(
            AuditEvent(
                org_id=caller.org_id,
                actor=Actor.of(user),
                operation=op,
                target=str(request.id),
                at=at,
            )
        )
        (view,) = request_views(uow, caller.org_id, [request], at)
        uow.commit()
        return view


def revoke_authorization(
    ctx: ServiceContext, *, caller: Caller, request_id: UUID, comment: str | None = None
) -> RequestView:
    """Revoke-ElevatedAccessAuthorization -RequestId: ends the grant at once. ``request_id`` may
    also be the authorization's own id. Allowed to the policy's approvers, holders of
    jitpam\\Revoke-ElevatedAccessAuthorization, and the grantee."""
    op = AuditOperation.REVOKE_AUTHORIZATION
    with use_case(ctx, caller=caller, operation=op, target=str(request_id)) as uow:
        at = ctx.clock.now()
        user = caller_user(uow, caller)
        request_id = uow.requests.id_for_authorization(request_id) or request_id
        request = _load(uow, caller, request_id, for_update=True)
        details: dict[str, Any] = {REQUESTER: request.grantee_upn}
        if user.id in (request.requester_id, request.grantee_id):
            details["revoked_as"] = "grantee" if user.id == request.grantee_id else "requester"
        elif user.can_approve and _is_approver(uow, caller, request, user):
            details["revoked_as"] = "approver"
        else:
            decision = may(uow, user=user, operation=REVOKE_ANY, at=at)
            if not decision.allowed:
                if not _visible(uow, caller, user, request, at):
                    raise NotFound(f"no request {request_id} in this organization")
                raise NotPermitted(f"{user.upn} may not revoke {request.describe()}")
            details["revoked_as"] = "administrator"
            details["allowed_by"] = decision.reason.value
        auth = request.revoke(by=user.id, comment=comment, at=at)
        uow.requests.save(request)
        uow.record(
            AuditEvent(
                org_id=caller.org_id,
                actor=Actor.of(user),
                operation=op,
                target=str(request.id),
                at=at,
                details={
                    **details,
                    "comment": auth.revocation_comment,
                    "authorization_id": str(auth.id),
                },
            )
        )
        queue_request_event(
            ctx,
            uow,
            event=EventType.AUTHORIZATION_REVOKED,
            request=request,
            at=at,
            extra={"Revoked by": user.upn, "Comment": auth.revocation_comment or "-"},
        )
        (view,) = request_views(uow, caller.org_id, [request], at)
        uow.commit()
        return view


def _visible(uow: UnitOfWork, caller: Caller, user: User, request: AccessRequest, at: Any) -> bool:
    return (
        request.requester_id == user.id
        or _is_approver(uow, caller, request, user)
        or may(uow, user=user, operation=SEE_ALL, at=at).allowed
    )


def get_request(ctx: ServiceContext, *, caller: Caller, request_id: UUID) -> RequestView:
    """Get-ElevatedAccessRequest -Identity: requesters see their own, approvers those of their
    groups' policies, holders of jitpam\\Get-ElevatedAccessRequest all; others get NotFound."""
    with ctx.reader() as uow:
        at = ctx.clock.now()
        user = caller_user(uow, caller)
        request = _load(uow, caller, request_id)
        if not _visible(uow, caller, user, request, at):
            raise NotFound(f"no request {request_id} in this organization")
        return request_views(uow, caller.org_id, [request], at)[0]


def list_requests(
    ctx: ServiceContext,
    *,
    caller: Caller,
    status: RequestStatus | None = None,
    requester: str | None = None,
    mine: bool = False,
    target_contains: str | None = None,
    search: str | None = None,
    oldest_first: bool = False,
    types: Iterable[PolicyType | str] | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[RequestView]:
    """The requests the caller may see, newest first (or oldest first), with keyset pagination.
    ``search`` matches the requester's UPN or the target; ``types`` keeps the requests of these
    kinds only (None: every kind; empty: none)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"page size must be from 1 to {MAX_PAGE}")
    with ctx.reader() as uow:
        at = ctx.clock.now()
        user = caller_user(uow, caller)
        flt = RequestFilter(
            status=parse_enum(RequestStatus, status, "status") if status else None,
            target_contains=target_contains,
            search=search.strip() if search and search.strip() else None,
            oldest_first=oldest_first,
            types=None
            if types is None
            else frozenset(parse_enum(PolicyType, t, "kind") for t in types),
        )
        if mine:
            flt = replace(flt, requester_id=user.id)
        elif requester is not None:
            flt = replace(flt, requester_id=find_user(uow, caller.org_id, requester).id)
        if not mine and not may(uow, user=user, operation=SEE_ALL, at=at).allowed:
            flt = replace(flt, reviewer=_reviewer(uow, caller, user), or_requester_id=user.id)
        page = uow.requests.page(caller.org_id, flt, at=at, cursor=cursor, limit=limit)
        return Page(request_views(uow, caller.org_id, page.items, at), page.next_cursor)


def _reviewer(uow: UnitOfWork, caller: Caller, user: User) -> Reviewer:
    """``user`` as a reviewer: their groups, and the organization's default approver group."""
    control = uow.orgs.control(caller.org_id)
    return Reviewer(uow.users.group_ids(user.id), control.default_approver_group_id)


@dataclass(frozen=True)
class RequestActions:
    """What the caller may do to one request now: the buttons a page shows them."""

    approve: bool
    deny: bool
    cancel: bool
    revoke: bool


def request_actions(ctx: ServiceContext, *, caller: Caller, request_id: UUID) -> RequestActions:
    """The same rules the decisions apply, asked without acting; NotFound as ``get_request``."""
    with ctx.reader() as uow:
        at = ctx.clock.now()
        user = caller_user(uow, caller)
        request = _load(uow, caller, request_id)
        if not _visible(uow, caller, user, request, at):
            raise NotFound(f"no request {request_id} in this organization")
        return _actions(ctx, uow, caller, user, request, at)


def _actions(
    ctx: ServiceContext,
    uow: UnitOfWork,
    caller: Caller,
    user: User,
    request: AccessRequest,
    at: datetime,
) -> RequestActions:
    status = request.status_at(at)
    approver = user.can_approve and _is_approver(uow, caller, request, user, lock=False)
    policy = uow.policies.get(request.policy_id)
    may_vote = (
        policy is not None
        and request.review_refusal(
            approver=user,
            in_approver_group=approver,
            at=at,
            hand=_hand(uow, caller, request, policy, user),
            steers_subject=steers_subject(uow, request, user.id),
        )
        is None
    )
    may_approve = may_vote and _verified(ctx.signer, request)
    if may_approve and policy is not None:
        try:
            _still_allowed(uow, request, policy)
        except JitpamError:
            may_approve = False
    mine = request.requester_id == user.id
    can_revoke = status is RequestStatus.APPROVED and (
        mine or approver or may(uow, user=user, operation=REVOKE_ANY, at=at).allowed
    )
    return RequestActions(
        approve=may_approve,
        deny=may_vote,
        cancel=mine and status is RequestStatus.PENDING,
        revoke=can_revoke,
    )


@dataclass(frozen=True)
class RequestPage:
    """What a page shows of one request: the request (names included), what the caller may do
    to it now, and whether it still matches its signature."""

    view: RequestView
    actions: RequestActions
    signature_valid: bool


def request_page(ctx: ServiceContext, *, caller: Caller, request_id: UUID) -> RequestPage:
    """``get_request``, ``request_actions`` and ``verify_request`` at once, in one transaction;
    NotFound as ``get_request``."""
    with ctx.reader() as uow:
        at = ctx.clock.now()
        user = caller_user(uow, caller)
        request = _load(uow, caller, request_id)
        if not _visible(uow, caller, user, request, at):
            raise NotFound(f"no request {request_id} in this organization")
        actions = _actions(ctx, uow, caller, user, request, at)
        (view,) = request_views(uow, caller.org_id, [request], at)
        return RequestPage(view, actions, _verified(ctx.signer, request))


def pending_reviews(ctx: ServiceContext, *, caller: Caller, limit: int = MAX_PAGE) -> int:
    """How many pending requests wait for the caller's vote, counted up to ``limit``."""
    with ctx.reader() as uow:
        at = ctx.clock.now()
        return awaiting_vote(uow, caller, caller_user(uow, caller), at=at, limit=limit)


def awaiting_vote(uow: UnitOfWork, caller: Caller, user: User, *, at: datetime, limit: int) -> int:
    """``pending_reviews`` in a transaction the caller holds."""
    if not user.can_approve or limit < 1:
        return 0
    flt = RequestFilter(
        status=RequestStatus.PENDING,
        reviewer=_reviewer(uow, caller, user),
        awaiting_vote_of=user.id,
    )
    return uow.requests.count(caller.org_id, flt, at=at, limit=limit)


OFFERED = 200  # targets the new-request form lists at most
OFFER_WINDOW = 2_000  # policies examined to find them


def requestable(
    ctx: ServiceContext, *, caller: Caller, limit: int = OFFERED, window: int = OFFER_WINDOW
) -> tuple[list[Policy], bool]:
    """The policies whose target the caller may ask for now: control is on, they are an eligible
    requester, (for a task) they hold a role with it, so an approval would let them run it, and
    they have no pending or active request for it already. At most ``limit``, from the first
    ``window`` policies by (type, target); the flag says whether there may be more."""
    with ctx.reader() as uow:
        at = ctx.clock.now()
        user = caller_user(uow, caller)
        control = uow.orgs.control(caller.org_id)
        if not control.enabled:
            return [], False
        groups = uow.users.group_ids(user.id)
        roles = roles_held(uow, user=user, control=control, at=at)
        asked = {
            (r.type, str(r.target))
            for r in [
                *uow.requests.pending_for_user(caller.org_id, user.id, at),
                *uow.requests.active_for_user(caller.org_id, user.id, at),
            ]
        }
        found: list[Policy] = []
        cursor, examined = None, 0
        while examined < window:
            page = uow.policies.page(
                caller.org_id,
                type=None,
                approval_type=None,
                search=None,
                cursor=cursor,
                limit=min(OFFERED, window - examined),
            )
            examined += len(page.items)
            candidates = [
                p
                for p in page.items
                # Data access is asked for an application, by installing it (not for oneself).
                if p.type is not PolicyType.DATA_ACCESS
                and p.is_eligible(user.id, groups)
                and p.can_be_met(control.ticket_pattern)
                and (p.type, str(p.target)) not in asked  # asked already: pending or granted
            ]
            held = uow.catalog.tasks_held(
                caller.org_id,
                roles,
                [str(p.target) for p in candidates if p.type is PolicyType.TASK],
            )
            for p in candidates:
                if p.type is PolicyType.TASK and str(p.target).casefold() not in held:
                    continue  # an approval would not let them run it
                found.append(p)
                if len(found) == limit:
                    return found, True
            cursor = page.next_cursor
            if cursor is None:
                return found, False
        return found, True


def verify_request(ctx: ServiceContext, *, caller: Caller, request_id: UUID) -> bool:
    """Whether the stored request still matches the signature made when it was submitted."""
    view = get_request(ctx, caller=caller, request_id=request_id)
    return _verified(ctx.signer, view.request)


def my_authorizations(ctx: ServiceContext, *, caller: Caller) -> list[RequestView]:
    """Get-ElevatedAccessAuthorization for oneself: active grants, soonest ending first."""
    with ctx.reader() as uow:
        at = ctx.clock.now()
        user = caller_user(uow, caller)
        active = uow.requests.active_for_user(caller.org_id, user.id, at)
        return request_views(uow, caller.org_id, active, at)


def settle_requests(ctx: ServiceContext, *, org_id: UUID, limit: int = SWEEP_BATCH) -> int:
    """Write down expiries and completions the clock has decided, audited; returns how many.

    Bookkeeping for lists and notifications only: every rule already reads the clock.
    """
    with ctx.reader() as uow:  # most sweeps find nothing: look before taking the write lock
        if not uow.requests.to_settle(org_id, ctx.clock.now(), 1, lock=False):
            return 0
    with ctx.uow() as uow:
        at = ctx.clock.now()
        settled = 0
        for request in uow.requests.to_settle(org_id, at, limit):
            new = request.settle(at=at)
            if new is None:
                continue
            uow.requests.save(request)
            op = (
                AuditOperation.EXPIRE_REQUEST
                if new is RequestStatus.EXPIRED
                else AuditOperation.COMPLETE_AUTHORIZATION
            )
            uow.record(
                AuditEvent(
                    org_id=org_id,
                    at=at,
                    actor=JITPAM,
                    operation=op,
                    target=str(request.id),
                    details={REQUESTER: request.grantee_upn, "status": new.value},
                )
            )
            if new is RequestStatus.EXPIRED:
                queue_request_event(
                    ctx, uow, event=EventType.REQUEST_EXPIRED, request=request, at=at
                )
            settled += 1
        uow.commit()
        return settled


def list_authorizations(
    ctx: ServiceContext,
    *,
    caller: Caller,
    user: str | None = None,
    active: bool = False,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[RequestView]:
    """Get-ElevatedAccessAuthorization: one's own grants; another user's, or everyone's
    (``user="*"``), with jitpam\\Get-ElevatedAccessRequest. Newest grant first; with ``active``,
    the grants active now, soonest ending first. Keyset pages."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"page size must be from 1 to {MAX_PAGE}")
    with ctx.reader() as uow:
        at = ctx.clock.now()
        me = caller_user(uow, caller)
        target: UUID | None = me.id
        if user is not None and user != me.upn:
            # Oneself by another name (a guest's own address) needs no right.
            named = None if user == "*" else lookup_user(uow, caller.org_id, user)
            if (named is None or named.id != me.id) and not may(
                uow, user=me, operation=SEE_ALL, at=at
            ).allowed:
                raise NotPermitted(f"{me.upn} may list only their own authorizations")
            target = None if user == "*" else find_user(uow, caller.org_id, user).id
        page = uow.requests.granted(
            caller.org_id, target, active_at=at if active else None, cursor=cursor, limit=limit
        )
        return Page(request_views(uow, caller.org_id, page.items, at), page.next_cursor)


def warn_expiring(ctx: ServiceContext, *, org_id: UUID, within: timedelta) -> int:
    """Queue one warning per grant that ends within ``within`` from now (never twice for the
    same grant); returns how many messages were newly queued."""

    def key(authorization_id: UUID) -> str:
        return f"{EventType.AUTHORIZATION_EXPIRING.value}:{authorization_id}"

    # Most sweeps find every grant in the window warned already: look (ids only) before taking
    # the write lock; a warning always emails the requester, so its email message marks it sent.
    with ctx.reader() as uow:
        now = ctx.clock.now()
        due = uow.requests.ending(org_id, now, now + within)
        sent = uow.outbox.taken([f"{key(auth)}:email" for _, auth in due])
    todo = [request_id for request_id, auth in due if f"{key(auth)}:email" not in sent]
    queued = 0
    for start in range(0, len(todo), SWEEP_BATCH):
        with ctx.uow() as uow:
            at = ctx.clock.now()
            for request_id in todo[start : start + SWEEP_BATCH]:
                request = uow.requests.get(request_id)
                if request is None or request.authorization is None:
                    continue
                queued += queue_request_event(
                    ctx,
                    uow,
                    event=EventType.AUTHORIZATION_EXPIRING,
                    request=request,
                    at=at,
                    key=key(request.authorization.id),
                )
            uow.commit()
    return queued
