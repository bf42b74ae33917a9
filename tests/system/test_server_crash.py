"""The Temporal dev server SIGKILLed in the middle of a burst of task starts and step completions, on its
SQLite file with the settings `task-scheduler dev` uses: after a restart on the same file and ports,
every start the API acknowledged (201) exists, and every step a task's status showed finished before
the kill is still in that task's history; then every task finishes."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from crash_lab import MakeLab
from reliability import ApiProcess, Process, all_nodes_hosted, api_process, wait_for, worker_process
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from task_scheduler.devserver import DEV_SERVER_SQLITE_PRAGMAS, DevServer

# A step whose heartbeats or end the outage cut off is given up after 5 s and tried again by itself
# (retrying nodes), so every task finishes without an operator; what the test checks is what was kept.
NODE = {
    "heartbeat_timeout_s": 5.0,
    "retry": {"max_attempts": 3, "initial_interval_s": 0.2},
    "properties": {"sleep_s": 0.05},
}
NODES = {"hotel": NODE, "arm": NODE, "reader": NODE, "camera": NODE}
WORKFLOWS = {"fetch": ["hotel", "arm"], "dose": ["reader", "camera"]}
STEPS = 2
STARTS_IN_FLIGHT = 2
START_PAUSE_S = 0.1  # each lane starts a task at most every 0.1 s: a burst that outlasts the kill
MAX_STARTS = 200
KILL_AFTER_STARTS = 20  # acknowledged starts, and
KILL_AFTER_STEPS = 10  # steps shown finished, before the server is killed
STARTS_AFTER_RESTART = 5  # the burst goes on after the restart, then ends
StartDevServer = Callable[..., Awaitable[DevServer]]
Finished = dict[str, dict[int, datetime]]  # task id -> step index -> finished_at, as a status showed it


class Burst:
    """Task starts through the API, a few in flight, until told to stop; and a watcher of their status."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.acknowledged: list[str] = []  # answered 201
        self.refused = 0  # any other answer, or none (the server was down)
        self.finished: Finished = {}
        self.stop = asyncio.Event()
        self._ids = (f"burst-{n:03d}" for n in itertools.count())

    async def start_tasks(self) -> None:
        await asyncio.gather(*(self._starter(lane) for lane in range(STARTS_IN_FLIGHT)))

    async def _starter(self, lane: int) -> None:
        while not self.stop.is_set() and len(self.acknowledged) < MAX_STARTS:
            task_id = next(self._ids)
            body = {"workflow_name": list(WORKFLOWS)[lane % len(WORKFLOWS)], "id": task_id}
            try:
                response = await self.http.post("/tasks", json=body)
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code == 201:
                self.acknowledged.append(task_id)
            else:
                self.refused += 1
            await asyncio.sleep(START_PAUSE_S)  # the burst's pace, not a wait for a condition

    async def watch(self) -> None:
        """Until cancelled: every acknowledged task's status, the steps it shows finished recorded."""
        while True:
            looking = [t for t in self.acknowledged if len(self.finished.get(t, {})) < STEPS]
            await asyncio.gather(*(self._look(task_id) for task_id in looking))
            await asyncio.sleep(0.05)  # the watcher's pace, not a wait for a condition

    async def _look(self, task_id: str) -> None:
        try:
            response = await self.http.get(f"/tasks/{task_id}")
        except httpx.TransportError:
            return
        if response.status_code != 200:
            return  # Temporal unreachable: nothing shown, nothing acknowledged
        for step in response.json()["steps"]:
            if step["outcome"] == "SUCCEEDED":
                self.finished.setdefault(task_id, {})[step["index"]] = datetime.fromisoformat(
                    step["finished_at"]
                )

    def steps_finished(self) -> int:
        return sum(len(steps) for steps in self.finished.values())


async def steps_completed_in_history(client: Client, task_id: str) -> set[int]:
    """The steps (0-based) whose step activity completed, read from the task's history on the server."""
    scheduled: dict[int, str] = {}
    completed: set[int] = set()
    async for event in client.get_workflow_handle(task_id).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_id
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            activity_id = scheduled[event.activity_task_completed_event_attributes.scheduled_event_id]
            if activity_id.startswith("step-"):  # step-<n>-<node>-run-<k>, n from 1
                completed.add(int(activity_id.split("-")[1]) - 1)
    return completed


async def all_finished(http: httpx.AsyncClient, ids: list[str]) -> bool:
    states = [(await http.get(f"/tasks/{task_id}")).json().get("state") for task_id in ids]
    return all(state == "FINISHED" for state in states)


async def unfinished(http: httpx.AsyncClient, ids: list[str]) -> str:
    """The tasks not finished (state, reason, steps) and the nodes, to say why a wait failed."""
    lines = []
    for task_id in ids:
        task = (await http.get(f"/tasks/{task_id}")).json()
        if task.get("state") != "FINISHED":
            steps = [(s["node"], s["outcome"], s["runs"]) for s in task.get("steps", [])]
            lines.append(f"{task_id}: {task.get('state')} {task.get('reason')} {steps}")
    nodes = (await http.get("/nodes")).json()
    lines += [f"node {n['id']}: {n['state']} {n['reason']} holder={n['holder']}" for n in nodes]
    return "\n".join(lines)


async def kill_and_restart_when_busy(server: DevServer, burst: Burst) -> tuple[int, Finished]:
    """SIGKILL the server once enough starts and step ends were acknowledged; what was, at that moment."""

    async def busy() -> bool:
        return len(burst.acknowledged) >= KILL_AFTER_STARTS and burst.steps_finished() >= KILL_AFTER_STEPS

    await wait_for(busy, "starts and finished steps acknowledged", 40)
    server.kill()
    acknowledged = (len(burst.acknowledged), {t: dict(steps) for t, steps in burst.finished.items()})
    server.start()
    await server.wait_ready()
    return acknowledged


@pytest.mark.timeout(120)  # the test's own deadlines say what did not happen, and when
async def test_server_killed_mid_burst_keeps_every_acknowledged_start_and_step(
    start_dev_server: StartDevServer,
    tmp_path: Path,
    task_queue: str,
    make_lab: MakeLab,
    owned: list[Process | ApiProcess],
) -> None:
    lab = make_lab(nodes=NODES, workflows=WORKFLOWS)
    server = await start_dev_server(db_file=tmp_path / "temporal.sqlite")
    assert server.sqlite_pragmas == dict(DEV_SERVER_SQLITE_PRAGMAS)  # the settings `dev` runs with
    files = (lab.nodes_file, lab.workflows_file, server.address, task_queue, tmp_path)
    worker, api = worker_process(*files), api_process(*files)
    owned += [worker, api]
    worker.start()
    await api.start()
    async with api.client() as http:
        await all_nodes_hosted(http, [n.id for n in lab.lab.nodes])
        burst = Burst(http)
        starting = asyncio.create_task(burst.start_tasks())
        watching = asyncio.create_task(burst.watch())
        try:
            started_before, finished_before = await kill_and_restart_when_busy(server, burst)
            await wait_for(
                lambda: _at_least(len(burst.acknowledged), started_before + STARTS_AFTER_RESTART),
                "starts acknowledged after the restart",
                30,
            )
        finally:
            burst.stop.set()
            watching.cancel()
            await starting
        acknowledged = list(burst.acknowledged)
        assert started_before < len(acknowledged) < MAX_STARTS  # killed in the middle of the burst

        client = await Client.connect(server.address)
        for task_id in acknowledged:  # every acknowledged start exists: its history is there
            assert (await client.get_workflow_handle(task_id).describe()).id == task_id
        for task_id, steps in finished_before.items():
            assert set(steps) <= await steps_completed_in_history(client, task_id), task_id
        try:
            await wait_for(lambda: all_finished(http, acknowledged), f"all {len(acknowledged)} FINISHED", 60)
        except AssertionError as timeout:
            raise AssertionError(f"{timeout}\n{await unfinished(http, acknowledged)}") from None
        for task_id, steps in finished_before.items():  # and their step records say the same
            shown = (await http.get(f"/tasks/{task_id}")).json()["steps"]
            for index, finished_at in steps.items():
                assert datetime.fromisoformat(shown[index]["finished_at"]) == finished_at, (task_id, index)
    print(
        f"server killed after {started_before} starts and {sum(map(len, finished_before.values()))} steps "
        f"acknowledged; {len(acknowledged)} starts acknowledged in all, {burst.refused} refused"
    )
    assert worker.alive() and api.process.alive()


async def _at_least(value: int, minimum: int) -> bool:
    return value >= minimum
