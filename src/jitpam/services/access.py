"""The check: may this user run this task now? Every decision, allowed or denied, is audited."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from jitpam.domain.audit import Actor, AuditEvent, Outcome
from jitpam.domain.check import Decision, decide
from jitpam.domain.control import AccessControl
from jitpam.domain.directory import User
from jitpam.domain.errors import (
    AuditUnavailable,
    InvalidInput,
    JitpamError,
    NotFound,
    NotPermitted,
    NotSignedIn,
)
from jitpam.domain.names import split_name
from jitpam.domain.operations import AuditOperation
from jitpam.domain.text import require_storable
from jitpam.domain.tokens import token_digest
from jitpam.services.auth import MAX_SECRET, NOT_SIGNED_IN, authenticate
from jitpam.services.authorization import REASON_TEXT, caller_user, may
from jitpam.services.context import Caller, ServiceContext
from jitpam.services.directory import lookup_user
from jitpam.services.facts import gather_facts, resolve_task
from jitpam.services.notifications import queue_exempt_use
from jitpam.services.ports import DecisionIndex, UnitOfWork
from jitpam.services.use_case import refusal

OPERATION = AuditOperation.TEST_ACCESS


MAX_BATCH = 1000


def check_access(ctx: ServiceContext, *, caller: Caller, user: str | None, task: str) -> Decision:
    """Decide for ``user`` (a UPN; None: the caller) and ``task`` (``Scope\\Name`` or an
    unambiguous bare name) at the clock's now. A user may ask about themself; asking about
    others needs jitpam\\Access Checker (NotPermitted otherwise). The decision and its audit
    record commit together: no audit, no answer (AuditUnavailable)."""
    return check_access_batch(ctx, caller=caller, pairs=[(user, task)])[0]


def check_access_batch(
    ctx: ServiceContext, *, caller: Caller, pairs: Sequence[tuple[str | None, str]]
) -> list[Decision]:
    """Up to MAX_BATCH (user, task) checks at one instant: every decision gets its own audit
    record. Asking about anyone but oneself needs jitpam\\Access Checker; without it the whole
    batch is refused (and that refusal audited).

    Checks that arrive together, from any callers, are decided in one transaction that locks
    the organization's audit chain once and appends all their records in one go (group commit,
    at most MAX_BATCH checks per transaction); each answer is returned once that transaction
    has committed."""
    _require_checkable(pairs)
    return _submit(ctx, _Ask(caller.org_id, caller, None, tuple(pairs)))


def check_with_token(
    ctx: ServiceContext, *, secret: str, pairs: Sequence[tuple[str | None, str]]
) -> list[Decision]:
    """``check_access_batch`` for the caller an API token stands for (NotSignedIn if none).

    The check API's path: the token is resolved inside the checks' own transaction, from the
    decision index (which drops it when it is revoked), so a token revoked an instant before
    is refused, and a token seen before costs no transaction of its own to authenticate. A
    token not seen before is authenticated first only to learn its organization."""
    _require_checkable(pairs)
    index = ctx.index
    digest = token_digest(secret) if secret and len(secret) <= MAX_SECRET else None
    if index is None or digest is None:
        return check_access_batch(ctx, caller=authenticate(ctx, secret=secret), pairs=pairs)
    org_id = index.token_org(digest)
    if org_id is None:
        org_id = authenticate(ctx, secret=secret).org_id  # NotSignedIn for an unusable token
        index.remember_token_org(digest, org_id)
    return _submit(ctx, _Ask(org_id, None, digest, tuple(pairs)))


async def check_with_token_awaited(
    ctx: ServiceContext, *, secret: str, pairs: Sequence[tuple[str | None, str]]
) -> list[Decision]:
    """``check_with_token`` for callers on an event loop: a token seen before joins the next
    group (``ctx.async_checks``) without a thread of its own; any other call runs in a thread."""
    _require_checkable(pairs)
    digest = token_digest(secret) if secret and len(secret) <= MAX_SECRET else None
    index, group = ctx.index, ctx.async_checks
    org_id = index.token_org(digest) if index is not None and digest is not None else None
    if org_id is None or digest is None or group is None:
        return await asyncio.to_thread(check_with_token, ctx, secret=secret, pairs=pairs)
    decisions: list[Decision] = await group.submit(
        _Ask(org_id, None, digest, tuple(pairs)),
        lambda asks: _decide_groups(ctx, asks),
        size=len(pairs),
        max_size=MAX_BATCH,
    )
    return decisions


def _require_checkable(pairs: Sequence[tuple[str | None, str]]) -> None:
    """Refuse, before any transaction, a batch that could fail the group it would join: the
    wrong size, or text the database cannot store (InvalidInput)."""
    if not 1 <= len(pairs) <= MAX_BATCH:
        raise InvalidInput(f"a batch holds from 1 to {MAX_BATCH} checks")
    for user, task in pairs:
        require_storable(task, "the task")
        if user is not None:
            require_storable(user, "the user")


def _submit(ctx: ServiceContext, ask: _Ask) -> list[Decision]:
    if ctx.checks is None:
        outcome = _decide_groups(ctx, [ask])[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome
    decisions: list[Decision] = ctx.checks.submit(
        ask, lambda asks: _decide_groups(ctx, asks), size=len(ask.pairs), max_size=MAX_BATCH
    )
    return decisions


@dataclass(frozen=True)
class _Ask:
    """One call's checks, by a known caller or by the holder of a token (its digest); a user
    of None means the caller."""

    org_id: UUID
    caller: Caller | None
    token: str | None
    pairs: tuple[tuple[str | None, str], ...]

    @property
    def target(self) -> str:
        return self.pairs[0][1] if len(self.pairs) == 1 else f"{len(self.pairs)} checks"


_Outcome = list[Decision] | BaseException


def _decide_groups(ctx: ServiceContext, asks: Sequence[_Ask]) -> list[_Outcome]:
    """Each organization's asks in one transaction of their own; outcomes in the asks' order."""
    by_org: dict[UUID, list[int]] = {}
    for i, ask in enumerate(asks):
        by_org.setdefault(ask.org_id, []).append(i)
    outcomes: dict[int, _Outcome] = {}
    for org_id, positions in by_org.items():
        group = [asks[i] for i in positions]
        outcomes.update(zip(positions, _decide_apart(ctx, org_id, group), strict=True))
    return [outcomes[i] for i in range(len(asks))]


def _decide_apart(ctx: ServiceContext, org_id: UUID, asks: Sequence[_Ask]) -> list[_Outcome]:
    """One transaction for ``asks``; if the database refused a value one of them brought
    (InvalidInput, raised before anything committed), each half again in its own, so no ask
    fails another caller's: the asks that refused value came in with alone get the refusal."""
    try:
        return _decide_group(ctx, org_id, asks)
    except InvalidInput as exc:
        if len(asks) == 1:
            return [exc]
        middle = len(asks) // 2
        return [
            *_decide_apart(ctx, org_id, asks[:middle]),
            *_decide_apart(ctx, org_id, asks[middle:]),
        ]
    except Exception as exc:  # the transaction failed: so did every ask in it
        return [exc] * len(asks)


def _decide_group(ctx: ServiceContext, org_id: UUID, asks: Sequence[_Ask]) -> list[_Outcome]:
    out: list[_Outcome] = []
    with ctx.uow() as uow:
        index = ctx.index
        head = 0
        if index is not None:
            # Hold the chain's head: no change commits until these checks' records do.
            head, _ = uow.audit.head(org_id, lock=True)
            index.catch_up(uow, org_id, head)
        at = ctx.clock.now()  # read once the head is ours: checks are decided in time order
        control = uow.orgs.control(org_id) if index is None else None
        appended = 0
        for ask in asks:
            caller, asker = ask.caller, None
            if ask.token is not None:
                assert index is not None
                asker = index.token_holder(uow, org_id, ask.token, at)
                if asker is None:  # as a failed sign-in: answered, not audited
                    out.append(NotSignedIn(NOT_SIGNED_IN))
                    continue
                caller = Caller(org_id, asker.id)
            assert caller is not None
            try:
                events, exempt, decisions = _decide(uow, caller, asker, ask, index, control, at)
            except AuditUnavailable:
                raise
            except JitpamError as err:  # this ask is refused; the others go on
                uow.record(
                    refusal(
                        uow,
                        caller=caller,
                        operation=OPERATION,
                        target=ask.target,
                        at=at,
                        error=err,
                    )
                )
                appended += 1
                out.append(err)
                continue
            uow.record_all(events)
            appended += len(events)
            for upn, name in exempt:
                queue_exempt_use(ctx, uow, org_id=org_id, user=upn, task=name, at=at)
            out.append(decisions)
        uow.commit()
    if index is not None:
        index.skip(org_id, head, head + appended)  # our own records change no decision
    return out


def _decide(
    uow: UnitOfWork,
    caller: Caller,
    known: User | None,
    ask: _Ask,
    index: DecisionIndex | None,
    control: AccessControl | None,
    at: datetime,
) -> tuple[list[AuditEvent], list[tuple[str, str]], list[Decision]]:
    """One ask's decisions, their audit records and the exempt uses to report; writes
    nothing, so a refusal (raised) leaves no trace but its own record. ``known``: the caller,
    when already read in this transaction."""
    asker = known if known is not None else caller_user(uow, caller)

    def subject_of(upn: str | None) -> User | None:
        if upn is None:
            return asker
        if index is not None:
            return index.user(uow, caller.org_id, upn, at)
        return _subject(uow, caller, upn)

    subjects = [subject_of(upn) for upn, _ in ask.pairs]
    if any(s is None or s.id != asker.id for s in subjects):
        allowed = may(uow, user=asker, operation=OPERATION, at=at)
        if not allowed.allowed:
            raise NotPermitted(
                f"{asker.upn} may ask only about themself: {REASON_TEXT[allowed.reason]}"
            )
    events, exempt, decisions = [], [], []
    for (typed, task), subject in zip(ask.pairs, subjects, strict=True):
        upn = subject.upn if subject else (typed or "").strip().lower()
        if index is not None:
            name = index.task_name(
                caller.org_id, task, lambda typed: _task_name(uow, caller, typed)
            )
            _, facts = index.facts(uow, caller.org_id, upn, name, at)
        else:
            assert control is not None
            name = _task_name(uow, caller, task)
            facts = gather_facts(uow, user=subject, task=name, control=control, at=at)
        decision = decide(facts, at)
        events.append(
            AuditEvent(
                org_id=caller.org_id,
                actor=Actor.of(asker),
                operation=OPERATION,
                target=name,
                at=at,
                outcome=Outcome.SUCCESS if decision.allowed else Outcome.REFUSED,
                details={
                    "user": upn,
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
            exempt.append((subject.upn, name))
        decisions.append(decision)
    return events, exempt, decisions


def _subject(uow: UnitOfWork, caller: Caller, upn: str) -> User | None:
    """The user a UPN names in the caller's organization, or None (denied as unknown)."""
    return lookup_user(uow, caller.org_id, upn)


def _task_name(uow: UnitOfWork, caller: Caller, task: str) -> str:
    """The canonical name of a typed task; an unknown one stays as typed (denied as unknown)."""
    try:
        return str(resolve_task(uow, caller.org_id, task))
    except NotFound:
        split_name(task)
        return task.strip()
