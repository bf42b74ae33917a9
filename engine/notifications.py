"""Notifications: the optional `notifications.json` of a lab, and the messages the workflows send.

Pure: no Temporal, no Apprise. The URLs are Apprise URLs (one per channel: Slack, Teams, email, ntfy,
a JSON webhook...); `${NAME}` in a URL is taken from the environment when the file is loaded, and a
URL is never printed back whole (`masked`). The workflows build a `Notification` with the builder
functions below and hand it to the lab's LabWorkflow, which delivers it to `targets_for(config, event)`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from .models import Strict


class Event(StrEnum):
    """What a notification is about. Reminders and escalations follow `task_error` (not configurable)."""

    TASK_ERROR = "task_error"
    NODE_ERROR = "node_error"
    WORKER_OFFLINE = "worker_offline"
    WORKER_ONLINE = "worker_online"
    TASK_FINISHED = "task_finished"
    TASK_CANCELLED = "task_cancelled"
    TASK_REMINDER = "task_reminder"
    TASK_ESCALATION = "task_escalation"


# The events a notifications.json may list; a pydantic error names them all.
ConfigEvent = Literal[
    "task_error", "node_error", "worker_offline", "worker_online", "task_finished", "task_cancelled"
]
DEFAULT_EVENTS: list[ConfigEvent] = ["task_error", "node_error", "worker_offline", "worker_online"]
# Sent to the targets of the event they follow.
FOLLOWS = {Event.TASK_REMINDER: Event.TASK_ERROR}

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Schemes whose host is an address, not a secret: the masked form keeps it.
_HOST_SCHEMES = frozenset({"json", "jsons", "xml", "xmls", "form", "forms"})


def masked(url: str) -> str:
    """A URL as it may be printed: the scheme, and for a webhook its host; never a token, a password or
    a path (`slack://***`, `json://127.0.0.1:8765/***`). Masking a masked URL changes nothing."""
    scheme, separator, rest = url.partition("://")
    if not separator or not scheme:
        return "***"
    if scheme.lower() in _HOST_SCHEMES:
        host = re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")[2]
        return f"{scheme}://{host}/***"
    return f"{scheme}://***"


def expand_variables(text: str, environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """`${NAME}` replaced by the variable's value; the names of the variables that are not set."""
    missing: list[str] = []

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            missing.append(name)
            return match.group(0)
        return environ[name]

    return _VARIABLE.sub(value, text), missing


def _check_url(url: str) -> str:
    scheme, separator, rest = url.partition("://")
    if not separator or not scheme or not rest:
        raise ValueError(
            "not a notification URL: write scheme://..., e.g. json://host:port/path, "
            "mailto://user:password@host, slack://tokens (Apprise URLs)"
        )
    return url


class TargetConfig(Strict):
    """One target: an Apprise URL, and the events it gets (default: the file's `events`)."""

    url: str = Field(min_length=1, repr=False)
    events: list[ConfigEvent] | None = None

    @field_validator("url")
    @classmethod
    def _scheme(cls, url: str) -> str:
        return _check_url(url)


class NotificationsConfig(Strict):
    """`notifications.json`. No targets (the default, no file): none configured, nothing is sent."""

    targets: list[TargetConfig] = Field(default_factory=list)
    events: list[ConfigEvent] = Field(default_factory=lambda: list(DEFAULT_EVENTS))
    remind_after_s: float = Field(default=1800.0, gt=0)
    max_reminders: int = Field(default=6, ge=0)
    escalate_after_s: float = Field(default=7200.0, gt=0)
    escalate_to: list[str] = Field(default_factory=list, repr=False)

    @field_validator("targets", mode="before")
    @classmethod
    def _urls_are_targets(cls, targets: Any) -> Any:
        if isinstance(targets, list):
            return [{"url": t} if isinstance(t, str) else t for t in targets]
        return targets

    @field_validator("escalate_to")
    @classmethod
    def _escalation_urls(cls, urls: list[str]) -> list[str]:
        return [_check_url(url) for url in urls]

    @property
    def configured(self) -> bool:
        return bool(self.targets or self.escalate_to)

    def public(self) -> NotificationsConfig:
        """The same configuration with every URL masked: what may be stored and shown (Temporal's
        history, logs); the real URLs stay in the memory of the processes that deliver."""
        targets = [t.model_copy(update={"url": masked(t.url)}) for t in self.targets]
        return self.model_copy(
            update={"targets": targets, "escalate_to": [masked(u) for u in self.escalate_to]}
        )

    def url_at(self, place: str) -> str | None:
        """The URL at `targets[i]` or `escalate_to[i]` (a TargetRef's place), if there is one."""
        match = re.fullmatch(r"(targets|escalate_to)\[(\d+)\]", place)
        if match is None:
            return None
        index = int(match.group(2))
        urls = [t.url for t in self.targets] if match.group(1) == "targets" else self.escalate_to
        return urls[index] if index < len(urls) else None

    def describe(self) -> list[str]:
        """Lines for `config check`: each target masked, with its events."""
        lines = [f"{masked(t.url)}: {', '.join(t.events or self.events)}" for t in self.targets]
        lines += [f"{masked(u)}: escalations" for u in self.escalate_to]
        return lines


class TargetRef(BaseModel):
    """Where a delivery goes: the target's place in notifications.json and its masked URL (never the
    URL itself: this is stored in Temporal's history)."""

    place: str
    label: str


def targets_for(config: NotificationsConfig, event: Event | str) -> list[TargetRef]:
    """The targets of an event: those listing it (or the file's `events`); a reminder goes where its
    task's error went; an escalation to `escalate_to`."""
    event = Event(event)
    if event is Event.TASK_ESCALATION:
        return [
            TargetRef(place=f"escalate_to[{i}]", label=masked(u)) for i, u in enumerate(config.escalate_to)
        ]
    wanted = FOLLOWS.get(event, event).value
    return [
        TargetRef(place=f"targets[{i}]", label=masked(t.url))
        for i, t in enumerate(config.targets)
        if wanted in (t.events or config.events)
    ]


# --- the messages -------------------------------------------------------------------------------------


class Notification(BaseModel):
    """One message to the lab's people. `key` identifies it (subject, event, attempt): every delivery
    carries it, so a receiver can drop a message delivered twice, and the LabWorkflow drops a repeat."""

    event: Event
    key: str
    title: str
    body: str
    task_id: str | None = None
    node_id: str | None = None
    worker: str | None = None
    attempt: int = 1


def notification_key(subject: str, event: Event, attempt: int | str) -> str:
    return f"{subject}/{event.value}/{attempt}"


def operator_commands(task_id: str, node_id: str | None = None) -> list[str]:
    """The exact commands that continue or cancel a task stopped in ERROR. A continue restarts the
    node its step failed on (`node_id`); a cancel leaves it in ERROR, for a restart of its own."""
    restart = f"  (then restart the node: task-scheduler node restart {node_id})" if node_id else ""
    return [
        f"  retry the step:          task-scheduler task continue {task_id}",
        f"  skip to the next step:   task-scheduler task continue {task_id} --mode next",
        f"  cancel the task:         task-scheduler task cancel {task_id}{restart}",
    ]


def decision_lines(task_id: str, node_id: str) -> list[str]:
    """What the operator of a task stopped by a failure on `node_id` decides, said alike by the task's
    messages and the node's: the decision is the task's, and its continue restarts the node."""
    return [
        f"Task {task_id} waits for an operator. Check the device, then decide on the task (a continue "
        f"restarts node {node_id} first):",
        *operator_commands(task_id, node_id),
    ]


def _with_key(lines: list[str], key: str) -> str:
    return "\n".join([*lines, "", f"key: {key}"])


def _notification(event: Event, key: str, title: str, lines: list[str], **about: Any) -> Notification:
    """A message whose body is `lines` and, last, its key (every channel shows it)."""
    return Notification(event=event, key=key, title=title, body=_with_key(lines, key), **about)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class TaskStop:
    """A task stopped in ERROR, waiting for an operator: what every message about that stop says.
    `attempt`: the how-manyth time this task stopped (a new key for each stop)."""

    task_id: str
    workflow_name: str
    step_index: int
    node_id: str
    message: str
    attempt: int

    def lines(self) -> list[str]:
        return [
            f"Task {self.task_id} (workflow {self.workflow_name}) stopped at step {self.step_index + 1}, "
            f"node {self.node_id}:",
            f"  {self.message}",
            *decision_lines(self.task_id, self.node_id),
        ]

    def notification(self, event: Event, key_suffix: str, title: str, *first: str) -> Notification:
        """A message about this stop: `first` lines, then the stop and the commands, then the key."""
        key = notification_key(self.task_id, event, f"{self.attempt}{key_suffix}")
        lines = [*first, *self.lines()]
        return _notification(
            event, key, title, lines, task_id=self.task_id, node_id=self.node_id, attempt=self.attempt
        )


def task_error_notification(stop: TaskStop) -> Notification:
    """A task stopped in ERROR and waits for an operator."""
    title = f"Task {stop.task_id} needs an operator: step {stop.step_index + 1} on {stop.node_id} failed"
    return stop.notification(Event.TASK_ERROR, "", title)


def reminder_notification(stop: TaskStop, reminder_number: int, waiting_s: float) -> Notification:
    """The task still waits, `waiting_s` after it stopped; reminder `reminder_number` (from 1)."""
    return stop.notification(
        Event.TASK_REMINDER,
        f".{reminder_number}",
        f"Reminder {reminder_number}: task {stop.task_id} still waits for an operator ({stop.node_id})",
        f"Reminder {reminder_number}: task {stop.task_id} has waited {_minutes(waiting_s)} for an operator.",
    )


def escalation_notification(stop: TaskStop, waiting_s: float) -> Notification:
    """Nobody acted on the task for `waiting_s`: told to the second list of recipients."""
    waited = _minutes(waiting_s)
    return stop.notification(
        Event.TASK_ESCALATION,
        "",
        f"Escalation: task {stop.task_id} has waited {waited} for an operator",
        f"Escalation: task {stop.task_id} has waited {waited} for an operator and nobody acted.",
    )


def node_error_notification(
    node_id: str, reason: str, attempt: int, waiting_task: str | None = None
) -> Notification:
    """A node went to ERROR. `attempt`: new for each time it does (e.g. a count of its errors).
    `waiting_task`: the task whose step failed there and now waits for an operator, whose decision on
    the task restarts the node (the task's own message says the same)."""
    key = notification_key(f"node {node_id}", Event.NODE_ERROR, attempt)
    lines = [f"Node {node_id} is in ERROR: {reason}"]
    if waiting_task is not None:
        lines += ["No task can use it until it is restarted.", *decision_lines(waiting_task, node_id)]
    else:
        lines += [
            "No task can use it until it is restarted. Check the device, then:",
            f"  task-scheduler node restart {node_id}",
        ]
    return _notification(
        Event.NODE_ERROR,
        key,
        f"Node {node_id} is in ERROR",
        lines,
        node_id=node_id,
        attempt=attempt,
    )


def worker_label(worker: str | None) -> str:
    return worker or "(unnamed)"


def worker_offline_notification(
    worker: str | None, nodes: list[str], since: datetime, episode: int
) -> Notification:
    """A PC's worker has been gone longer than its nodes' `offline_after_s`. `episode`: the how-manyth
    time it went offline (its return has the same number)."""
    label = worker_label(worker)
    key = notification_key(f"worker {label}", Event.WORKER_OFFLINE, episode)
    lines = [
        f"Worker {label} has been offline since {_utc(since)}: no live worker hosts its nodes "
        f"({', '.join(nodes)}).",
        "Tasks that need these nodes wait. Check that the PC is on and reachable, and that its worker runs:",
        f"  task-scheduler worker{f' --name {worker}' if worker else ''}",
    ]
    return _notification(
        Event.WORKER_OFFLINE,
        key,
        f"Worker {label} is offline ({', '.join(nodes)})",
        lines,
        worker=worker,
        attempt=episode,
    )


def worker_online_notification(
    worker: str | None, nodes: list[str], offline_s: float, episode: int
) -> Notification:
    """The worker of an offline notification is back, after `offline_s`."""
    label = worker_label(worker)
    key = notification_key(f"worker {label}", Event.WORKER_ONLINE, episode)
    lines = [
        f"Worker {label} is back after {_minutes(offline_s)} offline: "
        f"its nodes ({', '.join(nodes)}) are hosted again."
    ]
    return _notification(
        Event.WORKER_ONLINE,
        key,
        f"Worker {label} is back online",
        lines,
        worker=worker,
        attempt=episode,
    )


def counted(count: int, thing: str) -> str:
    """`1 step`, `4 steps`."""
    return f"{count} {thing}{'' if count == 1 else 's'}"


def task_finished_notification(
    task_id: str, workflow_name: str, steps: int, skipped: int = 0
) -> Notification:
    """A task finished: its `steps` less the `skipped` ones (an operator's continue, next) were done."""
    key = notification_key(task_id, Event.TASK_FINISHED, 1)
    done = counted(steps - skipped, "step") + " done" + (f", {skipped} skipped" if skipped else "")
    lines = [f"Task {task_id} (workflow {workflow_name}) finished: {done}."]
    return _notification(Event.TASK_FINISHED, key, f"Task {task_id} finished", lines, task_id=task_id)


def task_cancelled_notification(
    task_id: str, workflow_name: str, reason: str | None = None, by: str | None = None
) -> Notification:
    key = notification_key(task_id, Event.TASK_CANCELLED, 1)
    who = f" by {by}" if by else ""
    why = f": {reason}" if reason else ""
    lines = [f"Task {task_id} (workflow {workflow_name}) was cancelled{who}{why}."]
    return _notification(Event.TASK_CANCELLED, key, f"Task {task_id} was cancelled", lines, task_id=task_id)
