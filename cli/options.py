"""The options several commands share: where the lab's files are, which Temporal to dial, which API to
call and with what token, and how to log."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from ..client.http import ApiClient
from ..devstate import RUNNING, Found, RunningStack, find
from ..engine.config import LabConfig
from ..engine.errors import TaskSchedulerError
from ..engine.loader import ALL_NODES, Hosted, find_config_files, load_config
from ..settings import Settings

DEFAULT_CONFIG_DIR = "examples/demo-lab"
DEFAULT_API = "http://127.0.0.1:8000"


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """`--config DIR`, or the seed's `-n nodes.json -w workflows.json`, and node modules to import. Paths
    given here are relative to the current folder (a `modules` entry in nodes.json, to that file's)."""
    parser.add_argument("--config", "-c", metavar="DIR", help="folder with nodes.json and workflows.json")
    parser.add_argument("--nodes", "-n", metavar="FILE", help="path to nodes.json (the seed's -n)")
    parser.add_argument("--workflows", "-w", metavar="FILE", help="path to workflows.json (the seed's -w)")
    parser.add_argument(
        "--module",
        "-m",
        action="append",
        default=[],
        metavar="MODULE",
        help="node module to import: a dotted name, or a .py file or a folder, relative to the current "
        "folder (repeatable)",
    )


def lab_files(args: argparse.Namespace) -> tuple[Path, Path]:
    """nodes.json and workflows.json as the command names them: `-n` and `-w`, or in `--config DIR`."""
    if args.nodes or args.workflows:
        if not (args.nodes and args.workflows):
            raise TaskSchedulerError("give both -n nodes.json and -w workflows.json, or --config DIR")
        return Path(args.nodes), Path(args.workflows)
    return find_config_files(Path(args.config or DEFAULT_CONFIG_DIR))


def load_lab(args: argparse.Namespace, hosted: Hosted = ALL_NODES) -> LabConfig:
    """The lab; only the `hosted` nodes' types are resolved (their driver modules imported)."""
    return load_config(*lab_files(args), args.module, hosted=hosted)


def add_temporal_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", help="Temporal frontend host:port (default: $TEMPORAL_ADDRESS)")
    parser.add_argument("--namespace", help="Temporal namespace (default: $TEMPORAL_NAMESPACE or default)")
    parser.add_argument("--task-queue", help="the workflow task queue (default: task-scheduler)")
    parser.add_argument("--verbose", "-v", action="store_true", help="log debug messages")


def settings_from(args: argparse.Namespace) -> Settings:
    overrides = {
        "temporal_address": args.address,
        "temporal_namespace": args.namespace,
        "task_queue": args.task_queue,
    }
    settings = Settings()
    return settings.model_copy(update={k: v for k, v in overrides.items() if v})


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api",
        help="the API's address (default: $TASK_SCHEDULER_API_URL, else the running dev stack's, else "
        f"{DEFAULT_API})",
    )
    parser.add_argument("--token", help="bearer token (default: $TASK_SCHEDULER_TOKEN, or the dev stack's)")
    parser.add_argument("--state-dir", help=argparse.SUPPRESS)


def api_client(args: argparse.Namespace) -> ApiClient:
    """The API client a command uses: the address and token given, else the dev stack's, found from any
    folder (`devstate.find`); where each came from is said when the API cannot be reached or refuses."""
    url, url_from = _given(args.api, "TASK_SCHEDULER_API_URL", "address")
    token, token_from = _given(args.token, "TASK_SCHEDULER_TOKEN", "token")
    if url is None or token is None:
        found = dev_state(args)
        if url is None and found.stack is not None:
            url, url_from = found.stack.api_url, f"the address of the dev stack in {found.state_dir}/"
        elif url is None:
            url, url_from = (
                DEFAULT_API,
                f"the default address (no running dev stack in {found.where_looked()})",
            )
        if token is None:
            token = read_file(found.file("token"))
            token_from = f"the token in {found.state_dir}/" if token else f"no token ({found.where_looked()})"
    return ApiClient(url, token, origin=f"{url_from}; {token_from}")


def _given(flag: str | None, variable: str, what: str) -> tuple[str | None, str]:
    if flag:
        return flag, f"the {what} given"
    value = os.environ.get(variable)
    return value, f"the {what} in ${variable}"


def dev_state(args: argparse.Namespace) -> Found:
    """The dev stack's state folder: the one `--state-dir` names, else the one found from here."""
    if getattr(args, "state_dir", None):
        folder = Path(args.state_dir)
        return Found(folder, RunningStack.read(folder / RUNNING), (f"{folder}/ (--state-dir)",))
    return find()


def read_file(path: Path | None) -> str | None:
    return path.read_text().strip() if path is not None and path.exists() else None


def configure_logging(verbose: bool, log_file: Path | None = None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file is not None:
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        handlers=handlers,
    )
    # transitions logs every state change at INFO; the task's history already records them.
    logging.getLogger("transitions").setLevel(logging.WARNING)
