"""The lab's metrics for `GET /metrics`, read from Temporal at each scrape (the API keeps no state):
tasks by state and workflow (visibility counts), tasks waiting for an operator and the longest wait,
nodes by state (their ledgers), and notification deliveries (the LabWorkflow's).

Each source is read on its own, all at once, within the scrape's time budget: a source that fails or
runs out of time is left out of the answer and says so in `task_scheduler_metrics_source_up`, and the
others are answered all the same.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from pydantic import BaseModel
from temporalio.client import Client, WorkflowExecution
from temporalio.service import RPCError, RPCStatusCode

from ...client.handles import task_handle
from ...engine.contracts import lab_workflow_id
from ...engine.errors import SchedulerUnavailableError
from ...engine.states import NodeState, TaskState
from ...engine.task_state import TaskStatus
from ...workflows.lab import LabWorkflow
from ...workflows.search_attributes import LAB_WORKFLOW
from ...workflows.task import TaskWorkflow
from .nodes import NodeService
from .tasks import TaskService
from .visibility import filter_value

log = logging.getLogger(__name__)

FINAL_STATES = (TaskState.FINISHED, TaskState.CANCELLED)
MAX_CONCURRENT_CALLS = 8  # the visibility store is a shared database: a scrape must not flood it
MAX_WAIT_QUERIES = 100  # the ERROR tasks asked when they failed: the first started, if more
UNKNOWN = "UNKNOWN"  # a node whose ledger does not run yet
Source = Callable[[], Awaitable[list[Metric]]]


class DeliveryTotals(BaseModel):
    """What the LabWorkflow says of the lab's notifications."""

    sent: int = 0
    failed: int = 0
    in_flight: int = 0


async def notification_deliveries(
    client: Client, task_queue: str, rpc_timeout: timedelta
) -> DeliveryTotals | None:
    """The LabWorkflow's `status` query counts the deliveries sent, failed (given up) and under way.
    None while no LabWorkflow runs for the task queue (no worker running the workflows started it yet)."""
    handle = client.get_workflow_handle(lab_workflow_id(task_queue))
    try:
        status = await handle.query(LabWorkflow.status, rpc_timeout=rpc_timeout)
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            return None
        raise
    return DeliveryTotals(sent=status.sent, failed=status.failed, in_flight=len(status.in_flight))


class LabMetrics:
    """One scrape's reading of the lab."""

    def __init__(self, tasks: TaskService, nodes: NodeService) -> None:
        self.tasks = tasks
        self.nodes = nodes
        self.client = tasks.client
        self.lab = tasks.lab
        self._calls = asyncio.Semaphore(MAX_CONCURRENT_CALLS)

    # The sources of a scrape, as `task_scheduler_metrics_source_up` names them, and their readers.
    SOURCES = {
        "tasks": "task_counts",
        "operator_waits": "operator_waits",
        "nodes": "node_states",
        "notifications": "notifications",
    }

    def sources(self) -> dict[str, Source]:
        return {name: getattr(self, method) for name, method in self.SOURCES.items()}

    # --- tasks -------------------------------------------------------------------------------------

    async def task_counts(self) -> list[Metric]:
        """Per state and lab workflow of the configuration: the dev server's visibility groups by
        ExecutionStatus only, so each pair is a count of its own. A task not over counts if it runs
        (a task terminated in Temporal stays ACTIVE in its search attributes for ever)."""
        pairs = [(state, w.name) for w in self.lab.workflows for state in TaskState]
        counts = await asyncio.gather(*(self._count(state, name) for state, name in pairs))
        family = GaugeMetricFamily(
            "task_scheduler_tasks",
            "Tasks in each state, per lab workflow (FINISHED and CANCELLED: as long as Temporal keeps them)",
            labels=["state", "workflow"],
        )
        for (state, name), count in zip(pairs, counts, strict=True):
            family.add_metric([state.value, name], count)
        return [family]

    async def _count(self, state: TaskState, workflow_name: str) -> int:
        query = (
            f'{self.tasks.tasks_query} AND TaskState="{state.value}" '
            f"AND LabWorkflow={filter_value('workflow_name', workflow_name)}"
        )
        if state not in FINAL_STATES:
            query += ' AND ExecutionStatus="Running"'
        async with self._calls:
            answer = await self.client.count_workflows(query, rpc_timeout=self.tasks.rpc_timeout)
        return int(answer.count)

    async def operator_waits(self) -> list[Metric]:
        """The tasks stopped in ERROR, per lab workflow, and how long the longest has waited."""
        query = f'{self.tasks.tasks_query} AND ExecutionStatus="Running" AND TaskState="{TaskState.ERROR}"'
        executions = [e async for e in self.client.list_workflows(query, rpc_timeout=self.tasks.rpc_timeout)]
        per_workflow = Counter(e.typed_search_attributes.get(LAB_WORKFLOW) or "" for e in executions)
        waiting = GaugeMetricFamily(
            "task_scheduler_tasks_waiting_for_operator",
            "Tasks stopped by a failed step (ERROR), waiting for an operator's continue or cancel",
            labels=["workflow"],
        )
        for name in _names([w.name for w in self.lab.workflows], per_workflow):
            waiting.add_metric([name], per_workflow[name])
        oldest = GaugeMetricFamily(
            "task_scheduler_operator_wait_oldest_seconds",
            "How long the task waiting longest for an operator has waited (0: none waits)",
        )
        oldest.add_metric([], await self._longest_wait(executions))
        return [waiting, oldest]

    async def _longest_wait(self, executions: list[WorkflowExecution]) -> float:
        if not executions:
            return 0.0
        first = sorted(executions, key=lambda e: e.start_time)[:MAX_WAIT_QUERIES]
        since = [s for s in await asyncio.gather(*(self._error_since(e.id) for e in first)) if s]
        if not since:
            raise SchedulerUnavailableError("no worker answered the status queries of the tasks in ERROR")
        return max(0.0, (datetime.now(UTC) - min(since)).total_seconds())

    async def _error_since(self, task_id: str) -> datetime | None:
        """When the task's failed step ended (its wait for an operator began), if the task says."""
        try:
            async with self._calls:
                status: TaskStatus = await task_handle(self.client, task_id).query(
                    TaskWorkflow.get_status, rpc_timeout=self.tasks.rpc_timeout
                )
        except Exception as exc:  # a task that just closed, or no worker: the others still tell
            log.debug("task %s: no status for its wait (%s)", task_id, exc)
            return None
        record = status.record(status.current_step) if status.current_step is not None else None
        if status.state is not TaskState.ERROR or record is None:
            return None
        return record.finished_at or record.started_at or record.requested_at

    # --- nodes and notifications -------------------------------------------------------------------

    async def node_states(self) -> list[Metric]:
        """As `GET /nodes` says them (an idle node with no live worker is OFFLINE)."""
        nodes = await self.nodes.list_all()
        states = [n.state.value if n.state else UNKNOWN for n in nodes]
        every_state = [s.value for s in NodeState] + [UNKNOWN]
        per_state = Counter(states)
        count = GaugeMetricFamily("task_scheduler_nodes", "Nodes in each state", labels=["state"])
        each = GaugeMetricFamily(
            "task_scheduler_node_state",
            "1 for each node's current state, 0 for the others",
            labels=["node", "state"],
        )
        online = GaugeMetricFamily(
            "task_scheduler_node_online", "1 if a live worker hosts the node, else 0", labels=["node"]
        )
        for state in every_state:
            count.add_metric([state], per_state[state])
        for node, state in zip(nodes, states, strict=True):
            for candidate in every_state:
                each.add_metric([node.id, candidate], 1 if candidate == state else 0)
            online.add_metric([node.id], 1 if node.online else 0)
        return [count, each, online]

    async def notifications(self) -> list[Metric]:
        totals = await notification_deliveries(
            self.client, self.tasks.settings.task_queue, self.tasks.rpc_timeout
        )
        if totals is None:
            return []
        sent = CounterMetricFamily(
            "task_scheduler_notifications_sent", "Notifications delivered (to one target each)"
        )
        sent.add_metric([], totals.sent)
        failed = CounterMetricFamily(
            "task_scheduler_notifications_failed", "Notifications whose delivery kept failing until given up"
        )
        failed.add_metric([], totals.failed)
        in_flight = GaugeMetricFamily(
            "task_scheduler_notifications_in_flight",
            "Notifications being delivered now (a target that refuses keeps its delivery here, retried)",
        )
        in_flight.add_metric([], totals.in_flight)
        return [sent, failed, in_flight]


def _names(names: list[str], seen: Counter[str]) -> list[str]:
    """The configuration's workflow names, then any other a task in ERROR names (a workflow removed
    from the configuration while its tasks wait)."""
    return names + sorted(set(seen) - set(names))


async def read_sources(sources: dict[str, Source], budget_s: float) -> tuple[list[Metric], dict[str, bool]]:
    """Every source at once, each within `budget_s`: their metrics, and which answered."""
    names = list(sources)
    answers = await asyncio.gather(*(_bounded(name, sources[name], budget_s) for name in names))
    families = [family for answer in answers if answer is not None for family in answer]
    return families, {name: answer is not None for name, answer in zip(names, answers, strict=True)}


async def _bounded(name: str, source: Source, budget_s: float) -> list[Metric] | None:
    try:
        return await asyncio.wait_for(source(), timeout=max(0.0, budget_s))
    except TimeoutError:
        log.warning("metrics: %s took more than the scrape's %.1f s; left out", name, budget_s)
    except Exception as exc:  # whatever failed, the scrape answers the other sources
        log.warning("metrics: %s failed (%s: %s); left out", name, type(exc).__name__, exc)
    return None


def scrape_families(families: list[Metric], up: dict[str, bool], started: float) -> list[Metric]:
    """The sources' metrics, and how the scrape went: which sources answered, and how long it took."""
    source_up = GaugeMetricFamily(
        "task_scheduler_metrics_source_up",
        "1 if the source answered this scrape, 0 if it failed or ran out of time (its metrics are absent)",
        labels=["source"],
    )
    for name, answered in up.items():
        source_up.add_metric([name], 1 if answered else 0)
    duration = GaugeMetricFamily(
        "task_scheduler_metrics_scrape_duration_seconds", "How long the API took to read the lab's metrics"
    )
    duration.add_metric([], time.monotonic() - started)
    return [*families, source_up, duration]
