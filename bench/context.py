"""What every workload uses: the parameters, the HTTP API and the plain Temporal client, task starts and
waits for ours and for the baseline, and per-process peak memory and CPU over a workload."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import baseline
import httpx
from report import Row
from stack import BenchStack, cpu_s, peak_rss_mib, reset_peak_rss
from temporalio.client import Client, WorkflowExecutionDescription

T = TypeVar("T")
WORKFLOW = "bench-5"
STEPS = 5
WAIT_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Params:
    w1_tasks: int = 20
    w1_warmup: int = 2
    w2_tasks: int = 100
    w2_sleep_s: float = 0.05
    w3_starts: int = 500
    w3_concurrency: int = 16
    w4_tasks: int = 10
    w4_sleep_s: float = 2.0
    w4_kill_after_s: float = 3.0
    w5_tasks: int = 20
    w5_sleep_s: float = 1.0
    w6_tasks: int = 20


QUICK = Params(w1_tasks=10, w2_tasks=50, w3_starts=100, w4_tasks=5, w5_tasks=10, w5_sleep_s=0.5, w6_tasks=8)


def ideal_makespan_s(tasks: int, sleep_s: float) -> float:
    """A perfect pipeline: the first node busy without a gap, then the last task's other four steps."""
    return tasks * sleep_s + (STEPS - 1) * sleep_s


@dataclass
class Usage:
    """Peak RSS (MiB) and CPU seconds of each process over one workload."""

    peak_mib: dict[str, float | None] = field(default_factory=dict)
    cpu_s: dict[str, float] = field(default_factory=dict)


class Bench:
    def __init__(self, stack: BenchStack, params: Params) -> None:
        self.stack = stack
        self.params = params
        assert stack.client is not None
        self.client: Client = stack.client
        self.http = httpx.AsyncClient(
            base_url=stack.api_url,
            headers={"Authorization": f"Bearer {stack.token}"},
            timeout=WAIT_TIMEOUT_S,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=200),
        )
        self.rows: list[Row] = []

    def add(self, *rows: Row) -> None:
        for row in rows:
            print(f"  {row.text()}", flush=True)
        self.rows.extend(rows)

    # --- ours, through the HTTP API ----------------------------------------------------------------

    async def start_ours(self, task_id: str, sleep_s: float, workflow: str | None = None) -> int:
        body = {"workflow_name": workflow or WORKFLOW, "args": {"sleep_s": sleep_s}, "id": task_id}
        try:
            response = await self.http.post("/tasks", json=body)
        except httpx.HTTPError:
            return 0
        return response.status_code

    async def api(self, method: str, path: str, body: Any = None) -> Any:
        response = await self.http.request(method, path, json=body)
        response.raise_for_status()
        return response.json()

    # --- the baseline, with the plain client -------------------------------------------------------

    async def start_plain(self, task_id: str, sleep_s: float) -> None:
        task = baseline.PlainTask(task_id, sleep_s, str(self.stack.plain_log), baseline.NODES)
        await self.client.start_workflow(
            baseline.PlainWorkflow.run, task, id=task_id, task_queue=baseline.WORKFLOW_QUEUE
        )

    # --- both --------------------------------------------------------------------------------------

    async def result(self, task_id: str) -> Any:
        return await asyncio.wait_for(self.client.get_workflow_handle(task_id).result(), WAIT_TIMEOUT_S)

    async def describe(self, task_id: str) -> WorkflowExecutionDescription:
        return await self.client.get_workflow_handle(task_id).describe()

    async def server_time_s(self, task_id: str) -> float:
        """Start to close of the workflow execution, as the server recorded them."""
        description = await self.describe(task_id)
        assert description.close_time is not None
        return (description.close_time - description.start_time).total_seconds()

    async def measured(self, work: Callable[[], Awaitable[T]]) -> tuple[T, Usage]:
        """Run `work`, with each process's peak RSS reset before and read after, and its CPU time."""
        pids = self._pids()
        for pid in pids.values():
            reset_peak_rss(pid)
        before = {name: cpu_s(pid) for name, pid in pids.items()}
        result = await work()
        usage = Usage(
            peak_mib={name: peak_rss_mib(pid) for name, pid in pids.items()},
            cpu_s={name: cpu_s(pid) - before[name] for name, pid in pids.items()},
        )
        return result, usage

    def _pids(self) -> dict[str, int]:
        pids = {name: proc.pid for name, proc in self.stack.procs.items() if proc.alive()}
        if self.stack.server.pid is not None:
            pids["server"] = self.stack.server.pid
        return pids

    async def close(self) -> None:
        await self.http.aclose()


async def bounded(limit: int, calls: Iterable[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run the calls with at most `limit` in flight; results in order."""
    semaphore = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await call()

    return list(await asyncio.gather(*(one(call) for call in calls)))


def elapsed_since(start: float) -> float:
    return time.perf_counter() - start
