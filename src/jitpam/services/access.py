"""The check: may this user run this task now? Every decision, allowed or denied, is audited."""

from __future__ import annotations

from collections.abc import Sequence

from jitpam.domain.audit import Outcome
from jitpam.domain.check import Decision, decide
from jitpam.domain.directory import User
from jitpam.domain.errors import InvalidInput, NotFound, NotPermitted
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
from jitpam.services.ports import UnitOfWork

OPERATION = "Test-ElevatedAccess"


MAX_BATCH = 1000


def check_access(ctx: ServiceContext, *, caller: Caller, user: str, task: str) -> Decision:
    """Decide for ``user`` (a UPN) and ``task`` (``Scope\\Name`` or an unambiguous bare name) at
    the clock's now. A user may ask about themself; asking about others needs
    jitpam\\Access Checker (NotPermitted otherwise). The decision and its audit record commit
    together: no audit, no answer (AuditUnavailable)."""
    return check_access_batch(ctx, caller=caller, pairs=[(user, task)])[0]


def check_access_batch(
    ctx: ServiceContext, *, caller: Caller, pairs: Sequence[tuple[str, str]]
) -> list[Decision]:
    """Up to MAX_BATCH (user, task) checks at one instant, in one transaction: every decision
    gets its own audit record, and all of them join the audit chain in one append. Asking
    about anyone but oneself needs jitpam\\Access Checker; without it the whole batch is
    refused (and that refusal audited)."""
    if not 1 <= len(pairs) <= MAX_BATCH:
        raise InvalidInput(f"a batch holds from 1 to {MAX_BATCH} checks")
    target = pairs[0][1] if len(pairs) == 1 else f"{len(pairs)} checks"
    with use_case(ctx, caller=caller, operation=OPERATION, target=target) as uow:
        index = ctx.index
        if index is not None:
            # Hold the chain's head: no change commits until this check's records do.
            head, _ = uow.audit.head(caller.org_id, lock=True)
            index.catch_up(uow, caller.org_id, head)
        at = ctx.clock.now()  # read once the head is ours: checks are decided in time order
        asker = caller_user(uow, caller)

        def subject_of(upn: str) -> User | None:
            if index is not None:
                return index.user(uow, caller.org_id, upn, at)
            return _subject(uow, caller, upn)

        subjects = {upn: subject_of(upn) for upn, _ in pairs}
        if any(s is None or s.id != asker.id for s in subjects.values()):
            allowed = may(uow, user=asker, operation=OPERATION, at=at)
            if not allowed.allowed:
                raise NotPermitted(
                    f"{asker.upn} may ask only about themself: {REASON_TEXT[allowed.reason]}"
                )
        control = uow.orgs.control(caller.org_id) if index is None else None
        decisions = []
        for user, task in pairs:
            subject = subjects[user]
            if index is not None:
                name = index.task_name(
                    caller.org_id, task, lambda typed: _task_name(uow, caller, typed)
                )
                _, facts = index.facts(uow, caller.org_id, user, name, at)
            else:
                assert control is not None
                name = _task_name(uow, caller, task)
                facts = gather_facts(uow, user=subject, task=name, control=control, at=at)
            decision = decide(facts, at)
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
            decisions.append(decision)
        uow.commit()
        return decisions


def _subject(uow: UnitOfWork, caller: Caller, upn: str) -> User | None:
    """The user a UPN names in the caller's organization, or None (denied as unknown)."""
    found = uow.users.get_by_upn(upn.strip().lower()) if "@" in upn else None
    return found if found is not None and found.org_id == caller.org_id else None


def _task_name(uow: UnitOfWork, caller: Caller, task: str) -> str:
    """The canonical name of a typed task; an unknown one stays as typed (denied as unknown)."""
    try:
        return str(resolve_task(uow, caller.org_id, task))
    except NotFound:
        split_name(task)
        return task.strip()
