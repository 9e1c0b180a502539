"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from jitpam.api.deps import get_runtime
from jitpam.api.openapi import PUBLIC
from jitpam.api.problems import problem

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up", openapi_extra=PUBLIC)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The database answers",
    response_model=None,
    openapi_extra=PUBLIC,
    responses={503: {"description": "The database does not answer"}},
)
def readyz(request: Request) -> dict[str, str] | Response:
    try:
        with get_runtime(request).engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return problem(503, f"the database does not answer ({type(exc).__name__})", "not_ready")
    return {"status": "ready"}


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    openapi_extra=PUBLIC,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(request: Request) -> Response:
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
