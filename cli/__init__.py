"""`task-scheduler`: the command line. One module per group of commands; each command is a small
function. Heavy parts (the API, the worker, the dev stack) are imported by the command that runs them,
so `--help` and the client commands start quickly."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from ..engine.errors import ConfigError, TaskSchedulerError
from .config import add_config_commands
from .nodes import add_node_commands
from .reports import add_report_commands
from .stack import add_server_commands
from .tasks import add_task_commands
from .tokens import add_token_commands

__all__ = ["build_parser", "main"]

DESCRIPTION = "task-scheduler: run a lab's tasks on Temporal, and control them."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="task-scheduler", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_config_commands(commands)
    add_token_commands(commands)
    add_server_commands(commands)
    add_task_commands(commands)
    add_node_commands(commands)
    add_report_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print(exc.message, file=sys.stderr)
        return 1
    except TaskSchedulerError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
