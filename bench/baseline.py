"""The baseline: the bench's five steps as plain activities in a plain Temporal workflow (no gate, no
ledger, no state machine), one task queue per node, node exclusivity left to one-slot task queues
(`max_concurrent_activities=1` on each node queue's worker).

`python bench/baseline.py --address HOST:PORT` runs its worker (as a subprocess of the bench, so its
memory and CPU can be read apart); the bench starts its workflows with the plain Temporal client.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

WORKFLOW_QUEUE = "bench-plain"
NODES = [f"node-{i}" for i in range(1, 6)]


def plain_queue(node: str) -> str:
    return f"plain-{node}"


@dataclass
class PlainTask:
    task_id: str
    sleep_s: float
    log: str
    nodes: list[str]


@dataclass
class PlainStep:
    task_id: str
    node: str
    step: int
    sleep_s: float
    log: str


@activity.defn
def plain_step(step: PlainStep) -> None:
    """What a bench node's driver does (the same log lines as bench/lab/bench_nodes.py, n always 1)."""
    _log(step, "start")
    if step.sleep_s > 0:
        time.sleep(step.sleep_s)
    _log(step, "end")


def _log(step: PlainStep, event: str) -> None:
    line = f"{event} {time.time():.6f} {step.task_id} {step.node} {step.step} 1 {os.getpid()}\n"
    with open(step.log, "a", encoding="utf-8") as log:
        log.write(line)


@workflow.defn
class PlainWorkflow:
    @workflow.run
    async def run(self, task: PlainTask) -> int:
        for index, node in enumerate(task.nodes, start=1):
            await workflow.execute_activity(
                plain_step,
                PlainStep(task.task_id, node, index, task.sleep_s, task.log),
                task_queue=plain_queue(node),
                start_to_close_timeout=timedelta(minutes=10),
            )
        return len(task.nodes)


def workers(client: Client, executor: ThreadPoolExecutor) -> list[Worker]:
    plain = [Worker(client, task_queue=WORKFLOW_QUEUE, workflows=[PlainWorkflow])]
    for node in NODES:
        plain.append(
            Worker(
                client,
                task_queue=plain_queue(node),
                activities=[plain_step],
                activity_executor=executor,
                max_concurrent_activities=1,
            )
        )
    return plain


async def serve(address: str) -> None:
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    with ThreadPoolExecutor(max_workers=len(NODES) + 1) as executor:
        running = workers(client, executor)
        tasks = [asyncio.create_task(w.run()) for w in running]
        print(
            f"baseline worker {os.getpid()} polls {WORKFLOW_QUEUE} and {len(NODES)} node queues", flush=True
        )
        await stop.wait()
        await asyncio.gather(*(w.shutdown() for w in running))
        await asyncio.gather(*tasks, return_exceptions=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", required=True, help="Temporal frontend host:port")
    asyncio.run(serve(parser.parse_args().address))
    return 0


if __name__ == "__main__":
    # Run as module `baseline`, not `__main__`: the workflow sandbox re-imports a workflow's module by name.
    import baseline

    sys.exit(baseline.main())
