"""`task-scheduler`: the command line. One module per group of commands; each command is a small
function. Heavy parts (the API, the worker, the dev stack) are imported by the command that runs them,
so `--help` and the client commands start quickly."""

from __future__ import annotations

import argparse
import os
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


# The exit status of a command whose output was closed early (`task-scheduler task show ID | head`), as a
# shell reports a program killed by SIGPIPE (128 + 13).
PIPE_CLOSED = 141


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        code = _run(handler, args)
        sys.stdout.flush()  # here, not at exit, so that a closed pipe is caught below
        return code
    except BrokenPipeError:
        _discard_stdout()
        return PIPE_CLOSED


def _run(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        return handler(args)
    except ConfigError as exc:
        print(exc.message, file=sys.stderr)
        return 1
    except TaskSchedulerError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1


def _discard_stdout() -> None:
    """The reader is gone: what is still buffered goes nowhere, and Python's own flush at exit finds no
    closed pipe to complain about (the recipe of Python's `signal` documentation)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # a stdout without a file descriptor (tests capture it)
        pass
