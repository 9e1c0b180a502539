"""The task runner: jitpam runs a protected task for a user whose check allows it, so the
credential or privileged path stays in the server's configuration, never with the person.

A run is two transactions around the executor: the first decides (the same ``decide`` as every
check), takes a concurrency slot and commits a ``Start-TaskRun`` record before anything starts; the
second records how it ended. A refused run is audited and its executor never starts.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID, uuid4

from jitpam.domain.audit import Actor, AuditEvent, Outcome
from jitpam.domain.check import Decision, Reason, decide
from jitpam.domain.errors import NotFound, NotPermitted, TaskBusy
from jitpam.domain.names import resolve_name, split_name
from jitpam.domain.operations import AuditOperation
from jitpam.domain.task_definitions import RunOutcome, TaskDefinition, mask
from jitpam.services.authorization import REASON_TEXT, caller_user
from jitpam.services.context import Caller, ServiceContext
from jitpam.services.facts import gather_facts
from jitpam.services.use_case import record_refusal, use_case

logger = logging.getLogger(__name__)
START = AuditOperation.START_TASK_RUN
COMPLETE = AuditOperation.COMPLETE_TASK_RUN


class TaskRunnerPort(Protocol):
    """Where definitions come from and how executors run (an adapter)."""

    def definitions(self, organization: str) -> Mapping[str, TaskDefinition]:
        """The organization's task definitions by canonical task name."""
        ...

    def resolve_secret(self, reference: str) -> str:
        """The value behind ``env:NAME`` or ``file:NAME``; raises a JitpamError that never
        contains a value."""
        ...

    def execute(
        self,
        definition: TaskDefinition,
        values: dict[str, str | int | bool],
        secrets: dict[str, str],
    ) -> RunOutcome: ...


@dataclass(frozen=True)
class TaskRun:
    run_id: UUID
    task: str
    kind: str
    outcome: RunOutcome
    allowed_by: Reason
    authorization_id: UUID | None
    outlived_grant: bool


class Slots:
    """Per-task concurrency in this process: a run takes a slot or is refused at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[tuple[UUID, str], int] = {}

    def acquire(self, org_id: UUID, task: str, limit: int) -> None:
        """Take a slot; raises TaskBusy when ``limit`` runs of the task are going on."""
        key = (org_id, task)
        with self._lock:
            if self._running.get(key, 0) >= limit:
                raise TaskBusy(f"'{task}' is already running {limit} time(s), its limit: try later")
            self._running[key] = self._running.get(key, 0) + 1

    def release(self, org_id: UUID, task: str) -> None:
        with self._lock:
            self._running[(org_id, task)] -= 1


SLOTS = Slots()


def find_definition(runner: TaskRunnerPort, organization: str, typed: str) -> TaskDefinition:
    """The definition a typed task name (``Scope\\Name`` or an unambiguous bare name) means."""
    defined = runner.definitions(organization)
    _, bare = split_name(typed)
    candidates = [d.task for d in defined.values() if d.task.name.lower() == bare.lower()]
    try:
        name = resolve_name(typed, candidates, kind="task")
    except NotFound:
        raise NotFound(
            f"no task definition for '{typed.strip()}': jitpam does not run it"
        ) from None
    return defined[str(name)]


def list_definitions(
    ctx: ServiceContext, *, caller: Caller, runner: TaskRunnerPort
) -> list[TaskDefinition]:
    """The tasks jitpam runs for the caller's organization (any user may list them)."""
    with ctx.reader() as uow:
        caller_user(uow, caller)
        org = uow.orgs.get(caller.org_id)
        defined = runner.definitions(org.name if org else "")
        return sorted(defined.values(), key=lambda d: str(d.task).lower())


def get_definition(
    ctx: ServiceContext, *, caller: Caller, runner: TaskRunnerPort, task: str
) -> TaskDefinition:
    with ctx.reader() as uow:
        caller_user(uow, caller)
        org = uow.orgs.get(caller.org_id)
        return find_definition(runner, org.name if org else "", task)


def _shown(values: dict[str, str | int | bool], secrets: list[str]) -> dict[str, object]:
    return {k: mask(v, secrets) if isinstance(v, str) else v for k, v in sorted(values.items())}


def run_task(
    ctx: ServiceContext,
    *,
    caller: Caller,
    runner: TaskRunnerPort,
    task: str,
    parameters: Mapping[str, object],
    slots: Slots = SLOTS,
) -> TaskRun:
    """Decide for the caller, validate the parameters, run the executor, audit both ends.

    The decision comes first, so someone who may not run the task learns nothing about its
    parameters and costs the server nothing. Raises NotFound (no definition), NotPermitted (the
    check denies: the executor never starts), InvalidInput (a bad parameter, each named),
    TaskBusy (at the concurrency limit).
    """
    run_id = uuid4()
    held: tuple[UUID, str] | None = None
    try:
        with use_case(ctx, caller=caller, operation=START, target=task) as uow:
            at = ctx.clock.now()
            user = caller_user(uow, caller)
            org = uow.orgs.get(caller.org_id)
            definition = find_definition(runner, org.name if org else "", task)
            name = str(definition.task)
            control = uow.orgs.control(caller.org_id)
            decision = decide(gather_facts(uow, user=user, task=name, control=control, at=at), at)
            if decision.allowed and decision.authorization_id is not None:
                grant = uow.requests.lock_grant(decision.authorization_id)
                if grant is None or not grant.active(at):
                    decision = Decision(False, Reason.AUTHORIZATION_REQUIRED)
            if not decision.allowed:
                raise NotPermitted(
                    f"{user.upn} may not run '{name}': {REASON_TEXT[decision.reason]}"
                )
            values = definition.validate(dict(parameters))
            secrets = {k: runner.resolve_secret(ref) for k, ref in definition.secrets.items()}
            hidden = list(secrets.values())
            slots.acquire(caller.org_id, name, definition.concurrency)
            held = (caller.org_id, name)
            uow.record(
                AuditEvent(
                    org_id=caller.org_id,
                    actor=Actor.of(user),
                    operation=START,
                    target=name,
                    at=at,
                    details={
                        "run_id": str(run_id),
                        "executor": definition.kind,
                        "parameters": _shown(values, hidden),
                        "allowed_by": decision.reason.value,
                        "authorization_id": str(decision.authorization_id)
                        if decision.authorization_id
                        else None,
                    },
                )
            )
            uow.commit()
        started = time.monotonic()
        try:
            outcome = runner.execute(definition, values, secrets)
        except Exception as exc:  # the run began: its end is recorded whatever happened
            logger.exception("task %s: the executor failed", name)
            outcome = RunOutcome.failed_without_output(
                f"the executor failed: {type(exc).__name__}",
                duration_ms=int((time.monotonic() - started) * 1000),
            )
    finally:
        if held is not None:
            slots.release(*held)
    outcome = _masked(outcome, hidden, definition.output_limit_bytes)
    return _finish(ctx, caller, definition, run_id, decision, outcome)


def refuse_busy(ctx: ServiceContext, *, caller: Caller, task: str, running: int) -> TaskBusy:
    """The server runs as many tasks as it may: the refusal, audited like any other."""
    error = TaskBusy(f"the server already runs {running} tasks at once, its limit: try later")
    record_refusal(ctx, caller=caller, operation=START, target=task, error=error)
    return error


def _masked(outcome: RunOutcome, secrets: list[str], limit: int) -> RunOutcome:
    """Secrets masked first, then the output cut to its limit: a secret that straddled the
    limit was read whole (the executor keeps that much more), so no piece of it survives."""
    text = mask(outcome.output, secrets)
    cut = text.encode()[:limit].decode("utf-8", errors="ignore")
    return RunOutcome(
        succeeded=outcome.succeeded,
        exit_code=outcome.exit_code,
        http_status=outcome.http_status,
        output=cut,
        truncated=outcome.truncated or len(cut) < len(text),
        timed_out=outcome.timed_out,
        duration_ms=outcome.duration_ms,
        error=mask(outcome.error, secrets) if outcome.error else None,
    )


def _finish(
    ctx: ServiceContext,
    caller: Caller,
    definition: TaskDefinition,
    run_id: UUID,
    decision: Decision,
    outcome: RunOutcome,
) -> TaskRun:
    """Record how the run ended; a grant revoked or ended meanwhile is written down as
    outlived (the run finished, as in the seeds; no new run starts on it)."""
    name = str(definition.task)
    with ctx.uow() as uow:
        at = ctx.clock.now()
        outlived = False
        if decision.authorization_id is not None:
            grant = uow.requests.lock_grant(decision.authorization_id)
            outlived = grant is None or not grant.active(at)
        user = uow.users.get(caller.user_id)
        details: dict[str, object] = {
            "run_id": str(run_id),
            "outcome": outcome.result,
            "exit_code": outcome.exit_code,
            "http_status": outcome.http_status,
            "duration_ms": outcome.duration_ms,
            "output_sha256": hashlib.sha256(outcome.output.encode()).hexdigest(),
            "output_truncated": outcome.truncated,
            "authorization_id": str(decision.authorization_id)
            if decision.authorization_id
            else None,
            "outlived_grant": outlived,
        }
        if outcome.error:
            details["error"] = outcome.error
        if definition.keep_output:
            details["output"] = outcome.output
        if user is not None:
            uow.record(
                AuditEvent(
                    org_id=caller.org_id,
                    actor=Actor.of(user),
                    operation=COMPLETE,
                    target=name,
                    at=at,
                    outcome=Outcome.SUCCESS if outcome.succeeded else Outcome.FAILURE,
                    details=details,
                )
            )
        uow.commit()
    return TaskRun(
        run_id=run_id,
        task=name,
        kind=definition.kind,
        outcome=outcome,
        allowed_by=decision.reason,
        authorization_id=decision.authorization_id,
        outlived_grant=outlived,
    )


def describe_parameters(definition: TaskDefinition) -> list[dict[str, object]]:
    return [
        {
            "name": p.name,
            "type": p.type.value,
            "required": p.required,
            "description": p.description,
            "pattern": p.pattern,
            "choices": list(p.choices),
        }
        for p in definition.parameters
    ]
