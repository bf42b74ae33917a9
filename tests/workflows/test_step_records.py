"""What a step's record keeps when its run does not simply succeed: the traceback of a driver that
raised (its own frames, in the record and in the worker's log), and the record of a run an operator
cancelled (when it ran, who cancelled it, its driver's lines), counted apart from the node's failures."""

from __future__ import annotations

import inspect
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from lab_fixtures import JOURNAL, MakeLab, StartTask, wait_until
from temporalio.client import Client, WorkflowHandle

from task_scheduler import BaseNode, NodeRef, TaskState
from task_scheduler.engine.contracts import node_workflow_id
from task_scheduler.engine.ledger import LedgerState
from task_scheduler.engine.task_state import CommandRequest, StepOutcome, TaskStatus
from task_scheduler.engine.usage import UsageWindow
from task_scheduler.worker import LabWorker, WorkerOptions
from task_scheduler.workflows.node import NodeWorkflow
from task_scheduler.workflows.task import TaskWorkflow


class SampleReaderNode(BaseNode):
    """A driver with a mistake: it reads an argument the task does not give."""

    def _execute(
        self, src: NodeRef | None, dst: NodeRef | None, task_id: str, args: dict[str, Any] | None = None
    ) -> tuple[int, str, None]:
        self.logger.info("reading the sample of {}", task_id)
        return 0, f"read {(args or {})['sample']}", None


RAISING_LINE = (
    next(
        number
        for number, line in enumerate(inspect.getsourcelines(SampleReaderNode._execute)[0])
        if "['sample']" in line
    )
    + inspect.getsourcelines(SampleReaderNode._execute)[1]
)
HERE = Path(__file__).name


async def status_of(handle: WorkflowHandle[Any, Any]) -> TaskStatus:
    return await handle.query(TaskWorkflow.get_status)


async def ledger_of(client: Client, node_id: str) -> LedgerState:
    return await client.get_workflow_handle(node_workflow_id(node_id)).query(NodeWorkflow.status)


async def test_driver_that_raises_keeps_its_own_traceback_in_the_record_and_the_worker_log(
    temporal_client: Client,
    task_queue: str,
    make_lab: MakeLab,
    start_task: StartTask,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    lab = make_lab({"read": ["a"]}, nodes={"a": {"type": "SampleReaderNode"}})
    a = lab.node("a")
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)):
        handle = await start_task(lab, "read")

        async def stopped() -> TaskStatus | None:
            status = await status_of(handle)
            return status if status.state is TaskState.ERROR else None

        status = await wait_until(stopped, what="the task to stop in ERROR")
        await handle.cancel()

    step = status.steps[0]
    assert step.outcome is StepOutcome.FAILED
    where = f"{HERE}:{RAISING_LINE}, in _execute"
    assert step.message == f"KeyError: 'sample' (at {where})"
    assert f"KeyError: 'sample' (at {where})" in (status.reason or "")
    trace = step.traceback or ""
    # The driver's own frames: its file and line, none of the scheduler's above its call.
    assert trace.startswith("Traceback (most recent call last):")
    assert f'{HERE}", line {RAISING_LINE}, in _execute' in trace and trace.endswith("KeyError: 'sample'")
    for ours in ("activities/steps.py", "activities/host.py", "engine/nodes.py", "asyncio"):
        assert ours not in trace, ours
    # The step's lines: what the driver logged, then what it raised.
    assert "INFO reading the sample of" in step.logs[0]
    assert "ERROR step 1 of task" in step.logs[1] and f'{HERE}", line {RAISING_LINE}' in step.logs[1]

    # The worker's log: one record, with the driver's frames; nothing shows only ours.
    told = [
        r for r in caplog.records if r.name == f"task_scheduler.node.{a}" and "Traceback" in r.getMessage()
    ]
    assert len(told) == 1 and told[0].levelno == logging.ERROR
    assert trace in told[0].getMessage() and f"step 1 of task {handle.id}" in told[0].getMessage()
    loud = [_text(r) for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [text for text in loud if "activities/steps.py" in text], loud


async def test_cancel_keeps_the_aborted_runs_record_and_counts_it_apart_from_failures(
    temporal_client: Client, task_queue: str, make_lab: MakeLab, start_task: StartTask
) -> None:
    lab = make_lab({"one": ["a"]})
    a = lab.node("a")
    since = datetime.now(UTC) - timedelta(seconds=1)
    async with LabWorker(temporal_client, WorkerOptions(lab=lab.config, task_queue=task_queue)):
        running = await start_task(lab, "one", {"hold": JOURNAL.hold(f"never-{lab.suffix}")})
        await wait_until(lambda: JOURNAL.started(a, running.id), what="the driver to start")
        await running.execute_update(TaskWorkflow.cancel, CommandRequest(reason="wrong plate", by="alice"))
        await running.cancel()

        async def cancelled() -> TaskStatus | None:
            status = await status_of(running)
            return status if status.state is TaskState.CANCELLED else None

        status = await wait_until(cancelled, what="the task to be cancelled")
        ledger = await wait_until(
            lambda: _ledger_free(temporal_client, a), what="the cancelled use to be recorded"
        )
        window = UsageWindow(
            since=since, until=datetime.now(UTC) + timedelta(seconds=1), now=datetime.now(UTC)
        )
        usage = await temporal_client.get_workflow_handle(node_workflow_id(a)).query(
            NodeWorkflow.usage, window
        )

    step = status.steps[0]
    assert step.outcome is StepOutcome.CANCELLED
    assert step.started_at is not None and step.finished_at is not None
    ran_s = (step.finished_at - step.started_at).total_seconds()
    said = f"its driver, asked to abort, returned status 3: {a} aborted"
    assert step.message == f"cancelled by alice after {ran_s:.1f} s: {said}"
    assert any(f"{a} runs for {running.id}" in line for line in step.logs), step.logs
    # An operator's cancel says nothing of the node: 1 cancelled, 0 failed, in its ledger and its usage.
    stats = ledger.stats
    assert (stats.calls, stats.successes, stats.failures, stats.cancelled) == (1, 0, 0, 1)
    assert ledger.recent[-1].outcome == "cancelled"
    assert (usage.calls, usage.failures, usage.cancelled, usage.success_rate) == (1, 0, 1, None)


def _text(record: logging.LogRecord) -> str:
    """A log record as the terminal shows it, its traceback included."""
    return logging.Formatter().format(record)


async def _ledger_free(client: Client, node_id: str) -> LedgerState | None:
    ledger = await ledger_of(client, node_id)
    return ledger if ledger.holder is None and ledger.stats.calls else None
