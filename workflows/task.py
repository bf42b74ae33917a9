"""TaskWorkflow: one lab task (workflow id = task id), the steps of its protocol run on their nodes, every
step the task's book says is ready at once (a line of steps: one after the other).

A failed step stops the task from starting new steps, in ERROR, until an operator continues it (retry
the step, or move on) or cancels it; the steps already running go on. Pause takes effect once no step
runs on a node. Its whole state is one TaskMemory model (its `status` is what the task shows); the book
(engine/book.py) over its protocol is rebuilt from it. How a step runs is in task_runs.py, what it asks
of a step's activity in task_steps.py, what it tells people while it waits for an operator in
task_alarms.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from ..engine.contracts import (
        GET_STEPS,
        HOLD_GRANTED_SIGNAL,
        RUN_ACCOUNTED_SIGNAL,
        TASK_WORKFLOW_TYPE,
        HoldGrant,
    )
    from ..engine.errors import CommandRefusedError
    from ..engine.explain import accounted_reason, unaccounted_refusal
    from ..engine.ledger import RunAccounted
    from ..engine.notifications import Event, task_finished_notification
    from ..engine.progress import ContinueTarget, book_of, continue_target, records_needed_from
    from ..engine.protocol import StepKind
    from ..engine.states import TaskMachine, TaskState
    from ..engine.task_state import (
        CommandAck,
        CommandRequest,
        ContinueRequest,
        Decision,
        StepPage,
        StepRecords,
        TaskMemory,
        TaskResult,
        TaskStatus,
        bounded_outputs,
    )
    from ..engine.tasks import TaskSpec
    from .search_attributes import UPSERT_CHANGES_ONLY
    from .task_runs import TaskRuns
    from .task_steps import refusal

STATUS_STEPS = 200  # step records the status query answers with; get_steps pages the others


@workflow.defn(name=TASK_WORKFLOW_TYPE)
class TaskWorkflow(TaskRuns):
    @workflow.init
    def __init__(self, spec: TaskSpec) -> None:
        self.spec = spec.model_copy(update={"carried": None})
        # The whole state in one model; after a continue-as-new, the one the previous run handed on.
        self.memory = spec.carried or TaskMemory(status=_new_status(spec))
        self.status = self.memory.status
        # Derived, and shown by the status: a run carried over from before the field existed lacks it.
        self.status.steps_total = len(spec.steps)
        self.machine = TaskMachine(state=self.status.state, steps_total=len(spec.steps))
        self.nodes = [step.node_id for step in spec.steps]
        self.ids = [step.step_id for step in spec.steps]
        self.protocol = spec.protocol()
        self.book = book_of(self.protocol, self.status)
        self.runs: dict[str, asyncio.Task[None]] = {}  # the steps running, each its own asyncio task
        self.changes = 0  # counts what may let the task go on: a step's end, an operator's command

    @workflow.run
    async def run(self, spec: TaskSpec) -> TaskResult:
        try:
            if spec.carried is None:
                # The first step's upsert (or the end's) says ACTIVE with its node, in one command.
                self._transition("start", upsert=not workflow.patched(UPSERT_CHANGES_ONLY))
            await self._run_protocol()
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
            await self._stop_runs()
            self._mark_cancelled()
            await self._tell_if_wanted(Event.TASK_CANCELLED, self._cancelled_notification())
            raise

    async def _run_protocol(self) -> None:
        """Start every step the book says is ready, each as its own asyncio task, until all are done. A
        line of steps gives the commands a task of one step after the other always gave."""
        while not self.book.finished:
            self._stop_if_cancel_requested()
            self._raise_step_errors()
            await self._honour_pause()
            await self._continue_as_new_if_suggested()
            for step_id in self.book.ready():
                self._start(step_id)
            await self._next_change()

    async def _next_change(self) -> None:
        seen = self.changes
        await workflow.wait_condition(lambda: self.changes != seen)

    def _start(self, step_id: str) -> None:
        self.book.start(step_id)
        step = self.protocol.step(step_id)
        running = asyncio.create_task(
            self._run_wait(step.index) if step.kind is StepKind.WAIT else self._run_node_step(step.index)
        )
        running.add_done_callback(lambda _: self._changed())
        self.runs[step_id] = running

    def _raise_step_errors(self) -> None:
        """A step's task that ended by raising (the task's cancel reaching it, a bug) ends the task so."""
        for step_id, running in list(self.runs.items()):
            if running.done():
                del self.runs[step_id]
                running.result()

    def _changed(self) -> None:
        self.changes += 1

    # --- operator commands (updates, validated before they touch history) ---------------------------

    @workflow.update
    def pause(self, request: CommandRequest) -> CommandAck:
        """Pause the task: no step starts any more, and it is PAUSED once no step runs on a node."""
        self._decided("pause", request.by, request.reason)
        self.status.pause_requested = True
        self.book.pause()
        self._changed()
        return self._ack()

    @pause.validator
    def _validate_pause(self, request: CommandRequest) -> None:
        if self.status.pause_requested or not self.machine.can("pause"):
            already = "a pause is already requested" if self.status.pause_requested else None
            raise refusal(self.status.state, "pause", already)

    @workflow.update
    def proceed(self, request: ContinueRequest) -> CommandAck:
        """Continue a paused task, or a task stopped by a failed step (retry it, or move on), or end a
        running wait (next)."""
        target = self._continue_target(request)
        self._decided("continue", request.by, request.reason, request.mode, target)
        if target.kind in ("decide", "skip"):
            self.memory.decision = request.model_copy(update={"step": target.step})
        elif target.kind == "resume":
            self.memory.resume = True
        else:
            self.status.pause_requested = False
            self.book.resume()
        self._changed()
        return self._ack()

    @proceed.validator
    def _validate_proceed(self, request: ContinueRequest) -> None:
        target = self._continue_target(request)
        if self.memory.decision is not None or (self.status.state is TaskState.PAUSED and self.memory.resume):
            raise refusal(self.status.state, "continue", "a continue is already being carried out")
        about = target.step if target.kind == "decide" else None
        step = self.status.record(self.protocol.step(about).index) if about is not None else None
        unaccounted = step.unaccounted_run() if step else None
        if step is not None and unaccounted is not None:
            raise refusal(self.status.state, "continue", unaccounted_refusal(step.index, unaccounted))

    def _continue_target(self, request: ContinueRequest) -> ContinueTarget:
        state = self.status.state
        try:
            target = continue_target(self.book, state, self.status.pause_requested, request)
        except CommandRefusedError as refused:
            raise refusal(state, "continue", refused.message) from None
        if target is None:
            raise refusal(state, "continue")
        return target

    @workflow.signal(name=HOLD_GRANTED_SIGNAL)
    def hold_granted(self, grant: HoldGrant) -> None:
        """A hold activity has its node for a step's run: the step takes its next node."""
        record = self.status.record(grant.step_index)
        if record is not None and record.take_grant(grant.run, grant.node_id):
            self._explain()

    @workflow.signal(name=RUN_ACCOUNTED_SIGNAL)
    def run_accounted(self, accounted: RunAccounted) -> None:
        """The node's ledger accounted for a run this task gave up as cut off (its late end arrived,
        or its worker was replaced): kept in the step's record, and said where the operator decides."""
        record = self.status.record(accounted.key.step_index)
        if record is None:
            return
        run = record.account(accounted)
        if run is not None and record.id in self.memory.failures:
            reason = accounted_reason(self.status.task_id, record.index, record.node or "", run)
            self.memory.failures[record.id] = reason
            if self.status.current_step == record.index:
                self.status.reason = reason
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
        window = self.memory.records(self.status.window(STATUS_STEPS), STATUS_STEPS, self.nodes, self.ids)
        return self.status.model_copy(update={"steps": window.steps, "steps_offset": window.offset})

    @workflow.query(name=GET_STEPS)
    def get_steps(self, page: StepPage) -> StepRecords:
        """Some of the step records: a task of thousands of steps answers in pages."""
        return self.memory.records(page.offset, page.limit, self.nodes, self.ids)

    # --- between steps -----------------------------------------------------------------------------

    def _stop_if_cancel_requested(self) -> None:
        """A cancel that reached a step whose driver finished anyway is erased by the SDK (the step's
        result is returned, the workflow goes on): honour it before the next step."""
        if workflow.cancellation_reason() is not None:
            raise asyncio.CancelledError()

    async def _honour_pause(self) -> None:
        """A pause takes effect once no step runs on a node (a wait goes on meanwhile), and not while
        the task waits for an operator's decision (then after it)."""
        if not self.status.pause_requested or self.status.state is not TaskState.ACTIVE:
            return
        if any(self.protocol.step(s).kind is StepKind.NODE for s in self.book.running()):
            return
        # The pause is no longer requested but in effect: a second pause is refused as PAUSED.
        self.status.pause_requested = False
        self._transition("pause")
        await workflow.wait_condition(lambda: self.memory.resume)
        self.memory.resume = False
        self._transition("resume")
        self.book.resume()

    async def _continue_as_new_if_suggested(self) -> None:
        """When no step runs and none awaits a decision, and Temporal suggests it (the history nears its
        limits): the next run takes the whole state but the records no step still needs
        (TaskMemory.carried)."""
        if self.book.running() or self.book.awaiting_decision():
            return
        if not workflow.info().is_continue_as_new_suggested():
            return
        await workflow.wait_condition(workflow.all_handlers_finished)
        carried = self.memory.carried(workflow.info().run_id, records_needed_from(self.book))
        workflow.continue_as_new(self.spec.model_copy(update={"carried": carried}))

    # --- bookkeeping -------------------------------------------------------------------------------

    def _decided(
        self,
        command: Any,
        by: str | None,
        reason: str | None,
        mode: str | None = None,
        target: ContinueTarget | None = None,
    ) -> None:
        about = target is not None and target.kind in ("decide", "skip")
        step = self.status.current_step
        if target is not None and target.step is not None:
            step = self.protocol.step(target.step).index
        self.status.decide(
            Decision(
                at=workflow.now(),
                command=command,
                by=by,
                mode=mode if about else None,
                step=step,
                state=self.status.state,
                reason=reason,
            )
        )

    def _ack(self) -> CommandAck:
        return CommandAck(
            task_id=self.status.task_id, state=self.status.state, pause_requested=self.status.pause_requested
        )


def _new_status(spec: TaskSpec) -> TaskStatus:
    return TaskStatus(
        task_id=workflow.info().workflow_id,
        workflow_name=spec.workflow_name,
        priority=spec.priority,
        args=spec.args,
        steps_total=len(spec.steps),
        created_at=workflow.now(),
    )
