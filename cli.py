"""`task-scheduler`: the command line. It wires the parts together; each command lives in a small function."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import uvicorn
from pydantic import SecretStr

from .api.client import ApiClient, render_task
from .engine.config import LabConfig
from .engine.errors import ConfigError, TaskSchedulerError
from .engine.loader import load_config, load_config_dir
from .settings import Settings, connect

DEFAULT_CONFIG_DIR = "examples/demo-lab"
DEFAULT_STATE_DIR = ".task-scheduler"


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


def stop_event_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


def cmd_worker(args: argparse.Namespace) -> int:
    from .worker import WorkerOptions, run_worker

    configure_logging(args.verbose)
    lab = load_lab(args)
    settings = settings_from(args)
    options = WorkerOptions(
        lab=lab,
        name=args.name,
        task_queue=settings.task_queue,
        run_workflows=not args.no_workflows,
        emulate=args.emulate,
        grace_s=args.grace_s,
    )

    async def run() -> None:
        client = await connect(settings)
        await run_worker(client, options, stop_event_on_signals())

    asyncio.run(run())
    return 0


def _dev_secret(state_dir: Path) -> str:
    """The dev stack's token secret, made once and kept in the state directory."""
    path = state_dir / "secret"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def cmd_dev(args: argparse.Namespace) -> int:
    """The whole stack on one machine: the Temporal dev server (SQLite file, UI), a worker, the API."""
    from .api.app import create_app
    from .api.security import Role, create_token
    from .devserver import DevServer
    from .worker import WorkerOptions, run_worker

    state_dir = Path(args.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    configure_logging(args.verbose, state_dir / "task-scheduler.log" if args.logs else None)
    lab = load_lab(args)
    server = DevServer(
        db_file=state_dir / "temporal.db",
        port=args.temporal_port,
        ui_port=args.ui_port,
        log_file=state_dir / "temporal.log",
    )
    settings = Settings().model_copy(
        update={
            "temporal_address": server.address,
            "temporal_namespace": "default",
            "secret": SecretStr(os.environ.get("TASK_SCHEDULER_SECRET") or _dev_secret(state_dir)),
            "temporal_ui_url": server.ui_url,
            "api_host": args.host,
            "api_port": args.port,
        }
    )
    secret = settings.secret.get_secret_value() if settings.secret else ""
    token = create_token(secret, "dev-admin", Role.admin, settings.token_ttl_s)
    (state_dir / "token").write_text(token)
    options = WorkerOptions(lab=lab, emulate=args.emulate, task_queue=settings.task_queue)

    async def run() -> None:
        server.start()
        try:
            await server.wait_ready()
            client = await connect(settings)
            app = create_app(settings, lab=lab, client=client)
            stop = stop_event_on_signals()
            api = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning"))
            api.install_signal_handlers = lambda: None  # type: ignore[method-assign]
            api_task = asyncio.create_task(api.serve())
            print(_dev_banner(settings, server.ui_url, state_dir, token), flush=True)
            try:
                await run_worker(client, options, stop)
            finally:
                api.should_exit = True
                await api_task
        finally:
            server.stop()

    asyncio.run(run())
    return 0


def _dev_banner(settings: Settings, ui_url: str | None, state_dir: Path, token: str) -> str:
    api = f"http://{settings.api_host}:{settings.api_port}"
    return "\n".join(
        [
            "task_scheduler is running (Ctrl-C stops it; starting it again resumes every unfinished task)",
            f"  API          {api}   (docs: {api}/docs)",
            f"  Temporal UI  {ui_url}",
            f"  Temporal     {settings.temporal_address}, state in {state_dir}/",
            f"  admin token  {token}",
            f"               (also in {state_dir}/token, which the CLI reads by itself)",
        ]
    )


def cmd_api(args: argparse.Namespace) -> int:
    from .api.app import create_app

    configure_logging(args.verbose)
    settings = settings_from(args)
    lab = load_lab(args) if (args.config or args.nodes) else None
    app = create_app(settings, lab=lab)
    uvicorn.run(
        app, host=args.host or settings.api_host, port=args.port or settings.api_port, log_level="warning"
    )
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    from .api.security import Role, create_token

    secret = Settings().secret
    value = secret.get_secret_value() if secret else _read(Path(args.state_dir) / "secret")
    if not value:
        raise TaskSchedulerError("no secret: set TASK_SCHEDULER_SECRET, or run `task-scheduler dev` once")
    print(create_token(value, args.name, Role[args.role], args.ttl_days * 24 * 3600))
    return 0


def _read(path: Path) -> str | None:
    return path.read_text().strip() if path.exists() else None


def api_client(args: argparse.Namespace) -> ApiClient:
    token = args.token or os.environ.get("TASK_SCHEDULER_TOKEN") or _read(Path(args.state_dir) / "token")
    return ApiClient(args.api, token)


def cmd_task(args: argparse.Namespace) -> int:
    api = api_client(args)
    action, task_id = args.action, getattr(args, "task_id", None)
    if action == "start":
        body = {"workflow_name": args.workflow, "args": json.loads(args.args), "priority": args.priority}
        if args.id:
            body["id"] = args.id
        task = api.post("/tasks", body)
        print(f"started {task['task_id']}")
        return _follow(api, task["task_id"]) if args.wait else 0
    if action == "list":
        for task in api.get("/tasks", state=args.state, workflow_name=args.workflow, node=args.node)["tasks"]:
            print(
                f"{task['task_id']:<40} {task['workflow_name'] or '-':<18} {task['state'] or '-':<10} "
                f"{task['current_node'] or '':<12} {task['temporal_status']}"
            )
        return 0
    if action == "wait":
        return _follow(api, task_id)
    if action == "show":
        print(render_task(api.get(f"/tasks/{task_id}")))
        return 0
    body = (
        {"mode": args.mode}
        if action == "continue"
        else {"reason": args.reason}
        if action == "cancel"
        else None
    )
    print(render_task(api.post(f"/tasks/{task_id}/{action}", body)))
    return 0


def _follow(api: ApiClient, task_id: str) -> int:
    task = api.follow(task_id, lambda t: print(render_task(t), flush=True))
    if task["state"] == "ERROR":
        print(f"the task waits for an operator: task-scheduler task continue {task_id} [--mode next]")
    return 0 if task["state"] == "FINISHED" else 1


def cmd_node(args: argparse.Namespace) -> int:
    api = api_client(args)
    nodes = [api.post(f"/nodes/{args.node_id}/restart")] if args.action == "restart" else api.get("/nodes")
    for node in nodes:
        holder = node["holder"]["key"]["task_id"] if node.get("holder") else "-"
        hosted = "hosted" if node["hosted"] else "NO WORKER"
        print(
            f"{node['id']:<14} {node['state'] or '?':<10} {hosted:<10} holder: {holder:<30} "
            f"waiting: {len(node['waiting_tasks'])}  {node.get('reason') or ''}"
        )
    return 0


def cmd_setup(args: argparse.Namespace) -> int:
    from .workflows.search_attributes import ensure_search_attributes

    settings = settings_from(args)

    async def run() -> list[str]:
        client = await connect(settings)
        return await ensure_search_attributes(client, settings.temporal_namespace)

    added = asyncio.run(run())
    print(f"search attributes added: {', '.join(added)}" if added else "search attributes already registered")
    return 0


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api",
        default=os.environ.get("TASK_SCHEDULER_API_URL", "http://127.0.0.1:8000"),
        help="the API's address (default: $TASK_SCHEDULER_API_URL or http://127.0.0.1:8000)",
    )
    parser.add_argument("--token", help="bearer token (default: $TASK_SCHEDULER_TOKEN, or the dev stack's)")
    parser.add_argument("--state-dir", default=DEFAULT_STATE_DIR, help=argparse.SUPPRESS)


def add_task_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    task = commands.add_parser("task", help="start, list, show and control tasks (through the API)")
    actions = task.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = actions.add_parser("start", help="start a task")
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
        ("pause", "pause after the current step"),
        ("continue", "continue a paused or failed task"),
        ("cancel", "cancel a task (its running step is aborted)"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("task_id")
        if name == "continue":
            action.add_argument(
                "--mode",
                choices=["retry", "next"],
                default="retry",
                help="after a failed step: run it again (retry) or move on (next)",
            )
        if name == "cancel":
            action.add_argument("--reason")
    for sub in actions.choices.values():
        add_client_arguments(sub)
    task.set_defaults(handler=cmd_task)


def add_node_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    node = commands.add_parser("node", help="list and restart nodes (through the API)")
    actions = node.add_subparsers(dest="action", required=True, metavar="ACTION")
    add_client_arguments(actions.add_parser("list", help="nodes, their state, holder and worker"))
    restart = actions.add_parser("restart", help="restart a node (clears its ERROR)")
    restart.add_argument("node_id")
    add_client_arguments(restart)
    node.set_defaults(handler=cmd_node)


def add_server_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    dev = commands.add_parser("dev", help="run the whole stack here: Temporal dev server + UI, worker, API")
    add_config_arguments(dev)
    dev.add_argument("--state-dir", default=DEFAULT_STATE_DIR, help="where the Temporal database is kept")
    dev.add_argument("--host", default="127.0.0.1", help="the API's bind address")
    dev.add_argument("--port", "-p", type=int, default=8000, help="the API's port (the seed's -p)")
    dev.add_argument("--temporal-port", type=int, default=7233)
    dev.add_argument("--ui-port", type=int, default=8233)
    dev.add_argument("--emulate", "-e", action="store_true", help="emulation mode: no driver is called")
    dev.add_argument("--logs", "-l", action="store_true", help="also log to STATE_DIR/task-scheduler.log")
    dev.add_argument("--verbose", "-v", "--debug", "-d", action="store_true", help="log debug messages")
    dev.set_defaults(handler=cmd_dev)

    worker = commands.add_parser("worker", help="run a worker hosting this machine's nodes")
    add_config_arguments(worker)
    add_temporal_arguments(worker)
    worker.add_argument("--name", help="host the nodes whose `worker` is NAME (and those naming none)")
    worker.add_argument("--no-workflows", action="store_true", help="do not poll the workflow task queue")
    worker.add_argument("--emulate", "-e", action="store_true", help="emulation mode: no driver is called")
    worker.add_argument("--grace-s", type=float, default=30.0, help="on SIGTERM, time running steps get")
    worker.set_defaults(handler=cmd_worker)

    api = commands.add_parser("api", help="run the HTTP API (settings from TASK_SCHEDULER_* variables)")
    add_config_arguments(api)
    add_temporal_arguments(api)
    api.add_argument("--host", help="bind address (default: $TASK_SCHEDULER_API_HOST or 127.0.0.1)")
    api.add_argument("--port", "-p", type=int, help="port (default: $TASK_SCHEDULER_API_PORT or 8000)")
    api.set_defaults(handler=cmd_api)

    setup = commands.add_parser("setup", help="register the custom search attributes on a Temporal server")
    add_temporal_arguments(setup)
    setup.set_defaults(handler=cmd_setup)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="task-scheduler", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    config = commands.add_parser("config", help="check the lab configuration")
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    check = config_commands.add_parser("check", help="validate nodes.json and workflows.json")
    add_config_arguments(check)
    check.set_defaults(handler=cmd_config_check)

    token = commands.add_parser("token", help="make API tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = token_commands.add_parser("create", help="print a token for NAME with a role")
    create.add_argument("name")
    create.add_argument("--role", choices=["viewer", "operator", "admin"], default="viewer")
    create.add_argument("--ttl-days", type=float, default=365)
    create.add_argument("--state-dir", default=DEFAULT_STATE_DIR, help=argparse.SUPPRESS)
    create.set_defaults(handler=cmd_token_create)

    add_server_commands(commands)
    add_task_commands(commands)
    add_node_commands(commands)
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
