"""How a TaskWorkflow takes the nodes of a step that needs several (`holds`): every node of the step,
its own included, in the order of node ids, each through a hold activity on that node's queue (it waits
in the node's line like a step); the next only once the last is granted. All tasks take their nodes in
this one order, so two steps can never each hold what the other waits for, on one PC or several. The
step then runs on its node (its begin takes its own hold over), and the holds are let go when it ends,
whatever its end: by a signal to each ledger (it arrives whether or not the node's worker runs), then
a `release_hold` activity on the node's queue, which ends the hold activity there at once (it gives the
node's place in its line to the next step); a hold whose worker does not answer is cancelled.

Workflow code (deterministic).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from ..engine.contracts import HOLD_NODE, RELEASE_HOLD, HoldRequest, node_task_queue
    from ..engine.ledger import HoldRelease, UseKey
    from ..engine.task_state import StepRecord
    from ..engine.tasks import TaskSpec
    from .node import NodeWorkflow, signal_ledger

HOLD_START_TO_CLOSE = timedelta(days=30)
RELEASE_TIMEOUT = timedelta(seconds=10)
HOLD_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10))


def nodes_in_order(spec: TaskSpec, index: int) -> list[str]:
    """The nodes a step with holds takes, in the one order every task takes nodes in."""
    step = spec.steps[index]
    return sorted({step.runs_on.id, *step.holds})


@contextlib.asynccontextmanager
async def holding(spec: TaskSpec, task_id: str, record: StepRecord) -> AsyncIterator[None]:
    """Take every node of step `record.index` in order, run the body, and let them all go."""
    record.holds, record.held = nodes_in_order(spec, record.index), []
    activities: dict[str, asyncio.Task[Any]] = {}
    try:
        for node_id in record.holds:
            await _take(spec, task_id, record, node_id, activities)
        yield
    except (Exception, asyncio.CancelledError):  # not an eviction: that must not wait on its way out
        await _let_go(task_id, record, activities)
        raise
    await _let_go(task_id, record, activities)


async def _take(
    spec: TaskSpec, task_id: str, record: StepRecord, node_id: str, activities: dict[str, asyncio.Task[Any]]
) -> None:
    """Start the hold of `node_id` and wait until it is granted (its activity tells the task). A hold
    activity that ended without it (its worker stopped while it waited) is started again."""
    while node_id not in record.held:
        hold = activities.get(node_id)
        if hold is None or hold.done():
            activities[node_id] = _start(spec, task_id, record, node_id)
        await _granted_or_ended(record, node_id, activities[node_id])


async def _granted_or_ended(record: StepRecord, node_id: str, hold: asyncio.Task[Any]) -> None:
    await workflow.wait_condition(lambda: node_id in record.held or hold.done())
    if hold.done() and node_id not in record.held:
        with contextlib.suppress(Exception):
            await hold


def _start(spec: TaskSpec, task_id: str, record: StepRecord, node_id: str) -> asyncio.Task[Any]:
    step = spec.steps[record.index]
    request = HoldRequest(
        task_id=task_id,
        step_index=record.index,
        run=record.runs,
        node_id=node_id,
        priority=spec.priority,
        requested_at=record.requested_at or workflow.now(),
        heartbeat_timeout_s=step.heartbeat_timeout_s,
    )
    named = f" {step.id}" if step.id is not None else ""
    return workflow.start_activity(
        HOLD_NODE,
        request,
        task_queue=node_task_queue(node_id),
        activity_id=f"hold-{record.index + 1}-{node_id}-run-{record.runs}",
        summary=f"step {record.index + 1}{named}: hold {node_id}",
        start_to_close_timeout=HOLD_START_TO_CLOSE,
        heartbeat_timeout=timedelta(seconds=step.heartbeat_timeout_s),
        retry_policy=HOLD_RETRY,
        # Its node's worker may be gone: the ledger's release does not wait for it.
        cancellation_type=ActivityCancellationType.TRY_CANCEL,
    )


async def _let_go(task_id: str, record: StepRecord, activities: dict[str, asyncio.Task[Any]]) -> None:
    """Let go of every hold of this run, all nodes at once."""
    key = UseKey(task_id=task_id, step_index=record.index, run=record.runs)
    lets = [_let_go_of(node_id, hold, key, node_id in record.held) for node_id, hold in activities.items()]
    await asyncio.gather(*lets)
    record.holds, record.held = [], []


async def _let_go_of(node_id: str, hold: asyncio.Task[Any], key: UseKey, granted: bool) -> None:
    """The node's ledger first (durable, and it refuses this run's hold from now on), then the hold
    activity: a granted one is asked to hand the node's place on at once; one still in the node's line
    is cancelled, and hurried to hear it; either is cancelled if its worker does not answer."""
    await signal_ledger(node_id, NodeWorkflow.release_hold, HoldRelease(key=key, node_id=node_id))
    if not hold.done() and not granted:
        hold.cancel()
    if not hold.done() and await _asked_to_release(node_id, key) and granted:
        with contextlib.suppress(asyncio.TimeoutError):
            await workflow.wait_condition(hold.done, timeout=RELEASE_TIMEOUT, timeout_summary="hold released")
    if not hold.done():
        hold.cancel()
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await hold


async def _asked_to_release(node_id: str, key: UseKey) -> bool:
    """Whether the worker hosting the node had the hold and let it go (False: no such worker now)."""
    try:
        released: bool = await workflow.execute_activity(
            RELEASE_HOLD,
            HoldRelease(key=key, node_id=node_id),
            result_type=bool,
            task_queue=node_task_queue(node_id),
            schedule_to_close_timeout=RELEASE_TIMEOUT,
            retry_policy=RetryPolicy(maximum_attempts=1),
            summary=f"let go of {node_id}",
        )
    except ActivityError:
        return False
    return released
