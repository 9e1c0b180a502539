"""Connectors: their status, and a pass asked for now."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from jitpam.api import views
from jitpam.api.deps import AsCaller
from jitpam.api.inputs import Body
from jitpam.services import connectors

router = APIRouter(tags=["connectors"])
NO_CONNECTORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "This server has no connectors configured (connectors_dir is not set)"}
}


class Reconcile(Body):
    dry_run: bool = False


@router.get(
    "/connectors",
    summary="The organization's connectors: health, failures, still present, drift",
    responses=NO_CONNECTORS,
)
async def list_connectors(calls: AsCaller) -> dict[str, Any]:
    return await calls.run(
        lambda ctx, caller: views.page(
            [views.connector(v) for v in connectors.list_connectors(ctx, caller=caller)]
        )
    )


@router.get("/connectors/{name}", summary="One connector, with what jitpam recorded in it")
async def get_connector(name: str, calls: AsCaller) -> dict[str, Any]:
    return await calls.run(
        lambda ctx, caller: views.connector(
            connectors.connector_status(ctx, caller=caller, name=name), records=True
        )
    )


@router.post(
    "/connectors/{name}/reconcile",
    summary="Run a pass of the connector now (dry_run: show the plan, change nothing)",
)
async def reconcile(name: str, body: Reconcile, calls: AsCaller) -> dict[str, Any]:
    # Not queued with the writes: a pass talks to the target system, which may be slow.
    return await calls.run(
        lambda ctx, caller: views.pass_report(
            connectors.reconcile(ctx, caller=caller, name=name, dry_run=body.dry_run)
        )
    )
