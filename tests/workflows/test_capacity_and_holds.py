"""Nodes that serve several steps at once (`capacity`), and steps that keep other nodes while they run
(`holds`), on a real dev server: never more holders than the capacity; steps that need the same two
nodes named in opposite orders, on two PCs, all finish (none waits for ever on another) and no node is
ever used by two of them at once; a hold outlives the SIGKILL of the worker hosting its node."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

from lab_fixtures import JOURNAL, DriverRun, MakeLab, StartTask, kill, start_worker, unique_id, wait_until
from saved_histories import keep
from temporalio.client import Client, WorkflowHandle

from task_scheduler import TaskState
from task_scheduler.client.handles import ledger_handle
from task_scheduler.devserver import DevServer
from task_scheduler.engine.ledger import LedgerState
from task_scheduler.engine.task_state import StepOutcome, TaskStatus
from task_scheduler.worker import LabWorker, WorkerOptions
from task_scheduler.workflows.node import NodeWorkflow
from task_scheduler.workflows.task import TaskWorkflow

RESULT_TIMEOUT_S = 120


def most_at_once(runs: list[DriverRun]) -> int:
    """The most driver calls that overlapped in time."""
    edges = sorted([(r.started, 1) for r in runs] + [(r.ended, -1) for r in runs])
    now = most = 0
    for _, change in edges:
        now += change
        most = max(most, now)
    return most


async def ledger(client: Client, node_id: str) -> LedgerState:
    return await ledger_handle(client, node_id).query(NodeWorkflow.status)


async def test_capacity_two_serves_two_tasks_at_once_and_never_three(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask
) -> None:
    lab = make_lab({"incubate": [{"node": "inc", "args": {"sleep_s": 1.0}}]}, {"inc": {"capacity": 2}})
    inc = lab.node("inc")
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)):
        handles = [await start_task(lab, "incubate") for _ in range(3)]

        async def two_hold() -> bool:
            return len((await ledger(temporal_client, inc)).holders) == 2

        await wait_until(two_hold, 30, "two tasks holding the incubator at once")
        results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), RESULT_TIMEOUT_S)
        state = await ledger(temporal_client, inc)
    keep("task-capacity-two", await handles[0].fetch_history())

    assert all(r.state is TaskState.FINISHED for r in results)
    runs = [r for h in handles for r in JOURNAL.runs(inc, h.id)]
    assert len(runs) == 3
    assert most_at_once(runs) == 2  # two at once, never three
    assert state.holders == [] and state.stats.calls == 3 and state.stats.successes == 3


# The arm moves a plate into the reader (the reader must be free); the reader reads while the arm stays
# clear: each step needs both, and names them in the opposite order.
OPPOSITE = {
    "load": [{"id": "load", "node": "arm", "holds": ["reader"], "args": {"sleep_s": 0.05}}],
    "read": [{"id": "read", "node": "reader", "holds": ["arm"], "args": {"sleep_s": 0.05}}],
}


async def test_steps_needing_two_nodes_in_opposite_orders_on_two_pcs_all_finish(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask
) -> None:
    lab = make_lab(OPPOSITE, {"arm": {"worker": "pc-arm"}, "reader": {"worker": "pc-reader"}})
    arm, reader = lab.node("arm"), lab.node("reader")
    options = {"lab": lab.config, "task_queue": task_queue}
    async with (
        LabWorker(temporal_client, WorkerOptions(name="pc-arm", **options)),
        LabWorker(temporal_client, WorkerOptions(name="pc-reader", run_workflows=False, **options)),
    ):
        handles = [await start_task(lab, "load" if i % 2 else "read") for i in range(50)]
        results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), RESULT_TIMEOUT_S)
        arm_ledger, reader_ledger = await ledger(temporal_client, arm), await ledger(temporal_client, reader)
    keep("task-holds-two-nodes", await handles[1].fetch_history())

    assert all(r.state is TaskState.FINISHED for r in results)
    runs = [r for h in handles for r in JOURNAL.runs(arm, h.id) + JOURNAL.runs(reader, h.id)]
    assert len(runs) == 50
    # Every step holds both nodes while its driver runs: no two drivers ever ran at once.
    assert most_at_once(runs) == 1
    for state in (arm_ledger, reader_ledger):
        assert state.holders == [] and state.state.value == "AVAILABLE"
        assert state.stats.calls + state.stats.holds == 50  # each step used one and held the other


async def test_a_step_waiting_for_its_second_node_says_which_it_holds(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask
) -> None:
    hold = JOURNAL.hold(unique_id("reader-busy"))
    lab = make_lab({"busy": [{"node": "reader", "args": {"hold": hold}}], **OPPOSITE})
    arm, reader = lab.node("arm"), lab.node("reader")
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)):
        busy = await start_task(lab, "busy")
        await wait_until(lambda: JOURNAL.started(reader, busy.id), 30, "the reader busy")
        load = await start_task(lab, "load")

        async def holding_text() -> str | None:
            status: TaskStatus = await load.query(TaskWorkflow.get_status)
            record = status.steps[0] if status.steps else None
            return record.holding_text() if record is not None and record.held else None

        text = await wait_until(holding_text, 30, "the load step holding the arm")
        first, second = sorted([arm, reader])
        assert text == f"holds {first}; waiting for {second} (it takes {first}, {second} in this order)"
        JOURNAL.release(hold)
        result = await asyncio.wait_for(load.result(), RESULT_TIMEOUT_S)
        status = await load.query(TaskWorkflow.get_status)
        arm_ledger = await ledger(temporal_client, arm)
    assert result.state is TaskState.FINISHED
    assert status.steps[0].outcome is StepOutcome.SUCCEEDED
    assert status.steps[0].holds == [] and status.steps[0].held == []  # let go once it ended
    assert arm_ledger.holders == [] and arm_ledger.stats.calls == 1


async def test_holds_are_let_go_when_the_task_is_cancelled_while_it_takes_them(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask
) -> None:
    hold = JOURNAL.hold(unique_id("reader-busy"))
    lab = make_lab({"busy": [{"node": "reader", "args": {"hold": hold}}], **OPPOSITE})
    arm = lab.node("arm")
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)):
        busy = await start_task(lab, "busy")
        await wait_until(lambda: JOURNAL.started(lab.node("reader"), busy.id), 30, "the reader busy")
        load: WorkflowHandle[Any, Any] = await start_task(lab, "load")

        async def arm_held() -> bool:
            return bool((await ledger(temporal_client, arm)).holders)

        await wait_until(arm_held, 30, "the arm held by the load step")
        await load.cancel()

        async def arm_free() -> bool:
            return not (await ledger(temporal_client, arm)).holders

        await wait_until(arm_free, 30, "the arm let go after the cancel")
        JOURNAL.release(hold)
        await asyncio.wait_for(busy.result(), RESULT_TIMEOUT_S)
    assert not JOURNAL.runs(arm, load.id)  # the cancelled step never ran


READER_PC = ("--name", "pc-reader", "--no-workflows")


async def test_a_hold_outlives_the_sigkill_of_its_nodes_worker(
    temporal_client: Client,
    temporal_server: DevServer,
    task_queue: str,
    make_lab: MakeLab,
    start_task: StartTask,
    worker_processes: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    hold = JOURNAL.hold(unique_id("arm-moving"))
    workflows = {
        "load": [{"id": "load", "node": "arm", "holds": ["reader"], "args": {"hold": hold}}],
        "read": [{"id": "read", "node": "reader"}],
    }
    nodes = {"arm": {"worker": "pc-arm"}, "reader": {"worker": "pc-reader", "heartbeat_timeout_s": 2}}
    lab = make_lab(workflows, {**nodes, "arm": {**nodes["arm"], "heartbeat_timeout_s": 2}})
    arm, reader = lab.node("arm"), lab.node("reader")
    options = WorkerOptions(name="pc-arm", lab=lab.config, task_queue=task_queue)
    async with LabWorker(temporal_client, options):
        first = start_worker(lab, temporal_server, task_queue, tmp_path / "reader-1.log", *READER_PC)
        worker_processes.append(first)
        load = await start_task(lab, "load")
        await wait_until(lambda: JOURNAL.started(arm, load.id), 60, "the arm moving (the reader held)")
        kill(first)  # the PC hosting the held reader dies while the step runs on the arm
        read = await start_task(lab, "read")
        second = start_worker(lab, temporal_server, task_queue, tmp_path / "reader-2.log", *READER_PC)
        worker_processes.append(second)

        async def taken_over() -> bool:
            (holder, *others) = (await ledger(temporal_client, reader)).holders or [None]
            return holder is not None and holder.hold and holder.key.attempt > 1 and not others

        # The retried hold took its own hold over in the new worker; the read step still waits.
        await wait_until(taken_over, 60, "the hold taken over by its retry in the new worker")
        read_status: TaskStatus = await read.query(TaskWorkflow.get_status)
        assert read_status.steps[0].started_at is None
        JOURNAL.release(hold)
        loaded = await asyncio.wait_for(load.result(), RESULT_TIMEOUT_S)
        done = await asyncio.wait_for(read.result(), RESULT_TIMEOUT_S)
        load_status: TaskStatus = await load.query(TaskWorkflow.get_status)
        read_status = await read.query(TaskWorkflow.get_status)
    assert loaded.state is TaskState.FINISHED and done.state is TaskState.FINISHED
    load_end, read_start = load_status.steps[0].finished_at, read_status.steps[0].started_at
    assert load_end is not None and read_start is not None
    assert read_start >= load_end - timedelta(seconds=1)  # the worker's clock; never while held


async def test_a_worker_killed_mid_acquisition_leaves_no_node_held_by_nobody(
    temporal_client: Client,
    temporal_server: DevServer,
    task_queue: str,
    make_lab: MakeLab,
    start_task: StartTask,
    worker_processes: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    hold = JOURNAL.hold(unique_id("reader-busy"))
    workflows = {
        "busy": [{"node": "reader", "args": {"hold": hold}}],
        "load": [{"id": "load", "node": "arm", "holds": ["reader"]}],
    }
    nodes = {"arm": {"worker": "pc-arm", "heartbeat_timeout_s": 2}, "reader": {"worker": "pc-reader"}}
    lab = make_lab(workflows, nodes)
    arm, reader = lab.node("arm"), lab.node("reader")
    assert arm < reader  # the load step takes the arm first, then waits for the reader
    arm_pc = ("--name", "pc-arm", "--no-workflows")
    options = WorkerOptions(name="pc-reader", lab=lab.config, task_queue=task_queue)
    async with LabWorker(temporal_client, options):
        first = start_worker(lab, temporal_server, task_queue, tmp_path / "arm-1.log", *arm_pc)
        worker_processes.append(first)
        busy = await start_task(lab, "busy")
        await wait_until(lambda: JOURNAL.started(reader, busy.id), 60, "the reader busy")
        load = await start_task(lab, "load")

        async def holds_arm() -> bool:
            status: TaskStatus = await load.query(TaskWorkflow.get_status)
            return bool(status.steps) and status.steps[0].held == [arm]

        await wait_until(holds_arm, 60, "the load step holding the arm, waiting for the reader")
        kill(first)  # mid-acquisition: the arm's PC dies while its hold waits for the reader
        (held,) = (await ledger(temporal_client, arm)).holders
        assert held.hold and held.key.task_id == load.id  # held for a task that still runs

        second = start_worker(lab, temporal_server, task_queue, tmp_path / "arm-2.log", *arm_pc)
        worker_processes.append(second)

        async def taken_over() -> bool:
            holders = (await ledger(temporal_client, arm)).holders
            return len(holders) == 1 and holders[0].key.task_id == load.id and holders[0].key.attempt > 1

        await wait_until(taken_over, 60, "the arm's hold taken over by its retry in the new worker")
        JOURNAL.release(hold)
        loaded = await asyncio.wait_for(load.result(), RESULT_TIMEOUT_S)
        done = await asyncio.wait_for(busy.result(), RESULT_TIMEOUT_S)
        arm_ledger, reader_ledger = await ledger(temporal_client, arm), await ledger(temporal_client, reader)
    assert loaded.state is TaskState.FINISHED and done.state is TaskState.FINISHED
    assert arm_ledger.holders == [] and reader_ledger.holders == []
    assert arm_ledger.state.value == "AVAILABLE" and reader_ledger.state.value == "AVAILABLE"
