"""`task start|list|show|wait|pause|continue|cancel`: a task's life, through the HTTP API."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..client.http import ApiClient
from ..devstate import command
from ..engine.errors import TaskSchedulerError
from .follow import TaskFollower
from .options import add_client_arguments, api_client
from .render import render_task, render_tasks

# The exit status of `task wait` and `task start --wait`, in their --help and docs/operations.md.
FINISHED, NOT_FINISHED, INTERRUPTED = 0, 1, 130
EXIT_STATUS = """exit status:
  0    the task FINISHED
  1    the task did not finish: it waits for an operator (ERROR: `task continue`), it was CANCELLED,
       or Temporal ended its workflow; or the command failed (the API refused it or could not be reached)
  2    the command line is wrong (an unknown option, a missing argument)
  130  interrupted (Ctrl-C): you stopped following, the task goes on
  141  the output was closed (`| head`)"""


def cmd_task(args: argparse.Namespace) -> int:
    api = api_client(args)
    action = TASK_ACTIONS.get(args.action, _task_command)
    return action(api, args)


def _start(api: ApiClient, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "workflow_name": args.workflow,
        "args": _task_args(args.args),
        "priority": args.priority,
    }
    if args.id:
        body["id"] = args.id
    task = api.post("/tasks", body)
    print(f"started {task['task_id']}")
    return _follow(api, task["task_id"]) if args.wait else 0


def _list(api: ApiClient, args: argparse.Namespace) -> int:
    page = api.get("/tasks", state=args.state, workflow_name=args.workflow, node=args.node)
    print(render_tasks(page["tasks"]))
    return 0


def _show(api: ApiClient, args: argparse.Namespace) -> int:
    print(render_task(api.get(f"/tasks/{args.task_id}")))
    return 0


def _task_command(api: ApiClient, args: argparse.Namespace) -> int:
    """pause, continue, cancel."""
    body = {
        "continue": {
            "mode": getattr(args, "mode", None),
            "reason": getattr(args, "reason", None),
            "step": getattr(args, "step", None),
        },
        "cancel": {"reason": getattr(args, "reason", None)},
    }
    print(render_task(api.post(f"/tasks/{args.task_id}/{args.action}", body.get(args.action))))
    return 0


TASK_ACTIONS = {
    "start": _start,
    "list": _list,
    "show": _show,
    "wait": lambda api, args: _follow(api, args.task_id),
}


def _task_args(text: str) -> dict[str, object]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TaskSchedulerError(
            f'--args is not valid JSON ({exc}); e.g. --args \'{{"plate": "P1"}}\''
        ) from exc
    if not isinstance(value, dict):
        raise TaskSchedulerError(f'--args must be a JSON object, e.g. \'{{"plate": "P1"}}\'; got {text}')
    return value


def _follow(api: ApiClient, task_id: str) -> int:
    """Follow the task until it is over or waits for an operator; see EXIT_STATUS."""
    printer = TaskFollower(sys.stdout, tty=sys.stdout.isatty())
    try:
        task = api.follow(task_id, printer.show)
    except KeyboardInterrupt:
        printer.close()
        print(f"stopped following {task_id}; it goes on ({command()} task wait {task_id})")
        return INTERRUPTED
    printer.close()
    if task["state"] == "ERROR":
        print(f"the task waits for an operator: {command()} task continue {task_id} [--mode next]")
    return FINISHED if task["state"] == "FINISHED" else NOT_FINISHED


def add_task_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    task = commands.add_parser("task", help="start, list, show and control tasks (through the API)")
    actions = task.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = actions.add_parser(
        "start",
        help="start a task",
        epilog=EXIT_STATUS.replace("exit status:", "exit status with --wait (without: 0 once started):"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    start.add_argument("workflow", help="the lab workflow to run")
    start.add_argument("--args", default="{}", help='task arguments as JSON, e.g. \'{"plate": "P1"}\'')
    start.add_argument("--id", help="your own task id (a retried start with the same id is refused)")
    start.add_argument("--priority", type=int, default=0, help="higher runs first on a busy node")
    start.add_argument("--wait", action="store_true", help="follow the task until it is over or stops")
    listing = actions.add_parser("list", help="list tasks")
    listing.add_argument("--state", help="PENDING, ACTIVE, PAUSED, ERROR, FINISHED or CANCELLED")
    listing.add_argument("--workflow", help="only tasks of this lab workflow")
    listing.add_argument("--node", help="only tasks now at this node")
    for name, text in (
        ("show", "show a task and its steps"),
        ("wait", "follow a task live"),
        ("pause", "pause once the running steps end (no new step starts)"),
        ("continue", "continue a paused or failed task, or end a running wait (--mode next)"),
        ("cancel", "cancel a task (its running steps are aborted, its waits ended)"),
    ):
        follows = {"epilog": EXIT_STATUS, "formatter_class": argparse.RawDescriptionHelpFormatter}
        action = actions.add_parser(name, help=text, **(follows if name == "wait" else {}))
        action.add_argument("task_id")
        if name == "continue":
            action.add_argument(
                "--mode",
                choices=["retry", "next"],
                default="retry",
                help="after a failed step: run it again (retry) or move on (next); next also ends a "
                "running wait",
            )
            action.add_argument(
                "--step",
                metavar="ID",
                help="the step this is about, by its id or number: needed when several steps failed "
                "(or several waits run)",
            )
        if name in ("continue", "cancel"):
            action.add_argument("--reason", help="why: kept with the decision in the task")
    for sub in actions.choices.values():
        add_client_arguments(sub)
    task.set_defaults(handler=cmd_task)
