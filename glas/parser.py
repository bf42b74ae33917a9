"""The seed's command line (`python -m run -p PORT -n nodes.json -w workflows.json -v -l -e -d`), as a
GLAS project's `run.py` parses it: the same options, names and defaults."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="TaskScheduler",
        description="Run the lab's scheduler: durable tasks on Temporal, the HTTP API, a worker",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("-p", "--port", type=int, default=8000, help="the HTTP API's port")
    parser.add_argument(
        "-n",
        "--nodes",
        default="./config/nodes.json",
        dest="path_to_nodes",
        help="the nodes' file, relative to the working directory",
    )
    parser.add_argument(
        "-w",
        "--workflows",
        default="./config/workflows.json",
        dest="path_to_workflows",
        help="the workflows' file, relative to the working directory",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug lines")
    parser.add_argument("-l", "--logs", action="store_true", help="also write the log to ./scheduler.log")
    parser.add_argument("-e", "--emulate", action="store_true", help="emulation mode (for the lab's code)")
    parser.add_argument("-d", "--debug", action="store_true", help="log each line's module and line")
    return parser.parse_args(argv)
