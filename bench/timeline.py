"""Where a task's time goes: its history events, the ledger updates made for it and its driver runs, on
one time line (ms since the task started). For profiling, after `bench/run.py --keep`:

    .venv/bin/python bench/timeline.py RUN_DIR w1-010 p1-010

It starts a dev server on the run's database file (read only in effect) and prints one line per event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from measure import read_uses
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from task_scheduler.devserver import DevServer

LEDGER_PREFIX = "node-"
NODES = [f"node-{i}" for i in range(1, 6)]


def _name(event: HistoryEvent) -> str:
    return EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")


def _payload_text(event: HistoryEvent) -> str:
    """The first input payload of an accepted update, as text (our models are JSON)."""
    attributes = event.workflow_execution_update_accepted_event_attributes
    payloads = attributes.accepted_request.input.args.payloads
    return payloads[0].data.decode(errors="replace") if payloads else ""


async def _events(client: Client, workflow_id: str) -> list[HistoryEvent]:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return list(history.events)


async def ledger_updates(client: Client, task_id: str) -> list[tuple[datetime, str]]:
    """Accepted and completed updates of every ledger that name `task_id`."""
    found: list[tuple[datetime, str]] = []
    for node in NODES:
        accepted: dict[str, str] = {}
        for event in await _events(client, LEDGER_PREFIX + node):
            kind = _name(event)
            if kind == "WORKFLOW_EXECUTION_UPDATE_ACCEPTED":
                attributes = event.workflow_execution_update_accepted_event_attributes
                text = _payload_text(event)
                if task_id in text:
                    name = attributes.accepted_request.input.name
                    accepted[attributes.protocol_instance_id] = f"{node} {name} {_key(text)}"
                    found.append(
                        (
                            event.event_time.ToDatetime(),
                            f"ledger {accepted[attributes.protocol_instance_id]} accepted",
                        )
                    )
            elif kind == "WORKFLOW_EXECUTION_UPDATE_COMPLETED":
                update_id = event.workflow_execution_update_completed_event_attributes.meta.update_id
                if update_id in accepted:
                    found.append((event.event_time.ToDatetime(), f"ledger {accepted[update_id]} completed"))
    return found


def _key(text: str) -> str:
    try:
        data: dict[str, Any] = json.loads(text)
    except ValueError:
        return ""
    key = data.get("key", {})
    closes = data.get("close") or {}
    close = f" (closes {closes['key']['task_id']})" if closes else ""
    return f"step {key.get('step_index', '?')}{close}"


async def timeline(client: Client, run_dir: Path, task_id: str) -> list[str]:
    lines = [(e.event_time.ToDatetime(), _name(e)) for e in await _events(client, task_id)]
    lines += await ledger_updates(client, task_id)
    start = min(at for at, _ in lines)
    for log in (run_dir / "drivers.log", run_dir / "plain.log"):
        for use in read_uses(log, task_id):
            lines.append(
                (datetime.fromtimestamp(use.start, UTC).replace(tzinfo=None), f"driver start {use.node}")
            )
            if use.end is not None:
                lines.append(
                    (datetime.fromtimestamp(use.end, UTC).replace(tzinfo=None), f"driver end   {use.node}")
                )
    lines.sort()
    return [f"{(at - start).total_seconds() * 1000:8.1f} ms  {what}" for at, what in lines]


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("task_ids", nargs="+")
    args = parser.parse_args(argv)
    async with DevServer(db_file=args.run_dir / "temporal.db") as server:
        client = await Client.connect(server.address)
        for task_id in args.task_ids:
            print(f"--- {task_id}")
            print("\n".join(await timeline(client, args.run_dir, task_id)))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
