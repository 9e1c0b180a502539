"""Customer Lockbox use cases: the operator's engineers ask a customer before touching its data.

Every step is recorded in the customer's audit chain (it owns the record of who touched its
data) and in the operator's, in the same transaction. Nothing else crosses organizations: the
customer sees the operator's requests addressed to it and nothing else of the operator; the
operator sees its requests and their outcome, never who at the customer decided (its chain
names the customer organization as the actor of the customer's steps).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from jitpam.domain.audit import JITPAM, Actor, AuditEvent, Outcome
from jitpam.domain.catalog import BUILTIN_SCOPE
from jitpam.domain.check import Decision, Reason
from jitpam.domain.directory import Organization, User
from jitpam.domain.errors import AuditUnavailable, InvalidInput, JitpamError, NotFound, NotPermitted
from jitpam.domain.lockbox import (
    ApprovalDecision,
    LockboxRequest,
    LockboxSettings,
    check_case_reference,
    check_duration,
    parse_decision,
    service_name,
)
from jitpam.domain.notifications import EventType
from jitpam.domain.operations import AuditOperation
from jitpam.domain.policy import PolicyType
from jitpam.domain.requests import RequestStatus, check_reason
from jitpam.domain.text import require_storable
from jitpam.domain.timeutil import iso
from jitpam.services.authorization import (
    authorize,
    caller_user,
    grant_details,
    may,
    may_each,
)
from jitpam.services.context import Caller, ServiceContext
from jitpam.services.directory import lookup_user
from jitpam.services.inputs import parse_enum
from jitpam.services.lockbox_notices import queue_lockbox_event
from jitpam.services.ports import LockboxFilter, Operator, Page, UnitOfWork
from jitpam.services.use_case import use_case

MAX_PAGE = 500
MAX_SERVICE = 100
SETTLE_BATCH = 200


@dataclass(frozen=True)
class LockboxView:
    """A lockbox request as one side may see it, with the names it shows, read in the
    transaction that returned it. ``decided_by``/``revoked_by`` name the customer's approver
    for the customer and the requester themself; the operator's other users see "customer"."""

    request: LockboxRequest
    status: RequestStatus  # at the moment it was read
    customer: str
    operator: str
    decided_by: str | None
    revoked_by: str | None


def _org(uow: UnitOfWork, org_id: UUID) -> Organization:
    org = uow.orgs.get(org_id)
    if org is None:  # a foreign key holds it: only a broken database gets here
        raise NotFound(f"no organization {org_id}")
    return org


def _customer(uow: UnitOfWork, name: str) -> Organization:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("the customer organization is required")
    require_storable(name, "the organization")
    org = uow.orgs.get_by_name(name.strip())
    if org is None:
        raise NotFound(f"no organization named {name.strip()!r}")
    return org


def _operator(uow: UnitOfWork) -> Operator:
    operator = uow.lockbox.operator()
    if operator is None:
        raise NotPermitted(
            "no organization of this installation is the lockbox operator "
            "(whoever runs the server designates one: jitpam lockbox operator NAME)"
        )
    return operator


def _view(uow: UnitOfWork, request: LockboxRequest, viewer: User, at: datetime) -> LockboxView:
    customer_side = viewer.org_id == request.customer_org_id

    def named(user_id: UUID | None) -> str | None:
        if user_id is None:
            return None
        if user_id == request.requester_id:
            return request.requester_upn
        if not customer_side:
            return "customer"  # who decided at the customer is the customer's business
        user = uow.users.get(user_id)
        return user.upn if user is not None else str(user_id)

    automatic = request.decided_by is None and request.start is not None
    return LockboxView(
        request=request,
        status=request.status_at(at),
        customer=_org(uow, request.customer_org_id).name,
        operator=_org(uow, request.operator_org_id).name,
        decided_by="automatic" if automatic else named(request.decided_by),
        revoked_by=named(request.revoked_by),
    )


def _both_chains(
    uow: UnitOfWork,
    request: LockboxRequest,
    *,
    operation: AuditOperation,
    actor: Actor,
    actor_side: UUID,
    at: datetime,
    details: Mapping[str, Any],
    outcome: Outcome = Outcome.SUCCESS,
    own: Mapping[str, Any] | None = None,
) -> list[AuditEvent]:
    """One step's record in the customer's chain and in the operator's. The operator's chain
    names the customer organization, not its person, as the actor of the customer's steps;
    ``own`` (how the actor was allowed: a role, a grant) goes to the actor's side only."""
    customer_name = _org(uow, request.customer_org_id).name
    operator_name = _org(uow, request.operator_org_id).name
    common = {
        "service": request.service,
        "case": request.case_reference,
        "requester": request.requester_upn,
        **details,
    }
    customer_actor = actor
    operator_actor = actor
    by_customer = actor_side == request.customer_org_id
    if by_customer:
        operator_actor = Actor(str(request.customer_org_id), f"customer {customer_name}")
    mine = dict(own or {})
    return [
        AuditEvent(
            org_id=request.customer_org_id,
            actor=customer_actor,
            operation=operation,
            target=str(request.id),
            at=at,
            outcome=outcome,
            details={"operator": operator_name, **common, **(mine if by_customer else {})},
        ),
        AuditEvent(
            org_id=request.operator_org_id,
            actor=operator_actor,
            operation=operation,
            target=str(request.id),
            at=at,
            outcome=outcome,
            details={"customer": customer_name, **common, **({} if by_customer else mine)},
        ),
    ]


# --- the installation's operator ---------------------------------------------------------------


def designate_operator(ctx: ServiceContext, *, org_name: str | None) -> Organization | None:
    """Make ``org_name`` the installation's lockbox operator (None: no operator). Installation-
    level, for whoever runs the server: no API call or role can do it. Recorded in every
    organization's chain, so each customer's log says who the operator is and since when."""
    with ctx.uow() as uow:
        at = ctx.clock.now()
        org = None
        if org_name is not None:
            org = uow.orgs.get_by_name(org_name.strip())
            if org is None:
                raise NotFound(f"no organization named {org_name.strip()!r}")
        current = uow.lockbox.operator()
        if (current.org_id if current else None) == (org.id if org else None):
            return org
        uow.lockbox.set_operator(org.id if org else None, at=at)
        for each in uow.orgs.all():
            uow.record(operator_event(each.id, org, since=at, at=at))
        uow.commit()
        return org


def operator_event(
    org_id: UUID, operator: Organization | None, *, since: datetime, at: datetime
) -> AuditEvent:
    """The record that tells organization ``org_id``'s chain who the installation's operator is
    (None: nobody) since ``since``: written in every chain when it changes, and at the start of
    a new organization's chain."""
    return AuditEvent(
        org_id=org_id,
        at=at,
        actor=JITPAM,
        operation=AuditOperation.SET_LOCKBOX_OPERATOR,
        target=operator.name if operator else "(none)",
        details={
            "operator": operator.name if operator else None,
            "since": iso(since),
            "is_this_organization": operator is not None and operator.id == org_id,
        },
    )


def current_operator(ctx: ServiceContext) -> tuple[Organization, datetime] | None:
    with ctx.reader() as uow:
        operator = uow.lockbox.operator()
        if operator is None:
            return None
        return _org(uow, operator.org_id), operator.since


# --- filing, deciding, cancelling, revoking ------------------------------------------------------


def file_request(
    ctx: ServiceContext,
    *,
    caller: Caller,
    customer: str,
    service: str,
    reason: str,
    case_reference: str,
    duration_hours: int,
) -> LockboxView:
    """New-AccessToCustomerDataRequest: an operator's engineer (jitpam\\Lockbox Requester)
    asks a customer. Approved at once when the customer does not require approval, otherwise
    pending for the customer's approvers for 12 hours."""
    op = AuditOperation.NEW_LOCKBOX_REQUEST
    addressed: tuple[Organization, User, str] | None = None  # once the customer is known
    try:
        with use_case(ctx, caller=caller, operation=op, target=str(customer)[:200]) as uow:
            at = ctx.clock.now()
            engineer, how = authorize(uow, caller, op, at)
            operator = _operator(uow)
            if caller.org_id != operator.org_id:
                raise NotPermitted("only the operator's engineers file lockbox requests")
            target = _customer(uow, customer)
            addressed = (target, engineer, _org(uow, operator.org_id).name)
            return _file(
                ctx,
                uow,
                engineer=engineer,
                how=how,
                operator=operator,
                target=target,
                service=service,
                reason=reason,
                case_reference=case_reference,
                duration_hours=duration_hours,
                at=at,
            )
    except JitpamError as err:
        if addressed is not None and not isinstance(err, AuditUnavailable):
            _refused_at_customer(ctx, *addressed, error=err)
        raise


def _refused_at_customer(
    ctx: ServiceContext,
    customer: Organization,
    engineer: User,
    operator_name: str,
    *,
    error: JitpamError,
) -> None:
    """A filing the rules refused is recorded in the customer's chain too (in a transaction of
    its own): the customer sees every attempt at its data, not only the ones that succeed."""
    with ctx.uow() as uow:
        uow.record(
            AuditEvent(
                org_id=customer.id,
                actor=Actor.of(engineer),
                operation=AuditOperation.NEW_LOCKBOX_REQUEST,
                target=customer.name,
                at=ctx.clock.now(),
                outcome=Outcome.REFUSED,
                details={"operator": operator_name, "error": error.code, "message": error.message},
            )
        )
        uow.commit()


def _file(
    ctx: ServiceContext,
    uow: UnitOfWork,
    *,
    engineer: User,
    how: Decision,
    operator: Operator,
    target: Organization,
    service: str,
    reason: str,
    case_reference: str,
    duration_hours: int,
    at: datetime,
) -> LockboxView:
    """The filing itself, once the engineer and the customer are known (``file_request``)."""
    op = AuditOperation.NEW_LOCKBOX_REQUEST
    # What the engineer wrote is judged before the service is looked up, so a refusal does
    # not tell which workloads the customer has.
    check_reason(reason)
    check_case_reference(case_reference)
    check_duration(duration_hours)
    control = uow.orgs.control(target.id)
    scopes = tuple(
        sorted(
            {
                n.scope
                for n in uow.catalog.entries(target.id, PolicyType.TASK)
                if n.scope.casefold() != BUILTIN_SCOPE
            }
        )
    )
    settings = LockboxSettings(
        approval_required=control.lockbox_approval_required,
        max_hours=control.lockbox_max_hours,
    )
    request = LockboxRequest.file(
        customer_org_id=target.id,
        operator_org_id=operator.org_id,
        requester=engineer,
        service=service_name(service, catalog_scopes=scopes),
        reason=reason,
        case_reference=case_reference,
        duration_hours=duration_hours,
        settings=settings,
        at=at,
    )
    filed = {
        "reason": request.reason,
        "duration_hours": request.duration_hours,
        "approval_required": settings.approval_required,
    }
    events = _both_chains(
        uow,
        request,
        operation=op,
        actor=Actor.of(engineer),
        actor_side=engineer.org_id,
        at=at,
        details=filed,
        own=grant_details(how),
    )
    if not settings.approval_required:
        request.approve_automatically(at=at)
        events += _both_chains(
            uow,
            request,
            operation=AuditOperation.SET_LOCKBOX_REQUEST,
            actor=JITPAM,
            actor_side=target.id,
            at=at,
            details={"ApprovalDecision": ApprovalDecision.APPROVE, "automatic": True},
        )
    uow.lockbox.add(request)
    uow.record_all(events)
    queue_lockbox_event(
        ctx,
        uow,
        event=EventType.LOCKBOX_CREATED
        if settings.approval_required
        else EventType.LOCKBOX_AUTO_APPROVED,
        request=request,
        at=at,
    )
    view = _view(uow, request, engineer, at)
    uow.commit()
    return view


def _request_id(request_id: UUID | str) -> UUID:
    try:
        return request_id if isinstance(request_id, UUID) else UUID(str(request_id))
    except ValueError:
        raise InvalidInput(f"{request_id!r} is not a lockbox request id") from None


def _locked(uow: UnitOfWork, request_id: UUID | str) -> LockboxRequest:
    rid = _request_id(request_id)
    request = uow.lockbox.get(rid, for_update=True)
    if request is None:
        raise NotFound(f"no lockbox request {rid}")
    return request


_DECIDED = {
    ApprovalDecision.APPROVE: EventType.LOCKBOX_APPROVED,
    ApprovalDecision.DENY: EventType.LOCKBOX_DENIED,
    ApprovalDecision.CANCEL: EventType.LOCKBOX_CANCELLED,
}


def set_request(
    ctx: ServiceContext,
    *,
    caller: Caller,
    request_id: UUID | str,
    decision: str,
    comment: str | None = None,
    service: str | None = None,
) -> LockboxView:
    """Set-AccessToCustomerDataRequest: the customer's approver approves or denies; the engineer
    who filed it cancels. ``service``, when given, must be the request's (as M365's
    -ServiceName narrows the request)."""
    op = AuditOperation.SET_LOCKBOX_REQUEST
    with use_case(ctx, caller=caller, operation=op, target=str(request_id)[:64]) as uow:
        at = ctx.clock.now()
        chosen = parse_decision(decision)
        request = _visible(uow, caller, request_id)
        if service is not None and service.strip().casefold() != request.service.casefold():
            raise NotFound(f"lockbox request {request.id} is not for the service {service!r}")
        if chosen == ApprovalDecision.CANCEL:
            user = caller_user(uow, caller)
            how: dict[str, Any] = {}
            request.cancel(by=user.id, comment=comment, at=at)
        else:
            if caller.org_id != request.customer_org_id:
                raise NotPermitted("only the customer's approvers approve or deny its requests")
            user, allowed = authorize(uow, caller, op, at)
            current = uow.lockbox.operator()
            if chosen == ApprovalDecision.APPROVE and (
                current is None or current.org_id != request.operator_org_id
            ):
                raise NotPermitted(
                    f"{request.describe()} was filed by an organization that is no longer this "
                    "installation's operator: it can be denied, not approved"
                )
            cap = uow.orgs.control(request.customer_org_id).lockbox_max_hours
            request.decide(
                approver=user,
                holds_approver_role=True,
                decision=chosen,
                comment=comment,
                at=at,
                max_hours=cap,
            )
            how = grant_details(allowed)
        return _changed(
            ctx,
            uow,
            request,
            operation=op,
            user=user,
            at=at,
            details={"ApprovalDecision": chosen, "comment": request.decision_comment},
            own=how,
            event=_DECIDED[chosen],
        )


def revoke_request(
    ctx: ServiceContext, *, caller: Caller, request_id: UUID | str, comment: str | None = None
) -> LockboxView:
    """Revoke-AccessToCustomerDataRequest: the customer ends approved access at once (holders of
    jitpam\\Revoke-AccessToCustomerDataRequest); the engineer may end their own early."""
    op = AuditOperation.REVOKE_LOCKBOX_REQUEST
    with use_case(ctx, caller=caller, operation=op, target=str(request_id)[:64]) as uow:
        at = ctx.clock.now()
        request = _visible(uow, caller, request_id)
        if caller.org_id == request.customer_org_id:
            user, decision = authorize(uow, caller, op, at)
            how = grant_details(decision)
        else:
            user = caller_user(uow, caller)
            if user.id != request.requester_id:
                raise NotPermitted("only the customer, or the engineer who filed it, revokes")
            how = {}
        request.revoke(by=user.id, comment=comment, at=at)
        return _changed(
            ctx,
            uow,
            request,
            operation=op,
            user=user,
            at=at,
            details={"comment": request.revocation_comment},
            own=how,
            event=EventType.LOCKBOX_REVOKED,
        )


def _changed(
    ctx: ServiceContext,
    uow: UnitOfWork,
    request: LockboxRequest,
    *,
    operation: AuditOperation,
    user: User,
    at: datetime,
    details: Mapping[str, Any],
    own: Mapping[str, Any],
    event: EventType,
) -> LockboxView:
    """Save a step ``user`` took on the request, record it in both chains, queue its notices and
    commit; the request as ``user`` sees it now."""
    uow.lockbox.save(request)
    uow.record_all(
        _both_chains(
            uow,
            request,
            operation=operation,
            actor=Actor.of(user),
            actor_side=user.org_id,
            at=at,
            details=details,
            own=own,
        )
    )
    queue_lockbox_event(ctx, uow, event=event, request=request, at=at)
    view = _view(uow, request, user, at)
    uow.commit()
    return view


# --- seeing requests ------------------------------------------------------------------------------


def _sees_all(uow: UnitOfWork, user: User, at: datetime) -> bool:
    return may(uow, user=user, operation=AuditOperation.GET_LOCKBOX_REQUEST, at=at).allowed


def _visible(uow: UnitOfWork, caller: Caller, request_id: UUID | str) -> LockboxRequest:
    """The request, locked, if the caller's organization is one of its two sides (NotFound
    otherwise: another organization's request does not exist for the caller)."""
    request = _locked(uow, request_id)
    if caller.org_id not in (request.customer_org_id, request.operator_org_id):
        raise NotFound(f"no lockbox request {request.id}")
    return request


def _seen(uow: UnitOfWork, user: User, request_id: UUID | str, at: datetime) -> LockboxRequest:
    """The request, if ``user`` may see it: of one of its two sides, and its engineer or a
    holder of Get-AccessToCustomerDataRequest (NotFound otherwise, as for no request at all)."""
    rid = _request_id(request_id)
    request = uow.lockbox.get(rid)
    if (
        request is None
        or user.org_id not in (request.customer_org_id, request.operator_org_id)
        or (request.requester_id != user.id and not _sees_all(uow, user, at))
    ):
        raise NotFound(f"no lockbox request {rid}")
    return request


def get_request(ctx: ServiceContext, *, caller: Caller, request_id: UUID | str) -> LockboxView:
    """One lockbox request: the customer's holders of Get-AccessToCustomerDataRequest, the
    operator's, and the engineer who filed it."""
    with ctx.reader() as uow:
        at = ctx.clock.now()
        user = caller_user(uow, caller)
        return _view(uow, _seen(uow, user, request_id, at), user, at)


@dataclass(frozen=True)
class LockboxActions:
    """What the viewer may do to a lockbox request now, by the rules ``set_request`` and
    ``revoke_request`` apply: ``decide`` approve or deny (the customer's approvers, while
    pending), ``cancel`` (the engineer who filed it, while pending), ``revoke`` (the customer's
    holders of Revoke-AccessToCustomerDataRequest, or the engineer, while approved)."""

    decide: bool
    cancel: bool
    revoke: bool


@dataclass(frozen=True)
class LockboxPage:
    """What a page shows of one lockbox request: the request as the viewer may see it, and what
    they may do to it now."""

    view: LockboxView
    actions: LockboxActions


def request_page(ctx: ServiceContext, *, caller: Caller, request_id: UUID | str) -> LockboxPage:
    """``get_request`` and the viewer's actions at once, in one transaction; NotFound as
    ``get_request``. Showing a button is a courtesy: each action is decided again when taken."""
    with ctx.reader() as uow:
        at = ctx.clock.now()
        user = caller_user(uow, caller)
        request = _seen(uow, user, request_id, at)
        mine = request.requester_id == user.id
        status = request.status_at(at)
        decide = revoke = False
        if caller.org_id == request.customer_org_id:
            may_decide, may_revoke = (
                d.allowed
                for d in may_each(
                    uow,
                    user=user,
                    operations=(
                        AuditOperation.SET_LOCKBOX_REQUEST,
                        AuditOperation.REVOKE_LOCKBOX_REQUEST,
                    ),
                    at=at,
                )
            )
            decide = may_decide and (
                request.decision_refusal(approver=user, holds_approver_role=True, at=at) is None
            )
            revoke = may_revoke and status is RequestStatus.APPROVED
        elif mine:
            revoke = status is RequestStatus.APPROVED
        actions = LockboxActions(
            decide=decide,
            cancel=mine and status is RequestStatus.PENDING,
            revoke=revoke,
        )
        return LockboxPage(_view(uow, request, user, at), actions)


def may_file(uow: UnitOfWork, user: User, at: datetime) -> bool:
    """Whether ``user`` may file lockbox requests now (``file_request``'s own rules: a holder of
    New-AccessToCustomerDataRequest in the operator organization), asked without acting."""
    operator = uow.lockbox.operator()
    if operator is None or operator.org_id != user.org_id:
        return False
    return may(uow, user=user, operation=AuditOperation.NEW_LOCKBOX_REQUEST, at=at).allowed


def list_requests(
    ctx: ServiceContext,
    *,
    caller: Caller,
    status: RequestStatus | str | None = None,
    created_after: datetime | None = None,
    request_id: UUID | str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[LockboxView]:
    """Get-AccessToCustomerDataRequest: for a customer, the requests addressed to it; for the
    operator, those it filed (an engineer without Get-AccessToCustomerDataRequest: their own).
    Newest first."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"page size must be from 1 to {MAX_PAGE}")
    wanted = None if status is None else parse_enum(RequestStatus, status, "status")
    rid = None if request_id is None else _request_id(request_id)
    with ctx.reader() as uow:
        at = ctx.clock.now()
        user = caller_user(uow, caller)
        operator = uow.lockbox.operator()
        sees_all = _sees_all(uow, user, at)
        narrowed = LockboxFilter(
            statuses=frozenset({wanted}) if wanted is not None else None,
            created_after=created_after,
            request_id=rid,
        )
        if operator is not None and caller.org_id == operator.org_id:
            flt = replace(
                narrowed,
                operator_org_id=caller.org_id,
                requester_id=None if sees_all else user.id,
            )
        elif sees_all:
            flt = replace(narrowed, customer_org_id=caller.org_id)
        else:
            return Page([], None)  # a customer's user without the role sees none
        found = uow.lockbox.page(flt, at=at, cursor=cursor, limit=limit)
        return Page([_view(uow, r, user, at) for r in found.items], found.next_cursor)


# --- the check ------------------------------------------------------------------------------------


def check_customer_data_access(
    ctx: ServiceContext,
    *,
    caller: Caller,
    organization: str,
    service: str,
    user: str | None = None,
) -> Decision:
    r"""May the operator's engineer ``user`` (None: the caller) reach ``service`` of the customer
    ``organization`` now? Allowed only by an approved lockbox request whose window is open and
    not revoked, read from the database at the moment of the check (so an expiry or revocation
    is seen by every server process at once). Asked by the engineer themself, or by a holder of
    jitpam\Access Checker of the operator or of the customer.

    Neither side learns more of the other than the requests between them: the customer is told
    only "no request" about anyone who never filed one against it, and the decision is recorded
    in the customer's chain only about such an engineer (or when the customer asked), in the
    operator's only when the operator asked or about such an engineer."""
    op = AuditOperation.TEST_CUSTOMER_DATA_ACCESS
    with use_case(ctx, caller=caller, operation=op, target=str(service)[:MAX_SERVICE]) as uow:
        at = ctx.clock.now()
        asker = caller_user(uow, caller)
        customer = _customer(uow, organization)
        operator = _operator(uow)
        if caller.org_id not in (operator.org_id, customer.id):
            raise NotFound(f"no organization named {organization.strip()!r}")
        if not isinstance(service, str) or not service.strip() or len(service) > MAX_SERVICE:
            raise InvalidInput(f"a service name of at most {MAX_SERVICE} characters is required")
        require_storable(service, "the service")
        wanted = service.strip()
        by_customer = caller.org_id == customer.id
        named = asker.upn
        if user is not None:
            require_storable(user, "the user")
            named = user.strip().lower()
        subject = lookup_user(uow, operator.org_id, named)
        oneself = named == asker.upn or (subject is not None and subject.id == asker.id)
        if (by_customer or not oneself) and not may(
            uow, user=asker, operation=AuditOperation.TEST_ACCESS, at=at
        ).allowed:
            raise NotPermitted(f"{asker.upn} may ask only about themself")
        known = subject is not None and bool(
            uow.lockbox.page(
                LockboxFilter(customer_org_id=customer.id, requester_id=subject.id),
                at=at,
                cursor=None,
                limit=1,
            ).items
        )
        grant: LockboxRequest | None = None
        if subject is None:
            decision = Decision(False, Reason.UNKNOWN_USER)
        elif not subject.enabled:
            decision = Decision(False, Reason.USER_DISABLED)
        else:
            grant = next(
                (
                    r
                    for r in uow.lockbox.approved(customer.id, subject.id)
                    if r.allows(user_id=subject.id, service=wanted, at=at)
                ),
                None,
            )
            decision = (
                Decision(True, Reason.LOCKBOX_APPROVED, grant.id)
                if grant is not None
                else Decision(False, Reason.LOCKBOX_REQUEST_REQUIRED)
            )
        if by_customer and not known:
            decision = Decision(False, Reason.LOCKBOX_REQUEST_REQUIRED)
        details = {
            "user": named,
            "service": wanted,
            "allowed": decision.allowed,
            "reason": decision.reason.value,
            "request_id": str(grant.id) if grant else None,
        }
        outcome = Outcome.SUCCESS if decision.allowed else Outcome.REFUSED
        operator_name = _org(uow, operator.org_id).name
        events = []
        if by_customer or known:
            engineer_asks = subject is not None and asker.id == subject.id
            events.append(
                AuditEvent(
                    org_id=customer.id,
                    actor=Actor.of(asker)
                    if by_customer or engineer_asks
                    else Actor(str(operator.org_id), f"operator {operator_name}"),
                    operation=op,
                    target=wanted,
                    at=at,
                    outcome=outcome,
                    details={"operator": operator_name, **details},
                )
            )
        if not by_customer or known:
            events.append(
                AuditEvent(
                    org_id=operator.org_id,
                    actor=Actor(str(customer.id), f"customer {customer.name}")
                    if by_customer
                    else Actor.of(asker),
                    operation=op,
                    target=wanted,
                    at=at,
                    outcome=outcome,
                    details={"customer": customer.name, **details},
                )
            )
        uow.record_all(events)
        uow.commit()
        return decision


# --- the sweeper ----------------------------------------------------------------------------------


def settle_requests(ctx: ServiceContext, *, limit: int = SETTLE_BATCH) -> int:
    """Write down the expiries (Expire-AccessToCustomerDataRequest) and ends of access the clock
    has decided, in both chains; returns how many. Every rule reads the clock already."""
    with ctx.reader() as uow:
        if not uow.lockbox.due(ctx.clock.now(), limit=1):
            return 0
    with ctx.uow() as uow:
        at = ctx.clock.now()
        settled = 0
        for request in uow.lockbox.due(at, limit=limit):
            new = request.settle(at=at)
            if new is None:
                continue
            uow.lockbox.save(request)
            op = (
                AuditOperation.EXPIRE_LOCKBOX_REQUEST
                if new is RequestStatus.EXPIRED
                else AuditOperation.COMPLETE_LOCKBOX_REQUEST
            )
            uow.record_all(
                _both_chains(
                    uow,
                    request,
                    operation=op,
                    actor=JITPAM,
                    actor_side=request.operator_org_id,
                    at=at,
                    details={"status": new.value},
                )
            )
            if new is RequestStatus.EXPIRED:
                queue_lockbox_event(
                    ctx, uow, event=EventType.LOCKBOX_EXPIRED, request=request, at=at
                )
            settled += 1
        uow.commit()
        return settled
