"""A driver's `is_reachable()`: asked before each step (a device that does not answer is not touched,
the step fails for its operator, as the seed stopped the task), and probed by the hosting worker for
the node's online state, which its ledger keeps."""

from __future__ import annotations

import errno
from collections.abc import Iterator

import pytest
from lab_fixtures import JOURNAL, MakeLab, StartTask, wait_until
from temporalio.client import Client, WorkflowHandle

from task_scheduler.engine.contracts import node_workflow_id
from task_scheduler.engine.ledger import LedgerState
from task_scheduler.engine.states import TaskState
from task_scheduler.worker import LabWorker, WorkerOptions
from task_scheduler.workflows.node import NodeWorkflow
from task_scheduler.workflows.task import TaskWorkflow


async def ledger_of(client: Client, node_id: str) -> LedgerState:
    handle = client.get_workflow_handle_for(NodeWorkflow.run, node_workflow_id(node_id))
    return await handle.query(NodeWorkflow.status)


async def state_of(handle: WorkflowHandle[TaskWorkflow, object]) -> TaskState:
    return (await handle.query(TaskWorkflow.get_status)).state


@pytest.fixture
def unplugged() -> Iterator[set[str]]:
    yield JOURNAL.unreachable
    JOURNAL.unreachable.clear()


async def test_a_device_that_does_not_answer_is_probed_offline_and_its_step_fails_untouched(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask, unplugged: set[str]
) -> None:
    lab = make_lab({"one": ["a"]})
    node = lab.node("a")
    options = WorkerOptions(lab=lab.config, task_queue=task_queue, probe_every_s=0.1)
    async with LabWorker(temporal_client, options):
        assert (await ledger_of(temporal_client, node)).reachable
        unplugged.add(node)

        async def probed_unreachable() -> bool:
            return not (await ledger_of(temporal_client, node)).reachable

        await wait_until(probed_unreachable, what="the probe to see the device gone")
        handle = await start_task(lab, "one")
        await wait_until(lambda: _in(handle, TaskState.ERROR), what="the step to fail")
        status = await handle.query(TaskWorkflow.get_status)
        ledger = await ledger_of(temporal_client, node)
        unplugged.discard(node)

        async def probed_back() -> bool:
            return (await ledger_of(temporal_client, node)).reachable

        await wait_until(probed_back, what="the probe to see the device back")

    assert JOURNAL.runs(node, handle.id) == []  # the driver was never called for it
    assert status.steps[0].status == errno.EHOSTUNREACH
    assert "is not reachable" in (status.steps[0].message or "")
    assert ledger.unreachable_since is not None
    assert "is_reachable() says the device does not answer" in (ledger.unreachable_reason or "")


async def _in(handle: WorkflowHandle[TaskWorkflow, object], state: TaskState) -> bool:
    return await state_of(handle) is state
