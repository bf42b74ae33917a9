"""Protocols on a real dev server: steps with ids and `after` run in parallel branches, each in its
node's line; a failure in one branch lets the other finish and starts nothing new until an operator
decides about that step; a pause waits for the running branches; a wait is a durable timer that an
operator may end, that a cancel cancels, and that outlives its worker."""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from lab_fixtures import JOURNAL, MakeLab, StartTask, kill, start_worker, unique_id, wait_until
from saved_histories import keep
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    RPCError,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import CancelledError

from task_scheduler import TaskState
from task_scheduler.devserver import DevServer
from task_scheduler.engine.task_state import (
    CommandRequest,
    ContinueRequest,
    StepOutcome,
    StepRecord,
    TaskStatus,
)
from task_scheduler.worker import LabWorker, WorkerOptions
from task_scheduler.workflows.task import TaskWorkflow

RESULT_TIMEOUT_S = 60
DIAMOND = [
    {"id": "A", "node": "a"},
    {"id": "B", "after": ["A"], "node": "a", "args": {"sleep_s": 1.5}},
    {"id": "C", "after": ["A"], "node": "b", "args": {"sleep_s": 1.5}},
    {"id": "D", "after": ["B", "C"], "node": "b"},
]


async def status_of(handle: WorkflowHandle[Any, Any]) -> TaskStatus:
    return await handle.query(TaskWorkflow.get_status)


def step(status: TaskStatus, step_id: str) -> StepRecord:
    return next(s for s in status.steps if s.id == step_id)


async def reaches(handle: WorkflowHandle[Any, Any], state: TaskState, timeout_s: float = 15.0) -> TaskStatus:
    async def probe() -> TaskStatus | None:
        status = await status_of(handle)
        return status if status.state is state else None

    return await wait_until(probe, timeout_s, what=f"task {handle.id} to be {state.value}")


async def outcomes_are(handle: WorkflowHandle[Any, Any], **expected: StepOutcome) -> TaskStatus | None:
    status = await status_of(handle)
    return status if all(step(status, s).outcome is o for s, o in expected.items()) else None


async def test_diamond_runs_its_two_branches_at_once_on_their_nodes(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask
) -> None:
    lab = make_lab({"diamond": DIAMOND})
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)):
        handle = await start_task(lab, "diamond")
        result = await asyncio.wait_for(handle.result(), RESULT_TIMEOUT_S)
        status = await status_of(handle)
    keep("task-protocol-diamond", await handle.fetch_history())

    assert result.state is TaskState.FINISHED
    a, b, c, d = (step(status, s) for s in "ABCD")
    assert all(s.outcome is StepOutcome.SUCCEEDED for s in (a, b, c, d))
    assert a.started_at and b.started_at and c.started_at and d.started_at
    assert a.finished_at and b.finished_at and c.finished_at and d.finished_at
    # B and C ran at the same time, each on its own node; D only once both had ended.
    assert b.started_at < c.finished_at and c.started_at < b.finished_at
    assert min(b.started_at, c.started_at) >= a.finished_at
    assert d.started_at >= max(b.finished_at, c.finished_at)
    # The join gets the output of each step it comes after, by step id.
    (last,) = JOURNAL.runs(lab.node("b"), handle.id)[1:]
    assert last.args["previous_outputs"] == {"B": result.outputs[1], "C": result.outputs[2]}
    assert [o["node"] for o in result.outputs] == [lab.node(n) for n in "aabb"]


FAN = [
    {"id": "A", "node": "a"},
    {"id": "B", "after": ["A"], "node": "b"},
    {"id": "C", "after": ["A"], "node": "c"},
    {"id": "D", "after": ["B", "C"], "node": "a"},
]


async def test_failure_in_one_branch_lets_the_other_finish_and_retry_reruns_only_it(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask
) -> None:
    hold = JOURNAL.hold(unique_id("branch-c"))
    # C2 comes after C alone: ready once C ends, it is held back by B's failure until the decision.
    c2 = {"id": "C2", "after": ["C"], "node": "e"}
    lab = make_lab({"fan": [FAN[0], FAN[1], {**FAN[2], "args": {"hold": hold}}, FAN[3], c2]})
    b, c = lab.node("b"), lab.node("c")
    JOURNAL.fail_next(b)
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)):
        handle = await start_task(lab, "fan")
        status = await reaches(handle, TaskState.ERROR)
        # B failed while C runs: the task waits for the operator, and C goes on.
        assert step(status, "B").outcome is StepOutcome.FAILED
        assert step(status, "C").outcome is StepOutcome.RUNNING
        assert "failed on purpose" in (status.reason or "") and status.current_step == 1
        JOURNAL.release(hold)
        status = await wait_until(
            lambda: outcomes_are(handle, C=StepOutcome.SUCCEEDED), what="branch C to finish in ERROR"
        )
        assert status.state is TaskState.ERROR and step(status, "D").outcome is StepOutcome.PENDING
        assert len(JOURNAL.runs(lab.node("a"), handle.id)) == 1  # D did not start
        assert step(status, "C2").outcome is StepOutcome.PENDING  # ready, but a failure holds new steps
        assert not JOURNAL.runs(lab.node("e"), handle.id)

        await handle.execute_update(TaskWorkflow.proceed, ContinueRequest(mode="retry", by="op"))
        result = await asyncio.wait_for(handle.result(), RESULT_TIMEOUT_S)
        status = await status_of(handle)
    keep("task-protocol-branch-failed-retried", await handle.fetch_history())

    assert result.state is TaskState.FINISHED
    assert (len(JOURNAL.runs(b, handle.id)), len(JOURNAL.runs(c, handle.id))) == (2, 1)
    assert (step(status, "B").runs, step(status, "C").runs) == (2, 1)
    assert step(status, "C2").outcome is StepOutcome.SUCCEEDED
    d = step(status, "D")
    assert (
        d.outcome is StepOutcome.SUCCEEDED and d.started_at and d.started_at > step(status, "B").finished_at
    )
    assert status.decisions[-1].step == 1 and status.decisions[-1].mode == "retry"


async def test_two_failed_branches_each_need_a_decision_that_names_its_step(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask
) -> None:
    lab = make_lab({"fan": FAN})
    b, c = lab.node("b"), lab.node("c")
    JOURNAL.fail_next(b)
    JOURNAL.fail_next(c)
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)):
        handle = await start_task(lab, "fan")
        await wait_until(
            lambda: outcomes_are(handle, B=StepOutcome.FAILED, C=StepOutcome.FAILED), what="B and C to fail"
        )
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(TaskWorkflow.proceed, ContinueRequest())
        assert "steps B, C failed: name the step this continue is about (--step ID)" in str(
            refused.value.cause
        )

        await handle.execute_update(TaskWorkflow.proceed, ContinueRequest(mode="next", step="C"))
        status = await wait_until(lambda: outcomes_are(handle, C=StepOutcome.SKIPPED), what="C to be skipped")
        assert status.state is TaskState.ERROR and status.current_step == 1  # B still waits
        assert "step 2" in (status.reason or "")
        await handle.execute_update(TaskWorkflow.proceed, ContinueRequest(step="B"))
        result = await asyncio.wait_for(handle.result(), RESULT_TIMEOUT_S)
        status = await status_of(handle)

    assert result.state is TaskState.FINISHED
    assert [step(status, s).outcome for s in "ABCD"] == [
        StepOutcome.SUCCEEDED,
        StepOutcome.SUCCEEDED,
        StepOutcome.SKIPPED,
        StepOutcome.SUCCEEDED,
    ]
    assert (len(JOURNAL.runs(b, handle.id)), len(JOURNAL.runs(c, handle.id))) == (2, 1)


async def test_pause_lets_both_running_branches_finish_and_starts_no_new_step(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask
) -> None:
    hold_b, hold_c = JOURNAL.hold(unique_id("pause-b")), JOURNAL.hold(unique_id("pause-c"))
    lab = make_lab(
        {
            "two": [
                {"id": "A", "node": "a"},
                {"id": "B", "after": ["A"], "node": "b", "args": {"hold": hold_b}},
                {"id": "C", "after": ["A"], "node": "c", "args": {"hold": hold_c}},
                {"id": "B2", "after": ["B"], "node": "b"},
                {"id": "D", "after": ["B2", "C"], "node": "a"},
            ]
        }
    )
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)):
        handle = await start_task(lab, "two")
        await wait_until(
            lambda: JOURNAL.started(lab.node("b"), handle.id) and JOURNAL.started(lab.node("c"), handle.id),
            what="both branches to run",
        )
        await handle.execute_update(TaskWorkflow.pause, CommandRequest(by="op"))
        JOURNAL.release(hold_b)
        status = await wait_until(lambda: outcomes_are(handle, B=StepOutcome.SUCCEEDED), what="B to finish")
        # B ended, C still runs: not PAUSED yet, and B2 (ready now) does not start.
        assert status.state is TaskState.ACTIVE and status.pause_requested
        JOURNAL.release(hold_c)
        status = await reaches(handle, TaskState.PAUSED)
        assert step(status, "C").outcome is StepOutcome.SUCCEEDED
        assert step(status, "B2").outcome is StepOutcome.PENDING
        assert len(JOURNAL.runs(lab.node("b"), handle.id)) == 1

        await handle.execute_update(TaskWorkflow.proceed, ContinueRequest(by="op"))
        result = await asyncio.wait_for(handle.result(), RESULT_TIMEOUT_S)

    assert result.state is TaskState.FINISHED
    assert len(JOURNAL.runs(lab.node("b"), handle.id)) == 2


# --- waits -----------------------------------------------------------------------------------------


def timer_summaries(history: Any) -> list[str]:
    return [
        json.loads(event.user_metadata.summary.data)
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    ]


async def test_a_wait_ended_by_an_operator_lets_the_next_step_start(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask
) -> None:
    lab = make_lab({"rest": ["a", {"id": "settle", "wait_s": 600}, "b"]})
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)):
        handle = await start_task(lab, "rest")
        status = await wait_until(
            lambda: outcomes_are(handle, settle=StepOutcome.RUNNING), what="the wait to begin"
        )
        settle = step(status, "settle")
        assert (settle.node, settle.index) == (None, 1)
        assert settle.started_at and settle.ends_at == settle.started_at + timedelta(seconds=600)
        assert status.state is TaskState.ACTIVE and status.current_node is None

        await handle.execute_update(TaskWorkflow.proceed, ContinueRequest(mode="next", by="op"))
        result = await asyncio.wait_for(handle.result(), RESULT_TIMEOUT_S)
        status = await status_of(handle)
        history = await handle.fetch_history()
    keep("task-protocol-wait-ended", history)

    assert result.state is TaskState.FINISHED
    settle = step(status, "settle")
    assert settle.outcome is StepOutcome.SKIPPED and (settle.message or "").startswith("ended by op after")
    assert status.decisions[-1].mode == "next" and status.decisions[-1].step == 1
    assert timer_summaries(history) == ["settle: wait 600 s"]


async def test_cancel_during_a_wait_cancels_it(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask
) -> None:
    lab = make_lab({"rest": [{"wait_s": 600}, "a"]})
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)):
        handle = await start_task(lab, "rest")
        await wait_until(lambda: outcomes_are(handle, **{"1": StepOutcome.RUNNING}), what="the wait")
        await handle.execute_update(TaskWorkflow.cancel, CommandRequest(by="op", reason="no plate"))
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as failure:
            await asyncio.wait_for(handle.result(), RESULT_TIMEOUT_S)
        status = await status_of(handle)
        history = await handle.fetch_history()

    assert isinstance(failure.value.cause, CancelledError)
    assert status.state is TaskState.CANCELLED
    wait = step(status, "1")
    assert wait.outcome is StepOutcome.CANCELLED and (wait.message or "").startswith("cancelled by op after")
    kinds = [e.event_type for e in history.events]
    assert EventType.EVENT_TYPE_TIMER_CANCELED in kinds
    assert not JOURNAL.started(lab.node("a"), handle.id)


WAIT_S = 8


async def test_a_wait_outlives_its_worker_killed_mid_wait_and_ends_on_time(
    temporal_client: Client,
    temporal_server: DevServer,
    task_queue: str,
    make_lab: MakeLab,
    start_task: StartTask,
    worker_processes: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    lab = make_lab({"rest": ["a", {"id": "settle", "wait_s": WAIT_S}, "b"]})
    first = start_worker(lab, temporal_server, task_queue, tmp_path / "first-worker.log")
    worker_processes.append(first)
    handle = await start_task(lab, "rest")

    async def waiting() -> TaskStatus | None:
        try:
            return await outcomes_are(handle, settle=StepOutcome.RUNNING)
        except (RPCError, WorkflowQueryFailedError):
            return None  # the worker is not up yet

    begun = await wait_until(waiting, 60, what="the wait to begin in the first worker")
    kill(first)
    assert not JOURNAL.started(lab.node("b"), handle.id)

    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)):
        result = await asyncio.wait_for(handle.result(), RESULT_TIMEOUT_S)
        status = await status_of(handle)

    assert result.state is TaskState.FINISHED
    settle = step(status, "settle")
    assert settle.started_at == step(begun, "settle").started_at
    assert settle.started_at and settle.ends_at == settle.started_at + timedelta(seconds=WAIT_S)
    assert settle.outcome is StepOutcome.SUCCEEDED and settle.finished_at
    # It ended at its end (the timer is the server's), not at the new worker's start nor later.
    assert settle.ends_at <= settle.finished_at < settle.ends_at + timedelta(seconds=3)
    after = step(status, "3")
    assert (
        after.outcome is StepOutcome.SUCCEEDED and after.requested_at and after.requested_at >= settle.ends_at
    )
