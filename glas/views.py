"""Our tasks and nodes in the seed's shapes (the bodies its HTTP clients read)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from typing import Any

from ..api.schemas import NodePublic, StepPublic, TaskPublic
from ..engine.config import LabConfig
from ..engine.seed import (
    WAIT_ROW,
    BaseNodeModel,
    DBExecutionLogsModel,
    DBLogsModel,
    DBTaskModel,
    DBWorkflowModel,
    NodeState,
    TaskModel,
    TaskRow,
    WorkflowModel,
    seed_node_state,
    seed_task_state,
    seed_time,
)
from ..engine.seed import TaskState as SeedTaskState
from ..engine.states import TaskState

# A step's kept log line: "HH:MM:SS.mmm LEVEL text" (engine/logger.py).
LOG_LINE = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{3}) ([A-Z]+) (.*)$", re.DOTALL)


def node_model(node: NodePublic) -> BaseNodeModel:
    """A node as the seed showed it: its state, whether it answers, and the task holding it."""
    state = seed_node_state(node.state) if node.state is not None else NodeState.OFFLINE
    holder = node.holder.key.task_id if node.holder else None
    return BaseNodeModel(
        id=node.id, name=node.name, status=state.name, online=node.online and node.reachable, task_id=holder
    )


def unknown_node(node_id: str, lab: LabConfig) -> BaseNodeModel:
    """A step's node the lab no longer has (the task keeps its snapshot)."""
    name = lab.node(node_id).name if lab.has_node(node_id) else node_id
    return BaseNodeModel(id=node_id, name=name, status=NodeState.OFFLINE.name, online=False)


def workflow_model(task: TaskPublic, lab: LabConfig, nodes: dict[str, BaseNodeModel]) -> WorkflowModel:
    # The seed's workflows have steps on nodes only: a wait is not one of them.
    steps = [nodes.get(step.node) or unknown_node(step.node, lab) for step in task.steps if step.node]
    return WorkflowModel(
        id=lab.seed_workflow_id(task.workflow_name or ""),
        name=task.workflow_name or "",
        source=steps[0],
        destination=steps[-1],
        steps=steps,
    )


def task_model(task: TaskPublic, lab: LabConfig, nodes: dict[str, BaseNodeModel]) -> TaskModel:
    state = seed_task_state(task.state or TaskState.PENDING, task.pause_requested)
    return TaskModel(
        uuid=task.task_id,
        workflow=workflow_model(task, lab, nodes),
        current_step=-1 if task.current_step is None else task.current_step,
        state=state.name,
        args=task.args,
    )


def task_row(task: TaskPublic, lab: LabConfig) -> TaskRow:
    """`GET /task/{id}`: the task as the seed's `tasks` row, and its workflow's row."""
    state = seed_task_state(task.state or TaskState.PENDING, task.pause_requested)
    running = state is not SeedTaskState.PAUSED and task.state is TaskState.ACTIVE
    row = DBTaskModel(
        id=task.task_id,
        workflow_id=lab.seed_workflow_id(task.workflow_name or ""),
        active_step=task.current_node if running else None,
        task_state_id=state.value,
        args=task.args,
        created_at=_shown(task.started_at),
        updated_at=_shown(_last_change(task)),
    )
    return TaskRow(task=row, workflow=workflow_row(task, lab))


def workflow_row(task: TaskPublic, lab: LabConfig) -> DBWorkflowModel:
    nodes = [step.node for step in task.steps if step.node] or [""]
    name = task.workflow_name or ""
    return DBWorkflowModel(
        id=lab.seed_workflow_id(name), name=name, source_node_id=nodes[0], destination_node_id=nodes[-1]
    )


def _shown(moment: datetime | None) -> str | None:
    return None if moment is None else seed_time(moment)


def _last_change(task: TaskPublic) -> datetime | None:
    moments = [task.started_at, task.closed_at]
    moments += [m for step in task.steps for m in (step.requested_at, step.started_at, step.finished_at)]
    moments += [decision.at for decision in task.decisions]
    known = [m for m in moments if m is not None]
    return max(known) if known else None


# --- logs ----------------------------------------------------------------------------------------


def log_rows(tasks: list[TaskPublic]) -> list[DBLogsModel]:
    """`GET /logs/`: the drivers' lines kept with the steps of `tasks`, and each step's outcome, oldest
    first. Ids are counted here (the seed's were rows of a table)."""
    rows: list[tuple[datetime, str, str, str, str]] = []
    for task in tasks:
        app = f"Task {task.task_id}: {task.workflow_name}"
        for step in task.steps:
            rows += _driver_lines(step)
            if step.finished_at is not None:
                level = "SUCCESS" if step.outcome.value == "SUCCEEDED" else "ERROR"
                message = f": {step.message}" if step.message else ""
                text = f"step {step.index + 1} on {step.node}: {step.outcome.value}{message}"
                rows.append((step.finished_at, app, level, "task", text))
    rows.sort(key=lambda row: row[0])
    return [
        DBLogsModel(
            id=number,
            logger_name=app,
            log_level=level,
            module=module,
            caller="_execute" if module == "node" else "run",
            line=0,
            message=text,
            timestamp=seed_time(moment),
        )
        for number, (moment, app, level, module, text) in enumerate(rows, start=1)
    ]


def _driver_lines(step: StepPublic) -> list[tuple[datetime, str, str, str, str]]:
    day = step.started_at or step.requested_at
    if day is None:
        return []
    found = []
    for line in step.logs:
        match = LOG_LINE.match(line)
        if match is None:
            continue
        hours, minutes, seconds, millis, level, text = match.groups()
        clock = time(int(hours), int(minutes), int(seconds), int(millis) * 1000, tzinfo=UTC)
        moment = datetime.combine(day.astimezone(UTC).date(), clock)
        if moment < day - timedelta(hours=1):
            moment += timedelta(days=1)  # the step ran past midnight (UTC)
        found.append((moment, f"Node {step.node}", level, "node", text))
    return found


def execution_rows(tasks: list[TaskPublic], lab: LabConfig) -> dict[str, list[dict[str, Any]]]:
    """`GET /logs/execution`: per task, each step's wait for its node (`w. acc.`) and its run."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    number = 0
    for task in tasks:
        workflow = workflow_row(task, lab)
        for step in task.steps:
            if step.node is None or step.started_at is None or step.finished_at is None:
                continue
            waited = timedelta(seconds=step.waited_s or 0.0)
            spans = [
                (WAIT_ROW, step.started_at - waited, step.started_at),
                (step.node, step.started_at, step.finished_at),
            ]
            for name, start, end in spans:
                number += 1
                log = DBExecutionLogsModel(
                    id=number,
                    task_id=task.task_id,
                    workflow_id=workflow.id,
                    name=name,
                    start=seed_time(start),
                    end=seed_time(end),
                )
                grouped.setdefault(task.task_id, []).append({"log": log, "wf": workflow})
    return grouped
