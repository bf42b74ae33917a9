"""Which task queues a live worker polls: used by a worker (to refuse a node hosted elsewhere), by the
API (health, nodes, workers) and by the lab's watch of its PCs."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

# A poller seen this recently belongs to a live worker. An idle worker polls again when its long poll
# expires: the lab's server (`dev`, `server`, the compose file) sets that to 10 s, and a live idle
# poller's last access was measured at most 9.9 s old over 2 minutes: 20 s is the long poll with a
# 10 s margin (clock skew between this host and the server included), so a live worker is never counted
# dead, and a dead one is counted dead within 20 s. A Temporal cluster with the default 60 s long polls
# needs TASK_SCHEDULER_LIVE_POLLER_WINDOW_S=70.
DEFAULT_LIVE_POLLER_WINDOW_S = 20.0
LIVE_POLLER_WINDOW_S = float(
    os.environ.get("TASK_SCHEDULER_LIVE_POLLER_WINDOW_S") or DEFAULT_LIVE_POLLER_WINDOW_S
)
# Identities of workers this process ran and stopped: their pollers linger on the server a while.
stopped_identities: set[str] = set()


@dataclass(frozen=True)
class Poller:
    """One worker process polling a task queue, as the server lists it (for minutes after it stopped)."""

    identity: str
    last_access: datetime
    live: bool

    @property
    def host(self) -> str:
        """The host in our workers' identity `pid@host/suffix` (or the identity itself)."""
        _, at, rest = self.identity.partition("@")
        return rest.split("/")[0] if at else self.identity


async def queue_pollers(client: Client, task_queue: str, activities: bool = True) -> list[Poller]:
    """Every worker the server lists as polling `task_queue` (its activity or its workflow side)."""
    kind = TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY if activities else TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
    request = DescribeTaskQueueRequest(
        namespace=client.namespace, task_queue=TaskQueue(name=task_queue), task_queue_type=kind
    )
    response = await client.workflow_service.describe_task_queue(request)
    pollers = []
    for poller in response.pollers:
        last_access = poller.last_access_time.ToDatetime(UTC)
        pollers.append(Poller(poller.identity, last_access, is_live(poller.identity, last_access)))
    return pollers


async def live_pollers(client: Client, task_queue: str, activities: bool = True) -> list[str]:
    """The identities of the live workers polling `task_queue` (its activity or its workflow side)."""
    return [p.identity for p in await queue_pollers(client, task_queue, activities) if p.live]


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
