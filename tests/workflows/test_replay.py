"""Determinism: histories of real tasks and ledgers replay through the current workflow code.

The saved histories (histories/*.json) were recorded by `test_replay_of_fresh_histories`; they guard
the tasks and ledgers already running in a lab when workflow code changes. Record them again (only
when a change is meant to break old histories, and then say so) with
`TASK_SCHEDULER_SAVE_HISTORIES=1 pytest tests/workflows tests/system/test_crash.py` (the crash, cut-off and
continue-as-new scenarios are kept by the tests that make them: tests/saved_histories.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from lab_fixtures import JOURNAL, MakeLab, StartTask, TestLab, wait_until
from saved_histories import HISTORIES, keep, load
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import CancelledError
from temporalio.worker import Replayer

from task_scheduler import TaskState
from task_scheduler.engine.contracts import node_workflow_id
from task_scheduler.engine.task_state import CommandRequest, ContinueRequest, TaskStatus
from task_scheduler.worker import LabWorker, WorkerOptions
from task_scheduler.workflows.node import NodeWorkflow
from task_scheduler.workflows.sandbox import workflow_runner
from task_scheduler.workflows.task import TaskWorkflow

SCENARIOS = (
    "task-finished",
    "task-failed-retried",
    "task-failed-skipped",
    "task-paused",
    "task-cancelled",
    "task-cancelled-in-error",
    # Recorded since tasks upsert only the search attributes that changed (UPSERT_CHANGES_ONLY).
    "task-finished-upserting-changes",
)
# Kept by the tests that make them (tests/saved_histories.py `keep`).
KEPT_ELSEWHERE = (
    "task-continued-as-new-first-run",
    "task-continued-as-new-last-run",
    "task-worker-lost-while-running",
    "task-worker-lost-while-waiting",
    "task-cut-off-run-accounted",
    "task-waiting-run-withdrawn",
    "task-cancelled-while-waiting",
    "task-worker-replaced-cut-off",
    "ledger-cut-off-run",
    "ledger-error-told-at-once",
    # Protocols (tests/workflows/test_protocols.py): branches at once, a failure in one, a wait ended.
    "task-protocol-diamond",
    "task-protocol-branch-failed-retried",
    "task-protocol-wait-ended",
    # Capacity and holds (tests/workflows/test_capacity_and_holds.py).
    "task-capacity-two",
    "task-holds-two-nodes",
)
LEDGERS = ("ledger-before-continue-as-new", "ledger-after-continue-as-new")
# Recorded once by older code, which no test here runs: a ledger of the code before nodes told of
# their ERROR (commit 15fcc6d^), a step failing while its holder check was armed (the timer fired).
RECORDED_BY_OLDER_CODE = ("ledger-error-before-it-was-told",)
RESULT_TIMEOUT_S = 30


def replayer() -> Replayer:
    return Replayer(
        workflows=[TaskWorkflow, NodeWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )


async def state_is(handle: WorkflowHandle[Any, Any], state: TaskState) -> bool:
    status: TaskStatus = await handle.query(TaskWorkflow.get_status)
    return status.state is state


async def run_scenarios(lab: TestLab, start_task: StartTask) -> dict[str, WorkflowHandle[Any, Any]]:
    """One task per scenario, each through the states its name says."""
    handles = {"task-finished": await start_task(lab, "two")}
    await asyncio.wait_for(handles["task-finished"].result(), RESULT_TIMEOUT_S)
    # Two steps on one node: the second step's node is no change, so nothing is upserted for it.
    handles["task-finished-upserting-changes"] = again = await start_task(lab, "again")
    await asyncio.wait_for(again.result(), RESULT_TIMEOUT_S)

    for name, mode in (("task-failed-retried", "retry"), ("task-failed-skipped", "next")):
        JOURNAL.fail_next(lab.node("a"))
        handles[name] = handle = await start_task(lab, "two")
        await wait_until(lambda h=handle: state_is(h, TaskState.ERROR), what=f"{name} in ERROR")
        await handle.execute_update(TaskWorkflow.proceed, ContinueRequest(mode=mode))
        await asyncio.wait_for(handle.result(), RESULT_TIMEOUT_S)

    hold = JOURNAL.hold(f"replay-{lab.suffix}")
    handles["task-paused"] = paused = await start_task(lab, "two", {"hold": hold})
    await wait_until(lambda: JOURNAL.started(lab.node("a"), paused.id), what="the paused task's step 1")
    await paused.execute_update(TaskWorkflow.pause, CommandRequest(by="replay"))
    JOURNAL.release(hold)
    await wait_until(lambda: state_is(paused, TaskState.PAUSED), what="the task to pause")
    await paused.execute_update(TaskWorkflow.proceed, ContinueRequest())

    never = JOURNAL.hold(f"never-{lab.suffix}")
    handles["task-cancelled"] = cancelled = await start_task(lab, "two", {"hold": never})
    await wait_until(lambda: JOURNAL.started(lab.node("a"), cancelled.id), what="the step to cancel")
    await cancelled.execute_update(TaskWorkflow.cancel, CommandRequest(reason="replay"))
    await cancelled.cancel()
    await asyncio.wait_for(asyncio.gather(paused.result(), _cancelled(cancelled)), RESULT_TIMEOUT_S)

    JOURNAL.fail_next(lab.node("a"))
    handles["task-cancelled-in-error"] = waiting = await start_task(lab, "two")
    await wait_until(lambda: state_is(waiting, TaskState.ERROR), what="the task in ERROR")
    await waiting.execute_update(TaskWorkflow.cancel, CommandRequest(reason="replay: a cancelled wait"))
    await waiting.cancel()
    await asyncio.wait_for(_cancelled(waiting), RESULT_TIMEOUT_S)

    return handles


async def _cancelled(handle: WorkflowHandle[Any, Any]) -> None:
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert isinstance(failure.value.cause, CancelledError)


async def ledger_runs(client: Client, node_id: str) -> list[WorkflowHistory]:
    """Every run of a node's ledger, oldest first (it continues as new)."""
    runs = [w async for w in client.list_workflows(f'WorkflowId="{node_workflow_id(node_id)}"')]
    runs.sort(key=lambda w: w.start_time)
    return [await client.get_workflow_handle(w.id, run_id=w.run_id).fetch_history() for w in runs]


async def test_replay_of_fresh_histories(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask
) -> None:
    lab = make_lab({"two": ["a", "b"], "again": ["a", "a"]})
    # A ledger that continues as new after a few uses, so both of its runs are recorded.
    options = WorkerOptions(lab=lab.config, task_queue=task_queue, node_uses_per_run=6)
    async with LabWorker(temporal_client, options):
        handles = await run_scenarios(lab, start_task)
        ledger_of_a = temporal_client.get_workflow_handle(node_workflow_id(lab.node("a")))
        # A step that succeeded returns before the end of its use is recorded: wait for the last one.
        await wait_until(
            lambda: _calls_are(ledger_of_a, 9), what="the last use of node a to be recorded as ended"
        )
        ledger = await ledger_of_a.query(NodeWorkflow.status)
    histories = {name: await handle.fetch_history() for name, handle in handles.items()}
    # ACTIVE with the first step's node in one upsert, none for the second (same node), one at the end
    # (the SDK's own upsert of the patch's TemporalChangeVersion aside).
    assert len(_our_upserts(histories["task-finished-upserting-changes"])) == 2
    first, *later = await ledger_runs(temporal_client, lab.node("a"))
    histories.update(zip(LEDGERS, [first, later[-1]], strict=True))

    # Node a served every task, and its ledger carried its counts through continue-as-new.
    assert ledger.runs == len(later) + 1 >= 2
    assert (ledger.stats.calls, ledger.stats.successes, ledger.restarts) == (9, 5, 2)
    results = await replayer().replay_workflows(_iterate(histories.values()), raise_on_replay_failure=False)
    assert results.replay_failures == {}
    for name, history in histories.items():
        keep(name, history)


def _our_upserts(history: WorkflowHistory) -> list[Any]:
    upserts = (
        e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
    )
    return [fields for fields in upserts if set(fields) - {"TemporalChangeVersion"}]


async def _calls_are(ledger: WorkflowHandle[Any, Any], calls: int) -> bool:
    return bool((await ledger.query(NodeWorkflow.status)).stats.calls == calls)


async def _iterate(histories: Any) -> Any:
    for history in histories:
        yield history


def test_saved_histories_cover_every_scenario() -> None:
    assert sorted(p.stem for p in HISTORIES.glob("*.json")) == sorted(
        (*SCENARIOS, *LEDGERS, *KEPT_ELSEWHERE, *RECORDED_BY_OLDER_CODE)
    )


@pytest.mark.parametrize("path", sorted(HISTORIES.glob("*.json")), ids=lambda path: path.stem)
async def test_replay_of_saved_history(path: Path) -> None:
    await replayer().replay_workflow(load(path))
