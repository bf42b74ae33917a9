"""`task-scheduler`: the command line. It wires the parts together; each command lives in a small function."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn

from .client.commands import (
    DEFAULT_STATE_DIR,
    add_node_commands,
    add_stats_command,
    add_task_commands,
    add_timeline_command,
    read_file,
)
from .engine.config import LabConfig
from .engine.errors import ConfigError, TaskSchedulerError, TokenLifetimeError
from .engine.loader import ALL_NODES, Hosted, NodesOfWorker, load_config, load_config_dir
from .lifecycle import run_async, stop_event_on_signals
from .settings import DAY_S, Settings, connect

if TYPE_CHECKING:
    from .devserver import DevServer

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


def load_lab(args: argparse.Namespace, hosted: Hosted = ALL_NODES) -> LabConfig:
    """The lab; only the `hosted` nodes' types are resolved (their driver modules imported)."""
    if args.nodes or args.workflows:
        if not (args.nodes and args.workflows):
            raise TaskSchedulerError("give both -n nodes.json and -w workflows.json, or --config DIR")
        return load_config(args.nodes, args.workflows, args.module, hosted=hosted)
    return load_config_dir(Path(args.config or DEFAULT_CONFIG_DIR), args.module, hosted=hosted)


def cmd_config_check(args: argparse.Namespace) -> int:
    """The full view (every node's type checked here), or with --worker a PC's view (its nodes' only)."""
    lab = load_lab(args, NodesOfWorker(args.worker) if args.worker else ALL_NODES)
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
        print(f"  {node.id:<14} {node.type:<16} worker: {worker:<8} {attempts}, timeout {timeout}")
    print(f"{len(lab.workflows)} workflow(s):")
    for workflow in lab.workflows:
        print(f"  {workflow.name:<18} " + " -> ".join(step.node for step in workflow.steps))
    _print_hosting(lab, args.worker)
    _print_notifications(lab)
    return 0


def check_notification_targets(lab: LabConfig) -> None:
    """Refuse a notification URL Apprise does not understand, located like every configuration problem."""
    from .activities.notify import check_targets

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


def _print_hosting(lab: LabConfig, worker: str | None) -> None:
    names = lab.worker_names()
    if worker is not None:
        hosted = ", ".join(n.id for n in lab.nodes_of_worker(worker))
        print(f"worker {worker} hosts: {hosted}" + ("" if names else " (no node names a worker: all)"))
    elif names:
        print(
            f"This lab has named workers ({', '.join(names)}): on each PC, run `task-scheduler config "
            "check --worker NAME` to check its nodes' types with what that PC has installed."
        )


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


def cmd_worker(args: argparse.Namespace) -> int:
    from .activities.metrics import free_loopback_port, sdk_runtime
    from .worker import WorkerOptions, run_worker

    configure_logging(args.verbose)
    if args.workflows_only and args.name:
        raise TaskSchedulerError("--workflows-only hosts no node: give it no --name")
    lab = load_lab(args, worker_hosts(args))
    if args.name:
        lab.check_worker(args.name)
    settings = settings_from(args)
    options = WorkerOptions(
        lab=lab,
        name=args.name,
        task_queue=settings.task_queue,
        run_workflows=runs_workflows(args),
        host_nodes=not args.workflows_only,
        emulate=args.emulate,
        grace_s=args.grace_s,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
        sdk_metrics_port=free_loopback_port() if args.metrics_port is not None else None,
    )

    async def run() -> None:
        sdk_port = options.sdk_metrics_port
        client = await connect(settings, sdk_runtime(sdk_port) if sdk_port is not None else None)
        await run_worker(client, options, stop_event_on_signals())

    return run_async(run)


def worker_hosts(args: argparse.Namespace) -> Hosted:
    if args.workflows_only:
        return None
    return NodesOfWorker(args.name) if args.name else ALL_NODES


def runs_workflows(args: argparse.Namespace) -> bool:
    """A named worker (a lab PC) runs no workflows unless asked: the workflow queue belongs on the
    server host, where a cut-off PC cannot hold a cached workflow. An unnamed worker runs them."""
    if args.run_workflows or args.workflows_only:
        return True
    return args.name is None and not args.no_workflows


def cmd_dev(args: argparse.Namespace) -> int:
    """The whole stack on one machine: the Temporal dev server (SQLite file, UI), a worker, the API."""
    from .api.app import create_app
    from .devstack import Stack, admin_token, serve
    from .glas.app import install_seed_api

    state_dir = Path(args.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    configure_logging(args.verbose, state_dir / "task-scheduler.log" if args.logs else None)
    lab = load_lab(args)
    stack = Stack(
        lab=lab,
        state_dir=state_dir,
        host=args.host,
        port=args.port,
        temporal_port=args.temporal_port,
        ui_port=args.ui_port,
        emulate=args.emulate,
    )
    settings = stack.settings(stack.server())
    token = admin_token(settings, state_dir)
    app = create_app(settings, lab=lab)
    install_seed_api(app)
    return run_async(lambda: serve(stack, settings, app, token))


def cmd_server(args: argparse.Namespace) -> int:
    """The lab's Temporal server, as `dev` runs it (SQLite file, UI, search attributes, dynamic config),
    bound for the lab's other PCs to reach it; stopped by its pid on SIGINT or SIGTERM."""
    from .devserver import DevServer

    configure_logging(args.verbose)
    state_dir = Path(args.state_dir)
    server = DevServer(
        ip=args.ip,
        db_file=state_dir / "temporal.db",
        port=args.port,
        ui_port=args.ui_port,
        log_file=state_dir / "temporal.log",
    )

    async def run() -> None:
        stop = stop_event_on_signals()
        server.start()
        try:
            await server.wait_ready()
            print(_server_banner(server, state_dir), flush=True)
            await _run_until(stop, server)
        finally:
            await asyncio.to_thread(server.stop)

    return run_async(run)


async def _run_until(stop: asyncio.Event, server: DevServer) -> None:
    """Until a signal sets `stop`; a server that exits by itself is an error, with its log's end."""
    while not stop.is_set():
        server.raise_if_exited()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)


def _server_banner(server: DevServer, state_dir: Path) -> str:
    from .devserver import lan_addresses

    hosts = lan_addresses() if server.ip == "0.0.0.0" else []
    lines = ["Temporal server of the lab is running (Ctrl-C stops it; starting it again resumes every task)"]
    lines += [f"  workers, API  TEMPORAL_ADDRESS={host}:{server.port}" for host in hosts]
    lines += [f"  Temporal UI   http://{host}:{server.ui_port}" for host in hosts]
    lines += [f"  on this PC    {server.address}, UI {server.ui_url}"]
    lines += [f"  state         {state_dir}/temporal.db (its log: {state_dir}/temporal.log)"]
    if server.ip != "0.0.0.0":
        lines += [f"  bound to {server.ip}: only this PC can connect (--ip 0.0.0.0 for the other PCs)"]
    elif not hosts:
        lines += ["  this host has no network address yet: the other PCs cannot reach it"]
    lines += [
        f"  no TLS, no credentials: let the firewall allow only the lab subnet to ports {server.port} "
        f"and {server.ui_port}"
    ]
    return "\n".join(lines)


def cmd_api(args: argparse.Namespace) -> int:
    from .api.app import create_app
    from .api.serve import server_config
    from .glas.app import install_seed_api

    configure_logging(args.verbose)
    settings = settings_from(args)
    lab = load_lab(args, hosted=None) if (args.config or args.nodes) else None
    app = create_app(settings, lab=lab)
    install_seed_api(app)
    uvicorn.Server(server_config(app, args.host, args.port)).run()
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    from .api.security import Role, create_token

    settings = Settings()
    secret = settings.secret
    value = secret.get_secret_value() if secret else read_file(Path(args.state_dir) / "secret")
    if not value:
        raise TaskSchedulerError("no secret: set TASK_SCHEDULER_SECRET, or run `task-scheduler dev` once")
    print(create_token(value, args.name, Role[args.role], token_ttl_s(settings, args.role, args.ttl_days)))
    return 0


def token_ttl_s(settings: Settings, role: str, ttl_days: float | None) -> float:
    """The role's lifetime, or fewer days if asked: the API refuses a token older than its role's."""
    lifetime_s = settings.token_lifetime_s(role)
    if ttl_days is None:
        return lifetime_s
    if ttl_days <= 0 or ttl_days * DAY_S > lifetime_s:
        raise TokenLifetimeError(
            f"--ttl-days {ttl_days:g}: {role} tokens live at most {lifetime_s / DAY_S:g} day(s) "
            f"(TASK_SCHEDULER_TOKEN_TTL_S_{role.upper()}, in seconds); ask for fewer days, or raise "
            "that setting where the API runs"
        )
    return ttl_days * DAY_S


def cmd_token_revoke_all(args: argparse.Namespace) -> int:
    """Print the setting that revokes every token issued until now (the secret stays as it is)."""
    # The next whole second: a token issued in this very second is revoked too.
    moment = datetime.fromtimestamp(math.floor(time.time()) + 1, UTC)
    print(f"TASK_SCHEDULER_TOKENS_VALID_AFTER={moment.strftime('%Y-%m-%dT%H:%M:%SZ')}")
    print(
        "Set it where the API runs (its environment or .env) and restart the API: every token issued "
        'before then is refused (401 "token revoked"). Then give new ones: `task-scheduler token create`.',
        file=sys.stderr,
    )
    return 0


def cmd_setup(args: argparse.Namespace) -> int:
    from .devserver import DEV_SERVER_RETENTION, namespace_retention
    from .workflows.search_attributes import ensure_search_attributes

    settings = settings_from(args)
    namespace = settings.temporal_namespace

    async def run() -> None:
        client = await connect(settings)
        added = await ensure_search_attributes(client, namespace)
        print(
            f"search attributes added: {', '.join(added)}"
            if added
            else "search attributes already registered"
        )
        # The namespace is the Temporal admin's: its retention is reported, not changed.
        kept = await namespace_retention(client, namespace)
        print(f"namespace {namespace} keeps finished tasks for {_days(kept)}")
        if kept < DEV_SERVER_RETENTION:
            print(
                f"note: a task's steps, outputs and logs are gone {_days(kept)} after it ends, and so are "
                "the first steps of a run that lasts longer. To keep them longer: temporal operator "
                f"namespace update --namespace {namespace} --retention {DEV_SERVER_RETENTION.days}d",
                file=sys.stderr,
            )

    return run_async(run)


def _days(span: timedelta) -> str:
    days = span / timedelta(days=1)
    return f"{days:g} day{'' if days == 1 else 's'}"


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

    server = commands.add_parser(
        "server", help="run the lab's Temporal server (dev server + UI) for every PC"
    )
    server.add_argument(
        "--ip",
        default="0.0.0.0",
        help="bind address: 0.0.0.0 (every interface, the default) or 127.0.0.1 (this PC only)",
    )
    server.add_argument("--port", type=int, default=7233, help="the gRPC port workers and the API dial")
    server.add_argument("--ui-port", type=int, default=8233, help="the Temporal Web UI's port")
    server.add_argument("--state-dir", default=DEFAULT_STATE_DIR, help="where the Temporal database is kept")
    server.add_argument("--verbose", "-v", action="store_true", help="log debug messages")
    server.set_defaults(handler=cmd_server)

    worker = commands.add_parser("worker", help="run a worker hosting this machine's nodes")
    add_config_arguments(worker)
    add_temporal_arguments(worker)
    worker.add_argument(
        "--name", help="host the nodes whose `worker` is NAME (a lab PC); without it, every node"
    )
    workflows = worker.add_mutually_exclusive_group()
    # Not `--workflows`: that is the seed's `-w workflows.json`.
    workflows.add_argument(
        "--run-workflows", action="store_true", help="also run the workflows (the default without --name)"
    )
    workflows.add_argument("--no-workflows", action="store_true", help="do not run the workflows")
    workflows.add_argument(
        "--workflows-only", action="store_true", help="run the workflows and host no node (the server host)"
    )
    worker.add_argument("--emulate", "-e", action="store_true", help="emulation mode: no driver is called")
    worker.add_argument("--grace-s", type=float, default=30.0, help="on SIGTERM, time running steps get")
    worker.add_argument(
        "--metrics-port", type=int, metavar="N", help="serve this worker's and the SDK's metrics on port N"
    )
    worker.add_argument(
        "--metrics-host", default="127.0.0.1", help="the metrics' bind address (0.0.0.0: every interface)"
    )
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
    check.add_argument(
        "--worker", metavar="NAME", help="a PC's view: check the types of worker NAME's nodes only"
    )
    check.set_defaults(handler=cmd_config_check)

    token = commands.add_parser("token", help="make and revoke API tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = token_commands.add_parser("create", help="print a token for NAME with a role")
    create.add_argument("name")
    create.add_argument("--role", choices=["viewer", "operator", "admin"], default="viewer")
    create.add_argument(
        "--ttl-days", type=float, help="fewer days than the role's lifetime (TASK_SCHEDULER_TOKEN_TTL_S_*)"
    )
    create.add_argument("--state-dir", default=DEFAULT_STATE_DIR, help=argparse.SUPPRESS)
    create.set_defaults(handler=cmd_token_create)
    revoke = token_commands.add_parser(
        "revoke-all", help="print the TASK_SCHEDULER_TOKENS_VALID_AFTER that revokes every token until now"
    )
    revoke.set_defaults(handler=cmd_token_revoke_all)

    add_server_commands(commands)
    add_task_commands(commands)
    add_node_commands(commands)
    add_timeline_command(commands)
    add_stats_command(commands)
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
