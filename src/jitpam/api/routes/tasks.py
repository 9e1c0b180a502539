"""The task runner: the tasks jitpam runs, and running one."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Request
from pydantic import Field

from jitpam.api.deps import AsCaller, Calls, get_caller, get_runtime
from jitpam.api.inputs import Body
from jitpam.api.running import run_use_case
from jitpam.domain.task_definitions import TaskDefinition
from jitpam.services import runner
from jitpam.services.context import Caller, ServiceContext
from jitpam.services.runner import TaskRun

router = APIRouter(tags=["task runner"])


class RunBody(Body):
    parameters: dict[str, str | int | bool] = Field(default_factory=dict, max_length=100)


def definition(d: TaskDefinition) -> dict[str, Any]:
    """A definition as users may see it: what it takes and how it runs, never its secrets."""
    return {
        "task": str(d.task),
        "description": d.description,
        "executor": d.kind,
        "parameters": runner.describe_parameters(d),
        "timeout_seconds": d.timeout_seconds,
        "concurrency": d.concurrency,
        "keeps_output": d.keep_output,
    }


@router.get("/tasks", summary="The tasks jitpam runs for this organization")
async def list_tasks(calls: AsCaller) -> dict[str, Any]:
    tasks = calls.runtime.tasks

    def work(ctx: ServiceContext, caller: Caller) -> dict[str, Any]:
        found = runner.list_definitions(ctx, caller=caller, runner=tasks)
        return {"items": [definition(d) for d in found], "next_cursor": None}

    return await calls.run(work)


@router.get("/tasks/{task}", summary="One task definition")
async def show_task(task: str, calls: AsCaller) -> dict[str, Any]:
    tasks = calls.runtime.tasks
    return await calls.run(
        lambda ctx, caller: definition(
            runner.get_definition(ctx, caller=caller, runner=tasks, task=task)
        )
    )


def _limiter(request: Request) -> anyio.CapacityLimiter:
    """Runs get threads of their own, at most ``task_runs_max`` at once, so long tasks never
    take the threads every other API call is served from."""
    state = request.app.state
    if getattr(state, "task_runs", None) is None:
        state.task_runs = anyio.CapacityLimiter(get_runtime(request).settings.task_runs_max)
    limiter: anyio.CapacityLimiter = state.task_runs
    return limiter


async def _run(calls: Calls, task: str, parameters: dict[str, str | int | bool]) -> TaskRun:
    """The caller authenticated on the pool, then the task run on a thread of the runs' own
    (``_limiter``), or refused as busy when they are all taken."""
    runtime = calls.runtime
    ctx = runtime.ctx
    caller = await run_use_case(ctx, lambda: get_caller(runtime, calls.credential))
    limiter = _limiter(calls.request)
    if limiter.available_tokens < 1:
        running = int(limiter.total_tokens)
        raise await run_use_case(
            ctx, lambda: runner.refuse_busy(ctx, caller=caller, task=task, running=running)
        )
    return await run_use_case(
        ctx,
        lambda: runner.run_task(
            ctx, caller=caller, runner=runtime.tasks, task=task, parameters=parameters
        ),
        limiter=limiter,
    )


@router.post(
    "/tasks/{task}/run",
    summary="Run a task for the caller, when their check allows it; audited at both ends",
)
async def run(task: str, body: RunBody, calls: AsCaller) -> dict[str, Any]:
    done = await _run(calls, task, body.parameters)
    o = done.outcome
    return {
        "run_id": str(done.run_id),
        "task": done.task,
        "executor": done.kind,
        "outcome": o.result,
        "exit_code": o.exit_code,
        "http_status": o.http_status,
        "duration_ms": o.duration_ms,
        "output": o.output,
        "output_truncated": o.truncated,
        "error": o.error,
        "allowed_by": done.allowed_by.value,
        "authorization_id": str(done.authorization_id) if done.authorization_id else None,
        "outlived_grant": done.outlived_grant,
    }
