"""A driver that does not stop when asked to abort, on the real dev server with a real worker: it never
acts for a task that gave up. Its node goes to ERROR with its use left open until the driver returns,
takes no other step until an operator restarts it, and refuses a restart while the driver still runs;
a step whose task gave up before its call reached the driver is withdrawn and never touches the device."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from lab_fixtures import HOLD_TIMEOUT_S, JOURNAL, MakeLab, StartTask, WorkflowTestNode, wait_until
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError

from task_scheduler import NodeState, TaskState
from task_scheduler.engine.contracts import node_workflow_id
from task_scheduler.engine.ledger import LedgerState, NodeCommand
from task_scheduler.engine.task_state import CommandRequest, StepOutcome, TaskStatus
from task_scheduler.worker import LabWorker, WorkerOptions
from task_scheduler.workflows.node import NodeWorkflow
from task_scheduler.workflows.task import TaskWorkflow

LATE_S = 5.0  # how long the test driver ignores an abort
GRACE_S = 1  # the node's abort_grace_s
RESULT_TIMEOUT_S = 30
RESTARTED_AT: dict[str, list[float]] = {}  # node id -> when its driver's _restart() ran (monotonic)


class LateStopTestNode(WorkflowTestNode):
    """Ignores `_abort()` for LATE_S seconds: a held step runs on until then, and returns "aborted"."""

    def __init__(self, id: str, name: str, properties: dict[str, Any] | None = None) -> None:
        super().__init__(id, name, properties)
        self._asked_at: float | None = None

    def _abort(self) -> None:
        JOURNAL._count(JOURNAL.aborts, self.id)
        self._asked_at = time.monotonic()

    def _wait(self, args: dict[str, Any]) -> bool:
        held = JOURNAL._hold_event(args.get("hold"))
        if held is None:
            return super()._wait(args)
        deadline = time.monotonic() + HOLD_TIMEOUT_S
        while not held.is_set() and time.monotonic() < deadline:
            asked = self._asked_at
            if asked is not None and time.monotonic() - asked >= LATE_S:
                self._asked_at = None
                return True
            time.sleep(0.01)
        return False

    def _restart(self) -> bool:
        RESTARTED_AT.setdefault(self.id, []).append(time.monotonic())
        return super()._restart()


async def ledger_of(client: Client, node_id: str) -> LedgerState:
    return await client.get_workflow_handle(node_workflow_id(node_id)).query(NodeWorkflow.status)


async def ledger_when(client: Client, node_id: str, check: Any, what: str) -> LedgerState:
    async def probe() -> LedgerState | None:
        ledger = await ledger_of(client, node_id)
        return ledger if check(ledger) else None

    return await wait_until(probe, timeout_s=RESULT_TIMEOUT_S, what=what)


async def cancel(handle: WorkflowHandle[Any, Any]) -> None:
    await handle.execute_update(TaskWorkflow.cancel, CommandRequest(reason="wrong plate", by="test"))
    await handle.cancel()


async def closed(handle: WorkflowHandle[Any, Any]) -> WorkflowExecutionStatus:
    async def probe() -> WorkflowExecutionStatus | None:
        status = (await handle.describe()).status
        return None if status is WorkflowExecutionStatus.RUNNING else status

    return await wait_until(probe, timeout_s=RESULT_TIMEOUT_S, what=f"task {handle.id} to close")


async def waiting_reason(client: Client, handle: WorkflowHandle[Any, Any]) -> str:
    """Why the task's step waits, as its last heartbeat (the Temporal UI, the API) says."""
    for pending in (await handle.describe()).raw_description.pending_activities:
        if pending.heartbeat_details.payloads:
            (details,) = await client.data_converter.decode(pending.heartbeat_details.payloads)
            return str(details.get("reason") or "")
    return ""


async def restart(client: Client, node_id: str) -> str | None:
    """An operator's restart of the node: None if accepted, else the ledger's refusal."""
    handle = client.get_workflow_handle_for(NodeWorkflow.run, node_workflow_id(node_id))
    try:
        await handle.execute_update(NodeWorkflow.restart, NodeCommand(node_id=node_id, by="operator"))
    except WorkflowUpdateFailedError as refused:
        return str(getattr(refused.cause, "message", refused.cause))
    return None


async def test_stuck_driver_closes_its_node_until_a_restart_and_no_cancelled_step_runs(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask
) -> None:
    # A heartbeat timeout of 3 s: a waiting step beats every second, so B's cancel reaches it well
    # within LATE_S (every 10 s by default: the restart below could come after A's driver returned).
    node_a = {"type": "LateStopTestNode", "abort_grace_s": GRACE_S, "heartbeat_timeout_s": 3}
    lab = make_lab({"solo": ["a"]}, nodes={"a": node_a})
    a = lab.node("a")
    stuck_text = f"node {a}: its driver did not stop within {GRACE_S} s of the abort; check the device"
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)) as worker:
        assert worker.host is not None
        first = await start_task(lab, "solo", {"hold": JOURNAL.hold(f"stuck-{lab.suffix}")})
        await wait_until(lambda: JOURNAL.started(a, first.id), what="A's driver to start")
        second, third = [await start_task(lab, "solo", {"sleep_s": 0.01}) for _ in range(2)]
        await wait_until(lambda: len(worker.host.gates[a].waiting) == 2, what="B and C to wait for the node")

        await cancel(first)
        stuck = await ledger_when(
            temporal_client, a, lambda led: led.state is NodeState.ERROR, "the node to go to ERROR"
        )
        assert await closed(first) is WorkflowExecutionStatus.CANCELED
        await cancel(second)
        assert await closed(second) is WorkflowExecutionStatus.CANCELED
        refusal = await restart(temporal_client, a)  # the driver still runs (LATE_S after the abort)
        driver_ran_then = bool(JOURNAL.runs(a, first.id))

        (run_a,) = await wait_until(lambda: JOURNAL.runs(a, first.id), what="A's driver to return")
        late = await ledger_when(
            temporal_client, a, lambda led: not led.cut_off, "the ledger to record A's late end"
        )
        reason = await wait_until(
            lambda: _late_refusal(temporal_client, third), timeout_s=RESULT_TIMEOUT_S, what="C to be refused"
        )
        assert not JOURNAL.started(a, third.id)
        assert await restart(temporal_client, a) is None
        result = await asyncio.wait_for(third.result(), RESULT_TIMEOUT_S)

    assert (stuck.reason or "").startswith(stuck_text)
    assert stuck.holder is None and [c.key.task_id for c in stuck.cut_off] == [first.id]  # left open
    assert stuck.stats.calls == 0  # never recorded as a normal end
    if not driver_ran_then:  # (on a very slow machine the driver may have returned by then)
        assert refusal is not None and refusal.startswith(f"cannot restart: {stuck_text}")
    assert run_a.aborted and run_a.ended - run_a.started >= LATE_S
    assert not JOURNAL.started(a, second.id)  # B never ran: not even queued behind A
    (use_a,) = [u for u in late.recent if u.key.task_id == first.id]
    assert use_a.late and use_a.outcome == "failed" and use_a.status == 3
    assert late.state is NodeState.ERROR and "check the device" in reason
    (run_c,) = JOURNAL.runs(a, third.id)
    assert result.state is TaskState.FINISHED
    assert run_c.started > RESTARTED_AT[a][-1] > run_a.ended  # C ran only after the restart


async def _late_refusal(client: Client, handle: WorkflowHandle[Any, Any]) -> str | None:
    """C's step, refused since the late end arrived: the node waits for a restart."""
    reason = await waiting_reason(client, handle)
    return reason if "waiting for a restart" in reason else None


async def test_stuck_driver_past_its_timeout_fails_the_step_for_the_operator(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask
) -> None:
    nodes = {"a": {"type": "LateStopTestNode", "abort_grace_s": GRACE_S, "timeout_s": 0.5}}
    lab = make_lab({"solo": ["a"]}, nodes=nodes)
    a = lab.node("a")
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)):
        handle = await start_task(lab, "solo", {"hold": JOURNAL.hold(f"timeout-{lab.suffix}")})
        status = await _reaches_error(handle)
        stuck = await ledger_of(temporal_client, a)
        await wait_until(lambda: JOURNAL.runs(a, handle.id), what="the driver to return")
        late = await ledger_when(temporal_client, a, lambda led: not led.cut_off, "the late end")
        await cancel(handle)
        await closed(handle)

    step = status.steps[0]
    assert step.outcome is StepOutcome.FAILED and step.attempts == 1
    assert f"node {a}: its driver did not stop within {GRACE_S} s of the abort" in (status.reason or "")
    assert stuck.state is NodeState.ERROR and [c.key.task_id for c in stuck.cut_off] == [handle.id]
    assert late.state is NodeState.ERROR and late.recent[-1].late


async def _reaches_error(handle: WorkflowHandle[Any, Any]) -> TaskStatus:
    async def probe() -> TaskStatus | None:
        status = await handle.query(TaskWorkflow.get_status)
        return status if status.state is TaskState.ERROR else None

    return await wait_until(probe, timeout_s=RESULT_TIMEOUT_S, what="the task to stop in ERROR")


async def test_step_whose_task_gave_up_before_its_call_reached_the_driver_is_withdrawn(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask
) -> None:
    """The step had its turn (the ledger granted it) but its call waited in the node's thread behind
    another call of the driver (a slow probe, say) when the task was cancelled."""
    lab = make_lab({"solo": ["a"]})
    a = lab.node("a")
    busy, release = threading.Event(), threading.Event()

    def occupy() -> None:
        busy.set()
        release.wait(RESULT_TIMEOUT_S)

    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)) as worker:
        assert worker.host is not None
        blocker = worker.host.in_driver_thread(a, occupy)
        await wait_until(busy.is_set, what="the node's thread to be busy")
        queued = await start_task(lab, "solo", {"sleep_s": 0.01})
        await ledger_when(
            temporal_client,
            a,
            lambda led: led.holder is not None and led.holder.key.task_id == queued.id,
            "the step to begin its use",
        )
        await cancel(queued)
        assert await closed(queued) is WorkflowExecutionStatus.CANCELED
        free = await ledger_when(
            temporal_client, a, lambda led: led.state is NodeState.AVAILABLE, "the node to be free"
        )
        release.set()
        await blocker
        after = await start_task(lab, "solo", {"sleep_s": 0.2})
        result = await asyncio.wait_for(after.result(), RESULT_TIMEOUT_S)

    assert not JOURNAL.started(a, queued.id)  # withdrawn: the driver never saw it
    assert free.holder is None and free.cut_off == []
    assert result.state is TaskState.FINISHED
    (run,) = JOURNAL.runs(a, after.id)
    assert not run.aborted  # the withdrawn step's abort did not reach the next call
