"""NodeWorkflow, the node's ledger, on the dev server: continue-as-new under a stream of steps, a
terminated holder detected, an operator's restart, and an ERROR told at once."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from lab_fixtures import JOURNAL, TestLab, WorkflowTestNode, wait_until
from saved_histories import keep
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from task_scheduler import NodeState, TaskState
from task_scheduler.engine.contracts import node_workflow_id
from task_scheduler.engine.ledger import LedgerState, NodeCommand
from task_scheduler.engine.task_state import ContinueRequest
from task_scheduler.worker import LabWorker, WorkerOptions
from task_scheduler.workflows.node import NodeWorkflow
from task_scheduler.workflows.task import TaskWorkflow

TASKS = 30
USES_PER_RUN = 5


async def ledger(client: Client, node_id: str) -> LedgerState:
    handle = client.get_workflow_handle_for(NodeWorkflow.run, node_workflow_id(node_id))
    return await handle.query(NodeWorkflow.status)


async def node_in(client: Client, node_id: str, state: NodeState) -> LedgerState:
    async def probe() -> LedgerState | None:
        current = await ledger(client, node_id)
        return current if current.state is state else None

    return await wait_until(probe, timeout_s=20, what=f"node {node_id} in {state}")


def assert_one_holder_at_a_time(node_id: str) -> None:
    """The drivers' own clocks: each use of the node began after the one before it ended."""
    runs = sorted(JOURNAL.runs(node_id=node_id), key=lambda run: run.started)
    for before, after in itertools.pairwise(runs):
        assert after.started >= before.ended, f"{after.task_id} began before {before.task_id} ended"


async def test_node_ledger_continues_as_new_under_a_stream_of_steps_and_loses_nothing(
    temporal_client: Client, task_queue: str, make_lab, start_task
) -> None:
    lab: TestLab = make_lab({"pair": ["a", "b"]})
    options = WorkerOptions(lab=lab.config, task_queue=task_queue, node_uses_per_run=USES_PER_RUN)
    async with LabWorker(temporal_client, options):
        handles = [await start_task(lab, "pair", {"sleep_s": 0.01}) for _ in range(TASKS)]
        results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 60)
        ledgers = [await node_in(temporal_client, lab.node(n), NodeState.AVAILABLE) for n in "ab"]

    assert [r.state for r in results] == [TaskState.FINISHED] * TASKS
    for node in ledgers:
        stats = node.stats
        assert (stats.calls, stats.successes, stats.failures, stats.lost) == (TASKS, TASKS, 0, 0)
        assert len(JOURNAL.runs(node_id=node.node_id)) == TASKS
        assert node.runs >= TASKS // USES_PER_RUN  # it continued as new, carrying its state whole
        assert node.uses_this_run < USES_PER_RUN
        assert node.holder is None
        assert_one_holder_at_a_time(node.node_id)


class StubbornTestNode(WorkflowTestNode):
    """Ignores `_abort()`: a held step runs on until the test releases it, so the step activity cannot
    record the end of its use, and only the ledger's holder check can notice a terminated holder."""

    def _abort(self) -> None:
        JOURNAL._count(JOURNAL.aborts, self.id)


@pytest.mark.parametrize(
    "driver",
    ["WorkflowTestNode", "StubbornTestNode"],
    ids=["step-reports-its-task-gone", "holder-check-finds-it"],
)
async def test_node_ledger_puts_the_node_in_error_when_its_holder_is_terminated(
    temporal_client: Client, task_queue: str, make_lab, start_task, driver: str
) -> None:
    lab: TestLab = make_lab({"solo": ["a"]}, nodes={"a": {"type": driver}})
    node_id = lab.node("a")
    options = WorkerOptions(lab=lab.config, task_queue=task_queue, holder_check_s=1)
    async with LabWorker(temporal_client, options):
        held = JOURNAL.hold(f"held-{node_id}")
        holder = await start_task(lab, "solo", {"hold": held})
        await wait_until(lambda: JOURNAL.started(node_id, holder.id), what="the driver to start")

        await holder.terminate("test: a holder that runs no cleanup")

        failed = await node_in(temporal_client, node_id, NodeState.ERROR)
        assert f"task {holder.id} step 1" in (failed.reason or "")
        assert failed.holder is None
        assert failed.stats.lost + failed.stats.failures == 1
        if driver == "StubbornTestNode":
            assert "ended (TERMINATED) without releasing the node" in (failed.reason or "")
            assert failed.stats.lost == 1
        JOURNAL.release(held)

        node = temporal_client.get_workflow_handle_for(NodeWorkflow.run, node_workflow_id(node_id))
        await node.execute_update(NodeWorkflow.restart, NodeCommand(node_id=node_id, by="operator"))

        restarted = await node_in(temporal_client, node_id, NodeState.AVAILABLE)
        assert (restarted.restarts, restarted.reason) == (1, None)
        after = await start_task(lab, "solo", {"sleep_s": 0.01})
        assert (await asyncio.wait_for(after.result(), 20)).state is TaskState.FINISHED


async def test_a_terminated_ledger_is_started_again_in_error_and_no_step_hangs(
    temporal_client: Client, task_queue: str, make_lab, start_task
) -> None:
    """Someone terminates a node's ledger from the Temporal UI while a step runs: the step's end must
    not be retried for ever against a workflow that no longer exists."""
    lab: TestLab = make_lab({"solo": ["a"]})
    node_id = lab.node("a")
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)):
        held = JOURNAL.hold(f"held-{node_id}")
        first = await start_task(lab, "solo", {"hold": held})
        await wait_until(lambda: JOURNAL.started(node_id, first.id), what="the driver to start")
        ledger_workflow = temporal_client.get_workflow_handle_for(NodeWorkflow.run, node_workflow_id(node_id))
        await ledger_workflow.terminate("test: the ledger ended from outside")
        JOURNAL.release(held)

        assert (await asyncio.wait_for(first.result(), 30)).state is TaskState.FINISHED
        again = await node_in(temporal_client, node_id, NodeState.ERROR)
        assert "was started again" in (again.reason or "")
        second = await start_task(lab, "solo", {"sleep_s": 0.01})
        await wait_until(lambda: second.query("get_status"), what="the second task to wait for the node")
        assert not JOURNAL.started(node_id, second.id)  # the node waits for an operator's check

        await ledger_workflow.execute_update(
            NodeWorkflow.restart, NodeCommand(node_id=node_id, by="operator")
        )
        assert (await asyncio.wait_for(second.result(), 30)).state is TaskState.FINISHED


async def test_a_node_error_wakes_its_ledger_at_once_even_with_a_holder_check_pending(
    temporal_client: Client, task_queue: str, make_lab, start_task
) -> None:
    """The step that fails was holding the node: the ledger's wait had armed the holder check's timer.
    The failure wakes the ledger (the timer is cancelled) and the lab is told then, not a check later.
    A ledger that ran before nodes told of their ERROR replays its own history, where the timer fired:
    histories/ledger-error-before-it-was-told.json, recorded by that code."""
    lab: TestLab = make_lab({"solo": ["a"]})
    node_id = lab.node("a")
    JOURNAL.fail_next(node_id)
    ledger_id = node_workflow_id(node_id)
    async with LabWorker(
        temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue, holder_check_s=30)
    ):
        task = await start_task(lab, "solo", {"sleep_s": 0.5})
        await node_in(temporal_client, node_id, NodeState.ERROR)

        async def timer_cancelled() -> bool:
            history = await temporal_client.get_workflow_handle(ledger_id).fetch_history()
            return any(e.event_type == EventType.EVENT_TYPE_TIMER_CANCELED for e in history.events)

        # Within seconds, where the holder check's timer would have fired after 30.
        await wait_until(timer_cancelled, timeout_s=15, what="the failure to wake the ledger")
        await task.execute_update(TaskWorkflow.proceed, ContinueRequest(mode="retry", by="operator"))
        assert (await asyncio.wait_for(task.result(), 30)).state is TaskState.FINISHED
        await node_in(temporal_client, node_id, NodeState.AVAILABLE)
    history = await temporal_client.get_workflow_handle(ledger_id).fetch_history()
    kinds = [e.event_type for e in history.events]
    assert EventType.EVENT_TYPE_TIMER_FIRED not in kinds
    assert EventType.EVENT_TYPE_MARKER_RECORDED in kinds  # TELL_NODE_ERRORS
    told = [
        e
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED
    ]
    assert (
        len(told) == 1
        and told[0].signal_external_workflow_execution_initiated_event_attributes.signal_name == "notify"
    )
    keep("ledger-error-told-at-once", history)
