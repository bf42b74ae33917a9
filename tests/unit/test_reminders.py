"""When a task waiting for an operator reminds and escalates."""

from __future__ import annotations

from task_scheduler.engine.reminders import Alarm, NotifyPolicy, WaitAlarms

POLICY = NotifyPolicy(events=["task_error"], remind_after_s=600, max_reminders=2, escalate_after_s=1500)


def test_alarms_come_in_time_order_reminders_then_the_escalation_then_none() -> None:
    alarms = WaitAlarms()
    assert alarms.next(POLICY, 0) == (Alarm.REMINDER, 600)
    alarms.reminders_sent = 1
    assert alarms.next(POLICY, 610) == (Alarm.REMINDER, 590)
    alarms.reminders_sent = 2
    assert alarms.next(POLICY, 1210) == (Alarm.ESCALATION, 290)
    alarms.escalated = True
    assert alarms.next(POLICY, 1500) is None


def test_an_alarm_overdue_after_a_restart_sounds_at_once_and_no_escalation_without_a_list() -> None:
    policy = POLICY.model_copy(update={"escalate_after_s": None})
    assert WaitAlarms().next(policy, 5000) == (Alarm.REMINDER, 0.0)
    assert WaitAlarms(reminders_sent=2).next(policy, 5000) is None
