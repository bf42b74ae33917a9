"""Tasks of many steps: a task continues as new when Temporal suggests it (here after a few hundred
events, as a 10,000-step task would after 4096), keeps its id, search attributes and step records,
answers its status at every moment, and every run of it replays. `make soak` runs 5,000 steps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from lab_fixtures import MakeLab, TestLab, unique_id, wait_until
from saved_histories import keep
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Replayer

from task_scheduler import TaskState
from task_scheduler.api.services.tasks import TaskService
from task_scheduler.engine.task_state import StepOutcome
from task_scheduler.engine.tasks import make_task_spec
from task_scheduler.readers.records import step_records
from task_scheduler.settings import Settings
from task_scheduler.worker import LabWorker, WorkerOptions
from task_scheduler.workflows.sandbox import workflow_runner
from task_scheduler.workflows.search_attributes import LAB_WORKFLOW, TASK_STATE
from task_scheduler.workflows.task import TaskWorkflow

STEPS = 150
SOAK_STEPS = 5000
# Suggested past this many events: a step costs about 10, so the task runs in several Temporal runs.
SUGGEST_AFTER_EVENTS = 400


@pytest.fixture
async def small_history_client(start_dev_server: object) -> AsyncIterator[Client]:
    server = await start_dev_server(  # type: ignore[operator]
        extra_dynamic_config={"limit.historyCount.suggestContinueAsNew": str(SUGGEST_AFTER_EVENTS)}
    )
    yield await Client.connect(server.address, data_converter=pydantic_data_converter)


@pytest.mark.timeout(600)
async def test_task_of_many_steps_continues_as_new_keeping_its_records(
    small_history_client: Client, task_queue: str, make_lab: MakeLab
) -> None:
    await check_long_task(small_history_client, task_queue, make_lab, STEPS)


@pytest.mark.soak
@pytest.mark.timeout(3600)
async def test_task_of_5000_steps_finishes_and_replays(
    small_history_client: Client, task_queue: str, make_lab: MakeLab
) -> None:
    await check_long_task(small_history_client, task_queue, make_lab, SOAK_STEPS)


async def check_long_task(client: Client, task_queue: str, make_lab: MakeLab, steps: int) -> None:
    lab = make_lab({"long": ["a", "b"] * (steps // 2)})
    spec = make_task_spec(lab.config, lab.workflow("long"), {"plate": "P-9"})
    async with LabWorker(client, WorkerOptions(lab=lab.config, task_queue=task_queue)):
        handle = await client.start_workflow(
            TaskWorkflow.run, spec, id=unique_id("long"), task_queue=task_queue
        )
        answers = asyncio.create_task(_status_answers(handle))
        result = await asyncio.wait_for(handle.result(), timeout=steps)
        answered = await answers
        last = client.get_workflow_handle_for(TaskWorkflow.run, handle.id)
        status = await last.query(TaskWorkflow.get_status)
        records = [
            record
            for offset in range(0, steps, 1000)
            for record in (await step_records(client, handle.id, offset, 1000)).steps
        ]
        tail = await step_records(client, handle.id, steps - 10, 50)

    assert result.state is TaskState.FINISHED
    assert len(result.outputs) == steps
    assert answered > 5  # the status answered all along, across the runs
    runs = [e async for e in client.list_workflows(f'WorkflowId="{handle.id}"')]
    statuses = sorted(e.status.name for e in runs if e.status)
    assert statuses.count(WorkflowExecutionStatus.CONTINUED_AS_NEW.name) >= 2
    assert statuses.count(WorkflowExecutionStatus.COMPLETED.name) == 1
    # Every record, outputs included, from the runs that hold them; the last run holds few.
    assert [(r.index, r.outcome) for r in records] == [(i, StepOutcome.SUCCEEDED) for i in range(steps)]
    assert all(r.output == result.outputs[r.index] or not result.outputs[r.index] for r in records)
    assert all(r.output.get("seen") == r.index for r in records)  # each saw the output before it
    assert status.steps_total == steps and status.steps_offset > 0 and len(status.steps) < steps
    assert (tail.total, [s.index for s in tail.steps]) == (steps, list(range(steps - 10, steps)))
    attributes = (await last.describe()).typed_search_attributes
    assert (attributes.get(TASK_STATE), attributes.get(LAB_WORKFLOW)) == ("FINISHED", lab.workflow("long"))
    await _every_run_replays(client, handle.id, [e.run_id for e in runs])
    ordered = sorted(runs, key=lambda e: e.start_time)
    for name, execution in (("first", ordered[0]), ("last", ordered[-1])):
        history = await client.get_workflow_handle(handle.id, run_id=execution.run_id).fetch_history()
        keep(f"task-continued-as-new-{name}-run", history)
    async with LabWorker(client, WorkerOptions(lab=lab.config, task_queue=task_queue)):  # to answer
        await _first_run_past_retention(client, lab, task_queue, handle.id, ordered[0].run_id, steps)


async def _first_run_past_retention(
    client: Client, lab: TestLab, task_queue: str, task_id: str, run_id: str | None, steps: int
) -> None:
    """Temporal deletes a closed run once its namespace's retention has passed (deleted here): a page of
    records that needs it has the records of the other runs, and names the run that is gone."""
    execution = WorkflowExecution(workflow_id=task_id, run_id=run_id or "")
    await client.workflow_service.delete_workflow_execution(
        DeleteWorkflowExecutionRequest(namespace=client.namespace, workflow_execution=execution)
    )

    async def deleted() -> bool:
        try:
            await client.get_workflow_handle(task_id, run_id=run_id).describe()
        except RPCError as error:
            return error.status is RPCStatusCode.NOT_FOUND
        return False

    await wait_until(deleted, timeout_s=60, what=f"run {run_id} to be deleted")
    shown = min(steps, 1000)
    page = await step_records(client, task_id, 0, shown)

    (gone,) = page.unavailable
    assert (gone.run_id, gone.first) == (run_id, 0)
    assert [r.index for r in page.steps] == list(range(gone.last + 1, shown))
    # The API's page says which steps' records are gone, in the operator's numbering.
    settings = Settings(temporal_address="unused", task_queue=task_queue)
    public = await TaskService(client, settings, lab.config).steps(task_id, 0, shown)
    assert [s.index for s in public.steps] == [r.index for r in page.steps]
    (said,) = public.unavailable
    assert f"steps 1-{gone.last + 1} were kept in run {run_id}" in said and "retention" in said


async def _status_answers(handle: object) -> int:
    """Query the task's status until it is over; count the answers (a failing query fails the test)."""
    answered = 0
    while True:
        status = await handle.query(TaskWorkflow.get_status)  # type: ignore[attr-defined]
        answered += 1
        if status.state is TaskState.FINISHED:
            return answered
        await asyncio.sleep(0.5)


async def _every_run_replays(client: Client, task_id: str, run_ids: list[str | None]) -> None:
    replayer = Replayer(
        workflows=[TaskWorkflow], data_converter=pydantic_data_converter, workflow_runner=workflow_runner()
    )
    for run_id in run_ids:
        history = await client.get_workflow_handle(task_id, run_id=run_id).fetch_history()
        await replayer.replay_workflow(history)
