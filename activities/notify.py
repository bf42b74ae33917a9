"""Delivery of notifications through Apprise: one URL per channel (Slack, Teams, email over SMTP, ntfy,
Matrix, a JSON webhook...), so no channel is written by hand here.

The activity holds the real URLs (with their secrets, from notifications.json and the environment);
the workflow names a target by its place in the file and its masked URL only. A send that fails
raises a retryable error: Temporal retries it with backoff (the LabWorkflow's retry policy).
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import quote

from temporalio import activity
from temporalio.exceptions import ApplicationError

from ..engine.contracts import DELIVER_ACTIVITY, DELIVERY_FAILED, TARGET_UNKNOWN
from ..engine.errors import ConfigError, ConfigProblem
from ..engine.lab_state import Delivery, DeliveryResult
from ..engine.notifications import Event, Notification, NotificationsConfig, masked

log = logging.getLogger("task_scheduler.notify")

# Apprise's own notification types (the colour or icon a channel shows).
SEVERITY = {
    Event.TASK_ERROR: "failure",
    Event.NODE_ERROR: "failure",
    Event.TASK_ESCALATION: "failure",
    Event.TASK_REMINDER: "warning",
    Event.WORKER_OFFLINE: "warning",
    Event.WORKER_ONLINE: "success",
    Event.TASK_FINISHED: "success",
    Event.TASK_CANCELLED: "info",
}
# Apprise's generic webhooks: the key and the subject go in the JSON (or form, or XML) as fields, and
# the key in an Idempotency-Key header.
WEBHOOK_SCHEMES = frozenset({"json", "jsons", "form", "forms", "xml", "xmls"})
NOT_UNDERSTOOD = (
    "Apprise does not understand this URL (an unknown scheme, or a part missing or invalid, such as an "
    "email address): check it against the Apprise documentation of its service"
)


def webhook_url(url: str, notification: Notification) -> str:
    """A webhook URL with the notification's key and subject added as payload fields (Apprise's
    `:name=value` arguments) and the key as a header (`+Name=value`); any other URL as it is."""
    scheme = url.partition("://")[0].lower()
    if scheme not in WEBHOOK_SCHEMES:
        return url
    fields = {
        "idempotency_key": notification.key,
        "event": notification.event.value,
        "task_id": notification.task_id,
        "node_id": notification.node_id,
        "worker": notification.worker,
        "attempt": str(notification.attempt),
    }
    arguments = [f":{name}={quote(value, safe='')}" for name, value in fields.items() if value is not None]
    arguments.append(f"+Idempotency-Key={quote(notification.key, safe='')}")
    return url + ("&" if "?" in url else "?") + "&".join(arguments)


def check_targets(config: NotificationsConfig, file: str) -> list[ConfigProblem]:
    """The URLs Apprise does not understand (unknown scheme, a required part missing), located."""
    import apprise  # here, not at the top: a lab without notifications never loads it (~15 MiB)

    places = [(f"$.targets[{i}].url", t.url) for i, t in enumerate(config.targets)]
    places += [(f"$.escalate_to[{i}]", url) for i, url in enumerate(config.escalate_to)]
    return [
        ConfigProblem(file, path, f"{masked(url)}: {NOT_UNDERSTOOD}")
        for path, url in places
        if apprise.Apprise.instantiate(url) is None
    ]


def send(url: str, notification: Notification) -> str | None:
    """Send through Apprise (blocking: run in a thread); None if sent, else what went wrong."""
    import apprise

    sender = apprise.Apprise()
    if not sender.add(webhook_url(url, notification)):
        return NOT_UNDERSTOOD
    result = sender.notify(
        body=notification.body, title=notification.title, notify_type=SEVERITY[notification.event]
    )
    if result:
        return None
    said = [e.message for service in result for e in service.logs() if e.level in ("WARNING", "ERROR")]
    return "; ".join(said) or f"not delivered ({result.status.name})"


class NotifyActivities:
    """`deliver`, on the workflow task queue of a worker that runs the workflows."""

    def __init__(self, config: NotificationsConfig, file: str = "") -> None:
        problems = check_targets(config, file)
        if problems:
            raise ConfigError(problems)
        self.config = config

    @activity.defn(name=DELIVER_ACTIVITY)
    async def deliver(self, delivery: Delivery) -> DeliveryResult:
        """Send one notification to one target; raise (retryable) if it was not accepted."""
        target, notification = delivery.target, delivery.notification
        url = self.config.url_at(target.place)
        if url is None or masked(url) != target.label:
            raise ApplicationError(
                f"this worker has no notification target {target.place} = {target.label} (notifications.json "
                "differs from the one the lab was configured with): give every worker that runs the "
                "workflows the same notifications.json",
                type=TARGET_UNKNOWN,  # retried: another worker that runs the workflows may have it
            )
        attempt = activity.info().attempt
        error = await asyncio.to_thread(send, url, notification)
        if error is not None:
            log.warning(
                "notification %s to %s not delivered (attempt %d): %s",
                notification.key,
                target.label,
                attempt,
                error,
            )
            raise ApplicationError(f"{target.label}: {error}", type=DELIVERY_FAILED)
        log.info("notification %s delivered to %s (attempt %d)", notification.key, target.label, attempt)
        return DeliveryResult(attempts=attempt)
