"""A worker process: the workflow queue (tasks and ledgers), and one queue per node it hosts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio.client import Client, RPCTimeoutOrCancelledError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError
from temporalio.worker import Worker

from .activities import metrics
from .activities.holds import HoldActivities
from .activities.host import PROBE_EVERY_S, NodeHost, ObserverFactory
from .activities.lab_watch import WatchActivities
from .activities.node_ops import NodeActivities
from .activities.notify import NotifyActivities
from .activities.recovery import close_if_ended, fail_lost_run
from .activities.steps import StepActivities
from .client.handles import ledger_handle, start_ledger
from .engine.config import LabConfig, build_node, driver_digest
from .engine.contracts import DEFAULT_TASK_QUEUE, NodeInput, lab_workflow_id, node_task_queue
from .engine.errors import NodeAlreadyHostedError, TaskSchedulerError
from .engine.lab_state import LabState, lab_plan
from .engine.ledger import LedgerState, NodeCommand, Reachability, WorkerInfo, step_of
from .engine.nodes import BaseNode
from .readers.pollers import live_pollers, stopped_identities
from .workflows.lab import LabWorkflow
from .workflows.node import NodeWorkflow
from .workflows.sandbox import workflow_runner
from .workflows.task import TaskWorkflow

log = logging.getLogger("task_scheduler.worker")

# A workflow cached on a killed worker would answer nothing until this timeout (10 s by default).
STICKY_TIMEOUT = timedelta(seconds=1)
OFFLINE_RPC_TIMEOUT = timedelta(seconds=2)
OFFLINE_DEADLINE = timedelta(seconds=3)  # for all the hosted nodes together, on a clean stop
# A cancellation reaches a step only in the answer to a heartbeat, and the SDK sends heartbeats at most
# every 0.8 x the heartbeat timeout by default (24 s for 30 s): an operator's cancel must stop a driver
# within a second or so, not half a minute later. Zero, not a second: the step's "running" heartbeat
# must reach the server before the driver acts, or a worker killed in that window leaves "waiting" as
# the last word and the crash is reconciled as lost-while-waiting (measured: 1 s throttle, kill 0.5 s
# into a step). `Heartbeat` itself paces the beats ("running" at once, then every 1 s; "waiting" every 10 s).
HEARTBEAT_THROTTLE = timedelta(0)

EMULATION_BANNER = """
###############################################################################
#  EMULATION MODE: no driver is called. Every node waits its emulated         #
#  duration and succeeds or fails at its emulated rate. Nothing moves.        #
###############################################################################
"""


@dataclass
class WorkerOptions:
    lab: LabConfig
    name: str | None = None
    task_queue: str = DEFAULT_TASK_QUEUE
    run_workflows: bool = True
    host_nodes: bool = True  # False: the server host's workflows-only worker
    emulate: bool = False
    grace_s: float = 30.0
    node_uses_per_run: int = 500
    holder_check_s: float = 60.0
    lab_check_s: float = 10.0  # how often the LabWorkflow asks which PCs' workers are online
    probe_every_s: float = PROBE_EVERY_S  # how often each driver's is_reachable() is asked
    # `--metrics-port`: this worker's metrics on metrics_host:metrics_port, with the SDK's (its runtime's
    # exporter on 127.0.0.1:sdk_metrics_port, activities/metrics.py) appended. None: no metrics served.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    sdk_metrics_port: int | None = None
    # The drivers to run, by node id, when the lab built them itself (a GLAS project's orchestrator);
    # None: each hosted node's driver is built from the configuration.
    drivers: dict[str, BaseNode] | None = None
    observers: ObserverFactory | None = None  # the lab's own code around each step (GLAS task hooks)
    identity: str = field(
        default_factory=lambda: f"{os.getpid()}@{socket.gethostname()}/{uuid.uuid4().hex[:6]}"
    )


class LabWorker:
    """Runs until `stop()`; `async with LabWorker(client, options):` in tests."""

    def __init__(self, client: Client, options: WorkerOptions) -> None:
        self.client = client
        self.options = options
        hosted = options.lab.nodes_of_worker(options.name) if options.host_nodes else []
        self.node_ids = [n.id for n in hosted]
        self.host: NodeHost | None = None
        self._stack = contextlib.AsyncExitStack()  # the workflows worker, metrics
        # The node queues' workers stop first, so that the ends of the steps that finish meanwhile still
        # reach their ledgers while this process runs the ledgers' workflows (see `stop`).
        self._node_workers = contextlib.AsyncExitStack()

    async def __aenter__(self) -> LabWorker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        if self.options.emulate:
            log.warning(EMULATION_BANNER)
        if self.options.name is not None and self.options.host_nodes:
            self.options.lab.check_worker(self.options.name)
        await refuse_hosted_nodes(self.client, self.node_ids)
        # Drivers are built only once the nodes are ours: a constructor may open the hardware.
        given = self.options.drivers
        nodes = [
            given[node_id] if given is not None else build_node(self.options.lab.node(node_id))
            for node_id in self.node_ids
        ]
        self.host = NodeHost(
            self.client,
            {n.id: n for n in nodes},
            emulate=self.options.emulate,
            worker=self.worker_info(),
            workflow_task_queue=self.options.task_queue,
            observers=self.options.observers,
            capacities={node_id: self.options.lab.node(node_id).capacity for node_id in self.node_ids},
        )
        if (port := self.options.metrics_port) is not None:
            metrics.declare_nodes(self.node_ids)
            host, sdk_port = self.options.metrics_host, self.options.sdk_metrics_port
            self._stack.callback(metrics.serve_metrics(host, port, sdk_port))
        # Every hosted node's ledger exists before its queue is polled: a step that arrives at once
        # would otherwise find no ledger and take it for one that ended (started again, in ERROR).
        handles = {node_id: await self._start_ledger(node_id) for node_id in self.node_ids}
        workflows, node_queues = self._workers(self.host)
        for worker in workflows:
            await self._stack.enter_async_context(worker)
        for worker in node_queues:
            await self._node_workers.enter_async_context(worker)
        if self.options.run_workflows:
            await self._start_lab()
        reachable = {node_id: await self._bring_online(node_id, h) for node_id, h in handles.items()}
        if not self.options.emulate and self.node_ids:
            watch = asyncio.create_task(
                self.host.watch_reachability(reachable, self._report_reachability, self.options.probe_every_s)
            )
            self._node_workers.push_async_callback(_cancelled, watch)

    def worker_info(self) -> WorkerInfo:
        """This process as the ledgers record it: who runs a use, who hosts a node."""
        return WorkerInfo(name=self.options.name, identity=self.options.identity, host=socket.gethostname())

    async def stop(self) -> None:
        """Stop taking work; let running steps finish (up to `grace_s`), hand the waiting ones back;
        record the ends of the uses; then stop the workflows worker. The other way round, a step that
        finished during the shutdown sent its end to a ledger no longer run here (measured: the stop
        hung on it)."""
        stopped_identities.add(self.options.identity)
        await self._node_workers.aclose()
        if self.host is not None:
            await self.host.settle_ends()
            await self._announce_offline()
        await self._stack.aclose()
        if self.host is not None:
            await self.host.shutdown()
            self.host.close()

    def _workers(self, host: NodeHost) -> tuple[list[Worker], list[Worker]]:
        """The workflows worker (if this process runs workflows), and one worker per hosted node's queue."""
        common = {
            "identity": self.options.identity,
            "graceful_shutdown_timeout": timedelta(seconds=self.options.grace_s),
        }
        workflows, node_queues = [], []
        if self.options.run_workflows:
            workflows.append(
                Worker(
                    self.client,
                    task_queue=self.options.task_queue,
                    workflows=[TaskWorkflow, NodeWorkflow, LabWorkflow],
                    activities=self._lab_activities(),
                    workflow_runner=workflow_runner(),
                    sticky_queue_schedule_to_start_timeout=STICKY_TIMEOUT,
                    **common,  # type: ignore[arg-type]
                )
            )
        steps, ops = StepActivities(host), NodeActivities(host)
        holds = HoldActivities(host, steps.uses)
        activities: list[Callable[..., Any]] = [
            steps.execute_step,
            holds.hold_node,
            holds.release_hold,
            ops.restart_node,
            ops.probe_node,
            ops.shutdown_node,
            ops.check_holder,
            ops.withdraw_waiter,
        ]
        for node_id in self.node_ids:
            # Steps waiting for the node sit in its gate and each holds a slot: allow many.
            node_queues.append(
                Worker(
                    self.client,
                    task_queue=node_task_queue(node_id),
                    activities=activities,
                    max_concurrent_activities=1000,
                    max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
                    **common,  # type: ignore[arg-type]
                )
            )
        return workflows, node_queues

    def _lab_activities(self) -> list[Callable[..., Any]]:
        """The LabWorkflow's: deliver notifications (the real URLs live here only), check the workers."""
        lab = self.options.lab
        notify = NotifyActivities(lab.notifications, lab.notifications_file)
        watch = WatchActivities(self.client, self.options.task_queue)
        return [notify.deliver, watch.check_workers]

    async def _start_lab(self) -> None:
        """Make sure the lab's LabWorkflow runs, and give it this worker's view of the lab."""
        plan = lab_plan(self.options.lab, self.options.lab_check_s)
        await self.client.start_workflow(
            LabWorkflow.run,
            LabState(plan=plan),
            id=lab_workflow_id(self.options.task_queue),
            task_queue=self.options.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal="configure",
            start_signal_args=[plan],
            static_summary="the lab's notifications and PC liveness (query: status)",
        )

    async def _announce_offline(self) -> None:
        """Best effort, on a clean stop: the ledgers of idle nodes say OFFLINE while no worker hosts them
        (a node in use stays IN_USE; a crash announces nothing, the heartbeat timeouts tell). All at once,
        and for a few seconds at most: with the server gone, the client retries each call for 10 s."""
        try:
            await asyncio.wait_for(
                asyncio.gather(*(self._go_offline(node_id) for node_id in self.node_ids)),
                OFFLINE_DEADLINE.total_seconds(),
            )
        except TimeoutError:
            log.warning(
                "the Temporal server did not answer within %g s: the nodes %s are not marked offline (the "
                "lab sees this worker gone when it next looks)",
                OFFLINE_DEADLINE.total_seconds(),
                ", ".join(self.node_ids),
            )

    async def _go_offline(self, node_id: str) -> None:
        handle = ledger_handle(self.client, node_id)
        try:
            await handle.execute_update(
                NodeWorkflow.go_offline, NodeCommand(node_id=node_id), rpc_timeout=OFFLINE_RPC_TIMEOUT
            )
        except (RPCError, RPCTimeoutOrCancelledError, WorkflowUpdateFailedError) as exc:
            log.warning("could not mark node %s offline: %s", node_id, exc)

    async def _start_ledger(self, node_id: str) -> WorkflowHandle[NodeWorkflow, None]:
        """The node's ledger, started if it does not run (a new lab, or one that ended)."""
        node_input = NodeInput(
            ledger=LedgerState(node_id=node_id),
            uses_per_run=self.options.node_uses_per_run,
            holder_check_s=self.options.holder_check_s,
        )
        return await start_ledger(self.client, node_input, self.options.task_queue)

    async def _report_reachability(self, node_id: str, reachable: bool, why: str | None) -> bool:
        """Record in the node's ledger what its driver's `is_reachable()` now says; whether it took."""
        handle = ledger_handle(self.client, node_id)
        try:
            await handle.execute_update(
                NodeWorkflow.set_reachable,
                Reachability(node_id=node_id, reachable=reachable, reason=why),
                rpc_timeout=OFFLINE_RPC_TIMEOUT,
            )
        except (RPCError, RPCTimeoutOrCancelledError, WorkflowUpdateFailedError) as exc:
            what = "reachable" if reachable else "not reachable"
            log.warning("could not record that node %s is %s: %s", node_id, what, exc)
            return False
        if reachable:
            log.info("node %s: its device answers again", node_id)
        else:
            log.warning("node %s: %s; its steps fail until it answers", node_id, why)
        return True

    async def _bring_online(self, node_id: str, handle: WorkflowHandle[NodeWorkflow, None]) -> bool:
        """Tell the node's ledger this worker hosts it, and read it first: a use that never ended is
        reported. Whether the ledger has the device as reachable."""
        try:
            # What this worker built the driver from: a reload of the configuration compares it.
            digest = driver_digest(self.options.lab.node(node_id))
            command = NodeCommand(
                node_id=node_id, worker=self.worker_info().model_copy(update={"config_digest": digest})
            )
            ledger = await handle.execute_update(NodeWorkflow.come_online, command)
        except WorkflowUpdateFailedError as exc:
            raise TaskSchedulerError(f"the ledger of node {node_id} refused to come online: {exc}") from exc
        # A hold outlives its process by design: its activity's retry takes it over here.
        for holder in [h for h in ledger.holders if not h.hold]:
            if await close_if_ended(self.client, handle, holder):
                continue
            log.warning(
                "node %s: the use by %s never ended; only its retry or an operator's restart is admitted",
                node_id,
                holder.key,
            )
            assert self.host is not None
            self.host.gates[node_id].prefer(step_of(holder.key))
            # Its task would show it RUNNING until its heartbeat timeout: it is reported lost at once.
            await fail_lost_run(self.client, node_id, holder, self.worker_info())
        return ledger.reachable


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def refuse_hosted_nodes(client: Client, node_ids: Sequence[str]) -> None:
    """Refuse to host a node whose queue a live worker (another process) already polls."""
    for node_id in node_ids:
        live = await live_pollers(client, node_task_queue(node_id))
        if live:
            raise NodeAlreadyHostedError(
                f"node {node_id} is already hosted by a live worker ({', '.join(live)}); stop that worker "
                "first, or host other nodes here (--name and the nodes' `worker` field)"
            )


SDK_SHUTDOWN_LINES = ("Beginning worker shutdown", "Worker cancelled, shutting down")


def _drop_sdk_shutdown_lines(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith(SDK_SHUTDOWN_LINES)


def _one_shutdown_line() -> None:
    """The SDK says "Beginning worker shutdown" at INFO once per Temporal worker (one per hosted node, one
    for the workflows); our own line says it once. Only those lines go: the SDK's others stay."""
    sdk = logging.getLogger("temporalio.worker._worker")
    if _drop_sdk_shutdown_lines not in sdk.filters:
        sdk.addFilter(_drop_sdk_shutdown_lines)


async def run_worker(
    client: Client,
    options: WorkerOptions,
    stop: asyncio.Event,
    on_ready: Callable[[Client], Awaitable[None]] | None = None,
) -> None:
    """Run until `stop` is set (SIGTERM/SIGINT): stop taking work, let running steps finish, exit.
    `on_ready` runs once the worker polls."""
    _one_shutdown_line()
    async with LabWorker(client, options) as worker:
        log.info("worker %s hosts nodes: %s", options.identity, ", ".join(worker.node_ids) or "none")
        if on_ready is not None:
            await on_ready(client)
        if not options.run_workflows:
            log.info("this worker runs no workflows: tasks progress while a worker with workflows runs")
        await stop.wait()
        log.info("stopping: running steps have %s s to finish", options.grace_s)
    log.info("worker %s stopped", options.identity)
