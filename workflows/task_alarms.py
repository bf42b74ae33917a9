"""What a TaskWorkflow tells the lab's people: when it stops for an operator, reminders and one escalation
while nobody decides (on a durable timer, so they go on through restarts of every process), and its end.
The LabWorkflow delivers them (workflows/lab.py); notifications.json, as it was when the task started,
says who wants what (TaskSpec.notify).
"""

from __future__ import annotations

import builtins
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ..engine.notifications import (
        Event,
        Notification,
        TaskStop,
        escalation_notification,
        reminder_notification,
        task_cancelled_notification,
        task_error_notification,
    )
    from ..engine.reminders import Alarm, WaitAlarms
    from ..engine.task_state import StepRecord, TaskMemory, TaskStatus
    from ..engine.tasks import TaskSpec
    from .lab import tell_lab


class TaskAlarms:
    """The part of TaskWorkflow that waits for an operator's decision and tells people meanwhile."""

    spec: TaskSpec
    memory: TaskMemory
    status: TaskStatus

    async def _await_decision(self, record: StepRecord) -> None:
        """Wait for the operator's decision; meanwhile tell people, remind them and escalate, on a
        durable timer (it runs through restarts of every process and stops when an operator acts)."""
        self.memory.stops += 1
        policy = self.spec.notify

        def decided() -> bool:
            return self._decision_about(record.id)

        if policy is None or not policy.wants(Event.TASK_ERROR):
            await workflow.wait_condition(decided)
            return
        stopped_at, alarms = workflow.now(), WaitAlarms()
        await self._tell(task_error_notification(self._stop(record)))
        while (alarm := alarms.next(policy, _waited_s(stopped_at))) is not None:
            try:
                await workflow.wait_condition(
                    decided,
                    timeout=timedelta(seconds=alarm[1]),
                    timeout_summary=_alarm_summary(alarm[0], record),
                )
                return
            except builtins.TimeoutError:
                await self._sound(alarm[0], alarms, record, _waited_s(stopped_at))
        await workflow.wait_condition(decided)

    def _decision_about(self, step_id: str) -> bool:
        """An operator's continue about this step (a failed one, or a running wait) awaits it."""
        decision = self.memory.decision
        return decision is not None and decision.step == step_id

    async def _sound(self, alarm: Alarm, alarms: WaitAlarms, record: StepRecord, waited_s: float) -> None:
        stop = self._stop(record)
        if alarm is Alarm.ESCALATION:
            alarms.escalated = True
            await self._tell(escalation_notification(stop, waited_s))
            return
        alarms.reminders_sent += 1
        await self._tell(reminder_notification(stop, alarms.reminders_sent, waited_s))

    def _stop(self, record: StepRecord) -> TaskStop:
        # This step's own reason: with branches, the task's reason is the last failure's, maybe another's.
        reason = self.memory.failures.get(record.id) or self.status.reason or "the step failed"
        return TaskStop(
            self.status.task_id,
            self.spec.workflow_name,
            record.index,
            record.node or "",
            reason,
            self.memory.stops,
        )

    async def _tell(self, notification: Notification) -> None:
        await tell_lab(workflow.info().task_queue, notification)

    async def _tell_if_wanted(self, event: Event, notification: Notification) -> None:
        if self.spec.notify is not None and self.spec.notify.wants(event):
            await self._tell(notification)

    def _cancelled_notification(self) -> Notification:
        cancel = next((d for d in reversed(self.status.decisions) if d.command == "cancel"), None)
        reason, by = (cancel.reason, cancel.by) if cancel else (None, None)
        return task_cancelled_notification(self.status.task_id, self.spec.workflow_name, reason, by)


def _alarm_summary(alarm: Alarm, record: StepRecord) -> str:
    """The timer's name in the Temporal UI (user metadata: not part of a replay's checks)."""
    step = f"step {record.index + 1} on node {record.node}"
    if alarm is Alarm.ESCALATION:
        return f"escalate: the task still waits in ERROR at {step}"
    return f"remind the operator: the task waits in ERROR at {step}"


def _waited_s(since: datetime) -> float:
    return float((workflow.now() - since).total_seconds())
