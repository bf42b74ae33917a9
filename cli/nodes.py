"""`node list`, `node restart ID` and `workers`: the lab's nodes and the PCs hosting them."""

from __future__ import annotations

import argparse

from .options import add_client_arguments, api_client
from .render import render_nodes, render_worker


def cmd_node(args: argparse.Namespace) -> int:
    api = api_client(args)
    nodes = [api.post(f"/nodes/{args.node_id}/restart")] if args.action == "restart" else api.get("/nodes")
    print(render_nodes(nodes))
    return 0


def cmd_workers(args: argparse.Namespace) -> int:
    for worker in api_client(args).get("/workers"):
        print(render_worker(worker))
    return 0


def add_node_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    node = commands.add_parser("node", help="list and restart nodes (through the API)")
    actions = node.add_subparsers(dest="action", required=True, metavar="ACTION")
    add_client_arguments(actions.add_parser("list", help="nodes, their state, holder and worker"))
    restart = actions.add_parser("restart", help="restart a node (clears its ERROR)")
    restart.add_argument("node_id")
    add_client_arguments(restart)
    node.set_defaults(handler=cmd_node)
    # Not `worker`: that command runs a worker.
    workers = commands.add_parser("workers", help="the lab's workers (one per PC): online or since when not")
    add_client_arguments(workers)
    workers.set_defaults(handler=cmd_workers)
