"""What a task says about itself when it waits for an operator: sentences built from its records, so
the API, the CLI and the Temporal UI show the same words. Pure: no clock, no I/O."""

from __future__ import annotations

from datetime import datetime

from .states import TaskState
from .task_state import WAITING_OUTCOMES, CutOffRun, StepOutcome, TaskStatus
from .tasks import TaskSpec


def _at(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "an unknown time"


def cut_off_reason(task_id: str, step_index: int, node_id: str, run: CutOffRun) -> str:
    """A run whose worker stopped heartbeating while its driver ran, not accounted for yet."""
    where = run.worker or "its PC"
    return (
        f"worker lost during step {step_index + 1} on node {node_id}: its run on {where} stopped "
        f"reporting at {_at(run.lost_at)} while the driver ran (the PC is off, its worker died, or its "
        f"link is cut). The driver may still be running there, so the node stays closed and the task "
        f"waits until that run's end is known: {where} reports it when the link returns, or its worker "
        f"is restarted. Then decide: task-scheduler task continue {task_id} [--mode next], or cancel"
    )


def accounted_reason(task_id: str, step_index: int, node_id: str, run: CutOffRun) -> str:
    """The same run once its end is known: what happened, and the command that fits."""
    where = run.worker or "its PC"
    head = f"step {step_index + 1} on node {node_id}: its run on {where}, cut off at {_at(run.lost_at)},"
    said = f" ({run.late_message})" if run.late_message else ""
    if run.late_outcome == "SUCCEEDED":
        return (
            f"{head} finished at {_at(run.late_ended_at)} with status {run.late_status}{said}. If that "
            f"was enough, continue with next (task-scheduler task continue {task_id} --mode next); "
            "retry runs the step again"
        )
    if run.late_outcome == "FAILED":
        return (
            f"{head} ended at {_at(run.late_ended_at)} with status {run.late_status}{said}. Check the "
            f"device; retry runs the step again (task-scheduler task continue {task_id}), next skips it"
        )
    return (
        f"{head} never reported its end{said}. Check the device, then retry "
        f"(task-scheduler task continue {task_id}) or skip the step (--mode next)"
    )


def unaccounted_refusal(step_index: int, run: CutOffRun) -> str:
    """Why a continue is refused while a cut-off run's end is unknown."""
    where = run.worker or "its PC"
    return (
        f"step {step_index + 1}'s run on {where} was cut off and has not reported its end: its driver "
        f"may still be running. Wait until {where} is reachable again (or restart its worker, which ends "
        "that run), then continue; cancel is possible at any time"
    )


def current_details(status: TaskStatus, spec: TaskSpec) -> str:
    """The task's current details in the Temporal UI (Markdown): its state, the step and node, why it
    waits or what failed, and the commands that continue it."""
    total = len(spec.steps)
    where = step_where(spec, status.current_step) if status.current_step is not None else ""
    state = status.state.value
    if status.state is TaskState.ERROR:
        # The step the details describe (the last to fail), named when several await a decision.
        failed = [r.id for r in status.steps if r.outcome in (StepOutcome.FAILED, StepOutcome.LOST)]
        shown = status.current_record
        step = f" --step {shown.id if shown else failed[0]}" if len(failed) > 1 else ""
        return "\n\n".join(
            [
                f"**{state}** at {where}: waits for an operator",
                status.reason or "the step failed",
                f"`task-scheduler task continue {status.task_id}{step}` (retry the step), "
                f"`... --mode next` (skip it), `task-scheduler task cancel {status.task_id}`",
            ]
        )
    if status.state is TaskState.PAUSED:
        return f"**{state}** before {where}: `task-scheduler task continue {status.task_id}` resumes it"
    if status.state is TaskState.ACTIVE:
        running = [r for r in status.steps if r.outcome in WAITING_OUTCOMES[1:]]
        if len(running) > 1:
            where = "steps " + ", ".join(r.id for r in running) + " run"
        pause = " (a pause is requested: it pauses once its steps end)" if status.pause_requested else ""
        # A step with holds taking its nodes says which it has and which it waits for.
        taking = [f"step {r.id} {text}" for r in running if (text := r.holding_text())]
        return "\n\n".join([f"**{state}**: {where}{pause}", *taking])
    if status.state is TaskState.FINISHED:
        return f"**{state}**: all {total} steps done"
    if status.state is TaskState.CANCELLED:
        return f"**{state}**: {status.reason or 'cancelled'}"
    return f"**{state}**: waiting to start"


def step_where(spec: TaskSpec, index: int) -> str:
    """`step 2/4 on node arm`; a step with an id of its own says it (`step 3/4 (settle): a wait`)."""
    step = spec.steps[index]
    name = f"step {index + 1}/{len(spec.steps)}" + (f" ({step.id})" if step.id is not None else "")
    return f"{name} on node {step.node.id}" if step.node is not None else f"{name}: a wait"


SUMMARY_ARGS_CHARS = 120


def task_summary(spec: TaskSpec) -> str:
    """The task's one-line summary in the Temporal UI's list: its lab workflow and main arguments."""
    args = " ".join(
        f"{key}={value}" for key, value in spec.args.items() if not isinstance(value, dict | list)
    )
    if len(args) > SUMMARY_ARGS_CHARS:
        args = args[: SUMMARY_ARGS_CHARS - 3] + "..."
    return f"{spec.workflow_name} ({len(spec.steps)} steps) {args}".strip()
