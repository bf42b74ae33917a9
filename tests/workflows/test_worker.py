"""The worker's life: a node's ledger says whether a worker hosts it."""

from __future__ import annotations

from lab_fixtures import JOURNAL, MakeLab, StartTask
from temporalio.client import Client
from temporalio.worker import Worker

from task_scheduler.engine.contracts import node_workflow_id
from task_scheduler.engine.ledger import LedgerState
from task_scheduler.engine.states import NodeState
from task_scheduler.worker import LabWorker, WorkerOptions
from task_scheduler.workflows.node import NodeWorkflow
from task_scheduler.workflows.sandbox import workflow_runner
from task_scheduler.workflows.task import TaskWorkflow


async def ledger_of(client: Client, node_id: str) -> LedgerState:
    handle = client.get_workflow_handle_for(NodeWorkflow.run, node_workflow_id(node_id))
    return await handle.query(NodeWorkflow.status)


async def test_worker_marks_its_idle_nodes_offline_on_a_clean_stop_and_online_at_start(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask
) -> None:
    lab = make_lab({"one": ["a"]})
    node = lab.node("a")
    options = WorkerOptions(lab=lab.config, task_queue=task_queue, run_workflows=False)
    # The workflows run on a worker of their own, so the ledger answers while no node worker runs.
    workflows = Worker(
        temporal_client,
        task_queue=task_queue,
        workflows=[TaskWorkflow, NodeWorkflow],
        workflow_runner=workflow_runner(),
    )
    async with workflows:
        async with LabWorker(temporal_client, options):
            assert (await ledger_of(temporal_client, node)).state is NodeState.AVAILABLE
            await (await start_task(lab, "one")).result()
        assert (await ledger_of(temporal_client, node)).state is NodeState.OFFLINE
        assert JOURNAL.shutdowns[node] == 1  # the driver released its device
        async with LabWorker(temporal_client, options):
            state = await ledger_of(temporal_client, node)
            assert state.state is NodeState.AVAILABLE
            assert [use.outcome for use in state.recent] == ["succeeded"]
