"""Reading the audit log: search, export, integrity verification and signed checkpoints."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from uuid import UUID

from jitpam.domain.audit import (
    Actor,
    AuditEvent,
    AuditRecord,
    ChainReport,
    Checkpoint,
    verify_chain,
)
from jitpam.domain.errors import InvalidInput
from jitpam.domain.operations import AuditOperation
from jitpam.services.authorization import authorize
from jitpam.services.context import Caller, ServiceContext
from jitpam.services.ports import AuditFilter, AuditRepository, Page
from jitpam.services.use_case import use_case

OPERATION = AuditOperation.SEARCH_AUDIT_LOG
MAX_PAGE = 1000


def search_audit(
    ctx: ServiceContext,
    *,
    caller: Caller,
    flt: AuditFilter | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> Page[AuditRecord]:
    """Records newest first; needs jitpam\\Audit Reader (Search-AuditLog)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"page size must be from 1 to {MAX_PAGE}")
    with use_case(
        ctx, caller=caller, operation=OPERATION, target="audit log", reads_only=True
    ) as uow:
        authorize(uow, caller, OPERATION, ctx.clock.now(), hold_grant=False)
        return uow.audit.search(caller.org_id, flt or AuditFilter(), cursor=cursor, limit=limit)


class _ChainWalk:
    """The chain's records while writers go on appending: the walk reads no lock, so other
    changes commit during it. When it reaches the end it reads the head, and if the head names
    records appended meanwhile it walks on to them; the head it read last is the one to compare
    (a record past that head is one the chain never admitted). Inside a snapshot (SQLite's
    reading transaction) the first head read is already the last."""

    CATCH_UPS = 100

    def __init__(self, audit: AuditRepository, org_id: UUID) -> None:
        self.audit, self.org_id = audit, org_id
        self.head: tuple[int, str] | None = None

    def __iter__(self) -> Iterator[AuditRecord]:
        last = 0
        for _ in range(self.CATCH_UPS):
            before = last
            for record in self.audit.records(self.org_id, after=last):
                last = record.seq
                yield record
            self.head = self.audit.head(self.org_id)
            if self.head[0] <= last or last == before:
                return  # caught up, or the head names records that are not there

    def final_head(self) -> tuple[int, str]:
        return self.head if self.head is not None else self.audit.head(self.org_id)


@dataclass(frozen=True)
class VerifyResult:
    report: ChainReport
    checkpoint_signature_valid: bool | None  # None when no checkpoint was given


def verify_audit(
    ctx: ServiceContext, *, caller: Caller, checkpoint: Checkpoint | None = None
) -> VerifyResult:
    """Walk the whole chain; with a checkpoint (exported earlier), also detect a truncated tail.
    A checkpoint whose signature does not verify fails the check."""
    with use_case(
        ctx, caller=caller, operation=OPERATION, target="audit log", reads_only=True
    ) as uow:
        authorize(uow, caller, OPERATION, ctx.clock.now(), hold_grant=False)
        signature_ok: bool | None = None
        if checkpoint is not None:
            if checkpoint.org_id != caller.org_id:
                raise InvalidInput("the checkpoint belongs to another organization")
            signature_ok = ctx.signer.verify(
                key_id=checkpoint.key_id,
                payload=checkpoint.payload(),
                signature=checkpoint.signature,
            )
        walk = _ChainWalk(uow.audit, caller.org_id)
        report = verify_chain(
            walk, stored_head=walk.final_head, checkpoint=checkpoint if signature_ok else None
        )
        if signature_ok is False:
            report = ChainReport(
                False,
                report.records,
                report.head_seq,
                report.head_hash,
                "the checkpoint's signature is not valid",
            )
        return VerifyResult(report, signature_ok)


def export_checkpoint(ctx: ServiceContext, *, caller: Caller) -> Checkpoint:
    """Sign the current chain head, to be kept outside the database; the export is audited."""
    with use_case(
        ctx, caller=caller, operation=AuditOperation.EXPORT_AUDIT_CHECKPOINT, target="audit log"
    ) as uow:
        at = ctx.clock.now()
        actor, _ = authorize(uow, caller, OPERATION, at)
        seq, head = uow.audit.head(caller.org_id)
        unsigned = Checkpoint(caller.org_id, seq, head, at)
        checkpoint = Checkpoint(
            caller.org_id, seq, head, at, ctx.signer.key_id, ctx.signer.sign(unsigned.payload())
        )
        uow.record(
            AuditEvent(
                org_id=caller.org_id,
                actor=Actor.of(actor),
                operation=AuditOperation.EXPORT_AUDIT_CHECKPOINT,
                target=str(seq),
                at=at,
                details={"head_hash": head},
            )
        )
        uow.commit()
        return checkpoint
