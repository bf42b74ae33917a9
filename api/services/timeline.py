"""The lab's timeline (`GET /timeline`, and its picture `GET /timeline.svg`): which task's steps waited
for and ran on which node, and when, read from Temporal (visibility for the tasks, each task's
step-records query for its steps). No second database: the work is bounded by MAX_TASKS, a small
concurrency and a time budget."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowExecutionStatus,
    WorkflowQueryFailedError,
)
from temporalio.service import RPCError

from ...engine.errors import TaskSchedulerError
from ...engine.task_state import StepRecord
from ...engine.timeline import FIT_WITHIN, TaskSteps, Timeline, build_timeline, fit, fits, window
from ...readers.records import step_records
from ...workflows.search_attributes import LAB_WORKFLOW
from .errors import temporal_errors
from .tasks import TaskService
from .visibility import filter_value

Listed = tuple[TaskSteps, bool]  # a task in the window, its steps not read yet; and whether it runs

MAX_TASKS = 500
CONCURRENCY = 8
STEP_PAGE = 200
MAX_STEPS_PER_TASK = 2000
READ_BUDGET_S = 20.0  # for every task's steps: past it, the tasks not read yet are counted as unread


async def read_timeline(
    tasks: TaskService, since: str | None, until: str | None, node: str | None, workflow: str | None
) -> Timeline:
    """The timeline of [since, until); `since` omitted or `fit`: the window fitted to the steps of the
    FIT_WITHIN before `until` that it shows (engine/timeline.py, fit)."""
    fitted = fits(since)
    start, end = window(FIT_WITHIN if fitted else since, until, datetime.now(UTC))
    listed, truncated = await _tasks_in(tasks, start, end, workflow)
    read = await _read_steps(tasks, listed)
    lanes = [n.id for n in tasks.lab.nodes]
    model = build_timeline(read, start, end, lanes, truncated)
    model.unread = len(listed) - len(read)
    if node:  # one node's lane: the wait steps, on no node, are not on it
        model.bars = [b for b in model.bars if b.node == node]
        model.wait_steps = []
        model.nodes = [node]
        model.tasks = len({b.task_id for b in model.bars})
    return fit(model) if fitted else model


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def _tasks_in(
    tasks: TaskService, start: datetime, end: datetime, workflow: str | None
) -> tuple[list[Listed], bool]:
    """The lab's tasks alive at some moment of the window (started before its end, not closed before its
    start), their steps not read yet: the newest MAX_TASKS, and whether there were more."""
    query = (
        f'{tasks.tasks_query} AND StartTime < "{_stamp(end)}" '
        f'AND (ExecutionStatus = "Running" OR CloseTime >= "{_stamp(start)}")'
    )
    if workflow:
        query += f" AND LabWorkflow={filter_value('workflow', workflow)}"
    listed: list[Listed] = []
    async with temporal_errors():
        async for execution in tasks.client.list_workflows(
            query, limit=MAX_TASKS + 1, rpc_timeout=tasks.rpc_timeout
        ):
            workflow_name = execution.typed_search_attributes.get(LAB_WORKFLOW)
            task = TaskSteps(task_id=execution.id, workflow_name=workflow_name, steps=[])
            listed.append((task, execution.status is WorkflowExecutionStatus.RUNNING))
    return listed[:MAX_TASKS], len(listed) > MAX_TASKS


async def _read_steps(tasks: TaskService, listed: list[Listed]) -> list[TaskSteps]:
    """Each task's step records, CONCURRENCY tasks at a time, within READ_BUDGET_S in all: a task whose
    run does not answer (no worker replays it, or it was deleted) is left out, and counted as unread."""
    if not listed:
        return []
    gate = asyncio.Semaphore(CONCURRENCY)
    jobs = [asyncio.create_task(_task_steps(tasks, task, running, gate)) for task, running in listed]
    done, pending = await asyncio.wait(jobs, timeout=READ_BUDGET_S)
    for job in pending:
        job.cancel()
    return [read for job in jobs if job in done and (read := job.result()) is not None]


async def _task_steps(
    tasks: TaskService, task: TaskSteps, running: bool, gate: asyncio.Semaphore
) -> TaskSteps | None:
    """A task's step records, or None when its run does not answer in time."""
    async with gate:
        try:
            async with asyncio.timeout(tasks.rpc_timeout.total_seconds()):
                read = _live_steps(tasks, task.task_id) if running else _records(tasks.client, task.task_id)
                steps = await read
        except (
            TimeoutError,
            TaskSchedulerError,
            WorkflowQueryFailedError,
            RPCError,
            RPCTimeoutOrCancelledError,
        ):
            return None
    return task.model_copy(update={"steps": steps})


async def _live_steps(tasks: TaskService, task_id: str) -> list[StepRecord]:
    """A running task's steps: its status (TaskService.show) alone knows whether its current step runs
    (and since when) or waits in its node's line; a long task's other steps come from the records."""
    shown = await tasks.show(task_id)
    if shown.steps_offset == 0 and len(shown.steps) >= (shown.steps_total or 0):
        return list(shown.steps)
    return _overlay(await _records(tasks.client, task_id), shown.steps)


def _overlay(records: list[StepRecord], live: Sequence[StepRecord]) -> list[StepRecord]:
    by_index: dict[int, StepRecord] = {s.index: s for s in records}
    by_index.update({s.index: s for s in live})
    return [by_index[i] for i in sorted(by_index)]


async def _records(client: Client, task_id: str) -> list[StepRecord]:
    """Every step record of the task, in pages from whichever of its runs holds them (MAX_STEPS_PER_TASK
    at most)."""
    steps: list[StepRecord] = []
    offset, total = 0, STEP_PAGE
    while offset < min(total, MAX_STEPS_PER_TASK):
        page = await step_records(client, task_id, offset, STEP_PAGE)
        steps.extend(page.steps)
        offset, total = offset + STEP_PAGE, page.total
    return steps
