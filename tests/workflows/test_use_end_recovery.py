"""A use whose end never reached the ledger: a step that succeeded returns before the end of its use is
recorded, so a worker killed in between leaves the use open. The next worker closes it when the task's
record proves the run ended, and only then."""

from __future__ import annotations

from lab_fixtures import JOURNAL, MakeLab, StartTask, wait_until
from temporalio.client import Client

from task_scheduler.client.handles import ledger_handle
from task_scheduler.engine.ledger import BeginUse, LedgerState, UseKey
from task_scheduler.engine.states import NodeState
from task_scheduler.worker import LabWorker, WorkerOptions
from task_scheduler.workflows.node import NodeWorkflow


async def released(client: Client, node_id: str) -> LedgerState | None:
    state = await ledger_handle(client, node_id).query(NodeWorkflow.status)
    return state if state.holder is None else None


async def test_worker_closes_a_use_its_task_recorded_as_succeeded_and_keeps_any_other_open(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask
) -> None:
    lab = make_lab({"one": ["a"]})
    a = lab.node("a")
    options = WorkerOptions(lab=lab.config, task_queue=task_queue)
    async with LabWorker(temporal_client, options):
        done = await start_task(lab, "one")
        await done.result()
        before = await wait_until(lambda: released(temporal_client, a), what="node a released")
        # As a worker killed right after the step returned leaves it: the use begun, its end never sent.
        await ledger_handle(temporal_client, a).execute_update(
            NodeWorkflow.begin_use, BeginUse(key=UseKey(task_id=done.id, step_index=0))
        )
        held = await ledger_handle(temporal_client, a).query(NodeWorkflow.status)
    assert held.holder is not None and held.holder.key.task_id == done.id

    async with LabWorker(temporal_client, options):
        after = await ledger_handle(temporal_client, a).query(NodeWorkflow.status)
        # A use of a run the task never recorded as SUCCEEDED stays open for its retry or a restart.
        unproven = UseKey(task_id=done.id, step_index=0, run=2)
        await ledger_handle(temporal_client, a).execute_update(NodeWorkflow.begin_use, BeginUse(key=unproven))
    assert after.holder is None and after.state is NodeState.AVAILABLE
    assert after.stats.calls == before.stats.calls + 1 and after.stats.lost == before.stats.lost
    async with LabWorker(temporal_client, options):
        still = await ledger_handle(temporal_client, a).query(NodeWorkflow.status)
    assert still.holder is not None and still.holder.key == unproven
    assert len(JOURNAL.runs(a, done.id)) == 1
