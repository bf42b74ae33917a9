"""TaskWorkflow: one lab task (workflow id = task id), its steps run one by one on their nodes.

A failed step stops the task in ERROR until an operator continues it (retry the step, or move on)
or cancels it. Pause takes effect between steps. All state lives in one TaskStatus model.
"""

from __future__ import annotations

import asyncio
import builtins
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    TimeoutError,
    TimeoutType,
    is_cancelled_exception,
)
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from ..engine.contracts import (
        COMMAND_REFUSED,
        EXECUTE_STEP,
        GET_STEPS,
        RUN_ACCOUNTED_SIGNAL,
        STEP_FAILED,
        TASK_WORKFLOW_TYPE,
        WAITING_INTERRUPTED,
        WORKER_LOST,
        StepBeat,
        node_task_queue,
        node_workflow_id,
    )
    from ..engine.errors import InvalidTransitionError
    from ..engine.explain import accounted_reason, current_details, cut_off_reason, unaccounted_refusal
    from ..engine.ledger import NodeCommand, RunAccounted, UseKey
    from ..engine.models import NextExecution
    from ..engine.notifications import (
        Event,
        Notification,
        TaskStop,
        escalation_notification,
        reminder_notification,
        task_cancelled_notification,
        task_error_notification,
        task_finished_notification,
    )
    from ..engine.reminders import Alarm, WaitAlarms
    from ..engine.states import TaskMachine, TaskState
    from ..engine.tasks import (
        DECISIONS_KEPT,
        CommandAck,
        CommandRequest,
        ContinueRequest,
        Decision,
        EarlierRun,
        StepArchive,
        StepOutcome,
        StepPage,
        StepRecord,
        StepRecords,
        StepReport,
        StepRequest,
        TaskMemory,
        TaskResult,
        TaskSpec,
        TaskStatus,
        bounded_outputs,
        step_args,
    )
    from .lab import tell_lab
    from .node import NodeWorkflow
    from .search_attributes import CURRENT_NODE, LAB_WORKFLOW, TASK_STATE

# The wait for the node counts in start-to-close; the node's own timeout is enforced by the worker.
STEP_START_TO_CLOSE = timedelta(days=30)
STATUS_STEPS = 200  # step records the status query answers with; get_steps pages the others
DONE_OUTCOMES = (StepOutcome.SUCCEEDED, StepOutcome.SKIPPED)
# Patched: a task's search attributes are upserted only where they changed (the step's CurrentNode, the
# state), and the start goes with the first step's. Tasks that began before upsert all three each time.
UPSERT_CHANGES_ONLY = "upsert-changes-only"


@workflow.defn(name=TASK_WORKFLOW_TYPE)
class TaskWorkflow:
    @workflow.init
    def __init__(self, spec: TaskSpec) -> None:
        self.spec = spec.model_copy(update={"carried": None})
        # The whole state in one model; after a continue-as-new, the one the previous run handed on.
        self.memory = spec.carried or TaskMemory(status=_new_status(spec))
        self.status = self.memory.status
        # Derived, and shown by the status: a run carried over from before the field existed lacks it.
        self.status.steps_total = len(spec.steps)
        self.machine = TaskMachine(state=self.status.state, steps_total=len(spec.steps))

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
            finished = task_finished_notification(self.status.task_id, spec.workflow_name, len(spec.steps))
            await self._tell_if_wanted(Event.TASK_FINISHED, finished)
            outputs, omitted = bounded_outputs([self._output_of(i) for i in range(self.status.steps_total)])
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
            raise _refusal(
                self.status.state,
                "pause",
                "a pause is already requested" if self.status.pause_requested else None,
            )

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
            raise _refusal(self.status.state, "continue")
        if self.memory.decision is not None or (self.status.state is TaskState.PAUSED and self.memory.resume):
            raise _refusal(self.status.state, "continue", "a continue is already being carried out")
        step = self._current_record()
        unaccounted = step.unaccounted_run() if step and self.status.state is TaskState.ERROR else None
        if step is not None and unaccounted is not None:
            raise _refusal(self.status.state, "continue", unaccounted_refusal(step.index, unaccounted))

    @workflow.signal(name=RUN_ACCOUNTED_SIGNAL)
    def run_accounted(self, accounted: RunAccounted) -> None:
        """The node's ledger accounted for a run this task gave up as cut off (its late end arrived,
        or its worker was replaced): kept in the step's record, and said where the operator decides."""
        record = self.status.record(accounted.key.step_index)
        if record is None:
            return
        self._accounted(record, accounted)
        self._explain()

    def _accounted(self, record: StepRecord, accounted: RunAccounted) -> None:
        run = next((r for r in record.earlier_runs if r.run == accounted.key.run), None)
        if run is None:
            return
        run.accounted, run.late_outcome = True, accounted.outcome.value
        run.late_status, run.late_message = accounted.status, accounted.message
        run.late_ended_at = accounted.ended
        if self.status.state is TaskState.ERROR and self.status.current_step == record.index:
            self.status.reason = accounted_reason(self.status.task_id, record.index, record.node, run)

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
            raise _refusal(self.status.state, "cancel")

    @workflow.query
    def get_status(self) -> TaskStatus:
        """The task, with the records of up to STATUS_STEPS steps around the current one (all of a
        small task's): a task of thousands of steps pages the rest with get_steps."""
        total = self.status.steps_total
        current = self.status.current_step if self.status.current_step is not None else total
        first = max(self.status.steps_offset, min(current - STATUS_STEPS // 4, total - STATUS_STEPS), 0)
        window = self._records(first, STATUS_STEPS)
        return self.status.model_copy(update={"steps": window.steps, "steps_offset": window.offset})

    @workflow.query(name=GET_STEPS)
    def get_steps(self, page: StepPage) -> StepRecords:
        """Some of the step records: a task of thousands of steps answers in pages."""
        return self._records(page.offset, page.limit)

    def _records(self, offset: int, limit: int) -> StepRecords:
        """Records `offset`.. (at most `limit`) that this run knows, the steps not reached yet PENDING;
        steps archived in earlier runs are named by `archives`."""
        first = max(offset, self.status.steps_offset)
        last = min(offset + limit, self.status.steps_total)
        steps = [self.status.record(i) or _pending(self.spec, i) for i in range(first, last)]
        archives = [a for a in self.memory.archives if a.first < offset + limit and a.last >= offset]
        return StepRecords(total=self.status.steps_total, offset=first, steps=steps, archives=archives)

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
        record = self._reach(index)
        self.status.current_step = index
        self._upsert()
        self._explain()
        record.requested_at = record.requested_at or workflow.now()
        record.runs += 1
        record.outcome = StepOutcome.RUNNING
        try:
            report = await self._execute(index, record)
        except ActivityError as error:
            if is_cancelled_exception(error):
                raise
            return await self._on_failure(index, error)
        self.memory.lost_runs.pop(index, None)
        self._record_report(record, report, StepOutcome.SUCCEEDED)
        return index + 1

    async def _execute(self, index: int, record: StepRecord) -> StepReport:
        step = self.spec.steps[index]
        steps = self.spec.steps
        request = StepRequest(
            task_id=self.status.task_id,
            step=step,
            run=record.runs,
            priority=self.spec.priority,
            requested_at=record.requested_at or workflow.now(),
            src=steps[index - 1].node if index else None,
            dst=steps[index + 1].node if index + 1 < len(steps) else None,
            args=step_args(self.spec, index, self._previous_output(index)),
            lost_run=self.memory.lost_runs.get(index),
            workflow_name=self.spec.workflow_name,
            hooks=self.spec.hooks,
        )
        retry = step.retry
        return await workflow.execute_activity(
            EXECUTE_STEP,
            request,
            result_type=StepReport,
            task_queue=node_task_queue(step.node.id),
            activity_id=f"step-{index + 1}-{step.node.id}-run-{record.runs}",
            summary=f"step {index + 1}/{len(steps)}: {step.node.name} ({step.node.id})",
            start_to_close_timeout=STEP_START_TO_CLOSE,
            heartbeat_timeout=timedelta(seconds=step.heartbeat_timeout_s),
            retry_policy=RetryPolicy(
                maximum_attempts=retry.max_attempts,
                initial_interval=timedelta(seconds=retry.initial_interval_s),
                backoff_coefficient=retry.backoff_coefficient,
                maximum_interval=timedelta(seconds=retry.maximum_interval_s),
                non_retryable_error_types=[WORKER_LOST, WAITING_INTERRUPTED],
            ),
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )

    async def _on_failure(self, index: int, error: ActivityError) -> int:
        """Decide what a step's failure means: run it again at no cost, or stop for the operator."""
        record = self._reach(index)
        cause = error.cause
        if _lost_while_waiting(cause):
            self.memory.lost_runs.setdefault(index, record.runs)
            # Its waiter may live on in a worker cut off from the server: the ledger must refuse it.
            key = UseKey(task_id=self.status.task_id, step_index=index, run=record.runs)
            await self._signal_node(record.node, NodeWorkflow.withdraw_run, key)
            return index
        self.memory.lost_runs.pop(index, None)
        report = _report_of(cause)
        if report is not None:
            self._record_report(record, report, StepOutcome.FAILED)
        if isinstance(cause, TimeoutError):
            record.outcome = StepOutcome.LOST
            run = self._cut_off_run(record, cause)
            reason = cut_off_reason(self.status.task_id, index, record.node, run)
            key = UseKey(task_id=self.status.task_id, step_index=index, run=record.runs, attempt=run.attempt)
            await self._signal_node(record.node, NodeWorkflow.abandon_use, key)
        elif isinstance(cause, ApplicationError) and cause.type == WORKER_LOST:
            record.outcome = StepOutcome.LOST
            reason = cause.message
        else:
            record.outcome = StepOutcome.FAILED
            reason = cause.message if isinstance(cause, ApplicationError) else str(cause or error)
        return await self._wait_for_operator(index, reason, _next_execution(cause, report))

    async def _wait_for_operator(self, index: int, reason: str, next_execution: NextExecution) -> int:
        record = self._reach(index)
        self.status.reason = reason
        self._transition("fail")
        await self._await_decision(record)
        decision = self.memory.decision
        assert decision is not None
        # The failure left the node in ERROR: the operator's continue is the check that clears it.
        command = NodeCommand(node_id=record.node, only_if_error=True, by=self.status.task_id)
        await self._signal_node(record.node, NodeWorkflow.request_restart, command)
        self.status.reason = None
        self._transition("recover")
        self.memory.decision = None  # carried out: the next failure waits for a decision of its own
        if decision.mode == "retry" or next_execution is NextExecution.SELF:
            return index
        record.outcome = StepOutcome.SKIPPED
        return index + 1

    async def _await_decision(self, record: StepRecord) -> None:
        """Wait for the operator's decision; meanwhile tell people, remind them and escalate, on a
        durable timer (it runs through restarts of every process and stops when an operator acts)."""
        self.memory.stops += 1
        policy = self.spec.notify
        if policy is None or not policy.wants(Event.TASK_ERROR):
            await workflow.wait_condition(self._decided_yet)
            return
        stopped_at, alarms = workflow.now(), WaitAlarms()
        await self._tell(task_error_notification(self._stop(record)))
        while (alarm := alarms.next(policy, self._waited_s(stopped_at))) is not None:
            try:
                await workflow.wait_condition(self._decided_yet, timeout=timedelta(seconds=alarm[1]))
                return
            except builtins.TimeoutError:
                await self._sound(alarm[0], alarms, record, self._waited_s(stopped_at))
        await workflow.wait_condition(self._decided_yet)

    def _decided_yet(self) -> bool:
        return self.memory.decision is not None

    async def _sound(self, alarm: Alarm, alarms: WaitAlarms, record: StepRecord, waited_s: float) -> None:
        stop = self._stop(record)
        if alarm is Alarm.ESCALATION:
            alarms.escalated = True
            await self._tell(escalation_notification(stop, waited_s))
            return
        alarms.reminders_sent += 1
        await self._tell(reminder_notification(stop, alarms.reminders_sent, waited_s))

    def _stop(self, record: StepRecord) -> TaskStop:
        reason = self.status.reason or "the step failed"
        return TaskStop(
            self.status.task_id, self.spec.workflow_name, record.index, record.node, reason, self.memory.stops
        )

    def _waited_s(self, since: Any) -> float:
        return float((workflow.now() - since).total_seconds())

    async def _tell(self, notification: Notification) -> None:
        await tell_lab(workflow.info().task_queue, notification)

    async def _tell_if_wanted(self, event: Event, notification: Notification) -> None:
        if self.spec.notify is not None and self.spec.notify.wants(event):
            await self._tell(notification)

    # --- bookkeeping -------------------------------------------------------------------------------

    def _current_record(self) -> StepRecord | None:
        index = self.status.current_step
        return None if index is None else self.status.record(index)

    def _reach(self, index: int) -> StepRecord:
        """The record of step `index`, made (with the PENDING ones before it) when the task gets there."""
        while self.status.steps_offset + len(self.status.steps) <= index:
            self.status.steps.append(_pending(self.spec, self.status.steps_offset + len(self.status.steps)))
        record = self.status.record(index)
        assert record is not None  # the task never goes back before the steps it archived
        return record

    def _cut_off_run(self, record: StepRecord, cause: TimeoutError) -> EarlierRun:
        """Keep the run given up as cut off in the step's record, with what its last heartbeat said."""
        beat = _last_beat(cause)
        run = EarlierRun(
            run=record.runs,
            attempt=beat.attempt or record.attempts or 1,
            worker=beat.worker,
            started_at=beat.started_at,
            lost_at=workflow.now(),
        )
        record.earlier_runs.append(run)
        return run

    def _record_report(self, record: StepRecord, report: StepReport, outcome: StepOutcome) -> None:
        record.outcome = outcome
        record.attempts = report.attempt
        record.started_at, record.finished_at = report.started_at, report.finished_at
        record.waited_s = report.waited_s
        record.status, record.message, record.endpoint = report.status, report.message, report.endpoint
        record.output, record.logs = report.output, report.logs

    def _output_of(self, index: int) -> dict[str, Any] | None:
        """A succeeded step's output; None for a skipped step, and for a step whose record is archived
        in an earlier run (its output is there, in the step records and the history)."""
        record = self.status.record(index)
        return record.output if record and record.outcome is StepOutcome.SUCCEEDED else None

    def _previous_output(self, index: int) -> dict[str, Any] | None:
        return self._output_of(index - 1) if index else None

    def _decided(self, command: Any, by: str | None, reason: str | None, mode: str | None = None) -> None:
        decision = Decision(
            at=workflow.now(),
            command=command,
            by=by,
            mode=mode if self.status.state is TaskState.ERROR else None,
            step=self.status.current_step,
            state=self.status.state,
            reason=reason,
        )
        self.status.decisions = [*self.status.decisions, decision][-DECISIONS_KEPT:]

    def _ack(self) -> CommandAck:
        return CommandAck(
            task_id=self.status.task_id, state=self.status.state, pause_requested=self.status.pause_requested
        )

    async def _continue_as_new_if_suggested(self) -> None:
        """Between steps, when Temporal suggests it (the history nears its limits): the next run takes
        the whole state, except the records of the steps before the last, which stay in this run's
        state (queried by run id, it still answers them), so the state handed on stays small."""
        if not workflow.info().is_continue_as_new_suggested():
            return
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(self.spec.model_copy(update={"carried": self._carried()}))

    def _carried(self) -> TaskMemory:
        carried = self.memory.model_copy(deep=True)
        keep_from = max(self.status.steps_offset, self.memory.next_step - 1)  # the last step's output
        if keep_from > self.status.steps_offset:
            archive = StepArchive(
                first=self.status.steps_offset, last=keep_from - 1, run_id=workflow.info().run_id
            )
            carried.archives.append(archive)
            carried.status.steps = carried.status.steps[keep_from - self.status.steps_offset :]
            carried.status.steps_offset = keep_from
        carried.temporal_runs += 1
        return carried

    async def _signal_node(self, node_id: str, signal: Any, arg: Any) -> None:
        handle = workflow.get_external_workflow_handle_for(NodeWorkflow.run, node_workflow_id(node_id))
        try:
            await handle.signal(signal, arg)
        except Exception as error:  # a missing ledger must not fail the task; the operator sees the node
            workflow.logger.warning("could not signal the ledger of node %s: %s", node_id, error)

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

    def _cancelled_notification(self) -> Notification:
        cancel = next((d for d in reversed(self.status.decisions) if d.command == "cancel"), None)
        reason, by = (cancel.reason, cancel.by) if cancel else (None, None)
        return task_cancelled_notification(self.status.task_id, self.spec.workflow_name, reason, by)

    def _mark_cancelled(self) -> None:
        current = self.status.current_step
        # A step that ended before the cancel was honoured keeps its outcome.
        record = None if current is None else self.status.record(current)
        if record is not None and record.outcome not in DONE_OUTCOMES:
            record.outcome = StepOutcome.CANCELLED
        if self.machine.can("cancel"):
            self._transition("cancel")

    def _upsert(self) -> None:
        wanted = [
            (TASK_STATE, self.status.state.value),
            (LAB_WORKFLOW, self.spec.workflow_name),
            (CURRENT_NODE, self.status.current_node or ""),
        ]
        if workflow.patched(UPSERT_CHANGES_ONLY):
            now = workflow.info().typed_search_attributes
            wanted = [(key, value) for key, value in wanted if (now.get(key) or "") != value]
            if not wanted:
                return
        workflow.upsert_search_attributes([key.value_set(value) for key, value in wanted])


def _lost_while_waiting(cause: BaseException | None) -> bool:
    """A step lost before it began (its worker died or stopped while it waited) runs again for free."""
    if isinstance(cause, ApplicationError) and cause.type == WAITING_INTERRUPTED:
        return True
    if isinstance(cause, TimeoutError) and cause.type is TimeoutType.HEARTBEAT:
        return not _last_beat(cause).running
    return False


def _new_status(spec: TaskSpec) -> TaskStatus:
    return TaskStatus(
        task_id=workflow.info().workflow_id,
        workflow_name=spec.workflow_name,
        priority=spec.priority,
        args=spec.args,
        steps_total=len(spec.steps),
        created_at=workflow.now(),
    )


def _pending(spec: TaskSpec, index: int) -> StepRecord:
    return StepRecord(index=index, node=spec.steps[index].node.id)


def _last_beat(cause: TimeoutError) -> StepBeat:
    details = cause.last_heartbeat_details
    return StepBeat.of(details[0] if details else None)


def _next_execution(cause: BaseException | None, report: StepReport | None) -> NextExecution:
    """Where an operator's "next" goes after this failure: the node's answer in the step's report, or,
    for a run lost without one, in its last heartbeat or its WorkerLost error; NEXT if none says."""
    if report is not None:
        return report.next_execution
    said = StepBeat()
    if isinstance(cause, TimeoutError):
        said = _last_beat(cause)
    elif isinstance(cause, ApplicationError) and cause.details:
        said = StepBeat.of(cause.details[0])
    given = str(said.next)
    return NextExecution(given) if given in NextExecution.__members__ else NextExecution.NEXT


def _report_of(cause: BaseException | None) -> StepReport | None:
    if isinstance(cause, ApplicationError) and cause.type == STEP_FAILED and cause.details:
        return StepReport.model_validate(cause.details[0])
    return None


def _refusal(state: TaskState, command: str, reason: str | None = None) -> ApplicationError:
    message = InvalidTransitionError("task", state.value, command, reason).message
    return ApplicationError(message, type=COMMAND_REFUSED, non_retryable=True)
