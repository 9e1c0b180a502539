"""A use case's transaction, and the audit record of what it refuses.

A refused attempt rolls back the use case's transaction; its audit record (outcome ``refused``,
the error's code) is then written in a transaction of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from jitpam.domain.audit import Actor, AuditEvent, Outcome
from jitpam.domain.errors import AuditUnavailable, JitpamError
from jitpam.domain.operations import AuditOperation
from jitpam.services.context import Caller, ServiceContext
from jitpam.services.ports import UnitOfWork


@contextmanager
def use_case(
    ctx: ServiceContext,
    *,
    caller: Caller,
    operation: AuditOperation,
    target: str,
    reads_only: bool = False,
) -> Iterator[UnitOfWork]:
    """Open the use case's transaction; if it refuses with a JitpamError, audit the refusal.

    A use case that only reads (``reads_only``) runs in a reading transaction: on SQLite it
    leaves the write lock to the writers, however long it reads."""
    try:
        with ctx.reader() if reads_only else ctx.uow() as uow:
            yield uow
    except AuditUnavailable:
        raise
    except JitpamError as err:
        record_refusal(ctx, caller=caller, operation=operation, target=target, error=err)
        raise


def record_refusal(
    ctx: ServiceContext,
    *,
    caller: Caller,
    operation: AuditOperation,
    target: str,
    error: JitpamError,
) -> None:
    """Audit a refused attempt in a transaction of its own (nothing, for no organization)."""
    with ctx.uow() as uow:
        if uow.orgs.get(caller.org_id) is None:
            return  # nowhere to record it: the organization does not exist
        uow.record(
            refusal(
                uow,
                caller=caller,
                operation=operation,
                target=target,
                at=ctx.clock.now(),
                error=error,
            )
        )
        uow.commit()


def refusal(
    uow: UnitOfWork,
    *,
    caller: Caller,
    operation: AuditOperation,
    target: str,
    at: datetime,
    error: JitpamError,
) -> AuditEvent:
    """The audit record of a refused attempt; a caller who is no user of the organization is
    named by id alone."""
    user = uow.users.get(caller.user_id)
    if user is None or user.org_id != caller.org_id:
        actor = Actor(str(caller.user_id), "")
    else:
        actor = Actor.of(user)
    return AuditEvent(
        org_id=caller.org_id,
        at=at,
        actor=actor,
        operation=operation,
        target=target,
        outcome=Outcome.REFUSED,
        details={"error": error.code, "message": error.message},
    )
