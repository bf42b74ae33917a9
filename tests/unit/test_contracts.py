"""The names in engine/contracts.py against what they name: each is written into histories or read
back from them, and the workflows and activities meet only through these names (neither imports the
other), so a renamed activity, update or error type would fail only at run time, in a running task."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

from temporalio import activity, workflow

from task_scheduler.activities.holds import HoldActivities
from task_scheduler.activities.lab_watch import WatchActivities
from task_scheduler.activities.node_ops import NodeActivities
from task_scheduler.activities.notify import NotifyActivities
from task_scheduler.activities.steps import StepActivities
from task_scheduler.engine import contracts
from task_scheduler.engine.contracts import StepBeat
from task_scheduler.workflows.lab import LabWorkflow
from task_scheduler.workflows.node import NodeWorkflow
from task_scheduler.workflows.task import TaskWorkflow

PACKAGE = Path(contracts.__file__).resolve().parents[1]
ACTIVITY_CLASSES = (StepActivities, HoldActivities, NodeActivities, NotifyActivities, WatchActivities)
ERROR_TYPES = {
    "STEP_FAILED",
    "STEP_CANCELLED",
    "WORKER_LOST",
    "WAITING_INTERRUPTED",
    "WORKER_REPLACED",
    "HOLD_INTERRUPTED",
    "LEDGER_REFUSAL",
    "COMMAND_REFUSED",
    "DELIVERY_FAILED",
    "TARGET_UNKNOWN",
}


def our_modules() -> list[Path]:
    skipped = {"tests", "bench", "examples", "docs", "deploy"}
    return [
        path
        for path in PACKAGE.rglob("*.py")
        if not {part for part in path.relative_to(PACKAGE).parts if part in skipped or part.startswith(".")}
    ]


def test_every_activity_is_defined_under_a_contract_name() -> None:
    defined = {
        definition.name
        for cls in ACTIVITY_CLASSES
        for member in vars(cls).values()
        if (definition := activity._Definition.from_callable(member)) is not None
    }
    named = {
        contracts.EXECUTE_STEP,
        contracts.HOLD_NODE,
        contracts.RELEASE_HOLD,
        contracts.RESTART_NODE,
        contracts.PROBE_NODE,
        contracts.SHUTDOWN_NODE,
        contracts.CHECK_HOLDER,
        contracts.WITHDRAW_WAITER,
        contracts.DELIVER_ACTIVITY,
        contracts.CHECK_WORKERS_ACTIVITY,
    }
    assert defined == named


def test_the_workflows_answer_to_the_names_others_call_them_by() -> None:
    task = workflow._Definition.must_from_class(TaskWorkflow)
    node = workflow._Definition.must_from_class(NodeWorkflow)
    lab = workflow._Definition.must_from_class(LabWorkflow)
    assert (task.name, node.name, lab.name) == (
        contracts.TASK_WORKFLOW_TYPE,
        contracts.NODE_WORKFLOW_TYPE,
        contracts.LAB_WORKFLOW_TYPE,
    )
    assert contracts.GET_STEPS in task.queries
    assert contracts.RUN_ACCOUNTED_SIGNAL in task.signals
    assert {contracts.BEGIN_USE, contracts.END_USE} <= set(node.updates)
    assert contracts.LEDGER_STATUS in node.queries


def test_every_error_type_raised_is_a_contract() -> None:
    """Each ApplicationError's `type` is a name from the contracts, never a literal or a local constant."""
    found: dict[str, list[str]] = {}
    for path in our_modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ApplicationError":
                for keyword in node.keywords:
                    if keyword.arg == "type":
                        where = f"{path.relative_to(PACKAGE)}:{node.lineno}"
                        found.setdefault(ast.unparse(keyword.value), []).append(where)
    assert found, "no ApplicationError found: the walk over the package is broken"
    assert set(found) <= ERROR_TYPES, {name: at for name, at in found.items() if name not in ERROR_TYPES}


def test_no_module_but_the_contracts_spells_a_wire_name() -> None:
    """A string equal to a contract's value, assigned anywhere else, is a second spelling to drift."""
    wire = {
        value
        for name, value in vars(contracts).items()
        if name.isupper() and isinstance(value, str) and not name.endswith("_PREFIX") and len(value) > 6
    }
    spelled = []
    for path in our_modules():
        if path.name == "contracts.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            constant = node.value if isinstance(node, ast.Assign) else None
            if isinstance(constant, ast.Constant) and constant.value in wire:
                spelled.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {constant.value!r}")
    assert not spelled


def test_a_beat_reads_back_whatever_wrote_it() -> None:
    started = datetime(2026, 12, 7, 10, tzinfo=UTC)
    running = StepBeat(phase=contracts.RUNNING, started_at=started, worker="pc-2")
    assert StepBeat.of(running.sent()) == running
    assert running.sent() == {"phase": "running", "started_at": "2026-12-07T10:00:00Z", "worker": "pc-2"}
    # As a worker before this model wrote it.
    assert StepBeat.of({"phase": "running", "started_at": started.isoformat()}).started_at == started
    # An older beat (a worker of an earlier version): fields missing, `worker` null.
    older = StepBeat.of({"phase": "running", "worker": None, "attempt": 2, "next": "SELF"})
    assert (older.running, older.attempt, older.next) == (True, 2, "SELF")
    # No details, or details that are not ours: waiting, as the task always read them.
    assert not StepBeat.of(None).running
    assert StepBeat.of({"phase": "running", "position": "first"}).running
    assert not StepBeat.of({"phase": "running", "started_at": "lunchtime"}).started_at
