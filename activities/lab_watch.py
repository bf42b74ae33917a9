"""Which PCs' workers are online, for the LabWorkflow: the API's liveness rules (readers/liveness.py),
read from the server's poller lists and the nodes' ledgers."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client

from ..engine.contracts import CHECK_WORKERS_ACTIVITY
from ..engine.lab_state import WorkerCheck, WorkerPlan, WorkerSeen, WorkersSeen
from ..readers.liveness import LabLiveness, LivenessReader
from ..settings import Settings

RPC_TIMEOUT_S = 5.0  # a check is repeated every few seconds: never wait long for one answer


class WatchActivities:
    """`check_workers`, on the workflow task queue of a worker that runs the workflows."""

    def __init__(self, client: Client, task_queue: str) -> None:
        # The reader needs only these settings; the worker's own were read from its environment already.
        settings = Settings.model_construct(task_queue=task_queue, rpc_timeout_s=RPC_TIMEOUT_S)
        self.reader = LivenessReader(client, settings)

    @activity.defn(name=CHECK_WORKERS_ACTIVITY)
    async def check_workers(self, check: WorkerCheck) -> WorkersSeen:
        live = await self.reader.lab([node for worker in check.workers for node in worker.nodes])
        return WorkersSeen(workers=[seen(worker, live) for worker in check.workers])


def seen(worker: WorkerPlan, live: LabLiveness) -> WorkerSeen:
    """Online if one of its nodes is; else offline since the latest of its nodes' (if known)."""
    nodes = [live.nodes[node_id] for node_id in worker.nodes]
    online = any(n.online for n in nodes)
    since = None if online else max((t for n in nodes if (t := n.offline_since)), default=None)
    return WorkerSeen(name=worker.name, online=online, offline_since=since)
