"""The commands that run the lab: `dev` (the whole stack on one machine), `server` (the lab's Temporal
server), `worker` (on each lab PC), `api`, and `setup` (a Temporal server of one's own)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from ..devstate import DEFAULT_STATE_DIR
from ..engine.errors import TaskSchedulerError
from ..engine.loader import ALL_NODES, Hosted, NodesOfWorker
from ..lifecycle import run_async, stop_event_on_signals
from ..settings import Settings, connect
from .options import (
    add_config_arguments,
    add_temporal_arguments,
    configure_logging,
    load_lab,
    settings_from,
)

if TYPE_CHECKING:
    from ..devserver import DevServer


def cmd_worker(args: argparse.Namespace) -> int:
    from ..activities.metrics import free_loopback_port, sdk_runtime
    from ..worker import WorkerOptions, run_worker

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
    from ..api.app import create_app
    from ..devstack import Stack, serve
    from ..glas.app import install_seed_api

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
    app = create_app(settings, lab=lab)
    install_seed_api(app)
    return run_async(lambda: serve(stack, settings, app))


def cmd_server(args: argparse.Namespace) -> int:
    """The lab's Temporal server, as `dev` runs it (SQLite file, UI, search attributes, dynamic config),
    bound for the lab's other PCs to reach it; stopped by its pid on SIGINT or SIGTERM."""
    from ..devserver import DevServer

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
    from ..devserver import lan_addresses

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
    """The API alone (the lab's server PC): bound first, then a banner that says where it serves, which
    Temporal it talks to, and whether the lab page can link the Temporal UI."""
    from ..api.app import create_app
    from ..api.serve import server_config
    from ..glas.app import install_seed_api
    from ..ports import bound, taken

    configure_logging(args.verbose)
    settings = settings_from(args)
    lab = load_lab(args, hosted=None) if (args.config or args.nodes) else None
    app = create_app(settings, lab=lab)
    install_seed_api(app)
    import uvicorn

    config = server_config(app, args.host, args.port)
    try:
        sock = bound(config.port, config.host)
    except OSError:
        raise taken(config.port, config.host, "the API", "--port, or TASK_SCHEDULER_API_PORT") from None
    # Bound to every interface, it is reached by this PC's name (0.0.0.0 is no address to open).
    shown = socket.gethostname() if config.host in ("0.0.0.0", "::") else config.host
    print(_api_banner(settings, f"http://{shown}:{config.port}"), flush=True)
    with sock:
        uvicorn.Server(config).run(sockets=[sock])
    return 0


def _api_banner(settings: Settings, url: str) -> str:
    ui = settings.temporal_ui_url or "none: set TASK_SCHEDULER_TEMPORAL_UI_URL for the lab page's links to it"
    return "\n".join(
        [
            f"task_scheduler API on {url} (lab page {url}/lab, docs {url}/docs; Ctrl-C stops it)",
            f"  Temporal     {settings.temporal_address}, namespace {settings.temporal_namespace}",
            f"  Temporal UI  {ui}",
        ]
    )


def cmd_setup(args: argparse.Namespace) -> int:
    from ..devserver import DEV_SERVER_RETENTION, namespace_retention
    from ..workflows.search_attributes import ensure_search_attributes

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
