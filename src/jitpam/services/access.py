"""The check: may this user run this task now? Every decision, allowed or denied, is audited."""

from __future__ import annotations

from jitpam.domain.audit import Outcome
from jitpam.domain.check import Decision, decide
from jitpam.domain.errors import NotFound, NotPermitted
from jitpam.domain.names import split_name
from jitpam.services.context import Caller, ServiceContext
from jitpam.services.guard import (
    REASON_TEXT,
    caller_user,
    event,
    gather_facts,
    may,
    resolve_task,
    use_case,
)
from jitpam.services.notifications import queue_exempt_use

OPERATION = "Test-ElevatedAccess"


def check_access(ctx: ServiceContext, *, caller: Caller, user: str, task: str) -> Decision:
    """Decide for ``user`` (a UPN) and ``task`` (``Scope\\Name`` or an unambiguous bare name) at
    the clock's now. A user may ask about themself; asking about others needs
    jitpam\\Access Checker (NotPermitted otherwise). The decision and its audit record commit
    together: no audit, no answer (AuditUnavailable)."""
    with use_case(ctx, caller=caller, operation=OPERATION, target=task) as uow:
        at = ctx.clock.now()
        asker = caller_user(uow, caller)
        subject = uow.users.get_by_upn(user.strip().lower()) if "@" in user else None
        if subject is None or subject.org_id != caller.org_id:
            subject = None
        if subject is None or subject.id != asker.id:
            allowed = may(uow, user=asker, operation=OPERATION, at=at)
            if not allowed.allowed:
                raise NotPermitted(
                    f"{asker.upn} may ask only about themself: {REASON_TEXT[allowed.reason]}"
                )
        try:
            name = str(resolve_task(uow, caller.org_id, task))
        except NotFound:
            split_name(task)
            name = task.strip()
        control = uow.orgs.control(caller.org_id)
        decision = decide(gather_facts(uow, user=subject, task=name, control=control, at=at), at)
        uow.record(
            event(
                caller=caller,
                actor=asker,
                operation=OPERATION,
                target=name,
                at=at,
                outcome=Outcome.SUCCESS if decision.allowed else Outcome.REFUSED,
                details={
                    "user": subject.upn if subject else user.strip().lower(),
                    "allowed": decision.allowed,
                    "reason": decision.reason.value,
                    "authorization_id": str(decision.authorization_id)
                    if decision.authorization_id
                    else None,
                    "exempt": decision.exempt,
                },
            )
        )
        if decision.exempt and subject is not None:
            queue_exempt_use(ctx, uow, org_id=caller.org_id, user=subject.upn, task=name, at=at)
        uow.commit()
        return decision
