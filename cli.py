"""`task-scheduler`: the command line. It wires the parts together; each command lives in a small function."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .engine.config import LabConfig
from .engine.errors import ConfigError, TaskSchedulerError
from .engine.loader import load_config, load_config_dir

DEFAULT_CONFIG_DIR = "examples/demo-lab"


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """`--config DIR`, or the seed's `-n nodes.json -w workflows.json`, and node modules to import."""
    parser.add_argument("--config", "-c", metavar="DIR", help="folder with nodes.json and workflows.json")
    parser.add_argument("--nodes", "-n", metavar="FILE", help="path to nodes.json (the seed's -n)")
    parser.add_argument("--workflows", "-w", metavar="FILE", help="path to workflows.json (the seed's -w)")
    parser.add_argument(
        "--module",
        "-m",
        action="append",
        default=[],
        metavar="MODULE",
        help="node module to import: a dotted name, a .py file or a folder (repeatable)",
    )


def load_lab(args: argparse.Namespace) -> LabConfig:
    if args.nodes or args.workflows:
        if not (args.nodes and args.workflows):
            raise TaskSchedulerError("give both -n nodes.json and -w workflows.json, or --config DIR")
        return load_config(args.nodes, args.workflows, args.module)
    return load_config_dir(Path(args.config or DEFAULT_CONFIG_DIR), args.module)


def cmd_config_check(args: argparse.Namespace) -> int:
    lab = load_lab(args)
    print(f"Configuration OK: {lab.nodes_file}, {lab.workflows_file}")
    print(f"{len(lab.nodes)} node(s):")
    for node in lab.nodes:
        attempts = f"{node.retry.max_attempts} attempt(s)"
        timeout = f"{node.timeout_s:g} s" if node.timeout_s else "none"
        worker = node.worker or "any"
        print(f"  {node.id:<14} {node.type:<16} worker: {worker:<8} {attempts}, timeout {timeout}")
    print(f"{len(lab.workflows)} workflow(s):")
    for workflow in lab.workflows:
        print(f"  {workflow.name:<18} " + " -> ".join(step.node for step in workflow.steps))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="task-scheduler", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    config = commands.add_parser("config", help="check the lab configuration")
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = config_commands.add_parser("check", help="validate nodes.json and workflows.json")
    add_config_arguments(check)
    check.set_defaults(handler=cmd_config_check)
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


if __name__ == "__main__":
    sys.exit(main())
