"""Applications: installing one registers its account and files its data access requests.

The application's check of a data scope on a resource is ``POST /check`` with a service, a scope
and a resource (routes/access.py); approvers decide the requests with the ordinary
``/requests/{id}/approve`` and ``/deny``, and revoke with ``/authorizations/{id}/revoke``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import Field

from jitpam.api import views
from jitpam.api.deps import AsCaller
from jitpam.api.inputs import Body
from jitpam.domain.policy import DEFAULT_DURATION_HOURS
from jitpam.domain.requests import MAX_RESOURCES
from jitpam.services import applications
from jitpam.services.context import Caller, ServiceContext

router = APIRouter(prefix="/applications", tags=["applications"])
Scope = Annotated[str, Field(max_length=128)]
Resource = Annotated[str, Field(max_length=300)]


class NewApplication(Body):
    name: str = Field(
        max_length=256,
        description="The application's name (its account is made from it in the installer's "
        "domain), or the UPN its account takes",
    )
    service: str = Field(max_length=128, description="The service of the data scopes: Office365")
    scopes: list[Scope] = Field(
        min_length=1,
        max_length=applications.MAX_SCOPES,
        description="The service's data scopes, as the catalog names them (Mail.Read)",
    )
    resources: list[Resource] = Field(
        min_length=1,
        max_length=MAX_RESOURCES,
        description="The data covered, each kind:name: group:Sales, mailbox:ceo@contoso.com, "
        "user:…, site:…",
    )
    reason: str = Field(max_length=4096)
    duration_hours: int = Field(default=DEFAULT_DURATION_HOURS)


@router.post(
    "",
    status_code=201,
    summary="Install-Application: register the application's account and file a data access "
    "request per scope, in the installer's name (all or nothing)",
)
async def install(body: NewApplication, calls: AsCaller) -> dict[str, Any]:
    def work(ctx: ServiceContext, caller: Caller) -> dict[str, Any]:
        installed = applications.install_application(
            ctx,
            caller=caller,
            name=body.name,
            service=body.service,
            scopes=body.scopes,
            resources=body.resources,
            reason=body.reason,
            duration_hours=body.duration_hours,
        )
        return {
            "application": views.user(installed.application),
            "requests": [views.request(v) for v in installed.requests],
        }

    return await calls.run(work, writes=True)
