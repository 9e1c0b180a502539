"""Access control, policies, requests, authorizations and the check."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Response
from pydantic import Field, model_validator

from jitpam.api import views
from jitpam.api.deps import AsCaller
from jitpam.api.inputs import Body
from jitpam.domain.errors import InvalidInput
from jitpam.domain.policy import DEFAULT_DURATION_HOURS, ApprovalType, PolicyType
from jitpam.domain.requests import RequestStatus
from jitpam.services import access, applications, lockbox, organizations, policies, requests
from jitpam.services.context import KEEP, Caller, ServiceContext

router = APIRouter(tags=["access"])

TypeParam = Literal["task", "role", "role_group"]
# What a policy covers: a request's kinds, and a data scope (``Office365\\Mail.Read``).
PolicyTypeParam = Literal["task", "role", "role_group", "data_access"]
# The kinds of request (RequestedAccess): an access request's type, a data access request, a
# Customer Lockbox request.
AccessParam = Literal["task", "role", "role_group", "data_access", "customer_lockbox"]


class EnableControl(Body):
    admin_group: str = Field(max_length=256)
    system_accounts: list[str] = Field(default_factory=list, max_length=100)


class OrgConfig(Body):
    ticket_pattern: str | None = Field(default=None, max_length=200)
    max_policies: int | None = Field(default=None, ge=1)
    pending_hours: int | None = Field(default=None, ge=1, le=720)
    clear_ticket_pattern: bool = False
    clear_max_policies: bool = False
    lockbox_approval_required: bool | None = None
    lockbox_max_hours: int | None = Field(default=None, ge=1, le=4)
    # The approver groups whose memberships SCIM may set (the whole set; [] for none).
    scim_approver_groups: list[Annotated[str, Field(max_length=256)]] | None = Field(
        default=None, max_length=100
    )


class NewPolicy(Body):
    type: PolicyTypeParam
    target: str = Field(max_length=260)
    approval_type: ApprovalType
    approver_group: str | None = Field(default=None, max_length=256)
    eligible_users: list[str] = Field(default_factory=list, max_length=1000)
    eligible_groups: list[str] = Field(default_factory=list, max_length=1000)
    approvals_required: int = Field(default=1, ge=1, le=10)
    max_duration_hours: int | None = Field(default=None, ge=1)
    require_ticket: bool = False


class PolicyChange(Body):
    approval_type: ApprovalType | None = None
    approver_group: str | None = Field(default=None, max_length=256)
    use_default_approver_group: bool = False
    eligible_users: list[str] | None = Field(default=None, max_length=1000)
    eligible_groups: list[str] | None = Field(default=None, max_length=1000)
    approvals_required: int | None = Field(default=None, ge=1, le=10)
    max_duration_hours: int | None = Field(default=None, ge=1)
    no_max_duration: bool = False
    require_ticket: bool | None = None


class NewRequest(Body):
    type: TypeParam
    target: str = Field(max_length=260)
    reason: str = Field(max_length=4096)
    duration_hours: int = Field(default=DEFAULT_DURATION_HOURS)


class Comment(Body):
    comment: str | None = Field(default=None, max_length=4096)


class CheckBody(Body):
    user: str | None = Field(default=None, max_length=256)
    task: str = Field(max_length=260)


class OneCheck(Body):
    """A task check (``task``); a Customer Lockbox check (``organization`` and ``service``
    together: may the operator's engineer reach this service of this customer's data now?); or a
    data access check (``service``, ``scope`` and ``resource`` together: may the application
    use this data scope on this resource now?)."""

    user: str | None = Field(default=None, max_length=256)
    task: str | None = Field(default=None, max_length=260)
    organization: str | None = Field(default=None, max_length=256)
    service: str | None = Field(default=None, max_length=260)
    scope: str | None = Field(default=None, max_length=128)
    resource: str | None = Field(default=None, max_length=300)

    @model_validator(mode="after")
    def _one_kind(self) -> OneCheck:
        task, lockbox = self.task is not None, self.organization is not None
        data = self.scope is not None or self.resource is not None
        if sum((task, lockbox, data)) != 1 or (task and self.service is not None):
            raise ValueError(
                "give a task; or an organization and a service; or a service, a scope and a "
                "resource: one kind of check"
            )
        if lockbox and self.service is None:
            raise ValueError("a Customer Lockbox check takes an organization and a service")
        if data and (self.service is None or self.scope is None or self.resource is None):
            raise ValueError("a data access check takes a service, a scope and a resource")
        return self


class BatchBody(Body):
    checks: list[CheckBody] = Field(min_length=1, max_length=access.MAX_BATCH)


@router.get("/control", summary="Access control settings")
async def show_control(calls: AsCaller) -> dict[str, Any]:
    return await calls.run(
        lambda ctx, caller: views.control(organizations.get_access_control(ctx, caller=caller))
    )


@router.post("/control/enable", summary="Enable-ElevatedAccessControl")
async def enable_control(body: EnableControl, calls: AsCaller) -> dict[str, Any]:
    def work(ctx: ServiceContext, caller: Caller) -> dict[str, Any]:
        c = organizations.enable_access_control(
            ctx, caller=caller, admin_group=body.admin_group, system_accounts=body.system_accounts
        )
        return views.control(c)

    return await calls.run(work, writes=True)


@router.post(
    "/control/disable", summary="Disable-ElevatedAccessControl (keeps policies and requests)"
)
async def disable_control(calls: AsCaller) -> dict[str, Any]:
    return await calls.run(
        lambda ctx, caller: views.control(organizations.disable_access_control(ctx, caller=caller)),
        writes=True,
    )


@router.patch("/control/config", summary="Set-OrganizationConfig")
async def set_config(body: OrgConfig, calls: AsCaller) -> dict[str, Any]:
    def work(ctx: ServiceContext, caller: Caller) -> dict[str, Any]:
        c = organizations.set_organization_config(
            ctx,
            caller=caller,
            ticket_pattern=None
            if body.clear_ticket_pattern
            else (body.ticket_pattern if body.ticket_pattern else KEEP),
            max_policies=None
            if body.clear_max_policies
            else (body.max_policies if body.max_policies else KEEP),
            pending_hours=body.pending_hours if body.pending_hours else KEEP,
            lockbox_approval_required=KEEP
            if body.lockbox_approval_required is None
            else body.lockbox_approval_required,
            lockbox_max_hours=body.lockbox_max_hours if body.lockbox_max_hours else KEEP,
            scim_approver_groups=KEEP
            if body.scim_approver_groups is None
            else body.scim_approver_groups,
        )
        return views.control(c)

    return await calls.run(work, writes=True)


@router.get("/policies", summary="Get-ElevatedAccessApprovalPolicy, by type and target")
async def list_policies(
    calls: AsCaller,
    type: PolicyTypeParam | None = None,
    approval_type: ApprovalType | None = None,
    cursor: str | None = Query(default=None, max_length=2000),
    limit: int = Query(default=100, ge=1, le=500),
) -> dict[str, Any]:
    def work(ctx: ServiceContext, caller: Caller) -> dict[str, Any]:
        page = policies.policy_page(
            ctx,
            caller=caller,
            type=PolicyType(type) if type else None,
            approval_type=approval_type,
            cursor=cursor,
            limit=limit,
        )
        return views.page([views.policy(p) for p in page.items], page.next_cursor)

    return await calls.run(work)


@router.post("/policies", status_code=201, summary="New-ElevatedAccessApprovalPolicy")
async def create_policy(body: NewPolicy, calls: AsCaller) -> dict[str, Any]:
    def work(ctx: ServiceContext, caller: Caller) -> dict[str, Any]:
        p = policies.new_policy(
            ctx,
            caller=caller,
            type=PolicyType(body.type),
            target=body.target,
            approval_type=body.approval_type,
            approver_group=body.approver_group,
            approvals_required=body.approvals_required,
            max_duration_hours=body.max_duration_hours,
            require_ticket=body.require_ticket,
            eligible_users=body.eligible_users,
            eligible_groups=body.eligible_groups,
        )
        return views.policy(p)

    return await calls.run(work, writes=True)


@router.get("/policies/{policy_id}", summary="Show a policy")
async def show_policy(policy_id: UUID, calls: AsCaller) -> dict[str, Any]:
    return await calls.run(
        lambda ctx, caller: views.policy(
            policies.get_policy(ctx, caller=caller, policy_id=policy_id)
        )
    )


@router.patch("/policies/{policy_id}", summary="Set-ElevatedAccessApprovalPolicy")
async def change_policy(policy_id: UUID, body: PolicyChange, calls: AsCaller) -> dict[str, Any]:
    def work(ctx: ServiceContext, caller: Caller) -> dict[str, Any]:
        p = policies.set_policy(
            ctx,
            caller=caller,
            policy_id=policy_id,
            approval_type=body.approval_type,
            approver_group=None
            if body.use_default_approver_group
            else (body.approver_group or KEEP),
            approvals_required=body.approvals_required,
            max_duration_hours=None if body.no_max_duration else (body.max_duration_hours or KEEP),
            require_ticket=body.require_ticket,
            eligible_users=body.eligible_users,
            eligible_groups=body.eligible_groups,
        )
        return views.policy(p)

    return await calls.run(work, writes=True)


@router.delete("/policies/{policy_id}", summary="Remove-ElevatedAccessApprovalPolicy")
async def remove_policy(policy_id: UUID, calls: AsCaller) -> dict[str, Any]:
    return await calls.run(
        lambda ctx, caller: views.policy(
            policies.remove_policy(ctx, caller=caller, policy_id=policy_id)
        ),
        writes=True,
    )


def _kinds(access: AccessParam | None) -> list[PolicyType] | None:
    """The access requests' types an ``access`` filter keeps (data_access: the data access
    requests filed when applications are installed)."""
    if access is None:
        return None
    return [PolicyType(access)]


@router.get(
    "/requests",
    summary="Get-ElevatedAccessRequest: the requests the caller may see, newest first "
    "(access=customer_lockbox: the caller's Customer Lockbox requests)",
)
async def list_requests(
    calls: AsCaller,
    status: RequestStatus | None = None,
    mine: bool = False,
    requester: str | None = None,
    target: str | None = Query(default=None, max_length=260),
    access: AccessParam | None = None,
    cursor: str | None = Query(default=None, max_length=500),
    limit: int = Query(default=50, ge=1, le=500),
) -> dict[str, Any]:
    def work(ctx: ServiceContext, caller: Caller) -> dict[str, Any]:
        if access == "customer_lockbox":
            if mine or requester is not None or target is not None:
                raise InvalidInput(
                    "access=customer_lockbox takes status, cursor and limit only "
                    "(GET /api/v1/lockbox/requests filters further)"
                )
            found = lockbox.list_requests(
                ctx, caller=caller, status=status, cursor=cursor, limit=limit
            )
            return views.page([views.lockbox_request(v) for v in found.items], found.next_cursor)
        page = requests.list_requests(
            ctx,
            caller=caller,
            status=status,
            mine=mine,
            requester=requester,
            target_contains=target,
            types=_kinds(access),
            cursor=cursor,
            limit=limit,
        )
        return views.page([views.request(v) for v in page.items], page.next_cursor)

    return await calls.run(work)


@router.post("/requests", status_code=201, summary="New-ElevatedAccessRequest")
async def create_request(body: NewRequest, calls: AsCaller) -> dict[str, Any]:
    def work(ctx: ServiceContext, caller: Caller) -> dict[str, Any]:
        v = requests.new_request(
            ctx,
            caller=caller,
            type=PolicyType(body.type),
            target=body.target,
            reason=body.reason,
            duration_hours=body.duration_hours,
        )
        return views.request(v)

    return await calls.run(work, writes=True)


@router.get("/requests/{request_id}", summary="Show a request")
async def show_request(request_id: UUID, calls: AsCaller) -> dict[str, Any]:
    return await calls.run(
        lambda ctx, caller: views.request(
            requests.get_request(ctx, caller=caller, request_id=request_id)
        )
    )


@router.post("/requests/{request_id}/approve", summary="Approve-ElevatedAccessRequest")
async def approve(request_id: UUID, body: Comment, calls: AsCaller) -> dict[str, Any]:
    def work(ctx: ServiceContext, caller: Caller) -> dict[str, Any]:
        v = requests.approve_request(
            ctx, caller=caller, request_id=request_id, comment=body.comment
        )
        return views.request(v)

    return await calls.run(work, writes=True)


@router.post("/requests/{request_id}/deny", summary="Deny-ElevatedAccessRequest")
async def deny(request_id: UUID, body: Comment, calls: AsCaller) -> dict[str, Any]:
    def work(ctx: ServiceContext, caller: Caller) -> dict[str, Any]:
        v = requests.deny_request(ctx, caller=caller, request_id=request_id, comment=body.comment)
        return views.request(v)

    return await calls.run(work, writes=True)


@router.post("/requests/{request_id}/cancel", summary="Withdraw one's own pending request")
async def cancel(request_id: UUID, calls: AsCaller) -> dict[str, Any]:
    return await calls.run(
        lambda ctx, caller: views.request(
            requests.cancel_request(ctx, caller=caller, request_id=request_id)
        ),
        writes=True,
    )


@router.get("/requests/{request_id}/verify", summary="Check the request against its signature")
async def verify(request_id: UUID, calls: AsCaller) -> dict[str, Any]:
    ok = await calls.run(
        lambda ctx, caller: requests.verify_request(ctx, caller=caller, request_id=request_id)
    )
    return {"id": str(request_id), "signature_valid": ok}


@router.get("/authorizations", summary="Get-ElevatedAccessAuthorization")
async def list_authorizations(
    calls: AsCaller,
    user: str | None = None,
    active: bool = False,
    cursor: str | None = Query(default=None, max_length=500),
    limit: int = Query(default=50, ge=1, le=500),
) -> dict[str, Any]:
    def work(ctx: ServiceContext, caller: Caller) -> dict[str, Any]:
        page = requests.list_authorizations(
            ctx, caller=caller, user=user, active=active, cursor=cursor, limit=limit
        )
        return views.page([views.authorization(v) for v in page.items], page.next_cursor)

    return await calls.run(work)


@router.post(
    "/authorizations/{authorization_id}/revoke", summary="Revoke-ElevatedAccessAuthorization"
)
async def revoke(authorization_id: UUID, body: Comment, calls: AsCaller) -> dict[str, Any]:
    def work(ctx: ServiceContext, caller: Caller) -> dict[str, Any]:
        v = requests.revoke_authorization(
            ctx, caller=caller, request_id=authorization_id, comment=body.comment
        )
        return views.authorization(v)

    return await calls.run(work, writes=True)


@router.post(
    "/check",
    summary="May this user run this task now, reach this service of this customer's data "
    "(organization and service: Customer Lockbox), or may this application use this data scope "
    "on this resource (service, scope and resource)? (audited)",
)
async def check(body: OneCheck, calls: AsCaller, response: Response) -> dict[str, Any]:
    if body.task is not None:
        (decision,) = await calls.check([(body.user, body.task)])
    elif body.scope is not None:
        service, scope, resource = str(body.service), body.scope, str(body.resource)
        decision = await calls.run(
            lambda ctx, caller: applications.check_data_access(
                ctx,
                caller=caller,
                service=service,
                scope=scope,
                resource=resource,
                user=body.user,
            ),
            writes=True,
        )
    else:
        organization, service = str(body.organization), str(body.service)
        decision = await calls.run(
            lambda ctx, caller: lockbox.check_customer_data_access(
                ctx, caller=caller, organization=organization, service=service, user=body.user
            ),
            writes=True,
        )
    response.headers["x-jitpam-allowed"] = "true" if decision.allowed else "false"
    return views.decision(decision)


@router.post(
    "/check/batch",
    summary="Up to 1,000 checks at one instant, each audited, in one transaction",
)
async def check_batch(body: BatchBody, calls: AsCaller, response: Response) -> dict[str, Any]:
    pairs = [(c.user, c.task) for c in body.checks]
    decisions = await calls.check(pairs)
    allowed = sum(1 for d in decisions if d.allowed)
    response.headers["x-jitpam-decisions"] = f"{allowed},{len(decisions) - allowed}"
    # results[i] answers checks[i], each as POST /check would.
    return {"results": [views.decision(d) for d in decisions]}
