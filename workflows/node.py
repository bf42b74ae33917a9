"""NodeWorkflow: one long-running ledger per node (id `node-<node id>`).

It records every use of the node (begin and end come from the step activity in the hosting worker),
refuses a second holder or a node in ERROR, restarts the node through the `restart_node` activity,
detects a holder task that no longer runs, and continues as new well before its history is large.
Its updates return at once: a long wait never sits in an update handler (10 in flight at most).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from ..engine.contracts import (
        BEGIN_USE,
        CHECK_HOLDER,
        END_USE,
        LEDGER_REFUSAL,
        LEDGER_STATUS,
        NODE_WORKFLOW_TYPE,
        RESTART_NODE,
        RUN_ACCOUNTED_SIGNAL,
        NodeInput,
        node_task_queue,
        node_workflow_id,
    )
    from ..engine.ledger import (
        BeginUse,
        BeginVerdict,
        EndUse,
        Holder,
        HolderAnswer,
        HolderCheck,
        HoldRelease,
        Ledger,
        LedgerRefusal,
        LedgerState,
        NodeCommand,
        NodeCommandResult,
        Reachability,
        RunAccounted,
        UseKey,
    )
    from ..engine.notifications import node_error_notification
    from ..engine.states import NodeState
    from ..engine.usage import NodeUsage, UsageBuckets, UsageWindow
    from .lab import tell_lab
    from .patches import patch_in_effect

RESTART_TIMEOUT = timedelta(minutes=10)
TELL_NODE_ERRORS = "tell-node-errors"
HOLDER_CHECK_TIMEOUT = timedelta(seconds=30)


@workflow.defn(name=NODE_WORKFLOW_TYPE)
class NodeWorkflow:
    @workflow.init
    def __init__(self, input: NodeInput) -> None:
        self.input = input
        self.ledger = Ledger(input.ledger)
        self._restarts: list[NodeCommand] = []

    @workflow.run
    async def run(self, input: NodeInput) -> None:
        while not self._should_continue_as_new():
            try:
                await workflow.wait_condition(
                    self._work_to_do(),
                    timeout=self._holder_check_interval(),
                    timeout_summary=self._holder_check_summary(),
                )
            except TimeoutError:
                await self._check_holder()
                continue
            await self._report_accounted_runs()
            await self._tell_of_errors()
            if self._restarts:
                await self._restart(self._restarts.pop(0))
        await workflow.wait_condition(workflow.all_handlers_finished)
        state = self.ledger.state.model_copy(update={"uses_this_run": 0, "runs": self.ledger.state.runs + 1})
        workflow.continue_as_new(self.input.model_copy(update={"ledger": state}))

    def _should_continue_as_new(self) -> bool:
        return (
            self.ledger.state.uses_this_run >= self.input.uses_per_run
            or workflow.info().is_continue_as_new_suggested()
        )

    def _work_to_do(self) -> Callable[[], bool]:
        """A restart to run, a run to report, an ERROR to tell, a continue-as-new due, or (idle now) a
        holder whose check must be armed: the holder-check timer is set when the wait begins, so an idle
        ledger wakes when a holder comes."""
        idle = self.ledger.state.holder is None
        return lambda: (
            bool(self._restarts)
            or bool(self.ledger.state.to_report)
            or self._error_to_tell()
            or self._should_continue_as_new()
            or (idle and self.ledger.state.holder is not None)
        )

    def _error_to_tell(self) -> bool:
        """The node went to ERROR since it last told, and this ledger tells (TELL_NODE_ERRORS): a ledger
        that ran before that code neither woke nor told (its holder-check timer fired instead of being
        cancelled), and replays its history so. Asked without writing the marker: `_tell_of_errors`
        writes it, after the wake-up, where it always was."""
        state = self.ledger.state
        return state.errors > state.errors_told and patch_in_effect(TELL_NODE_ERRORS)

    def _holder_check_interval(self) -> timedelta | None:
        return timedelta(seconds=self.input.holder_check_s) if self.ledger.state.holder else None

    def _holder_check_summary(self) -> str | None:
        """The holder-check timer's name in the Temporal UI (user metadata: not checked on replay)."""
        holder = self.ledger.state.holder
        return f"check that {holder.key.task_id} still runs (it holds the node)" if holder else None

    # --- the ledger --------------------------------------------------------------------------------

    @workflow.update(name=BEGIN_USE)
    def begin_use(self, request: BeginUse) -> BeginVerdict:
        """Record the start of a use (and, on a hand-over, the end of the previous one)."""
        return self.ledger.begin(request, workflow.now())

    @begin_use.validator
    def _validate_begin_use(self, request: BeginUse) -> None:
        _refuse_on(self.ledger.check_begin, request, workflow.now())

    @workflow.update(name=END_USE)
    def end_use(self, request: EndUse) -> bool:
        """Record the end of a use; the end of a use not held (already recorded) is ignored."""
        return self.ledger.end(request, workflow.now())

    @workflow.update
    def come_online(self, command: NodeCommand) -> LedgerState:
        """A worker hosting the node started."""
        self.ledger.come_online(command.worker, workflow.now())
        return self._answer()

    @workflow.update
    def go_offline(self, command: NodeCommand) -> LedgerState:
        """The worker hosting the node stopped cleanly."""
        self.ledger.go_offline(workflow.now())
        return self._answer()

    @workflow.update
    def set_reachable(self, reachability: Reachability) -> bool:
        """The hosting worker's probe of the device (its driver's `is_reachable()`) changed its answer."""
        self.ledger.set_reachable(reachability.reachable, reachability.reason, workflow.now())
        return True

    @workflow.update
    def restart(self, command: NodeCommand) -> NodeCommandResult:
        """An operator asks for a restart; it runs as soon as the update returns."""
        self._restarts.append(command)
        return NodeCommandResult(ok=True, message="restart requested")

    @restart.validator
    def _validate_restart(self, command: NodeCommand) -> None:
        if self._restarts:
            raise ApplicationError("a restart of this node is already pending", type=LEDGER_REFUSAL)
        _refuse_on(self.ledger.check_restart)

    @workflow.signal
    def request_restart(self, command: NodeCommand) -> None:
        """A task's operator continued past a failure on this node (signals: tasks cannot update)."""
        self._restarts.append(command)

    @workflow.signal
    def abandon_use(self, key: UseKey) -> None:
        """A task learnt that its step's worker stopped heartbeating while the step ran: the node stays
        closed until that run is accounted for (see Ledger.cut_off_use)."""
        self.ledger.cut_off_use(key, workflow.now())

    @workflow.signal
    def release_hold(self, release: HoldRelease) -> None:
        """A task lets go of the node it held for a step's run (the step is over, or given up)."""
        self.ledger.release_hold(release, workflow.now())

    @workflow.signal
    def withdraw_run(self, key: UseKey) -> None:
        """A task gave up a run of its step that was waiting for the node, and asks for a new one."""
        self.ledger.withdraw(key)

    @workflow.query(name=LEDGER_STATUS)
    def status(self) -> LedgerState:
        """The ledger, without its usage buckets (up to a few hundred KB): the `usage` query reads them."""
        return self._answer()

    @workflow.query
    def usage(self, window: UsageWindow) -> NodeUsage:
        """The node's use over a window (GET /stats), from its hourly or daily buckets."""
        figures = self.ledger.state.usage.window(window.since, window.until, window.now)
        return figures.model_copy(update={"node": self.ledger.state.node_id})

    def _answer(self) -> LedgerState:
        return self.ledger.state.model_copy(update={"usage": UsageBuckets()})

    # --- restarts, accounted runs and holder checks -----------------------------------------------

    async def _tell_of_errors(self) -> None:
        """The node went to ERROR: the lab's people are told (the LabWorkflow decides who wants it)."""
        state = self.ledger.state
        # Patched: a ledger runs for months, through upgrades; its history before this code told no one.
        to_tell = state.errors > state.errors_told and workflow.patched(TELL_NODE_ERRORS)
        if to_tell and state.state is NodeState.ERROR:
            reason = state.reason or "no reason recorded"
            waiting = state.failed_step.task_id if state.failed_step else None
            told = node_error_notification(state.node_id, reason, state.errors, waiting_task=waiting)
            await tell_lab(workflow.info().task_queue, told)
        state.errors_told = state.errors

    async def _report_accounted_runs(self) -> None:
        """Tell each task that a run it gave up as cut off is accounted for (late end, or its worker
        replaced). By the signal's name: the task's module imports this one."""
        while self.ledger.state.to_report:
            accounted: RunAccounted = self.ledger.state.to_report[0]
            handle = workflow.get_external_workflow_handle(accounted.key.task_id)
            try:
                await handle.signal(RUN_ACCOUNTED_SIGNAL, accounted)
            except Exception as error:  # the task may be over; the ledger keeps the record all the same
                workflow.logger.warning("could not tell task %s: %s", accounted.key.task_id, error)
            self.ledger.state.to_report.pop(0)

    async def _restart(self, command: NodeCommand) -> None:
        if command.only_if_error and self.ledger.state.state is not NodeState.ERROR:
            return
        try:
            self.ledger.start_restart()
        except LedgerRefusal as refusal:
            workflow.logger.warning("restart of %s not done: %s", self.input.ledger.node_id, refusal)
            return
        try:
            result = await workflow.execute_activity(
                RESTART_NODE,
                NodeCommand(node_id=self.ledger.state.node_id),
                result_type=NodeCommandResult,
                task_queue=node_task_queue(self.ledger.state.node_id),
                start_to_close_timeout=RESTART_TIMEOUT,
                retry_policy=RetryPolicy(maximum_attempts=1),
                summary=f"restart {self.ledger.state.node_id}",
            )
        except ActivityError as error:
            result = NodeCommandResult(ok=False, message=str(error.cause or error))
        self.ledger.finish_restart(result.ok, result.message, workflow.now(), command.retry_of)

    async def _check_holder(self) -> None:
        """Each holder held for longer than a check's interval: does its task still run?"""
        for holder in list(self.ledger.state.holders):
            if workflow.now() - holder.since >= timedelta(seconds=self.input.holder_check_s):
                await self._check_one(holder)

    async def _check_one(self, holder: Holder) -> None:
        try:
            answer = await workflow.execute_activity(
                CHECK_HOLDER,
                HolderCheck(task_id=holder.key.task_id, holder=holder),
                result_type=HolderAnswer,
                task_queue=node_task_queue(self.ledger.state.node_id),
                start_to_close_timeout=HOLDER_CHECK_TIMEOUT,
                retry_policy=RetryPolicy(maximum_attempts=3),
                summary=f"is {holder.key.task_id} still running?",
            )
        except ActivityError:
            return  # no worker to ask: the next check will
        if holder.hold:  # kept for a step: it lasts as long as its task runs (the task lets it go)
            if not answer.running:
                self.ledger.abandon(holder.key, workflow.now(), f"{holder.key} ended ({answer.status})")
            return
        if answer.ended is not None:
            self.ledger.end(answer.ended, workflow.now())  # ignored unless that use is still held
        elif not answer.running:
            reason = f"{holder.key} ended ({answer.status}) without releasing the node; check the device"
            self.ledger.abandon(holder.key, workflow.now(), reason)


def _refuse_on(check: object, *args: object) -> None:
    """Validators refuse with an ApplicationError: the update is rejected before it touches history."""
    try:
        check(*args)  # type: ignore[operator]
    except LedgerRefusal as refusal:
        kept_for = [refusal.kept_for] if refusal.kept_for else []
        raise ApplicationError(refusal.message, *kept_for, type=LEDGER_REFUSAL, non_retryable=True) from None


async def signal_ledger(node_id: str, signal: Any, arg: Any) -> None:
    """From another workflow (a task): signal a node's ledger. A ledger that does not run must not fail
    the task: the operator sees the node."""
    handle = workflow.get_external_workflow_handle_for(NodeWorkflow.run, node_workflow_id(node_id))
    try:
        await handle.signal(signal, arg)
    except Exception as error:
        workflow.logger.warning("could not signal the ledger of node %s: %s", node_id, error)
