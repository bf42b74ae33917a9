"""What the seed's orchestrator and routes do to the lab, over our services (the same as our own routes
use): start, find, pause, continue tasks; restart nodes; stop and start taking tasks; serve a reloaded
configuration. Answers in the seed's terms (its error codes, its shapes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from temporalio.client import RPCTimeoutOrCancelledError, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from ..api.deps import connected_client
from ..api.schemas import TASK_ID_PATTERN, TaskCreate, TaskPublic
from ..api.services.config import refuse_changed_drivers
from ..api.services.errors import temporal_errors
from ..api.services.intake import STOP_SETTLE_S
from ..api.services.nodes import NodeService
from ..api.services.tasks import TaskService
from ..client.handles import ledger_handle
from ..engine.config import LabConfig
from ..engine.errors import (
    CommandRefusedError,
    DriverSettingsChangedError,
    InvalidTransitionError,
    SchedulerUnavailableError,
    TaskExistsError,
    UnknownTaskError,
)
from ..engine.ledger import LedgerState
from ..engine.seed import BaseNodeModel, DBLogsModel, OrchestratorErrorCodes, TaskModel, TaskRow
from ..engine.states import NodeState, TaskState
from ..workflows.node import NodeWorkflow
from .views import execution_rows, log_rows, node_model, task_model, task_row

log = logging.getLogger("task_scheduler.app.Orchestrator")
Codes = OrchestratorErrorCodes

UNFINISHED = (TaskState.PENDING, TaskState.ACTIVE, TaskState.PAUSED, TaskState.ERROR)
SHOWN_AT_ONCE = 16  # tasks read concurrently for a listing
RESTART_WAIT_S = 60.0  # a restart of the seed's route is awaited this long (it was synchronous there)
LOG_HOURS = 8  # GET /logs/execution covers the tasks of the last 8 hours, as the seed's
LOG_ROWS = 1000  # GET /logs/ answers the newest 1000 lines, as the seed's
LOG_TASKS = 200  # of the newest tasks at most (each is one query)


class SeedOperations:
    def __init__(self, app: FastAPI) -> None:
        self.app = app

    @property
    def lab(self) -> LabConfig:
        lab: LabConfig = self.app.state.lab
        return lab

    async def services(self) -> tuple[TaskService, NodeService]:
        client = await connected_client(self.app)
        settings = self.app.state.settings
        tasks = TaskService(client, settings, self.lab)
        return tasks, NodeService(client, settings, self.lab, tasks)

    # --- tasks -------------------------------------------------------------------------------------

    async def start_task(
        self, task_id: str, workflow_name: str, args: dict[str, Any] | None, hooks: str | None
    ) -> None:
        tasks, _ = await self.services()
        await tasks.start(TaskCreate(workflow_name=workflow_name, args=args or {}, id=task_id), hooks=hooks)

    async def ensure_started(self, task: Any) -> None:
        """Start the seed Task's durable run, unless it runs already (its `add_task` started it)."""
        with contextlib.suppress(TaskExistsError):
            await self.start_task(task.task_id, task.workflow.name, task._args, task.hooks())

    async def find(self, task_id: str) -> TaskPublic | None:
        """The task, or None if there is none of that id."""
        if not re.fullmatch(TASK_ID_PATTERN, task_id):
            return None
        tasks, _ = await self.services()
        try:
            return await tasks.show(task_id)
        except UnknownTaskError:
            return None

    async def unfinished(self) -> list[TaskPublic]:
        tasks, _ = await self.services()
        ids = await tasks.ids_in_state(*UNFINISHED)
        return [t for t in await self._shown(ids) if t is not None]

    async def _shown(self, ids: list[str]) -> list[TaskPublic | None]:
        limit = asyncio.Semaphore(SHOWN_AT_ONCE)

        async def one(task_id: str) -> TaskPublic | None:
            async with limit:
                return await self.find(task_id)

        return list(await asyncio.gather(*(one(task_id) for task_id in ids)))

    async def running_models(self) -> list[TaskModel]:
        """`GET /task/running`: every unfinished task (paused and failed ones too), oldest first."""
        shown, nodes = await asyncio.gather(self.unfinished(), self.node_models())
        shown.sort(key=lambda t: t.started_at or datetime.min.replace(tzinfo=UTC))
        return [task_model(task, self.lab, nodes) for task in shown]

    async def task_info(self, task_id: str) -> TaskRow | None:
        task = await self.find(task_id)
        return None if task is None else task_row(task, self.lab)

    async def pause(self, task_id: str, by: str | None) -> Outcome:
        task = await self.find(task_id)
        if task is None or task.state not in UNFINISHED:
            return Outcome(Codes.CONTENT_NOT_FOUND)
        if task.state in (TaskState.PAUSED, TaskState.ERROR) or task.pause_requested:
            return Outcome(Codes.OK)  # paused already, or stopped for its operator: nothing runs on
        tasks, _ = await self.services()
        return await _refused_as(Codes.CANCELLED, f"pause of task {task_id}", tasks.pause(task_id, by))

    async def proceed(self, task_id: str, by: str | None) -> Outcome:
        """The seed's continue: after a failure, the next step (or the same one, where the node's
        `next_node_execution()` says SELF); after a pause, on. A running task: nothing to do."""
        task = await self.find(task_id)
        if task is None or task.state not in UNFINISHED:
            return Outcome(Codes.CONTENT_NOT_FOUND)
        if not (task.state in (TaskState.PAUSED, TaskState.ERROR) or task.pause_requested):
            return Outcome(Codes.OK)
        tasks, _ = await self.services()
        work = tasks.proceed(task_id, "next", by, "continued through the seed's API")
        return await _refused_as(Codes.CONTINUE_TASK_FAILED, f"continue of task {task_id}", work)

    async def wait_over(self, task_id: str, timeout_s: float) -> TaskPublic | None:
        tasks, _ = await self.services()
        try:
            return await tasks.wait(task_id, timeout_s)
        except UnknownTaskError:
            return None

    # --- nodes -------------------------------------------------------------------------------------

    async def node_models(self) -> dict[str, BaseNodeModel]:
        _, nodes = await self.services()
        return {node.id: node_model(node) for node in await nodes.list_all()}

    async def restart(self, node_id: str, by: str | None) -> Outcome:
        """Restart a node and wait (up to RESTART_WAIT_S) for the outcome, as the seed's did."""
        if not self.lab.has_node(node_id):
            return Outcome(Codes.CONTENT_NOT_FOUND)
        _, nodes = await self.services()
        what = f"restart of node {node_id}"
        try:
            before = await self._ledger(nodes, node_id)
        except CommandRefusedError as exc:
            return Outcome(Codes.RESTART_NODE_FAILED, exc.message)
        asked = await _refused_as(Codes.RESTART_NODE_FAILED, what, nodes.restart(node_id, by))
        if asked.code is not Codes.OK:
            return asked
        deadline = time.monotonic() + RESTART_WAIT_S
        while time.monotonic() < deadline:
            ledger = await self._ledger(nodes, node_id)
            if ledger.restarts > before.restarts:
                if ledger.state is NodeState.ERROR:
                    log.error("restart of node %s failed: %s", node_id, ledger.reason)
                    return Outcome(Codes.RESTART_NODE_FAILED, ledger.reason)
                return Outcome(Codes.OK)
            await asyncio.sleep(0.2)
        why = f"it did not finish within {RESTART_WAIT_S:g} s (is the node's worker online?); it goes on"
        log.warning("restart of node %s: %s", node_id, why)
        return Outcome(Codes.RESTART_NODE_FAILED, why)

    async def _ledger(self, nodes: NodeService, node_id: str) -> LedgerState:
        handle = ledger_handle(nodes.client, node_id)
        try:
            return await handle.query(NodeWorkflow.status, rpc_timeout=nodes.rpc_timeout)
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                raise CommandRefusedError(
                    f"node {node_id} has no ledger yet: no worker has hosted it"
                ) from exc
            raise SchedulerUnavailableError(f"node {node_id}: its ledger does not answer ({exc})") from exc
        except (WorkflowQueryFailedError, RPCTimeoutOrCancelledError) as exc:
            raise SchedulerUnavailableError(f"node {node_id}: its ledger does not answer ({exc})") from exc

    # --- the lab -----------------------------------------------------------------------------------

    async def accepting(self) -> bool:
        tasks, _ = await self.services()
        return await tasks.intake.accepting()

    async def stop_intake(self, by: str | None) -> bool:
        """Take no new task, and pause the running ones after their step; False if stopped already."""
        tasks, nodes = await self.services()
        answer = await tasks.intake.change(False, by)
        if not answer.before.accepting:
            return False
        await asyncio.sleep(STOP_SETTLE_S)  # a start another API process let through meanwhile is paused too
        paused = (await nodes.pause_lab(by)).done
        if not await tasks.intake.note_paused(paused, answer.changed_at):
            await self._resume(tasks, paused, by)  # a start came meanwhile: it did not know these
        shown = ", ".join(paused) or "none"
        log.warning("the lab takes no new tasks (stopped by %s); paused: %s", by, shown)
        return True

    async def start_intake(self, by: str | None) -> bool:
        """Take tasks again, and resume the tasks the stop paused; False if it took them already."""
        tasks, _ = await self.services()
        answer = await tasks.intake.change(True, by)
        if answer.before.accepting:
            return False
        await self._resume(tasks, answer.before.paused, by)
        log.info("the lab takes tasks again (started by %s)", by)
        return True

    async def _resume(self, tasks: TaskService, task_ids: list[str], by: str | None) -> None:
        """Continue those of the tasks a stop paused that are still paused (not those that failed since)."""
        for task in await self._shown(task_ids):
            if task is not None and (task.state is TaskState.PAUSED or task.pause_requested):
                resume = tasks.proceed(task.task_id, "retry", by)
                await _refused_as(Codes.CANCELLED, f"resume of task {task.task_id}", resume)

    async def serve_lab(self, fresh: LabConfig, driven: set[str] | None = None) -> None:
        """Serve a reloaded configuration: refused (nothing changes) if a running worker drives other
        settings for a node, or, `driven` given (the nodes this process drives), for a new node."""
        new = sorted({n.id for n in fresh.nodes} - driven) if driven is not None else []
        if new:
            raise DriverSettingsChangedError(
                f"node(s) {', '.join(new)} are new: this scheduler drives the nodes it started with; "
                "restart it (./exec.sh) to drive them"
            )
        _, nodes = await self.services()
        await refuse_changed_drivers(nodes, fresh)
        self.app.state.lab = fresh

    # --- logs --------------------------------------------------------------------------------------

    async def recent_tasks(self, hours: float) -> list[TaskPublic]:
        tasks, _ = await self.services()
        since = (datetime.now(UTC) - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
        query = f'{tasks.tasks_query} AND StartTime > "{since}"'
        listing = tasks.client.list_workflows(query, limit=LOG_TASKS, rpc_timeout=tasks.rpc_timeout)
        async with temporal_errors():
            ids = [e.id async for e in listing]
        return [t for t in await self._shown(ids) if t is not None]

    async def logs(self) -> list[DBLogsModel]:
        return log_rows(await self.recent_tasks(LOG_HOURS))[-LOG_ROWS:]

    async def execution_logs(self) -> dict[str, list[dict[str, Any]]]:
        return execution_rows(await self.recent_tasks(LOG_HOURS), self.lab)


@dataclass(frozen=True)
class Outcome:
    """A command's answer in the seed's terms, and why the lab refused it."""

    code: Codes
    why: str | None = None


async def _refused_as(code: Codes, what: str, work: Any) -> Outcome:
    """OK if `work` went through; `code` and the reason (also logged) if the lab refused it."""
    try:
        await work
    except (CommandRefusedError, InvalidTransitionError) as exc:
        log.error("%s refused: %s", what, exc.message)
        return Outcome(code, exc.message)
    return Outcome(Codes.OK)
