"""The lab's statistics (`GET /stats`): per node its calls, outcomes, run times and the time tasks
waited for it (from each node's ledger, its usage query); per lab workflow its tasks and their outcomes,
and tasks per ISO week (counts of Temporal's visibility). No second database: the counts are bounded
by MAX_WEEKS and a time budget."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from temporalio.client import RPCTimeoutOrCancelledError, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from ...client.handles import ledger_handle
from ...engine.states import TaskState
from ...engine.stats import Stats, WeekFigures, WorkflowFigures, iso_weeks, week_label
from ...engine.timeline import window
from ...engine.usage import NodeUsage, UsageWindow, covered, resolution_for
from ...workflows.node import NodeWorkflow
from .errors import temporal_errors
from .tasks import TaskService
from .visibility import filter_value

DEFAULT_SINCE = "7d"
CONCURRENCY = 8  # visibility counts at a time
COUNT_BUDGET_S = 15.0  # for every count: past it, the figures not counted are left out (see notes)
FINAL = (TaskState.FINISHED, TaskState.CANCELLED)


async def read_stats(tasks: TaskService, since: str | None, until: str | None) -> Stats:
    """Per node its calls, outcomes, run and wait times; per lab workflow its tasks; tasks per week."""
    now = datetime.now(UTC)
    start, end = window(since, until, now, default=DEFAULT_SINCE)
    resolution = resolution_for(start, now)
    nodes_since, nodes_until = covered(start, end, resolution)
    asked = UsageWindow(since=start, until=end, now=now)
    nodes, (workflows, weeks, notes) = await asyncio.gather(
        _all_nodes(tasks, asked), _task_figures(tasks, start, end)
    )
    for node in nodes:
        node.resolution, node.since, node.until = resolution, nodes_since, nodes_until
    return Stats(
        since=start,
        until=end,
        resolution=resolution,
        nodes_since=nodes_since,
        nodes_until=nodes_until,
        nodes=nodes,
        workflows=workflows,
        tasks_per_week=weeks,
        notes=notes,
    )


# --- nodes: their ledgers' usage query ---------------------------------------------------------------


async def _all_nodes(tasks: TaskService, asked: UsageWindow) -> list[NodeUsage]:
    return list(await asyncio.gather(*(_node(tasks, n.id, asked) for n in tasks.lab.nodes)))


async def _node(tasks: TaskService, node_id: str, asked: UsageWindow) -> NodeUsage:
    """The node's figures, or zero calls and why (no ledger yet, no worker answering): never an error."""
    handle = ledger_handle(tasks.client, node_id)
    timeout_s = tasks.rpc_timeout.total_seconds()
    try:
        async with asyncio.timeout(timeout_s):
            return await handle.query(NodeWorkflow.usage, asked, rpc_timeout=tasks.rpc_timeout)
    except (TimeoutError, RPCTimeoutOrCancelledError):
        why = f"its ledger did not answer in {timeout_s:g} s: is a worker running the workflows?"
    except WorkflowQueryFailedError as exc:
        why = f"its ledger did not answer ({exc}): a worker of an older version may run the workflows"
    except RPCError as exc:
        why = (
            "no ledger yet: no worker has hosted this node"
            if exc.status is RPCStatusCode.NOT_FOUND
            else f"its ledger did not answer ({exc.message})"
        )
    return NodeUsage(node=node_id, note=why)


# --- tasks: counts of the visibility store -----------------------------------------------------------


async def _task_figures(
    tasks: TaskService, start: datetime, end: datetime
) -> tuple[list[WorkflowFigures], list[WeekFigures], list[str]]:
    names = [w.name for w in tasks.lab.workflows]
    spans, capped = iso_weeks(start, end)
    counts = Counts(tasks)
    per_workflow = [(name, counts.workflow(name, start, end)) for name in names]
    per_week = [counts.started(lo, hi) for lo, hi in spans]
    await counts.run()
    notes = [f"tasks_per_week: only the latest {len(spans)} weeks are counted"] if capped else []
    workflows = [_workflow_figures(name, counts, jobs) for name, jobs in per_workflow]
    weeks = [
        _week(lo, value)
        for (lo, _), job in zip(spans, per_week, strict=True)
        if (value := counts.value(job)) is not None
    ]
    if len(weeks) < len(spans):
        notes.append(
            f"tasks_per_week: {len(spans) - len(weeks)} weeks not counted within {COUNT_BUDGET_S:g} s"
        )
    notes.extend(_unconfigured(workflows, weeks, spans, capped))
    return workflows, weeks, notes


Jobs = tuple[int, dict[str, int]]  # the job of a workflow's total, and of each of its states


class Counts:
    """Visibility counts, asked CONCURRENCY at a time within COUNT_BUDGET_S; a count not answered in
    time is None. A Temporal error (visibility down) is the route's error: 503."""

    def __init__(self, tasks: TaskService) -> None:
        self.tasks = tasks
        self.queries: list[str] = []
        self.values: list[int | None] = []

    def started(self, lo: datetime, hi: datetime, extra: str = "") -> int:
        self.queries.append(
            f'{self.tasks.tasks_query} AND StartTime >= "{_stamp(lo)}" AND StartTime < "{_stamp(hi)}"{extra}'
        )
        return len(self.queries) - 1

    def workflow(self, name: str, lo: datetime, hi: datetime) -> Jobs:
        of = f" AND LabWorkflow={filter_value('workflow', name)}"
        states = {s.value: self.started(lo, hi, of + _state_filter(s)) for s in TaskState}
        return self.started(lo, hi, of), states

    def value(self, job: int) -> int | None:
        return self.values[job]

    async def run(self) -> None:
        gate = asyncio.Semaphore(CONCURRENCY)
        jobs = [asyncio.create_task(self._count(q, gate)) for q in self.queries]
        if not jobs:
            return
        done, pending = await asyncio.wait(jobs, timeout=COUNT_BUDGET_S)
        for job in pending:
            job.cancel()
        async with temporal_errors():
            for job in done:
                job.result()  # the first Temporal error, mapped
        self.values = [job.result() if job in done else None for job in jobs]

    async def _count(self, query: str, gate: asyncio.Semaphore) -> int:
        async with gate:
            answer = await self.tasks.client.count_workflows(query, rpc_timeout=self.tasks.rpc_timeout)
        return int(answer.count)


def _week(start: datetime, tasks: int) -> WeekFigures:
    label, monday = week_label(start)
    return WeekFigures(week=label, start=monday, tasks=tasks)


def _state_filter(state: TaskState) -> str:
    """A task not over is in that state only while it runs (a task terminated in Temporal keeps its last
    TaskState for ever)."""
    running = "" if state in FINAL else ' AND ExecutionStatus="Running"'
    return f' AND TaskState="{state.value}"{running}'


def _workflow_figures(name: str, counts: Counts, jobs: Jobs) -> WorkflowFigures:
    total, states = jobs
    outcomes = {state: counts.value(job) for state, job in states.items()}
    tasks = counts.value(total)
    if tasks is None or None in outcomes.values():
        note = f"not every count answered within {COUNT_BUDGET_S:g} s"
        return WorkflowFigures(workflow=name, tasks=tasks or 0, outcomes=_known(outcomes), note=note)
    known = _known(outcomes)
    return WorkflowFigures(
        workflow=name, tasks=tasks, outcomes=known, closed_otherwise=max(0, tasks - sum(known.values()))
    )


def _known(outcomes: dict[str, int | None]) -> dict[str, int]:
    return {state: value or 0 for state, value in outcomes.items()}


def _unconfigured(
    workflows: list[WorkflowFigures],
    weeks: list[WeekFigures],
    spans: list[tuple[datetime, datetime]],
    capped: bool,
) -> list[str]:
    """Tasks of lab workflows no longer in the configuration: counted in the weeks, not per workflow."""
    if capped or len(weeks) < len(spans) or any(w.note for w in workflows):
        return []
    others = sum(w.tasks for w in weeks) - sum(w.tasks for w in workflows)
    return [f"{others} tasks of lab workflows not in the configuration"] if others > 0 else []


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
