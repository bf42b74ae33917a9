"""Which task queues a live worker polls: used by a worker (to refuse a node hosted elsewhere) and by
the API (health, nodes). Client-side code, never imported by a workflow."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

# A poller seen this recently belongs to a live worker (a long poll lasts about a minute).
LIVE_POLLER_WINDOW_S = 70.0
# Identities of workers this process ran and stopped: their pollers linger on the server a while.
stopped_identities: set[str] = set()


async def live_pollers(client: Client, task_queue: str, activities: bool = True) -> list[str]:
    """The identities of the live workers polling `task_queue` (its activity or its workflow side)."""
    kind = TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY if activities else TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
    request = DescribeTaskQueueRequest(
        namespace=client.namespace, task_queue=TaskQueue(name=task_queue), task_queue_type=kind
    )
    response = await client.workflow_service.describe_task_queue(request)
    return [p.identity for p in response.pollers if is_live(p.identity, p.last_access_time.ToDatetime(UTC))]


def is_live(identity: str, last_access: datetime) -> bool:
    """Recent, and, for a worker of this machine, its process still exists (a SIGKILLed worker's
    pollers stay listed for minutes, and it must be restartable at once)."""
    if identity in stopped_identities:
        return False
    if (datetime.now(UTC) - last_access).total_seconds() > LIVE_POLLER_WINDOW_S:
        return False
    pid, _, host = identity.partition("@")
    if host.split("/")[0] == socket.gethostname() and pid.isdigit():
        return _pid_alive(int(pid))
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
