"""Tasks: start, list, show, command, wait. Stateless: every answer is read from Temporal or the lab's
configuration."""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.service import RPCError

from ...client.handles import task_handle
from ...engine.config import LabConfig
from ...engine.errors import InvalidTransitionError, TaskOverError, UnknownStepError
from ...engine.explain import task_summary
from ...engine.states import TaskState
from ...engine.task_state import CommandRequest, ContinueRequest, StepArchive, StepRecord, TaskStatus
from ...engine.tasks import make_task_spec
from ...readers.liveness import LivenessReader
from ...readers.records import step_records
from ...settings import Settings
from ...workflows.search_attributes import CURRENT_NODE, LAB_WORKFLOW, TASK_STATE
from ...workflows.task import TaskWorkflow
from ..paging import read_page_token, sign_page_token
from ..schemas import StepPagePublic, StepPublic, TaskCreate, TaskPage, TaskPublic, TaskSummary
from .errors import temporal_errors
from .intake import Intake
from .visibility import filter_value, lab_tasks
from .waiting import explain_wait

MAX_ID_STEM_CHARS = 120
STEP_SCAN = 200  # step records read at a time while looking for a step by its id
IDS_NAMED = 50  # at most this many step ids named when a step is not found
CANCEL_SETTLE_S = 5.0  # how long a cancel's answer waits for the task to end


def _new_task_id(workflow_name: str) -> str:
    """`<workflow>-<random>`, with the workflow name reduced to the characters a task id may hold (a
    name such as "Plate assay (v2)" would give an id that no task route accepts)."""
    stem = re.sub(r"[^A-Za-z0-9._:-]+", "-", workflow_name).strip("-._:")[:MAX_ID_STEM_CHARS] or "task"
    return f"{stem}-{uuid.uuid4().hex[:10]}"


class TaskService:
    """Tasks: start, list, show, command, wait."""

    def __init__(self, client: Client, settings: Settings, lab: LabConfig) -> None:
        self.client = client
        self.settings = settings
        self.lab = lab
        self.rpc_timeout = timedelta(seconds=settings.rpc_timeout_s)
        self.liveness = LivenessReader(client, settings)
        self.intake = Intake(client, settings.task_queue, self.rpc_timeout)
        self._secret = settings.secret.get_secret_value() if settings.secret else ""
        self.tasks_query = lab_tasks(settings.task_queue)

    def ui_url(self, task_id: str) -> str | None:
        base = self.settings.temporal_ui_url
        return f"{base}/namespaces/{self.client.namespace}/workflows/{task_id}" if base else None

    async def start(self, body: TaskCreate, hooks: str | None = None) -> TaskPublic:
        """Start a task; `hooks`: the seed's Task subclass whose step hooks run around its steps."""
        spec = make_task_spec(self.lab, body.workflow_name, body.args, body.priority, _lab_utc_offset_s())
        spec.hooks = hooks
        task_id = body.id or _new_task_id(body.workflow_name)
        async with temporal_errors(task_id):
            await self.intake.refuse_if_stopped()
            await self.client.start_workflow(
                TaskWorkflow.run,
                spec,
                id=task_id,
                # A task id names one run for ever: a client retrying its start after the task finished
                # must get 409, not run the lab's steps a second time.
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                task_queue=self.settings.task_queue,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(TASK_STATE, TaskState.PENDING.value),
                        SearchAttributePair(LAB_WORKFLOW, spec.workflow_name),
                    ]
                ),
                memo={
                    "workflow_name": spec.workflow_name,
                    "priority": spec.priority,
                    "args": spec.args,
                    # The seed's integer id of the workflow: its HTTP API names a task's workflow by it.
                    "workflow_id": self.lab.seed_workflow_id(spec.workflow_name),
                },
                static_summary=task_summary(spec),
                rpc_timeout=self.rpc_timeout,
            )
        status = TaskStatus(
            task_id=task_id,
            workflow_name=spec.workflow_name,
            priority=spec.priority,
            args=spec.args,
            steps=[StepRecord(index=step.index, node=step.node_id, id=step.step_id) for step in spec.steps],
            steps_total=len(spec.steps),
        )
        return self._public(status, "RUNNING", live=False)

    async def list_all(
        self,
        state: str | None,
        workflow_name: str | None,
        node: str | None,
        page_size: int,
        page_token: str | None,
    ) -> TaskPage:
        query = self.tasks_query
        if state:
            query += f" AND TaskState={filter_value('state', state)}"
        if workflow_name:
            query += f" AND LabWorkflow={filter_value('workflow_name', workflow_name)}"
        if node:
            query += f" AND CurrentNode={filter_value('node', node)}"
        token = read_page_token(self._secret, page_token, query) if page_token else None
        async with temporal_errors():
            iterator = self.client.list_workflows(
                query, page_size=page_size, next_page_token=token, rpc_timeout=self.rpc_timeout
            )
            await iterator.fetch_next_page()
        executions = iterator.current_page or []
        next_token = iterator.next_page_token
        return TaskPage(
            tasks=[_summary(e) for e in executions],
            next_page_token=sign_page_token(self._secret, next_token, query) if next_token else None,
        )

    async def show(self, task_id: str) -> TaskPublic:
        handle = task_handle(self.client, task_id)
        async with temporal_errors(task_id):
            description = await handle.describe(rpc_timeout=self.rpc_timeout)
            try:
                status = await handle.query(TaskWorkflow.get_status, rpc_timeout=self.rpc_timeout)
            except (WorkflowQueryFailedError, RPCTimeoutOrCancelledError, RPCError):
                return await self._from_visibility(description)
            result = await self._result(description)
        public = self._public(
            status, description.status.name if description.status else "RUNNING", True, result
        )
        if public.state is TaskState.ACTIVE:
            async with temporal_errors():
                await explain_wait(public, description, self.liveness, self.lab)
        return public

    async def steps(self, task_id: str, offset: int, limit: int) -> StepPagePublic:
        """Step records in pages, from whichever run of the task holds them."""
        async with temporal_errors(task_id):
            page = await step_records(self.client, task_id, offset, limit, self.rpc_timeout)
        steps = [StepPublic.model_validate(s, from_attributes=True) for s in page.steps]
        gone = [
            f"the records of steps {a.first + 1}-{a.last + 1} were kept in run {a.run_id}, which Temporal "
            "no longer keeps (past its namespace's retention)"
            for a in page.unavailable
        ]
        return StepPagePublic(total=page.total, offset=page.offset, steps=steps, unavailable=gone)

    async def step(self, task_id: str, step_id: str) -> StepPublic:
        """One step's record, named by its id, or by its number from 1 as `continue --step` takes it (an
        id comes first: a step may have an id of its own that is another step's number). A step known
        by its number is read alone; another is looked for among the records, STEP_SCAN at a time."""
        async with temporal_errors(task_id):
            numbered = await self._numbered(task_id, step_id)
            if numbered is not None and numbered.id == step_id:
                return _step_public(numbered)
            found, ids, total, gone = await self._find_step(task_id, step_id)
        if found is not None:
            return _step_public(found)
        if numbered is not None:
            return _step_public(numbered)
        raise UnknownStepError(_unknown_step(task_id, step_id, ids, total, gone))

    async def _numbered(self, task_id: str, step_id: str) -> StepRecord | None:
        """The record of step number `step_id` (from 1), if it is a number within the task."""
        if not step_id.isdigit() or int(step_id) < 1:
            return None
        page = await step_records(self.client, task_id, int(step_id) - 1, 1, self.rpc_timeout)
        return page.steps[0] if page.steps else None

    async def _find_step(
        self, task_id: str, step_id: str
    ) -> tuple[StepRecord | None, list[str], int, list[StepArchive]]:
        """The record whose id is `step_id`, else None with the ids seen, how many steps the task has,
        and the archived runs whose records are gone."""
        ids: list[str] = []
        gone: list[StepArchive] = []
        offset, total = 0, 1
        while offset < total:
            page = await step_records(self.client, task_id, offset, STEP_SCAN, self.rpc_timeout)
            found = next((s for s in page.steps if s.id == step_id), None)
            if found is not None:
                return found, ids, page.total, gone
            ids.extend(s.id for s in page.steps)
            gone.extend(a for a in page.unavailable if a not in gone)
            offset, total = offset + STEP_SCAN, page.total
        return None, ids, total, gone

    async def _result(self, description: WorkflowExecutionDescription) -> list[dict[str, Any]] | None:
        if description.status is not WorkflowExecutionStatus.COMPLETED:
            return None
        handle = task_handle(self.client, description.id)
        return (await handle.result(rpc_timeout=self.rpc_timeout)).outputs

    async def _from_visibility(self, description: WorkflowExecutionDescription) -> TaskPublic:
        """No worker answers queries: say what visibility knows (state, workflow, current node)."""
        summary = _summary(description)
        memo = await description.memo()
        return TaskPublic(
            **summary.model_dump(),
            priority=int(memo.get("priority", 0)),
            args=memo.get("args", {}),
            ui_url=self.ui_url(description.id),
            live=False,
        )

    def _public(
        self, status: TaskStatus, temporal_status: str, live: bool, result: list[dict[str, Any]] | None = None
    ) -> TaskPublic:
        return TaskPublic(
            **status.model_dump(exclude={"finished_at", "created_at"}),
            current_node=status.current_node,
            temporal_status=temporal_status,
            started_at=status.created_at,
            closed_at=status.finished_at,
            result=result,
            ui_url=self.ui_url(status.task_id),
            live=live,
        )

    async def pause(self, task_id: str, by: str | None) -> TaskPublic:
        handle = task_handle(self.client, task_id)
        request = CommandRequest(by=by)
        return await self._command(
            task_id,
            "pause",
            lambda: handle.execute_update(TaskWorkflow.pause, request, rpc_timeout=self.rpc_timeout),
        )

    async def proceed(
        self, task_id: str, mode: str, by: str | None, reason: str | None = None, step: str | None = None
    ) -> TaskPublic:
        handle = task_handle(self.client, task_id)
        request = ContinueRequest(mode=mode, by=by, reason=reason, step=step)  # type: ignore[arg-type]
        return await self._command(
            task_id,
            "continue",
            lambda: handle.execute_update(TaskWorkflow.proceed, request, rpc_timeout=self.rpc_timeout),
        )

    async def cancel(self, task_id: str, reason: str | None, by: str | None) -> TaskPublic:
        """Record who cancels and why (refused if impossible), then ask Temporal to cancel the task."""
        handle = task_handle(self.client, task_id)

        async def cancel() -> None:
            request = CommandRequest(reason=reason, by=by)
            await handle.execute_update(TaskWorkflow.cancel, request, rpc_timeout=self.rpc_timeout)
            await handle.cancel(rpc_timeout=self.rpc_timeout)
            # The answer shows the aborted step's record (its end, message and lines) once its driver
            # stopped, about a second after the cancel; a driver slower to stop is shown still running.
            await _settled(handle, CANCEL_SETTLE_S)

        return await self._command(task_id, "cancel", cancel)

    async def _command(self, task_id: str, command: str, send: Callable[[], Awaitable[object]]) -> TaskPublic:
        """Send an operator's command; a task that is over refuses it, naming the state it ended in."""
        try:
            async with temporal_errors(task_id):
                await send()
        except TaskOverError as exc:
            state = await self._final_state(task_id)
            raise InvalidTransitionError("task", state, command, "it is over") from exc
        return await self.show(task_id)

    async def _final_state(self, task_id: str) -> str:
        handle = task_handle(self.client, task_id)
        async with temporal_errors(task_id):
            description = await handle.describe(rpc_timeout=self.rpc_timeout)
        summary = _summary(description)
        return summary.state.value if summary.state else summary.temporal_status

    async def wait(self, task_id: str, timeout_s: float) -> TaskPublic:
        handle = task_handle(self.client, task_id)
        async with temporal_errors(task_id):
            await handle.describe(rpc_timeout=self.rpc_timeout)
            # Not over yet, or cancelled: the status shown says which.
            await _settled(handle, timeout_s)
        return await self.show(task_id)

    async def ids_in_state(self, *states: TaskState) -> list[str]:
        query = (
            self.tasks_query
            + ' AND ExecutionStatus="Running" AND ('
            + " OR ".join(f'TaskState="{s.value}"' for s in states)
            + ")"
        )
        async with temporal_errors():
            return [e.id async for e in self.client.list_workflows(query, rpc_timeout=self.rpc_timeout)]


def _step_public(record: StepRecord) -> StepPublic:
    return StepPublic.model_validate(record, from_attributes=True)


def _unknown_step(task_id: str, step_id: str, ids: list[str], total: int, gone: list[StepArchive]) -> str:
    """`no step 'x' in task T; its steps: left, right, settle, 4`: the ids an operator can give (the
    first IDS_NAMED of a long task), and the steps whose records are no longer kept."""
    named = ", ".join(ids[:IDS_NAMED]) or "none"
    if len(ids) > IDS_NAMED:
        named += f", ... ({total} steps in all; a step without an id of its own is named by its number)"
    message = f"no step {step_id!r} in task {task_id}; its steps: {named}"
    if gone:
        runs = "; ".join(f"steps {a.first + 1}-{a.last + 1} (run {a.run_id})" for a in gone)
        message += f"; the records of {runs} are no longer kept by Temporal (past its retention)"
    return message


def _lab_utc_offset_s() -> int:
    """The lab's offset from UTC now: the API's PC's local time (a wait until 14:30 is 14:30 there)."""
    offset = datetime.now().astimezone().utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def _summary(execution: WorkflowExecution) -> TaskSummary:
    attributes = execution.typed_search_attributes
    state = attributes.get(TASK_STATE)
    return TaskSummary(
        task_id=execution.id,
        workflow_name=attributes.get(LAB_WORKFLOW),
        state=TaskState(state) if state and state in TaskState.__members__ else None,
        current_node=attributes.get(CURRENT_NODE) or None,
        temporal_status=execution.status.name if execution.status else "UNKNOWN",
        started_at=execution.start_time,
        closed_at=execution.close_time,
    )


async def _settled(handle: WorkflowHandle[Any, Any], timeout_s: float) -> None:
    """Wait up to `timeout_s` for the task's workflow to close, for an answer that shows how it ended.
    A wait, never a verdict: not closed in time, closed by a failure or a cancel, or a server that does
    not answer the wait are all shown as they are by the status read next."""
    with contextlib.suppress(TimeoutError, WorkflowFailureError, RPCError):
        await asyncio.wait_for(handle.result(), timeout_s)
