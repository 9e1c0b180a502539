"""The audit log: search, export, checkpoints, verification."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from jitpam.api import views
from jitpam.api.deps import AsCaller
from jitpam.api.inputs import Body
from jitpam.domain.audit import Checkpoint, Outcome
from jitpam.domain.errors import InvalidInput
from jitpam.domain.timeutil import require_utc
from jitpam.services import audit_log
from jitpam.services.context import Caller, ServiceContext
from jitpam.services.ports import AuditFilter

router = APIRouter(tags=["audit"])
CSV_FIELDS = ["seq", "at", "actor", "actor_id", "operation", "target", "outcome", "details", "hash"]


class CheckpointBody(Body):
    org_id: str
    seq: int
    head_hash: str
    at: str
    key_id: str
    signature: str


class VerifyBody(Body):
    checkpoint: CheckpointBody | None = None


def _filter(
    since: datetime | None,
    until: datetime | None,
    actor: str | None,
    operation: str | None,
    target: str | None,
    outcome: Outcome | None,
) -> AuditFilter:
    return AuditFilter(
        since=require_utc(since) if since else None,
        until=require_utc(until) if until else None,
        actor=actor,
        operation=operation,
        target=target,
        outcome=outcome,
    )


@router.get("/audit", summary="Search-AuditLog: newest first")
async def search(
    calls: AsCaller,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str | None = Query(default=None, max_length=256),
    operation: str | None = Query(default=None, max_length=64),
    target: str | None = Query(default=None, max_length=512),
    outcome: Outcome | None = None,
    cursor: str | None = Query(default=None, max_length=200),
    limit: int = Query(default=100, ge=1, le=1000),
) -> dict[str, Any]:
    def work(ctx: ServiceContext, caller: Caller) -> dict[str, Any]:
        page = audit_log.search_audit(
            ctx,
            caller=caller,
            flt=_filter(since, until, actor, operation, target, outcome),
            cursor=cursor,
            limit=limit,
        )
        return views.page([views.audit_record(r) for r in page.items], page.next_cursor)

    return await calls.run(work)


def _all(ctx: ServiceContext, caller: Caller, flt: AuditFilter) -> Iterator[dict[str, Any]]:
    cursor: str | None = None
    while True:
        page = audit_log.search_audit(ctx, caller=caller, flt=flt, cursor=cursor, limit=1000)
        for r in page.items:
            yield views.audit_record(r)
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


EXPORTED: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The matching records, newest first, streamed as JSON lines or CSV",
        "content": {
            "application/x-ndjson": {"schema": {"type": "string"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}


@router.get(
    "/audit/export",
    summary="Export the audit log as JSON lines or CSV",
    response_class=StreamingResponse,
    responses=EXPORTED,
)
async def export(
    calls: AsCaller,
    format: Literal["jsonl", "csv"] = "jsonl",
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str | None = None,
    operation: str | None = None,
    outcome: Outcome | None = None,
) -> StreamingResponse:
    def work(ctx: ServiceContext, caller: Caller) -> StreamingResponse:
        flt = _filter(since, until, actor, operation, None, outcome)
        return export_response(ctx, caller, flt, format)

    return await calls.run(work)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def inert(value: object) -> object:
    """A CSV cell a spreadsheet shows as text: recorded input such as a refused request's target
    may start like a formula, and must not run as one on the auditor's machine."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def export_response(
    ctx: ServiceContext, caller: Caller, flt: AuditFilter, format: Literal["jsonl", "csv"]
) -> StreamingResponse:
    """The matching records streamed a page at a time (never the whole log in memory), after the
    caller's right to read them was checked. Blocks (it reads the database): call it off the
    event loop; the stream is iterated on threads of the pool, a page at a time."""
    audit_log.search_audit(ctx, caller=caller, flt=flt, limit=1)  # refuse before streaming starts

    def jsonl() -> Iterator[str]:
        for r in _all(ctx, caller, flt):
            yield json.dumps(r, sort_keys=True) + "\n"

    def csv_rows() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for r in _all(ctx, caller, flt):
            row = {**r, "details": json.dumps(r["details"], sort_keys=True)}
            writer.writerow({k: inert(v) for k, v in row.items()})
            yield out.getvalue()
            out.seek(0)
            out.truncate()
        yield out.getvalue()

    name = f"jitpam-audit.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if format == "jsonl":
        return StreamingResponse(jsonl(), media_type="application/x-ndjson", headers=headers)
    return StreamingResponse(csv_rows(), media_type="text/csv", headers=headers)


@router.post("/audit/checkpoint", summary="Sign the chain head, to keep outside the database")
async def checkpoint(calls: AsCaller) -> dict[str, Any]:
    return await calls.run(
        lambda ctx, caller: audit_log.export_checkpoint(ctx, caller=caller).to_dict(),
        writes=True,
    )


@router.post("/audit/verify", summary="Verify the whole chain (and a checkpoint, when given)")
async def verify(body: VerifyBody, calls: AsCaller) -> dict[str, Any]:
    def work(ctx: ServiceContext, caller: Caller) -> audit_log.VerifyResult:
        return audit_log.verify_audit(ctx, caller=caller, checkpoint=_checkpoint(body))

    result = await calls.run(work)
    r = result.report
    return {
        "ok": r.ok,
        "records": r.records,
        "head_seq": r.head_seq,
        "head_hash": r.head_hash,
        "problem": r.problem,
        "bad_seq": r.bad_seq,
        "checkpoint_signature_valid": result.checkpoint_signature_valid,
    }


def _checkpoint(body: VerifyBody) -> Checkpoint | None:
    if body.checkpoint is None:
        return None
    c = body.checkpoint
    try:
        return Checkpoint(
            UUID(c.org_id),
            c.seq,
            c.head_hash,
            datetime.fromisoformat(c.at.replace("Z", "+00:00")),
            c.key_id,
            c.signature,
        )
    except ValueError:
        raise InvalidInput("the checkpoint is not valid") from None
