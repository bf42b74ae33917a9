"""TaskWorkflow: one lab task (workflow id = task id), its steps run one by one on their nodes.

A failed step stops the task in ERROR until an operator continues it (retry the step, or move on)
or cancels it. Pause takes effect between steps. Its whole state is one TaskMemory model (its
`status` is what the task shows); what it asks of a step and reads from its end is in task_steps.py,
what it tells people while it waits for an operator in task_alarms.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from ..engine.contracts import (
        GET_STEPS,
        RUN_ACCOUNTED_SIGNAL,
        TASK_WORKFLOW_TYPE,
    )
    from ..engine.explain import accounted_reason, current_details, cut_off_reason, unaccounted_refusal
    from ..engine.ledger import NodeCommand, RunAccounted, UseKey, step_of
    from ..engine.models import NextExecution
    from ..engine.notifications import Event, task_finished_notification
    from ..engine.states import TaskMachine, TaskState
    from ..engine.task_state import (
        CommandAck,
        CommandRequest,
        ContinueRequest,
        Decision,
        StepOutcome,
        StepPage,
        StepRecord,
        StepRecords,
        TaskMemory,
        TaskResult,
        TaskStatus,
        bounded_outputs,
    )
    from ..engine.tasks import TaskSpec
    from .node import NodeWorkflow, signal_ledger
    from .search_attributes import UPSERT_CHANGES_ONLY, upsert_task_attributes
    from .task_alarms import TaskAlarms
    from .task_steps import (
        cancelled_while_running,
        cut_off_beat,
        execute_step,
        is_worker_lost,
        lost_while_waiting,
        next_execution,
        refusal,
        report_of,
    )

STATUS_STEPS = 200  # step records the status query answers with; get_steps pages the others
DONE_OUTCOMES = (StepOutcome.SUCCEEDED, StepOutcome.SKIPPED)


@workflow.defn(name=TASK_WORKFLOW_TYPE)
class TaskWorkflow(TaskAlarms):
    @workflow.init
    def __init__(self, spec: TaskSpec) -> None:
        self.spec = spec.model_copy(update={"carried": None})
        # The whole state in one model; after a continue-as-new, the one the previous run handed on.
        self.memory = spec.carried or TaskMemory(status=_new_status(spec))
        self.status = self.memory.status
        # Derived, and shown by the status: a run carried over from before the field existed lacks it.
        self.status.steps_total = len(spec.steps)
        self.machine = TaskMachine(state=self.status.state, steps_total=len(spec.steps))
        self.nodes = [step.node.id for step in spec.steps]

    @workflow.run
    async def run(self, spec: TaskSpec) -> TaskResult:
        try:
            if spec.carried is None:
                # The first step's upsert (or the end's) says ACTIVE with its node, in one command.
                self._transition("start", upsert=not workflow.patched(UPSERT_CHANGES_ONLY))
            while self.memory.next_step < len(spec.steps):
                self._stop_if_cancel_requested()
                await self._honour_pause()
                await self._continue_as_new_if_suggested()
                self.memory.next_step = await self._run_step(self.memory.next_step)
            self._stop_if_cancel_requested()
            self.machine.set_progress(len(spec.steps))
            self.status.current_step = None
            self._transition("finish")
            finished = task_finished_notification(
                self.status.task_id, spec.workflow_name, len(spec.steps), skipped=self.memory.skipped
            )
            await self._tell_if_wanted(Event.TASK_FINISHED, finished)
            every = [self.status.output_of(i) for i in range(self.status.steps_total)]
            outputs, omitted = bounded_outputs(every)
            return TaskResult(
                task_id=self.status.task_id, state=self.status.state, outputs=outputs, outputs_omitted=omitted
            )
        except (asyncio.CancelledError, ActivityError) as error:
            if not is_cancelled_exception(error):
                raise
            self._mark_cancelled()
            await self._tell_if_wanted(Event.TASK_CANCELLED, self._cancelled_notification())
            raise

    # --- operator commands (updates, validated before they touch history) ---------------------------

    @workflow.update
    def pause(self, request: CommandRequest) -> CommandAck:
        """Pause the task after its current step."""
        self._decided("pause", request.by, request.reason)
        self.status.pause_requested = True
        return self._ack()

    @pause.validator
    def _validate_pause(self, request: CommandRequest) -> None:
        if self.status.pause_requested or not self.machine.can("pause"):
            already = "a pause is already requested" if self.status.pause_requested else None
            raise refusal(self.status.state, "pause", already)

    @workflow.update
    def proceed(self, request: ContinueRequest) -> CommandAck:
        """Continue a paused task, or a task stopped by a failed step (retry it, or move on)."""
        self._decided("continue", request.by, request.reason, request.mode)
        if self.status.state is TaskState.ERROR:
            self.memory.decision = request
        elif self.status.state is TaskState.PAUSED:
            self.memory.resume = True
        else:
            self.status.pause_requested = False
        return self._ack()

    @proceed.validator
    def _validate_proceed(self, request: ContinueRequest) -> None:
        pending_pause = self.status.state is TaskState.ACTIVE and self.status.pause_requested
        if not (pending_pause or self.machine.can(self.machine.continue_command())):
            raise refusal(self.status.state, "continue")
        if self.memory.decision is not None or (self.status.state is TaskState.PAUSED and self.memory.resume):
            raise refusal(self.status.state, "continue", "a continue is already being carried out")
        step = self.status.current_record
        unaccounted = step.unaccounted_run() if step and self.status.state is TaskState.ERROR else None
        if step is not None and unaccounted is not None:
            raise refusal(self.status.state, "continue", unaccounted_refusal(step.index, unaccounted))

    @workflow.signal(name=RUN_ACCOUNTED_SIGNAL)
    def run_accounted(self, accounted: RunAccounted) -> None:
        """The node's ledger accounted for a run this task gave up as cut off (its late end arrived,
        or its worker was replaced): kept in the step's record, and said where the operator decides."""
        record = self.status.record(accounted.key.step_index)
        if record is None:
            return
        run = record.account(accounted)
        here = self.status.state is TaskState.ERROR and self.status.current_step == record.index
        if run is not None and here:
            self.status.reason = accounted_reason(self.status.task_id, record.index, record.node, run)
        self._explain()

    @workflow.update
    def cancel(self, request: CommandRequest) -> CommandAck:
        """Record who cancels and why; the client then requests Temporal's cancellation."""
        self._decided("cancel", request.by, request.reason)
        self.status.reason = (
            f"cancelled by {request.by or 'an operator'}: {request.reason or 'no reason given'}"
        )
        return self._ack()

    @cancel.validator
    def _validate_cancel(self, request: CommandRequest) -> None:
        if not self.machine.can("cancel"):
            raise refusal(self.status.state, "cancel")

    @workflow.query
    def get_status(self) -> TaskStatus:
        """The task, with the records of up to STATUS_STEPS steps around the current one (all of a
        small task's): a task of thousands of steps pages the rest with get_steps."""
        window = self.memory.records(self.status.window(STATUS_STEPS), STATUS_STEPS, self.nodes)
        return self.status.model_copy(update={"steps": window.steps, "steps_offset": window.offset})

    @workflow.query(name=GET_STEPS)
    def get_steps(self, page: StepPage) -> StepRecords:
        """Some of the step records: a task of thousands of steps answers in pages."""
        return self.memory.records(page.offset, page.limit, self.nodes)

    # --- steps -------------------------------------------------------------------------------------

    def _stop_if_cancel_requested(self) -> None:
        """A cancel that reached a step whose driver finished anyway is erased by the SDK (the step's
        result is returned, the workflow goes on): honour it before the next step."""
        if workflow.cancellation_reason() is not None:
            raise asyncio.CancelledError()

    async def _honour_pause(self) -> None:
        if not self.status.pause_requested:
            return
        # The pause is no longer requested but in effect: a second pause is refused as PAUSED.
        self.status.pause_requested = False
        self._transition("pause")
        await workflow.wait_condition(lambda: self.memory.resume)
        self.memory.resume = False
        self._transition("resume")

    async def _run_step(self, index: int) -> int:
        """Run step `index` once; return the index of the step to run next."""
        record = self.status.reach(index, self.nodes)
        self.status.current_step = index
        self._upsert()
        self._explain()
        record.requested_at = record.requested_at or workflow.now()
        record.runs += 1
        record.outcome = StepOutcome.RUNNING
        try:
            report = await execute_step(self.spec, self.memory, record)
        except ActivityError as error:
            if is_cancelled_exception(error):
                raise
            told = report_of(error.cause)
            if cancelled_while_running(error.cause) and told and workflow.cancellation_reason() is not None:
                record.take_cancelled(told, self.status.cancelled_by())  # the timeline's bar, its lines
                raise asyncio.CancelledError() from None
            return await self._on_failure(record, error)
        self.memory.lost_runs.pop(index, None)
        record.take(report, StepOutcome.SUCCEEDED)
        return index + 1

    async def _on_failure(self, record: StepRecord, error: ActivityError) -> int:
        """Decide what a step's failure means: run it again at no cost, or stop for the operator."""
        index, cause = record.index, error.cause
        if lost_while_waiting(cause):
            self.memory.lost_runs.setdefault(index, record.runs)
            # Its waiter may live on in a worker cut off from the server: the ledger must refuse it.
            key = UseKey(task_id=self.status.task_id, step_index=index, run=record.runs)
            await signal_ledger(record.node, NodeWorkflow.withdraw_run, key)
            return index
        self.memory.lost_runs.pop(index, None)
        report = report_of(cause)
        if report is not None:
            record.take(report, StepOutcome.FAILED)
        beat = cut_off_beat(cause)
        if beat is not None:
            # It stopped reporting at its last beat the server received, a heartbeat timeout ago.
            run = record.cut_off(beat.sent_at or workflow.now(), beat.attempt, beat.worker, beat.started_at)
            reason = cut_off_reason(self.status.task_id, index, record.node, run)
            key = UseKey(task_id=self.status.task_id, step_index=index, run=record.runs, attempt=run.attempt)
            await signal_ledger(record.node, NodeWorkflow.abandon_use, key)
        elif is_worker_lost(cause):
            record.outcome = StepOutcome.LOST
            reason = cause.message
        else:
            record.outcome = StepOutcome.FAILED
            reason = cause.message if isinstance(cause, ApplicationError) else str(cause or error)
        return await self._wait_for_operator(record, reason, next_execution(cause, report))

    async def _wait_for_operator(self, record: StepRecord, reason: str, next_step: NextExecution) -> int:
        self.status.reason = reason
        self._transition("fail")
        await self._await_decision(record)
        decision = self.memory.decision
        assert decision is not None
        again = decision.mode == "retry" or next_step is NextExecution.SELF
        # The failure left the node in ERROR: the operator's continue is the check that clears it. The
        # node is then kept for the step run again: the steps that waited meanwhile must not go first.
        key = UseKey(task_id=self.status.task_id, step_index=record.index, run=record.runs)
        command = NodeCommand(
            node_id=record.node,
            only_if_error=True,
            by=self.status.task_id,
            retry_of=step_of(key) if again else None,
        )
        await signal_ledger(record.node, NodeWorkflow.request_restart, command)
        self.status.reason = None
        self._transition("recover")
        self.memory.decision = None  # carried out: the next failure waits for a decision of its own
        if again:
            return record.index
        record.outcome = StepOutcome.SKIPPED
        self.memory.skipped += 1
        return record.index + 1

    # --- bookkeeping -------------------------------------------------------------------------------

    def _decided(self, command: Any, by: str | None, reason: str | None, mode: str | None = None) -> None:
        in_error = self.status.state is TaskState.ERROR
        self.status.decide(
            Decision(
                at=workflow.now(),
                command=command,
                by=by,
                mode=mode if in_error else None,
                step=self.status.current_step,
                state=self.status.state,
                reason=reason,
            )
        )

    def _ack(self) -> CommandAck:
        return CommandAck(
            task_id=self.status.task_id, state=self.status.state, pause_requested=self.status.pause_requested
        )

    async def _continue_as_new_if_suggested(self) -> None:
        """Between steps, when Temporal suggests it (the history nears its limits): the next run takes
        the whole state but the records of the steps before the last (TaskMemory.carried)."""
        if not workflow.info().is_continue_as_new_suggested():
            return
        await workflow.wait_condition(workflow.all_handlers_finished)
        carried = self.memory.carried(workflow.info().run_id)
        workflow.continue_as_new(self.spec.model_copy(update={"carried": carried}))

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

    def _mark_cancelled(self) -> None:
        # A step that ended before the cancel was honoured keeps its outcome.
        record = self.status.current_record
        if record is not None and record.outcome not in DONE_OUTCOMES:
            record.take_cancel(self.status.cancelled_by())
        if self.machine.can("cancel"):
            self._transition("cancel")

    def _upsert(self) -> None:
        upsert_task_attributes(self.status.state, self.spec.workflow_name, self.status.current_node)


def _new_status(spec: TaskSpec) -> TaskStatus:
    return TaskStatus(
        task_id=workflow.info().workflow_id,
        workflow_name=spec.workflow_name,
        priority=spec.priority,
        args=spec.args,
        steps_total=len(spec.steps),
        created_at=workflow.now(),
    )
