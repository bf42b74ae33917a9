"""Handles of our workflows, spelled once: a task by its id, a node's ledger by the node's id."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from ..engine.contracts import NodeInput, node_workflow_id
from ..engine.task_state import TaskResult
from ..workflows.node import NodeWorkflow


def task_handle(client: Client, task_id: str) -> WorkflowHandle[Any, TaskResult]:
    return client.get_workflow_handle(task_id, result_type=TaskResult)


def ledger_handle(client: Client, node_id: str) -> WorkflowHandle[NodeWorkflow, None]:
    return client.get_workflow_handle_for(NodeWorkflow.run, node_workflow_id(node_id))


async def start_ledger(
    client: Client, node_input: NodeInput, task_queue: str
) -> WorkflowHandle[NodeWorkflow, None]:
    """The node's ledger, started with `node_input` if it does not run; else the running one."""
    return await client.start_workflow(
        NodeWorkflow.run,
        node_input,
        id=node_workflow_id(node_input.ledger.node_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
