"""When a task waiting for an operator reminds people, and when it escalates: pure timing, so the
TaskWorkflow's durable timer and the tests agree on it."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from .notifications import Event, NotificationsConfig, targets_for


class NotifyPolicy(BaseModel):
    """What a task tells the lab's people, fixed when it starts (from notifications.json)."""

    events: list[str] = Field(default_factory=list)  # the task events some target takes
    remind_after_s: float = 1800.0
    max_reminders: int = 6
    escalate_after_s: float | None = None  # None: no escalation list

    def wants(self, event: Event) -> bool:
        return event.value in self.events


def notify_policy(config: NotificationsConfig) -> NotifyPolicy | None:
    """The policy a task carries; None when nobody would be told anything of a task."""
    events = [
        e for e in (Event.TASK_ERROR, Event.TASK_FINISHED, Event.TASK_CANCELLED) if targets_for(config, e)
    ]
    if not events:
        return None
    escalate = config.escalate_after_s if config.escalate_to else None
    return NotifyPolicy(
        events=[e.value for e in events],
        remind_after_s=config.remind_after_s,
        max_reminders=config.max_reminders,
        escalate_after_s=escalate,
    )


class Alarm(StrEnum):
    REMINDER = "reminder"
    ESCALATION = "escalation"


class WaitAlarms(BaseModel):
    """The reminders and the escalation of one stop in ERROR, so far."""

    reminders_sent: int = 0
    escalated: bool = False

    def next(self, policy: NotifyPolicy, waited_s: float) -> tuple[Alarm, float] | None:
        """The next alarm and how long until it, after `waited_s` of waiting; None: no more."""
        due: list[tuple[float, Alarm]] = []
        if self.reminders_sent < policy.max_reminders:
            due.append(((self.reminders_sent + 1) * policy.remind_after_s, Alarm.REMINDER))
        if policy.escalate_after_s is not None and not self.escalated:
            due.append((policy.escalate_after_s, Alarm.ESCALATION))
        if not due:
            return None
        at_s, alarm = min(due)
        return alarm, max(0.0, at_s - waited_s)
