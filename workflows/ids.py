"""Workflow ids, task queue names and error types, defined once and imported everywhere."""

DEFAULT_TASK_QUEUE = "task-scheduler"
NODE_WORKFLOW_PREFIX = "node-"
LEDGER_REFUSAL = "LedgerRefusal"
# NodeWorkflow -> TaskWorkflow: a run the task gave up as cut off is accounted for. Named, because the
# node workflow's module cannot import TaskWorkflow (whose module imports it).
RUN_ACCOUNTED_SIGNAL = "run_accounted"


def node_workflow_id(node_id: str) -> str:
    """The id of a node's ledger (NodeWorkflow)."""
    return f"{NODE_WORKFLOW_PREFIX}{node_id}"


NODE_QUEUE_PREFIX = "node-"


def node_task_queue(node_id: str) -> str:
    """The task queue of a node's activities, polled only by the worker that hosts it."""
    return f"{NODE_QUEUE_PREFIX}{node_id}"


LAB_WORKFLOW_PREFIX = "lab-"


def lab_workflow_id(task_queue: str) -> str:
    """The id of a lab's LabWorkflow (notifications, PC liveness): one per workflow task queue."""
    return f"{LAB_WORKFLOW_PREFIX}{task_queue}"


# The LabWorkflow's memo key saying whether the lab takes new tasks (the seed's orchestrator switch).
INTAKE_MEMO = "accepting_tasks"
