"""A notification survives the crash of the worker that should send it: a `task-scheduler worker`
subprocess frozen before the signal reaches it and SIGKILLed, then started again, still delivers it,
once, to a real webhook and a real SMTP server on loopback."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta

from crash_lab import MakeLab, StartWorker
from notify_receivers import Mailbox, Webhook, text_of
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError

from task_scheduler.devserver import DevServer
from task_scheduler.engine.contracts import lab_workflow_id
from task_scheduler.engine.lab_state import LabStatus
from task_scheduler.engine.notifications import TaskStop, task_error_notification
from task_scheduler.workflows.lab import LabWorkflow

# After a SIGKILL the workflow task handed to the dead worker times out (10 s) before another takes it.
AFTER_RESTART_S = 40.0


async def lab_status(client: Client, task_queue: str, timeout_s: float = 30.0) -> LabStatus:
    """The LabWorkflow's status once a worker answers for it."""
    handle = client.get_workflow_handle_for(LabWorkflow.run, lab_workflow_id(task_queue))
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await handle.query(LabWorkflow.status, rpc_timeout=timedelta(seconds=2))
        except (RPCError, WorkflowQueryFailedError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def test_notification_signalled_to_a_killed_worker_is_delivered_after_its_restart(
    temporal_server: DevServer,
    temporal_client: Client,
    task_queue: str,
    make_lab: MakeLab,
    start_worker: StartWorker,
    webhook: Webhook,
    mailbox: Mailbox,
) -> None:
    lab = make_lab(nodes={"a": {}}, workflows={"one": ["a"]})
    (lab.folder / "notifications.json").write_text(json.dumps({"targets": [webhook.url, mailbox.url]}))
    node = next(iter(n.id for n in lab.lab.nodes))
    worker = start_worker(lab, temporal_server.address, task_queue)
    await lab_status(temporal_client, task_queue)  # the worker started the LabWorkflow and runs it

    worker.freeze()  # it can take nothing from the server now
    notification = task_error_notification(
        TaskStop("task-crash-1", "one", 0, node, "the lid did not open", attempt=1)
    )
    handle = temporal_client.get_workflow_handle_for(LabWorkflow.run, lab_workflow_id(task_queue))
    await handle.signal(LabWorkflow.notify, notification)
    worker.kill()
    assert not webhook.messages() and not mailbox.messages()

    start_worker(lab, temporal_server.address, task_queue)
    deadline = time.monotonic() + AFTER_RESTART_S
    while not (webhook.messages() and mailbox.messages()):
        assert time.monotonic() < deadline, f"not delivered within {AFTER_RESTART_S} s of the restart"
        await asyncio.sleep(0.1)
    [message] = webhook.messages()
    assert message["idempotency_key"] == notification.key
    assert "task-scheduler task continue task-crash-1" in message["message"]
    [mail] = mailbox.messages()
    assert "the lid did not open" in text_of(mail)
    # Received is not yet recorded: the LabWorkflow counts a delivery once its activity's end reaches it.
    status = await lab_status(temporal_client, task_queue)
    while not (status.sent == 2 and not status.in_flight) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        status = await lab_status(temporal_client, task_queue)
    assert status.sent == 2 and not status.in_flight
