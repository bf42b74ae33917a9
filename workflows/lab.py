"""LabWorkflow: one per lab (id `lab-<workflow task queue>`), started by every worker that runs the
workflows. It delivers the lab's notifications and watches its PCs' workers.

A workflow tells it something with `tell_lab` (a signal: durable from the moment it is sent, so a crash
between the event and the send loses nothing). Each notification goes to each of its targets through
one `deliver` activity, retried with backoff for a day; the outcome, and the last error of a delivery
that failed, stay in its state (`status` query) and in the log. Every `check_every_s` it asks which
workers are online (`check_workers`): a worker gone longer than its nodes' `offline_after_s` gives one
`worker_offline`, its return one `worker_online`. Its whole state is one LabState, handed on by
continue-as-new; deliveries under way then are cancelled and scheduled again by the new run.

Imports no other workflow module (task.py and node.py import this one) and no activity module: the
activities are named (engine/lab_state.py).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from ..engine.contracts import (
        CHECK_WORKERS_ACTIVITY,
        DELIVER_ACTIVITY,
        INTAKE_MEMO,
        LAB_WORKFLOW_TYPE,
        lab_workflow_id,
    )
    from ..engine.lab_state import (
        Delivery,
        DeliveryRecord,
        DeliveryResult,
        IntakeAnswer,
        IntakeChange,
        LabPlan,
        LabState,
        LabStatus,
        PausedByStop,
        TaskIntake,
        WorkerCheck,
        WorkersSeen,
        observe,
    )
    from ..engine.notifications import Notification, targets_for

MAX_RETRY_INTERVAL = timedelta(minutes=10)
# One send: Apprise's own connect and read timeouts are seconds; a worker killed in the middle of one
# is noticed after this, and the send is tried again.
DELIVERY_ATTEMPT_TIMEOUT = timedelta(seconds=60)
CHECK_TIMEOUT = timedelta(seconds=30)


@workflow.defn(name=LAB_WORKFLOW_TYPE)
class LabWorkflow:
    @workflow.init
    def __init__(self, state: LabState) -> None:
        self.state = state
        self._sending: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._handing_over = False
        self._checks = 0

    @workflow.run
    async def run(self, state: LabState) -> None:
        for delivery in list(self.state.in_flight):  # handed on by the previous run
            if delivery.ident not in self._sending:  # (a signal handled before this line started it)
                self._start(delivery)
        while not self._should_continue_as_new():
            await self._wait_and_check()
        await self._hand_over()

    @workflow.signal
    def notify(self, notification: Notification) -> None:
        """Deliver a notification to its targets (a repeat of a key already seen is dropped)."""
        self._accept(notification)

    @workflow.signal
    def configure(self, plan: LabPlan) -> None:
        """A worker that runs the workflows started: the lab as its configuration says."""
        self.state.plan = plan
        self.state.forget_unplanned()

    @workflow.query
    def status(self) -> LabStatus:
        return LabStatus.of(self.state)

    @workflow.update
    def set_intake(self, change: IntakeChange) -> IntakeAnswer:
        """Stop or start taking new tasks (the seed's orchestrator stop and start); the intake before.
        The memo says it too, for the API to read without a worker (describe)."""
        answer = self.state.intake.change(change, workflow.now())
        if answer.before.accepting != change.accepting:
            workflow.upsert_memo({INTAKE_MEMO: change.accepting})
        return answer

    @workflow.update
    def note_paused(self, paused: PausedByStop) -> bool:
        """The tasks a stop paused, for the next start to resume; False if a start came meanwhile."""
        return self.state.intake.note_paused(paused)

    @workflow.query
    def intake(self) -> TaskIntake:
        return self.state.intake

    # --- deliveries -------------------------------------------------------------------------------

    def _accept(self, notification: Notification) -> None:
        if not self.state.accept(notification):
            workflow.logger.info("notification %s was delivered already: dropped", notification.key)
            return
        targets = targets_for(self.state.plan.notifications, notification.event)
        if not targets:
            workflow.logger.info("notification %s: no target takes %s", notification.key, notification.event)
        for target in targets:
            delivery = Delivery(notification=notification, target=target, first_at=workflow.now())
            self.state.in_flight.append(delivery)
            if not self._handing_over:
                self._start(delivery)

    def _start(self, delivery: Delivery) -> None:
        self._sending[delivery.ident] = asyncio.create_task(self._send(delivery))

    async def _send(self, delivery: Delivery) -> None:
        left = timedelta(seconds=self.state.delivery_deadline_s) - (workflow.now() - delivery.first_at)
        try:
            if left <= timedelta(0):
                raise TimeoutError("its day of retries was over")
            result = await workflow.execute_activity(
                DELIVER_ACTIVITY,
                delivery,
                result_type=DeliveryResult,
                task_queue=workflow.info().task_queue,
                schedule_to_close_timeout=left,
                start_to_close_timeout=DELIVERY_ATTEMPT_TIMEOUT,
                retry_policy=self._delivery_retry(),
                summary=f"{delivery.notification.key} to {delivery.target.label}",
            )
            self._ended(delivery, sent=True, attempts=result.attempts)
        except (ActivityError, TimeoutError, asyncio.CancelledError) as error:
            if self._handing_over and is_cancelled_exception(error):
                return  # still in flight: the next run sends it
            if isinstance(error, asyncio.CancelledError):
                raise
            why = failure_text(error)
            workflow.logger.warning(
                "notification %s to %s failed: %s", delivery.notification.key, delivery.target.label, why
            )
            self._ended(delivery, sent=False, error=why)

    def _delivery_retry(self) -> RetryPolicy:
        first = timedelta(seconds=self.state.delivery_retry_s)
        return RetryPolicy(
            initial_interval=first, backoff_coefficient=2.0, maximum_interval=MAX_RETRY_INTERVAL
        )

    def _ended(self, delivery: Delivery, sent: bool, attempts: int = 0, error: str | None = None) -> None:
        record = DeliveryRecord(
            key=delivery.notification.key,
            event=delivery.notification.event,
            target=delivery.target.label,
            sent=sent,
            attempts=attempts,
            first_at=delivery.first_at,
            ended_at=workflow.now(),
            error=error,
        )
        self.state.ended(delivery, record)
        self._sending.pop(delivery.ident, None)

    # --- workers ----------------------------------------------------------------------------------

    async def _wait_and_check(self) -> None:
        if not self.state.plan.watches_workers:
            await workflow.wait_condition(
                lambda: self.state.plan.watches_workers or self._should_continue_as_new()
            )
            return
        try:
            await workflow.wait_condition(
                self._should_continue_as_new,
                timeout=timedelta(seconds=self.state.plan.check_every_s),
                timeout_summary="check which PCs are online",
            )
        except TimeoutError:
            await self._check_workers()

    async def _check_workers(self) -> None:
        self._checks += 1
        plan = self.state.plan
        try:
            answer = await workflow.execute_activity(
                CHECK_WORKERS_ACTIVITY,
                WorkerCheck(workers=plan.workers),
                result_type=WorkersSeen,
                task_queue=workflow.info().task_queue,
                start_to_close_timeout=CHECK_TIMEOUT,
                retry_policy=RetryPolicy(maximum_attempts=1),
                summary="which workers are online?",
            )
        except ActivityError as error:
            workflow.logger.warning("could not check the workers: %s", error.cause or error)
            return
        seen = {worker.name: worker for worker in answer.workers}
        for worker in plan.workers:
            if worker.name in seen:
                notification = observe(self.state.watch(worker), worker, seen[worker.name], workflow.now())
                if notification is not None:
                    self._accept(notification)

    # --- continue-as-new --------------------------------------------------------------------------

    def _should_continue_as_new(self) -> bool:
        return self._checks >= self.state.checks_per_run or workflow.info().is_continue_as_new_suggested()

    async def _hand_over(self) -> None:
        """Cancel the deliveries under way (they stay in `in_flight`), then continue as new."""
        self._handing_over = True
        sending = list(self._sending.values())
        for task in sending:
            task.cancel()
        await asyncio.gather(*sending, return_exceptions=True)
        await workflow.wait_condition(workflow.all_handlers_finished)
        self.state.runs += 1
        workflow.continue_as_new(self.state)


def failure_text(error: BaseException) -> str:
    """What went wrong, from the activity's failure down to the last attempt's own error (a delivery
    given up at its deadline says so, then why its last attempt failed)."""
    messages = []
    cause: BaseException | None = error.cause if isinstance(error, ActivityError) else error
    while cause is not None:
        messages.append(getattr(cause, "message", None) or str(cause))
        cause = getattr(cause, "cause", None)
    return ": ".join(messages) or str(error)


async def tell_lab(task_queue: str, notification: Notification) -> None:
    """From a workflow: hand a notification to the lab's LabWorkflow (`task_queue`: the workflow task
    queue, `workflow.info().task_queue`). A failure (no LabWorkflow) is logged, never raised: telling
    people must never fail a task."""
    handle = workflow.get_external_workflow_handle(lab_workflow_id(task_queue))
    try:
        await handle.signal(LabWorkflow.notify, notification)
    except Exception as error:
        workflow.logger.warning("could not hand notification %s to the lab: %s", notification.key, error)
