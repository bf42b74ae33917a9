"""Crashes with real processes: a `task-scheduler worker` subprocess SIGKILLed mid-step, and the Temporal
dev server SIGKILLed while tasks run. No one-attempt step runs twice without an operator's continue."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from crash_lab import CrashLab, MakeLab, StartWorker, WorkerProcess
from saved_histories import keep
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from task_scheduler import NodeState, TaskState
from task_scheduler.client.handles import ledger_handle
from task_scheduler.devserver import DevServer
from task_scheduler.engine.contracts import node_workflow_id
from task_scheduler.engine.ledger import LedgerState, NodeCommand
from task_scheduler.engine.task_state import ContinueRequest, StepOutcome, TaskResult, TaskStatus
from task_scheduler.engine.tasks import make_task_spec
from task_scheduler.worker import LabWorker, WorkerOptions
from task_scheduler.workflows.node import NodeWorkflow
from task_scheduler.workflows.task import TaskWorkflow

T = TypeVar("T")
TaskHandle = WorkflowHandle[TaskWorkflow, TaskResult]

QUERY_TIMEOUT = timedelta(seconds=2)  # a query to a workflow whose worker is dead must not hang
UNANSWERED = (RPCError, RPCTimeoutOrCancelledError, WorkflowQueryFailedError)
SHORT_HEARTBEAT_S = 2.0
# Far longer than a worker's restart, even on a loaded machine: a run reported lost well before it was
# reported by its worker's restart, not by the server's heartbeat timeout.
LONG_HEARTBEAT_S = 90.0
REPORTED_WITHIN_S = 45.0
OUTAGE_S = 5.0  # the server is down this long (DESIGN measured 8 s with a 5 s heartbeat timeout)


async def wait_for(check: Callable[[], Awaitable[T | None]], what: str, timeout_s: float = 30.0) -> T:
    """Poll `check` until it returns something truthy; unanswered queries (no worker yet) are retried."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while True:
        try:
            value = await check()
        except UNANSWERED as error:
            value, last = None, error
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout_s} s (last: {last!r})")
        await asyncio.sleep(0.1)


async def ledger(client: Client, node_id: str) -> LedgerState:
    handle = client.get_workflow_handle_for(NodeWorkflow.run, node_workflow_id(node_id))
    return await handle.query(NodeWorkflow.status, rpc_timeout=QUERY_TIMEOUT)


async def status(handle: TaskHandle) -> TaskStatus:
    return await handle.query(TaskWorkflow.get_status, rpc_timeout=QUERY_TIMEOUT)


async def node_in(client: Client, node_id: str, state: NodeState) -> LedgerState:
    async def check() -> LedgerState | None:
        current = await ledger(client, node_id)
        return current if current.state is state else None

    return await wait_for(check, f"node {node_id} in {state}")


async def accounted(handle: TaskHandle) -> TaskStatus | None:
    current = await status(handle)
    runs = [r for step in current.steps for r in step.earlier_runs]
    return current if runs and all(r.accounted for r in runs) else None


async def task_in(handle: TaskHandle, state: TaskState, timeout_s: float = 30.0) -> TaskStatus:
    async def check() -> TaskStatus | None:
        current = await status(handle)
        return current if current.state is state else None

    return await wait_for(check, f"task {handle.id} in {state}", timeout_s)


async def start_task(
    client: Client, lab: CrashLab, workflow: str, task_queue: str, **args: Any
) -> TaskHandle:
    return await client.start_workflow(
        TaskWorkflow.run,
        make_task_spec(lab.lab, workflow, args),
        id=f"crash-{workflow}-{uuid.uuid4().hex[:8]}",
        task_queue=task_queue,
    )


async def step_running(
    client: Client, lab: CrashLab, workflow: str, task_queue: str, sleep_s: float
) -> TaskHandle:
    """A task of `workflow` whose first step's driver has started (the node AVAILABLE first: its
    worker hosts it)."""
    await node_in(client, lab.lab.nodes[0].id, NodeState.AVAILABLE)
    handle = await start_task(client, lab, workflow, task_queue, sleep_s=sleep_s)
    await wait_for(lambda: driver_started(lab, handle.id), "driver start")
    return handle


async def step_heartbeat(client: Client, handle: TaskHandle) -> dict[str, Any] | None:
    """The last heartbeat details of the task's running step activity, once a worker has started it."""
    description = await handle.describe()
    for activity in description.raw_description.pending_activities:
        started = activity.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        if started and activity.heartbeat_details.payloads:
            (details,) = await client.data_converter.decode(activity.heartbeat_details.payloads)
            return details
    return None


async def waiting_in_gate(client: Client, handle: TaskHandle) -> bool:
    details = await step_heartbeat(client, handle)
    return bool(details and details.get("phase") == "waiting")


async def driver_started(lab: CrashLab, task_id: str) -> bool:
    return bool(lab.starts(task_id))


async def finished(handles: list[TaskHandle], timeout_s: float, worker: WorkerProcess) -> list[TaskResult]:
    try:
        return await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), timeout_s)
    except TimeoutError:
        raise AssertionError(f"tasks did not finish; worker output:\n{worker.output_tail()}") from None


def assert_no_overlap(lab: CrashLab, node_id: str) -> None:
    """The drivers' own clocks: on the node, each driver call ended (or was aborted) before the next
    began. A call cut off by a crash has no end: a start by another process closes it (one process
    hosts the node at a time)."""
    running: dict[tuple[str, int], float] = {}
    for event in sorted((e for e in lab.events() if e.node_id == node_id), key=lambda e: e.at):
        if event.event != "start":
            running.pop((event.task_id, event.pid), None)
            continue
        running = {use: at for use, at in running.items() if use[1] == event.pid}
        assert not running, f"{event} began while {running} still ran"
        running[(event.task_id, event.pid)] = event.at


async def test_worker_killed_mid_step_stops_the_cut_off_task_and_runs_the_waiting_ones(
    temporal_server: DevServer,
    temporal_client: Client,
    task_queue: str,
    make_lab: MakeLab,
    start_worker: StartWorker,
) -> None:
    lab = make_lab(nodes={"arm": {"heartbeat_timeout_s": SHORT_HEARTBEAT_S}}, workflows={"move": ["arm"]})
    node_id = lab.lab.nodes[0].id
    first = start_worker(lab, temporal_server.address, task_queue)
    cut = await step_running(temporal_client, lab, "move", task_queue, sleep_s=2.0)
    waiting = [await start_task(temporal_client, lab, "move", task_queue, sleep_s=0.1) for _ in range(3)]
    for handle in waiting:
        await wait_for(lambda h=handle: waiting_in_gate(temporal_client, h), "step waiting in the gate")

    first.kill()
    second = start_worker(lab, temporal_server.address, task_queue)

    await task_in(cut, TaskState.ERROR)
    # The run's worker process was replaced: the ledger accounts for the cut-off run at once, and the
    # task says so where the operator decides.
    stopped = await wait_for(lambda: accounted(cut), "the cut-off run accounted for")
    assert f"step 1 on node {node_id}: its run on" in (stopped.reason or "")
    assert "never reported its end" in (stopped.reason or "")
    # Lost while running, as its last heartbeat said: not first mistaken for lost while waiting.
    assert (stopped.steps[0].outcome, stopped.steps[0].runs) == (StepOutcome.LOST, 1)
    (earlier,) = stopped.steps[0].earlier_runs
    assert (earlier.run, earlier.late_outcome) == (1, "UNKNOWN")
    node = await node_in(temporal_client, node_id, NodeState.ERROR)
    assert "was cut off" in (node.reason or "")
    assert [e.pid for e in lab.starts(cut.id)] == [first.pid]  # not run again by itself
    assert not any(lab.starts(h.id) for h in waiting)  # the node waits for a check

    await cut.execute_update(TaskWorkflow.proceed, ContinueRequest(mode="retry"))

    results = await finished([cut, *waiting], 60, second)
    assert [r.state for r in results] == [TaskState.FINISHED] * 4
    assert [e.pid for e in lab.starts(cut.id)] == [first.pid, second.pid]
    assert all([e.pid for e in lab.starts(h.id)] == [second.pid] for h in waiting)
    assert_no_overlap(lab, node_id)
    node = await node_in(temporal_client, node_id, NodeState.AVAILABLE)
    assert (node.stats.calls, node.stats.successes, node.stats.lost, node.restarts) == (4, 4, 1, 1)
    keep("task-worker-lost-while-running", await cut.fetch_history())
    keep("task-worker-lost-while-waiting", await waiting[0].fetch_history())


async def test_worker_killed_mid_step_of_a_retrying_node_retries_by_itself(
    temporal_server: DevServer,
    temporal_client: Client,
    task_queue: str,
    make_lab: MakeLab,
    start_worker: StartWorker,
) -> None:
    retry = {"max_attempts": 3, "initial_interval_s": 0.2}
    lab = make_lab(
        nodes={"reader": {"heartbeat_timeout_s": SHORT_HEARTBEAT_S, "retry": retry}},
        workflows={"read": ["reader"]},
    )
    node_id = lab.lab.nodes[0].id
    first = start_worker(lab, temporal_server.address, task_queue)
    cut = await step_running(temporal_client, lab, "read", task_queue, sleep_s=1.0)

    first.kill()
    second = start_worker(lab, temporal_server.address, task_queue)

    (result,) = await finished([cut], 60, second)
    assert result.state is TaskState.FINISHED
    assert [e.pid for e in lab.starts(cut.id)] == [first.pid, second.pid]
    done = await status(cut)
    assert (done.steps[0].outcome, done.steps[0].attempts, done.steps[0].runs) == (
        StepOutcome.SUCCEEDED,
        2,
        1,
    )
    # The end of a use that succeeded is recorded within about a second of the step's return.
    node = await node_in(temporal_client, node_id, NodeState.AVAILABLE)
    assert (node.stats.calls, node.stats.lost, node.restarts) == (1, 1, 0)


@pytest.mark.parametrize("attempts", [1, 3], ids=["one-attempt", "retrying"])
async def test_worker_restarted_after_a_crash_reports_the_run_that_never_ended_at_once(
    attempts: int,
    temporal_server: DevServer,
    temporal_client: Client,
    task_queue: str,
    make_lab: MakeLab,
    start_worker: StartWorker,
) -> None:
    """The restarted worker finds in the node's ledger a use run by the process that died: its step is
    reported at once, not a heartbeat timeout later (a minute here). A one-attempt step is cut off (the
    task in ERROR, the run's end unknown, the operator decides); a retrying one runs again by itself."""
    retry = {"max_attempts": attempts, "initial_interval_s": 0.2}
    node = {"heartbeat_timeout_s": LONG_HEARTBEAT_S, "retry": retry}
    lab = make_lab(nodes={"arm": node}, workflows={"move": ["arm"]})
    node_id = lab.lab.nodes[0].id
    first = start_worker(lab, temporal_server.address, task_queue)
    cut = await step_running(temporal_client, lab, "move", task_queue, sleep_s=2.0)

    first.kill()
    killed_at = datetime.now(UTC)
    second = start_worker(lab, temporal_server.address, task_queue)

    if attempts == 1:
        stopped = await wait_for(lambda: accounted(cut), "the lost run reported", timeout_s=REPORTED_WITHIN_S)
        assert "never reported its end" in (stopped.reason or "")
        (earlier,) = stopped.steps[0].earlier_runs
        assert (stopped.steps[0].outcome, earlier.late_outcome) == (StepOutcome.LOST, "UNKNOWN")
        assert earlier.lost_at is not None and earlier.lost_at <= killed_at  # its last heartbeat
        await cut.execute_update(TaskWorkflow.proceed, ContinueRequest(mode="retry"))
    (result,) = await finished([cut], REPORTED_WITHIN_S, second)
    assert result.state is TaskState.FINISHED
    assert [e.pid for e in lab.starts(cut.id)] == [first.pid, second.pid]
    history = await cut.fetch_history()
    failures = [
        e.activity_task_failed_event_attributes.failure.application_failure_info.type
        for e in history.events
        if e.HasField("activity_task_failed_event_attributes")
    ]
    timed_out = [e for e in history.events if e.HasField("activity_task_timed_out_event_attributes")]
    assert (failures, timed_out) == ((["WorkerReplaced"] if attempts == 1 else []), [])
    done = await status(cut)
    assert (done.steps[0].attempts, done.steps[0].runs) == ((1, 2) if attempts == 1 else (2, 1))
    assert_no_overlap(lab, node_id)
    if attempts == 1:
        keep("task-worker-replaced-cut-off", history)


async def test_temporal_server_killed_while_tasks_run_every_task_finishes(
    start_dev_server: Callable[..., Awaitable[DevServer]],
    tmp_path: Path,
    task_queue: str,
    make_lab: MakeLab,
    start_worker: StartWorker,
) -> None:
    # A 30 s heartbeat timeout rides out the restart (DESIGN); with a short one a step may run again.
    node = {"heartbeat_timeout_s": 30.0}
    lab = make_lab(nodes={"hotel": node, "arm": node}, workflows={"fetch": ["hotel", "arm"]})
    server = await start_dev_server(db_file=tmp_path / "temporal.sqlite")
    client = await Client.connect(server.address, data_converter=pydantic_data_converter)
    worker = start_worker(lab, server.address, task_queue)
    for node_config in lab.lab.nodes:
        await node_in(client, node_config.id, NodeState.AVAILABLE)
    tasks = [await start_task(client, lab, "fetch", task_queue, sleep_s=1.0) for _ in range(3)]
    await wait_for(lambda: driver_started(lab, tasks[0].id), "driver start")

    server.kill()
    await asyncio.sleep(OUTAGE_S)  # the outage itself, not a wait for a condition
    server.start()
    await server.wait_ready()

    results = await finished(tasks, 60, worker)
    assert [r.state for r in results] == [TaskState.FINISHED] * 3
    assert worker.process.poll() is None  # the worker rode it out
    for handle in tasks:
        assert len(lab.starts(handle.id)) == 2  # one per node: no step ran twice
    for node_config in lab.lab.nodes:
        assert_no_overlap(lab, node_config.id)
        ledger_after = await node_in(client, node_config.id, NodeState.AVAILABLE)
        assert (ledger_after.stats.calls, ledger_after.stats.successes, ledger_after.stats.lost) == (3, 3, 0)


async def test_worker_frozen_mid_step_keeps_the_node_closed_until_its_late_end_arrives(
    temporal_server: DevServer,
    temporal_client: Client,
    task_queue: str,
    make_lab: MakeLab,
    start_worker: StartWorker,
) -> None:
    """A PC cut off from the server looks to it like a frozen worker: no heartbeat, while the driver may
    go on. SIGSTOP makes that real in one process; the workflows run in this process meanwhile."""
    lab = make_lab(nodes={"b1": {"heartbeat_timeout_s": SHORT_HEARTBEAT_S}}, workflows={"dose": ["b1"]})
    node_id = lab.lab.nodes[0].id
    workflows_only = WorkerOptions(lab=lab.lab, task_queue=task_queue, host_nodes=False)
    async with LabWorker(temporal_client, workflows_only):
        pc = start_worker(lab, temporal_server.address, task_queue, "--no-workflows")
        cut = await step_running(temporal_client, lab, "dose", task_queue, sleep_s=3.0)
        other = await start_task(temporal_client, lab, "dose", task_queue, sleep_s=0.1)
        await wait_for(lambda: waiting_in_gate(temporal_client, other), "second task waiting in the gate")

        pc.freeze()
        frozen_at = datetime.now(UTC)
        try:
            await cut_off_and_refused(temporal_client, cut, node_id)
            await stopped_reporting_at_its_last_beat(cut, frozen_at, SHORT_HEARTBEAT_S)
        finally:
            pc.thaw()

        late = await wait_for(lambda: accounted(cut), "the late end of the cut-off run", timeout_s=60)
        (run,) = late.steps[0].earlier_runs
        assert run.late_outcome in ("SUCCEEDED", "FAILED")
        assert "cut off at" in (late.reason or "")
        assert not lab.starts(other.id)  # the node stayed closed for the task waiting behind it
        mode = "next" if run.late_outcome == "SUCCEEDED" else "retry"
        await cut.execute_update(TaskWorkflow.proceed, ContinueRequest(mode=mode))

        results = await finished([cut, other], 60, pc)
        assert [r.state for r in results] == [TaskState.FINISHED] * 2
        assert len(lab.starts(cut.id)) == (1 if mode == "next" else 2)
        assert_no_overlap(lab, node_id)
        first_end = min(e.at for e in lab.events() if e.task_id == cut.id and e.event != "start")
        assert all(e.at > first_end for e in lab.starts(other.id))
    keep("task-cut-off-run-accounted", await cut.fetch_history())
    keep("task-waiting-run-withdrawn", await other.fetch_history())
    keep("ledger-cut-off-run", await ledger_handle(temporal_client, node_id).fetch_history())


async def stopped_reporting_at_its_last_beat(cut: TaskHandle, frozen_at: datetime, timeout_s: float) -> None:
    """The cut-off run "stopped reporting" at its last heartbeat (before the PC froze), which the server
    noticed a heartbeat timeout later: the reason says the former, not the time of the detection."""
    stopped = await status(cut)
    (run,) = stopped.steps[0].earlier_runs
    history = await cut.fetch_history()
    (detected,) = [
        e.event_time.ToDatetime(tzinfo=UTC)
        for e in history.events
        if e.HasField("activity_task_timed_out_event_attributes")
    ]
    assert run.lost_at is not None and run.lost_at <= frozen_at
    assert (detected - run.lost_at).total_seconds() >= timeout_s - 0.05  # within clock rounding
    assert f"stopped reporting at {run.lost_at:%Y-%m-%d %H:%M:%S} UTC" in (stopped.reason or "")


async def cut_off_and_refused(client: Client, cut: TaskHandle, node_id: str) -> None:
    """While the run's end is unknown: the task waits in ERROR saying why, a continue is refused, and
    the node is closed even to a restart."""
    stopped = await task_in(cut, TaskState.ERROR)
    assert "may still be running" in (stopped.reason or "")
    (run,) = stopped.steps[0].earlier_runs
    assert (run.run, run.accounted) == (1, False)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await cut.execute_update(TaskWorkflow.proceed, ContinueRequest(mode="retry"))
    assert "has not reported its end" in str(refused.value.cause)
    node = await node_in(client, node_id, NodeState.ERROR)
    assert [c.key.task_id for c in node.cut_off] == [cut.id]
    with pytest.raises(WorkflowUpdateFailedError):
        restart = NodeCommand(node_id=node_id)
        await ledger_handle(client, node_id).execute_update(NodeWorkflow.restart, restart)
