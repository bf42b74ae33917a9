"""Tasks on the real dev server, with a worker in this process: steps, outputs, search attributes,
the seed's example, and one step at a time on each node, in order."""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from lab_fixtures import JOURNAL, DriverRun, MakeLab, StartTask, scheduled_activities, summaries, wait_until
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus, WorkflowHandle

from task_scheduler import TaskState, load_config_dir
from task_scheduler.activities.gate import NodeGate, Waiter
from task_scheduler.devserver import DevServer
from task_scheduler.engine.errors import NodeAlreadyHostedError
from task_scheduler.engine.task_state import StepOutcome, TaskResult
from task_scheduler.engine.tasks import make_task_spec
from task_scheduler.worker import LabWorker, WorkerOptions
from task_scheduler.workflows.search_attributes import LAB_WORKFLOW, TASK_STATE
from task_scheduler.workflows.task import TaskWorkflow

SEED_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "seed-example"
RESULT_TIMEOUT_S = 30


async def test_task_of_five_steps_finishes_with_outputs_in_order(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask
) -> None:
    lab = make_lab({"five": ["a", "b", "c", "d", "e"]})
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)):
        handle = await start_task(lab, "five", {"plate": "P-1"})
        result = await asyncio.wait_for(handle.result(), RESULT_TIMEOUT_S)
        status = await handle.query(TaskWorkflow.get_status)

    ids = [lab.node(n) for n in "abcde"]
    assert result.state is TaskState.FINISHED
    assert result.outputs == [{"node": node_id, "seen": i} for i, node_id in enumerate(ids)]
    assert status.state is TaskState.FINISHED
    assert [s.outcome for s in status.steps] == [StepOutcome.SUCCEEDED] * 5
    assert all(s.attempts == 1 and s.runs == 1 for s in status.steps)
    assert status.steps[2].logs and f"{ids[2]} runs for {handle.id}" in status.steps[2].logs[0]
    # The drivers saw the task's arguments and the output of the step before them (only that one: a
    # step's input does not grow with the number of steps).
    runs = [JOURNAL.runs(node_id, handle.id) for node_id in ids]
    assert [len(r) for r in runs] == [1] * 5
    for i, (run,) in enumerate(runs):
        assert run.args["plate"] == "P-1"
        assert run.args.get("previous_output") == (result.outputs[i - 1] if i else None)
        assert "previous_outputs" not in run.args


async def test_task_history_has_one_named_activity_per_step(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask
) -> None:
    lab = make_lab({"five": ["a", "b", "c", "d", "e"]})
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)):
        handle = await start_task(lab, "five")
        await asyncio.wait_for(handle.result(), RESULT_TIMEOUT_S)
    history = await handle.fetch_history()

    scheduled = scheduled_activities(history)
    ids = [lab.node(n) for n in "abcde"]
    assert [a.activity_type.name for a in scheduled] == ["execute_step"] * 5
    assert [a.task_queue.name for a in scheduled] == [f"node-{node_id}" for node_id in ids]
    assert [a.activity_id for a in scheduled] == [f"step-{i + 1}-{n}-run-1" for i, n in enumerate(ids)]
    assert summaries(history) == [f"step {i + 1}/5: node {n} ({ids[i]})" for i, n in enumerate("abcde")]


async def test_task_search_attributes_agree_with_its_status(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask
) -> None:
    lab = make_lab({"two": ["a", "b"], "bad": [{"node": "a", "args": {"fail": True}}]})
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)):
        done = await start_task(lab, "two")
        await asyncio.wait_for(done.result(), RESULT_TIMEOUT_S)
        failed = await start_task(lab, "bad")
        await wait_until(lambda: _state_is(failed, TaskState.ERROR), what="the task in ERROR")
        status = await done.query(TaskWorkflow.get_status)

        attributes = (await done.describe()).typed_search_attributes
        assert attributes.get(TASK_STATE) == status.state.value == "FINISHED"
        assert attributes.get(LAB_WORKFLOW) == status.workflow_name == lab.workflow("two")
        query = f'WorkflowId="{done.id}" AND TaskState="FINISHED"'
        listed = await wait_until(lambda: _list(temporal_client, query), what="the finished task listed")
        assert [w.id for w in listed] == [done.id]
        assert listed[0].status is WorkflowExecutionStatus.COMPLETED

        # What `temporal workflow list --query 'TaskState="ERROR"'` shows, for this lab's workflows.
        names = ", ".join(f'"{lab.workflow(name)}"' for name in ("two", "bad"))
        query = f'TaskState="ERROR" AND LabWorkflow IN ({names})'
        in_error = await wait_until(lambda: _list(temporal_client, query), what="the listing in ERROR")
        assert [w.id for w in in_error] == [failed.id]
        await failed.cancel()


async def _state_is(handle: WorkflowHandle[TaskWorkflow, TaskResult], state: TaskState) -> bool:
    status = await handle.query(TaskWorkflow.get_status)
    return status.state is state


async def _list(client: Client, query: str) -> list[WorkflowExecution]:
    return [w async for w in client.list_workflows(query)]


async def test_seed_example_runs_unchanged(temporal_client: Client, task_queue: str) -> None:
    # The seed README's configuration and node files, as they are (node ids node-1, node-2: only here).
    lab = load_config_dir(SEED_EXAMPLE)
    async with LabWorker(temporal_client, WorkerOptions(lab=lab, task_queue=task_queue)):
        handle = await temporal_client.start_workflow(
            TaskWorkflow.run,
            make_task_spec(lab, "my-workflow"),
            id=f"seed-example-{task_queue}",
            task_queue=task_queue,
        )
        result = await asyncio.wait_for(handle.result(), RESULT_TIMEOUT_S)
        status = await handle.query(TaskWorkflow.get_status)

    assert result.state is TaskState.FINISHED
    assert result.outputs == [{}, {}]
    assert [s.node for s in status.steps] == ["node-1", "node-2"]
    assert any("Executing first node" in line for line in status.steps[0].logs)
    assert any("Executing second node" in line for line in status.steps[1].logs)


async def test_tasks_through_the_same_nodes_never_overlap_and_keep_request_order(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask
) -> None:
    lab = make_lab(
        {"three": ["a", "b", "c"], "block": ["a"]},
        nodes={n: {"properties": {"sleep_s": 0.02}} for n in "abc"},
    )
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)) as worker:
        entered = {node_id: spy_on_gate(gate) for node_id, gate in worker.host.gates.items()}
        hold = JOURNAL.hold(f"block-{lab.suffix}")
        blocker = await start_task(lab, "block", {"hold": hold})
        await wait_until(lambda: JOURNAL.started(lab.node("a"), blocker.id), what="the blocker to run")
        handles = await asyncio.gather(*(start_task(lab, "three") for _ in range(20)))
        gate = worker.host.gates[lab.node("a")]
        await wait_until(lambda: len(gate.waiting) == 20, what="20 steps waiting for node a")
        JOURNAL.release(hold)
        results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 60)
        statuses = await asyncio.gather(*(h.query(TaskWorkflow.get_status) for h in handles))

    assert all(r.state is TaskState.FINISHED for r in results)
    for index, short in enumerate("abc"):
        node_id = lab.node(short)
        runs = sorted((r for r in JOURNAL.runs(node_id) if r.task_id != blocker.id), key=lambda r: r.started)
        assert len(runs) == 20
        for before, after in itertools.pairwise(runs):
            assert before.ended <= after.started, f"two steps overlap on node {short}"
        requested = {s.task_id: s.steps[index].requested_at for s in statuses}
        if short == "a":  # all 20 were waiting when the node came free: strictly in request order
            assert [r.task_id for r in runs] == sorted(requested, key=requested.__getitem__)
        assert_served_in_request_order(runs, requested, entered[node_id])


def spy_on_gate(gate: NodeGate) -> dict[datetime, float]:
    """When each step (known by its request time) entered the node's gate, on the drivers' clock."""
    entered: dict[datetime, float] = {}
    enter = gate.enter

    def spied(name: str, priority: int, requested_at: datetime, *args: Any, **kwargs: Any) -> Waiter:
        entered.setdefault(requested_at, time.monotonic())
        return enter(name, priority, requested_at, *args, **kwargs)

    gate.enter = spied  # type: ignore[method-assign]
    return entered


def assert_served_in_request_order(
    runs: list[DriverRun], requested: dict[str, datetime], entered: dict[datetime, float]
) -> None:
    """When a use ended, the node went to the earliest requested of the steps then waiting: no step
    that was already waiting then, and requested earlier, is served later. (A step that reached an idle
    node first is served first, even if another one was requested a moment earlier.)"""
    for position, (previous, chosen) in enumerate(itertools.pairwise(runs), start=1):
        passed_over = [
            later.task_id
            for later in runs[position + 1 :]
            if entered[requested[later.task_id]] < previous.ended
            and requested[later.task_id] < requested[chosen.task_id]
        ]
        assert not passed_over, f"{chosen.task_id} was served before {passed_over}, requested earlier"


async def test_higher_priority_task_gets_the_busy_node_next(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask
) -> None:
    lab = make_lab({"one": ["a"]})
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)) as worker:
        hold = JOURNAL.hold(f"block-{lab.suffix}")
        blocker = await start_task(lab, "one", {"hold": hold})
        await wait_until(lambda: JOURNAL.started(lab.node("a"), blocker.id), what="the blocker to run")
        gate = worker.host.gates[lab.node("a")]
        low = []
        for count in (1, 2, 3):
            low.append(await start_task(lab, "one", priority=0))
            await wait_until(lambda n=count: len(gate.waiting) == n, what=f"{count} low-priority waiters")
        high = await start_task(lab, "one", priority=5)
        await wait_until(lambda: len(gate.waiting) == 4, what="the high-priority waiter")
        JOURNAL.release(hold)
        await asyncio.wait_for(asyncio.gather(*(h.result() for h in [blocker, *low, high])), 30)

    served = [r.task_id for r in sorted(JOURNAL.runs(lab.node("a")), key=lambda r: r.started)]
    assert served == [blocker.id, high.id, *(h.id for h in low)]


async def test_second_worker_for_the_same_nodes_is_refused(
    temporal_client: Client,
    task_queue: str,
    make_lab: MakeLab,
    start_task: StartTask,
    temporal_server: DevServer,
) -> None:
    lab = make_lab({"two": ["a", "b"]})
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)):
        with pytest.raises(NodeAlreadyHostedError, match=f"node {lab.node('a')} is already hosted"):
            async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)):
                pass
        # A worker in another process, as an operator would start it on the same lab.
        command = [
            *[str(Path(sys.executable).parent / "task-scheduler"), "worker"],
            *["--address", temporal_server.address, "--task-queue", task_queue],
            *["-n", str(lab.nodes_file), "-w", str(lab.workflows_file)],
        ]
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        _, stderr = await asyncio.wait_for(process.communicate(), 60)

    assert process.returncode == 1, stderr.decode()
    assert f"node {lab.node('a')} is already hosted by a live worker" in stderr.decode()
    # Once the first worker stopped, another one hosts the nodes at once (a restarted worker).
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)):
        handle = await start_task(lab, "two")
        assert (await asyncio.wait_for(handle.result(), RESULT_TIMEOUT_S)).state is TaskState.FINISHED
