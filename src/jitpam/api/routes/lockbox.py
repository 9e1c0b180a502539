"""Customer Lockbox: the operator's engineers ask a customer before touching its data.

The check of an engineer's access is ``POST /check`` with an organization and a service
(routes/access.py). Designating the operator is not an API operation (``jitpam lockbox operator``,
on the server).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import Field

from jitpam.api import views
from jitpam.api.deps import AsCaller
from jitpam.api.inputs import Body
from jitpam.domain.lockbox import MAX_ACCESS_HOURS, MAX_CASE_REFERENCE
from jitpam.domain.requests import RequestStatus
from jitpam.domain.timeutil import require_utc
from jitpam.services import lockbox
from jitpam.services.context import Caller, ServiceContext

router = APIRouter(prefix="/lockbox", tags=["customer lockbox"])


class NewLockboxRequest(Body):
    customer: str = Field(max_length=256, description="The customer organization's name")
    service: str = Field(
        max_length=260,
        description="Exchange, SharePoint, Teams, EOP, or a workload scope of the customer's "
        "catalog",
    )
    reason: str = Field(max_length=4096)
    case_reference: str = Field(max_length=MAX_CASE_REFERENCE)
    duration_hours: int = Field(
        ge=1, le=MAX_ACCESS_HOURS, description="At most the customer's cap (4 or lower)"
    )


class LockboxDecision(Body):
    decision: str = Field(max_length=16, description="Approve, Deny (the customer) or Cancel")
    comment: str | None = Field(default=None, max_length=4096)
    service: str | None = Field(
        default=None, max_length=260, description="When given, must be the request's service"
    )


class LockboxRevocation(Body):
    comment: str | None = Field(default=None, max_length=4096)


@router.post(
    "/requests",
    status_code=201,
    summary="New-AccessToCustomerDataRequest: the operator's engineer asks a customer",
)
async def file_request(body: NewLockboxRequest, calls: AsCaller) -> dict[str, Any]:
    def work(ctx: ServiceContext, caller: Caller) -> dict[str, Any]:
        v = lockbox.file_request(
            ctx,
            caller=caller,
            customer=body.customer,
            service=body.service,
            reason=body.reason,
            case_reference=body.case_reference,
            duration_hours=body.duration_hours,
        )
        return views.lockbox_request(v)

    return await calls.run(work, writes=True)


@router.get(
    "/requests",
    summary="Get-AccessToCustomerDataRequest: those addressed to the caller's organization (or "
    "filed by it, for the operator), newest first",
)
async def list_requests(
    calls: AsCaller,
    status: RequestStatus | None = None,
    created_after: datetime | None = None,
    request_id: UUID | None = None,
    cursor: str | None = Query(default=None, max_length=500),
    limit: int = Query(default=50, ge=1, le=500),
) -> dict[str, Any]:
    def work(ctx: ServiceContext, caller: Caller) -> dict[str, Any]:
        page = lockbox.list_requests(
            ctx,
            caller=caller,
            status=status,
            created_after=require_utc(created_after) if created_after else None,
            request_id=request_id,
            cursor=cursor,
            limit=limit,
        )
        return views.page([views.lockbox_request(v) for v in page.items], page.next_cursor)

    return await calls.run(work)


@router.get("/requests/{request_id}", summary="Show a lockbox request")
async def show_request(request_id: UUID, calls: AsCaller) -> dict[str, Any]:
    return await calls.run(
        lambda ctx, caller: views.lockbox_request(
            lockbox.get_request(ctx, caller=caller, request_id=request_id)
        )
    )


@router.post(
    "/requests/{request_id}/decision",
    summary="Set-AccessToCustomerDataRequest: the customer approves or denies, the engineer "
    "cancels",
)
async def decide(request_id: UUID, body: LockboxDecision, calls: AsCaller) -> dict[str, Any]:
    def work(ctx: ServiceContext, caller: Caller) -> dict[str, Any]:
        v = lockbox.set_request(
            ctx,
            caller=caller,
            request_id=request_id,
            decision=body.decision,
            comment=body.comment,
            service=body.service,
        )
        return views.lockbox_request(v)

    return await calls.run(work, writes=True)


@router.post(
    "/requests/{request_id}/revoke",
    summary="Revoke-AccessToCustomerDataRequest: end approved access now",
)
async def revoke(request_id: UUID, body: LockboxRevocation, calls: AsCaller) -> dict[str, Any]:
    def work(ctx: ServiceContext, caller: Caller) -> dict[str, Any]:
        v = lockbox.revoke_request(ctx, caller=caller, request_id=request_id, comment=body.comment)
        return views.lockbox_request(v)

    return await calls.run(work, writes=True)
