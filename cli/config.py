"""`config check`: read the lab's files as the worker and the API will, and say what they hold."""

from __future__ import annotations

import argparse

from ..engine.config import LabConfig, StepConfig, WorkflowConfig
from ..engine.errors import ConfigError, ConfigProblem
from ..engine.loader import check_config
from ..engine.node_types import CheckCommand
from ..engine.protocol import protocol_of
from .options import add_config_arguments, lab_files


def cmd_config_check(args: argparse.Namespace) -> int:
    """The full view (every node's type checked here; a driver another PC needs and this one lacks is a
    note), or with --worker a PC's view (its nodes' only)."""
    checked = check_config(*lab_files(args), args.module, worker=args.worker)
    lab = checked.lab
    if args.worker:
        lab.check_worker(args.worker)
    check_notification_targets(lab)
    view = f" (worker {args.worker}'s view: the types of its nodes checked)" if args.worker else ""
    print(f"Configuration OK{view}: {lab.nodes_file}, {lab.workflows_file}")
    print(f"{len(lab.nodes)} node(s):")
    for node in lab.nodes:
        attempts = f"{node.retry.max_attempts} attempt(s)"
        timeout = f"{node.timeout_s:g} s" if node.timeout_s else "none"
        worker = node.worker or "any"
        places = f", {node.capacity} steps at once" if node.capacity > 1 else ""
        print(f"  {node.id:<14} {node.type:<16} worker: {worker:<8} {attempts}, timeout {timeout}{places}")
    print(f"{len(lab.workflows)} workflow(s):")
    for workflow in lab.workflows:
        print(f"  {workflow.name:<18} " + workflow_text(workflow))
    _print_notifications(lab)
    _print_notes(checked.notes)
    _print_hosting(lab, args)
    return 0


def workflow_text(workflow: WorkflowConfig) -> str:
    """`a -> wait 600 s -> b` for a line of steps; a workflow with branches lists each step by its id,
    with the steps it comes after."""
    if all(step.after is None for step in workflow.steps):
        return " -> ".join(_step_text(step) for step in workflow.steps)
    steps = protocol_of(workflow).steps
    return "; ".join(
        f"{s.id}: {_step_text(workflow.steps[s.index])}" + (f" after {', '.join(s.after)}" if s.after else "")
        for s in steps
    )


def _step_text(step: StepConfig) -> str:
    if step.node is not None:
        return f"{step.node} holding {', '.join(step.holds)}" if step.holds else step.node
    return f"wait {step.wait_s:g} s" if step.wait_s is not None else f"wait until {step.wait_until}"


def _print_notes(notes: list[ConfigProblem]) -> None:
    """What this PC could not check (another PC's driver), and the command that checks it there."""
    if notes:
        print(f"{len(notes)} note(s), not problems:")
        for note in notes:
            print(f"  - {note}")


def check_notification_targets(lab: LabConfig) -> None:
    """Refuse a notification URL Apprise does not understand, located like every configuration problem."""
    from ..activities.notify import check_targets  # Apprise loads its plugins: only for this command

    problems = check_targets(lab.notifications, lab.notifications_file)
    if problems:
        raise ConfigError(problems)


def _print_notifications(lab: LabConfig) -> None:
    """The targets masked (a URL may hold a token or a password), their events, the reminder policy."""
    notifications = lab.notifications
    if not notifications.configured:
        print("notifications: none configured (no notifications.json beside nodes.json)")
        return
    print(f"notifications ({lab.notifications_file}):")
    for line in notifications.describe():
        print(f"  {line}")
    print(
        f"  reminders every {notifications.remind_after_s:g} s (at most {notifications.max_reminders}), "
        f"escalation after {notifications.escalate_after_s:g} s"
    )


def _print_hosting(lab: LabConfig, args: argparse.Namespace) -> None:
    names, worker = lab.worker_names(), args.worker
    if worker is not None:
        hosted = ", ".join(n.id for n in lab.nodes_of_worker(worker))
        print(f"worker {worker} hosts: {hosted}" + ("" if names else " (no node names a worker: all)"))
    elif names:
        command = CheckCommand(*lab_files(args), tuple(args.module)).on("NAME")
        print(
            f"This lab has named workers ({', '.join(names)}): on each PC, run `{command}` to check its "
            "nodes' types with what that PC has installed."
        )


def add_config_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    config = commands.add_parser("config", help="check the lab configuration")
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = config_commands.add_parser("check", help="validate nodes.json and workflows.json")
    add_config_arguments(check)
    check.add_argument(
        "--worker", metavar="NAME", help="a PC's view: check the types of worker NAME's nodes only"
    )
    check.set_defaults(handler=cmd_config_check)
