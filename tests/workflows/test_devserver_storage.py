"""The dev server's SQLite settings (DEV_SERVER_SQLITE_PRAGMAS): they show in its command line, and a
database file made with other settings opens with them and back, its workflows kept (a user upgrading
task_scheduler, or going back to an older one)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from temporalio import workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from task_scheduler.devserver import DEV_SERVER_SQLITE_PRAGMAS, DevServer

StartDevServer = Callable[..., Awaitable[DevServer]]
ROLLBACK_JOURNAL: dict[str, str] = {}  # what task_scheduler passed before: SQLite's defaults


@workflow.defn
class EchoWorkflow:
    @workflow.run
    async def run(self, word: str) -> str:
        return word


def journal_mode(db_file: Path) -> str:
    """The journal mode the file is in (WAL is kept in the file; the rollback journal is `delete`)."""
    with contextlib.closing(sqlite3.connect(db_file)) as connection:
        return str(connection.execute("PRAGMA journal_mode").fetchone()[0])


async def restart_with(server: DevServer, pragmas: dict[str, str]) -> Client:
    server.stop()
    server.sqlite_pragmas = pragmas
    server.start()
    await server.wait_ready()
    return await Client.connect(server.address)


async def start_echo(client: Client, word: str, task_queue: str) -> WorkflowHandle[EchoWorkflow, str]:
    return await client.start_workflow(
        EchoWorkflow.run, word, id=f"echo-{uuid.uuid4()}", task_queue=task_queue
    )


def test_devserver_command_line_shows_its_sqlite_settings(tmp_path: Path) -> None:
    command = DevServer(db_file=tmp_path / "temporal.sqlite").command()

    shown = [command[i + 1] for i, flag in enumerate(command) if flag == "--sqlite-pragma"]
    assert shown == [f"{key}={value}" for key, value in DEV_SERVER_SQLITE_PRAGMAS.items()]
    assert "--sqlite-pragma" not in DevServer().command()  # in memory: nothing to tune


async def test_devserver_opens_a_database_of_other_sqlite_settings_and_back(
    start_dev_server: StartDevServer, tmp_path: Path, task_queue: str
) -> None:
    db_file = tmp_path / "temporal.sqlite"
    server = await start_dev_server(db_file=db_file, sqlite_pragmas=ROLLBACK_JOURNAL)
    client = await Client.connect(server.address)
    handles = [await start_echo(client, "made with the rollback journal", task_queue)]
    server.stop()
    assert journal_mode(db_file) == "delete"

    client = await restart_with(server, dict(DEV_SERVER_SQLITE_PRAGMAS))  # upgraded
    handles.append(await start_echo(client, "after the upgrade", task_queue))
    server.stop()
    assert not db_file.with_name(f"{db_file.name}-wal").exists()  # stopped: the state is one file
    assert journal_mode(db_file) == DEV_SERVER_SQLITE_PRAGMAS.get("journal_mode", "delete")

    client = await restart_with(server, ROLLBACK_JOURNAL)  # an older task_scheduler: the file keeps its mode
    handles.append(await start_echo(client, "opened by an older version", task_queue))
    server.stop()
    assert journal_mode(db_file) == DEV_SERVER_SQLITE_PRAGMAS.get("journal_mode", "delete")
    client = await restart_with(server, {"journal_mode": "delete"})  # and back to the rollback journal
    handles.append(await start_echo(client, "back to the rollback journal", task_queue))

    async with Worker(client, task_queue=task_queue, workflows=[EchoWorkflow]):
        words = await asyncio.wait_for(
            asyncio.gather(*(client.get_workflow_handle(h.id).result() for h in handles)), 30
        )
    assert words == [
        "made with the rollback journal",
        "after the upgrade",
        "opened by an older version",
        "back to the rollback journal",
    ]
    server.stop()
    assert journal_mode(db_file) == "delete"
