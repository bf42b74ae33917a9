"""How a TaskWorkflow runs one step of its protocol: a step on a node (its activity, and what its end
means: a run lost while waiting runs again, a failure waits for an operator's decision about that
step), or a wait (a durable timer an operator may cut short). Each run is an asyncio task of its own, so
the steps the book says are ready run at once; each tells the book how it ended.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from ..engine.book import DONE, Book
    from ..engine.explain import current_details, cut_off_reason
    from ..engine.ledger import NodeCommand, UseKey, step_of
    from ..engine.models import NextExecution
    from ..engine.progress import done_from
    from ..engine.protocol import Protocol
    from ..engine.states import TaskMachine, TaskState
    from ..engine.task_state import StepOutcome, StepRecord, StepReport
    from ..engine.tasks import StepSpec, wait_end
    from .node import NodeWorkflow, signal_ledger
    from .search_attributes import upsert_task_attributes
    from .task_alarms import TaskAlarms
    from .task_holds import holding
    from .task_steps import (
        cancelled_while_running,
        cut_off_beat,
        execute_step,
        is_worker_lost,
        lost_while_waiting,
        next_execution,
        report_of,
    )


class TaskRuns(TaskAlarms):
    """The part of TaskWorkflow that runs its steps, each as its own asyncio task."""

    machine: TaskMachine
    protocol: Protocol
    book: Book
    nodes: list[str | None]
    ids: list[str]
    runs: dict[str, asyncio.Task[None]]

    # --- steps on a node ---------------------------------------------------------------------------

    async def _run_node_step(self, index: int) -> None:
        """Run step `index` once on its node."""
        record = self._begin(index)
        try:
            report = await self._execute(record)
        except ActivityError as error:
            if is_cancelled_exception(error):
                raise
            told = report_of(error.cause)
            if cancelled_while_running(error.cause) and told and workflow.cancellation_reason() is not None:
                record.take_cancelled(told, self.status.cancelled_by())  # the timeline's bar, its lines
                raise asyncio.CancelledError() from None
            await self._on_failure(record, error)
            return
        self.memory.lost_runs.pop(index, None)
        record.take(report, StepOutcome.SUCCEEDED)
        self._ended(record, StepOutcome.SUCCEEDED)

    async def _execute(self, record: StepRecord) -> StepReport:
        """The step's activity; a step with `holds` takes all its nodes first, and lets them go after."""
        if not self.spec.steps[record.index].holds:
            return await execute_step(self.spec, self.memory, record, self.protocol)
        async with holding(self.spec, self.status.task_id, record):
            self._explain()
            return await execute_step(self.spec, self.memory, record, self.protocol, held=True)

    def _begin(self, index: int) -> StepRecord:
        record = self.status.reach(index, self.nodes, self.ids)
        self.status.current_step = index
        self._upsert()
        self._explain()
        record.requested_at = record.requested_at or workflow.now()
        record.runs += 1
        record.outcome = StepOutcome.RUNNING
        return record

    async def _on_failure(self, record: StepRecord, error: ActivityError) -> None:
        """Decide what a step's failure means: run it again at no cost, or stop for the operator."""
        index, cause, node = record.index, error.cause, record.node or ""
        if lost_while_waiting(cause):
            self.memory.lost_runs.setdefault(index, record.runs)
            # Its waiter may live on in a worker cut off from the server: the ledger must refuse it.
            key = UseKey(task_id=self.status.task_id, step_index=index, run=record.runs)
            await signal_ledger(node, NodeWorkflow.withdraw_run, key)
            self.book.again(record.id)
            return
        self.memory.lost_runs.pop(index, None)
        report = report_of(cause)
        if report is not None:
            record.take(report, StepOutcome.FAILED)
        beat = cut_off_beat(cause)
        if beat is not None:
            # It stopped reporting at its last beat the server received, a heartbeat timeout ago.
            run = record.cut_off(beat.sent_at or workflow.now(), beat.attempt, beat.worker, beat.started_at)
            reason = cut_off_reason(self.status.task_id, index, node, run)
            key = UseKey(task_id=self.status.task_id, step_index=index, run=record.runs, attempt=run.attempt)
            await signal_ledger(node, NodeWorkflow.abandon_use, key)
        elif is_worker_lost(cause):
            record.outcome = StepOutcome.LOST
            reason = cause.message
        else:
            record.outcome = StepOutcome.FAILED
            reason = cause.message if isinstance(cause, ApplicationError) else str(cause or error)
        await self._wait_for_operator(record, reason, next_execution(cause, report))

    async def _wait_for_operator(self, record: StepRecord, reason: str, next_step: NextExecution) -> None:
        """The task in ERROR until an operator decides about this step; the other steps that run go on,
        and none starts meanwhile (the book holds the task)."""
        self.book.end(record.id, record.outcome)
        self.memory.failures[record.id] = reason
        self.status.current_step, self.status.reason = record.index, reason
        if self.status.state is TaskState.ERROR:  # another step failed before: the task is there already
            self._explain()
        else:
            self._transition("fail")
        await self._await_decision(record)
        decision = self.memory.decision
        assert decision is not None
        again = decision.mode == "retry" or next_step is NextExecution.SELF
        # The failure left the node in ERROR: the operator's continue is the check that clears it. The
        # node is then kept for the step run again: the steps that waited meanwhile must not go first.
        key = UseKey(task_id=self.status.task_id, step_index=record.index, run=record.runs)
        command = NodeCommand(
            node_id=record.node or "",
            only_if_error=True,
            by=self.status.task_id,
            retry_of=step_of(key) if again else None,
        )
        await signal_ledger(record.node or "", NodeWorkflow.request_restart, command)
        self.memory.failures.pop(record.id, None)
        self._after_decision()
        self.memory.decision = None  # carried out: the next failure waits for a decision of its own
        self.book.decide("retry" if again else "next", record.id)
        if again:
            record.outcome = StepOutcome.PENDING  # until it runs again, as soon as nothing holds the task
        else:
            record.outcome = StepOutcome.SKIPPED
            self.memory.skipped += 1
            self._advance()

    def _after_decision(self) -> None:
        """The task leaves ERROR once no failed step awaits a decision; else it says the next one."""
        waiting = next((r for r in self.status.steps if r.id in self.memory.failures), None)
        if waiting is None:
            self.status.reason = None
            self._transition("recover")
            return
        self.status.current_step, self.status.reason = waiting.index, self.memory.failures[waiting.id]
        self._explain()

    # --- waits -------------------------------------------------------------------------------------

    async def _run_wait(self, index: int) -> None:
        """A wait: a durable timer (it goes on through restarts of every process) until its end, or
        until an operator ends it (continue --mode next)."""
        record = self._begin(index)
        step = self.spec.steps[index]
        now = workflow.now()
        record.started_at = record.started_at or now
        record.ends_at = ends_at = wait_end(step, record.started_at, self.spec.utc_offset_s)
        ended_by_operator = False
        try:
            if ends_at > now:
                ended_by_operator = await self._sleep_until(record, step, ends_at - now)
        except asyncio.CancelledError:
            record.finished_at, record.outcome = workflow.now(), StepOutcome.CANCELLED
            by = self.status.cancelled_by() or "an operator"
            record.message = f"cancelled by {by} after {_seconds(record.started_at, record.finished_at)}"
            raise
        record.finished_at = workflow.now()
        if not ended_by_operator:
            record.outcome = StepOutcome.SUCCEEDED
            self._ended(record, StepOutcome.SUCCEEDED)
            return
        decision, self.memory.decision = self.memory.decision, None
        record.outcome = StepOutcome.SKIPPED
        by = decision.by if decision and decision.by else "an operator"
        waited, early = _seconds(record.started_at, record.finished_at), _seconds(record.finished_at, ends_at)
        record.message = f"ended by {by} after {waited}, {early} early"
        self.memory.skipped += 1
        self.book.skip(record.id)
        self._advance()

    async def _sleep_until(self, record: StepRecord, step: StepSpec, left: timedelta) -> bool:
        """Wait `left`; True if an operator ended the wait first."""
        try:
            summary = wait_summary(step, left)
            await workflow.wait_condition(
                lambda: self._decision_about(record.id), timeout=left, timeout_summary=summary
            )
        except builtins.TimeoutError:
            return False
        return True

    # --- the task's cancel -------------------------------------------------------------------------

    async def _stop_runs(self) -> None:
        """The task is cancelled: its running steps are cancelled, and it waits until each has ended (a
        driver is asked to abort and has stopped, a wait's timer is cancelled)."""
        for running in self.runs.values():
            running.cancel()
        for running in self.runs.values():
            with contextlib.suppress(asyncio.CancelledError, ActivityError):
                await running

    def _mark_cancelled(self) -> None:
        # A step that ended before the cancel was honoured keeps its outcome; one never begun stays
        # PENDING (a failed one an operator chose to retry is PENDING too, but it ran: CANCELLED).
        for record in self.status.steps:
            if record.outcome not in DONE and (record.outcome is not StepOutcome.PENDING or record.runs):
                record.take_cancel(self.status.cancelled_by())
        if self.machine.can("cancel"):
            self._transition("cancel")

    # --- bookkeeping -------------------------------------------------------------------------------

    def _ended(self, record: StepRecord, outcome: StepOutcome) -> None:
        self.book.end(record.id, outcome)
        self._advance()

    def _advance(self) -> None:
        self.memory.next_step = done_from(self.book, self.memory.next_step)

    def _transition(self, command: str, upsert: bool = True) -> None:
        self.machine.trigger(command)
        self.status.state = self.machine.state
        if self.machine.is_over:
            self.status.finished_at = workflow.now()
        if upsert:
            self._upsert()
        self._explain()

    def _explain(self) -> None:
        """What the Temporal UI and `temporal workflow describe` show as the task's current details."""
        workflow.set_current_details(current_details(self.status, self.spec))

    def _upsert(self) -> None:
        upsert_task_attributes(self.status.state, self.spec.workflow_name, self.status.current_node)


def wait_summary(step: StepSpec, left: timedelta) -> str:
    """The wait's timer in the Temporal UI: `settle: wait 600 s`, `step 3: wait until 14:30`."""
    name = step.id if step.id is not None else f"step {step.index + 1}"
    if step.wait_s is not None:
        return f"{name}: wait {step.wait_s:g} s"
    return f"{name}: wait until {step.wait_until} ({left.total_seconds():.0f} s)"


def _seconds(start: datetime, end: datetime) -> str:
    return f"{(end - start).total_seconds():.0f} s"
