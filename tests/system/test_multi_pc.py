"""A lab on several PCs, with PCs that are really separate network hosts: the lab's server (Temporal, the
API, the workflow worker) and two lab PCs, each a network namespace on one bridge (tests/system/netns.py),
a `task-scheduler worker --name pc-N` per PC. pc-1 hosts a1 and a2, pc-2 hosts b1 and b2 (its driver
module needs a vendor SDK only pc-2 has); the lab's workflow alternates a1 -> b1 -> a2 -> b2. The drivers
log their own starts and ends with the host they ran on: the tests judge by that log and by the API."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from netns import IP, NO_IP_REASON, SDK, LabNetwork, Lan, NodeUse

pytestmark = pytest.mark.skipif(IP is None, reason=NO_IP_REASON)

NODES = {"a1": "pc-1", "b1": "pc-2", "a2": "pc-1", "b2": "pc-2"}
WORKFLOWS = {"alternate": ["a1", "b1", "a2", "b2"]}
HEARTBEAT_TIMEOUT_S = 5.0  # a lost PC is noticed in seconds
OFFLINE_AFTER_S = 2.0
CUT_S = 60.0  # how long pc-2's cable stays pulled
LONG_STEP_S = 20.0
IMPORT_ERRORS = (SDK, "cannot import node module", "ModuleNotFoundError")

Task = dict[str, Any]
Decide = Callable[[Task], str | None]
NODE_FIELDS = {"heartbeat_timeout_s": HEARTBEAT_TIMEOUT_S, "offline_after_s": OFFLINE_AFTER_S}


@pytest.fixture
def lan(tmp_path: Path) -> Iterator[Lan]:
    """The server host (.10) and two PCs (.11, .12) on a bridge; all removed, also when a test fails."""
    network = Lan(folder=tmp_path)
    try:
        network.create()
        network.add_host("server", 10)
        network.add_host("pc-1", 11)
        network.add_host("pc-2", 12)
        yield network
    finally:
        network.remove()


@pytest.fixture
def lab(lan: Lan, tmp_path: Path) -> Iterator[LabNetwork]:
    """The lab running on the hosts, every node hosted and available."""
    network = LabNetwork(lan, tmp_path, nodes=NODES, workflows=WORKFLOWS, node_fields=NODE_FIELDS)
    try:
        network.start()
        yield network
    finally:
        network.stop()


@dataclass(frozen=True)
class Continue:
    task_id: str
    node: str
    mode: str


def start_tasks(http: httpx.Client, count: int, **args: Any) -> list[str]:
    ids = []
    for _ in range(count):
        response = http.post("/tasks", json={"workflow_name": "alternate", "args": args})
        assert response.status_code == 201, response.text
        ids.append(response.json()["task_id"])
    return ids


def show(http: httpx.Client, task_id: str) -> Task:
    response = http.get(f"/tasks/{task_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def wait_for_tasks(
    http: httpx.Client, ids: list[str], done: Callable[[list[Task]], bool], what: str, timeout_s: float
) -> list[Task]:
    """Poll the tasks through the API until `done`; on timeout, fail showing them."""
    deadline = time.monotonic() + timeout_s
    while True:
        tasks = [show(http, task_id) for task_id in ids]
        if done(tasks):
            return tasks
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout_s} s; the tasks: {json.dumps(tasks, indent=1)}")
        time.sleep(0.2)


def wait_for_task(http: httpx.Client, task_id: str, done: Callable[[Task], bool], what: str) -> Task:
    (task,) = wait_for_tasks(http, [task_id], lambda tasks: done(tasks[0]), what, timeout_s=30)
    return task


def wait_for_use(lab: LabNetwork, task_id: str | None, node: str) -> NodeUse:
    """The drivers' log shows a run of `node` (for `task_id`, or any task) has started."""
    deadline = time.monotonic() + 30
    while not (uses := [u for u in lab.uses() if u.node == node and task_id in (None, u.task_id)]):
        assert time.monotonic() < deadline, f"no run of {node} started within 30 s: {lab.uses()}"
        time.sleep(0.05)
    return uses[0]


def in_error(task: Task) -> bool:
    return bool(task["state"] == "ERROR")


def current(task: Task) -> Task:
    return dict(task["steps"][task["current_step"]])


def operate_until_finished(
    http: httpx.Client, ids: list[str], decide: Decide, timeout_s: float
) -> tuple[list[Task], list[Continue]]:
    """The operator: watch the tasks, continue each one stopped in ERROR as `decide` says (None: not
    yet), until every task is FINISHED. The tasks, and the continues the API accepted."""
    continues: list[Continue] = []

    def all_finished(tasks: list[Task]) -> bool:
        for task in tasks:
            mode = decide(task) if task["state"] == "ERROR" else None
            if mode is not None:
                answer = http.post(f"/tasks/{task['task_id']}/continue", json={"mode": mode})
                assert answer.status_code == 200, answer.text
                continues.append(Continue(task["task_id"], task["current_node"], mode))
        return all(t["state"] == "FINISHED" for t in tasks)

    tasks = wait_for_tasks(http, ids, all_finished, "finish of every task", timeout_s)
    return tasks, continues


def retry(task: Task) -> str:
    return "retry"


def no_decision(task: Task) -> None:
    raise AssertionError(f"a task stopped for an operator: {json.dumps(task, indent=1)}")


def assert_uses_never_overlap(lab: LabNetwork, uses: list[NodeUse]) -> None:
    """The drivers' own clocks: on each node, every use began after the one before it ended (a run
    with no end in the log was cut off when its worker died)."""
    ended = {p.pid: p.ended_at for p in lab.lan.processes}
    for node in NODES:
        on_node = sorted((u for u in uses if u.node == node), key=lambda u: u.start)
        for before, after in itertools.pairwise(on_node):
            end = before.end if before.end is not None else ended[before.pid]
            assert end is not None, f"{before} has no end, and its worker still runs"
            assert after.start >= end, f"uses of {node} overlap: {before} {after}"


def assert_each_step_on_its_pc(lab: LabNetwork, uses: list[NodeUse]) -> None:
    """Each driver ran on the PC its node is wired to: that host's name, network namespace, worker."""
    for use in uses:
        pc = NODES[use.node]
        assert (use.host, use.netns) == (pc, lab.lan.hosts[pc].netns_inode), use
        assert use.pid in {p.pid for p in lab.lan.processes if p.name.startswith(f"{pc}-worker")}, use


def assert_no_step_ran_twice_without_a_continue(uses: list[NodeUse], continues: list[Continue]) -> None:
    """One attempt per step (the nodes' default): a driver ran again only after an operator's retry."""
    for task_id, node in {(u.task_id, u.node) for u in uses}:
        runs = [u for u in uses if (u.task_id, u.node) == (task_id, node)]
        retries = continues.count(Continue(task_id, node, "retry"))
        assert len(runs) <= 1 + retries, f"{node} ran {len(runs)} times for {task_id}, retried {retries}"


def assert_nothing_lost(uses: list[NodeUse], ids: list[str]) -> None:
    """Every step of every task has a driver run that ended."""
    for task_id in ids:
        done = {u.node for u in uses if u.task_id == task_id and u.end is not None}
        assert done == set(NODES), f"task {task_id}: no finished run on {set(NODES) - done}"


def import_errors(lab: LabNetwork, *names: str) -> dict[str, list[str]]:
    """The lines of these processes' logs that tell of a driver module that could not be imported."""
    found = {}
    for process in lab.lan.processes:
        if process.name in names:
            text = process.log.read_text(encoding="utf-8", errors="replace")
            found[process.name] = [
                line for line in text.splitlines() if any(e in line for e in IMPORT_ERRORS)
            ]
    return found


def test_multi_pc_tasks_alternating_between_pcs_all_finish_each_step_on_its_pc(lab: LabNetwork) -> None:
    with lab.http() as http:
        ids = start_tasks(http, 6)
        tasks, _ = operate_until_finished(http, ids, no_decision, timeout_s=60)

    for task in tasks:
        assert [s["outcome"] for s in task["steps"]] == ["SUCCEEDED"] * 4, task
        assert [o["host"] for o in task["result"]] == [NODES[n] for n in WORKFLOWS["alternate"]], task
    uses = lab.uses()
    for task_id in ids:
        assert [u.node for u in uses if u.task_id == task_id] == WORKFLOWS["alternate"]
    assert all(u.end is not None for u in uses)
    assert_each_step_on_its_pc(lab, uses)
    assert_uses_never_overlap(lab, uses)


def test_multi_pc_driver_module_only_on_pc2_path_pc1_and_api_start_and_work(lab: LabNetwork) -> None:
    assert lab.can_import("pc-2", SDK)
    assert not lab.can_import("pc-1", SDK)  # really absent there
    with lab.http() as http:
        nodes = http.get("/nodes").json()
        assert {n["id"]: n["hosted"] for n in nodes} == dict.fromkeys(NODES, True)
        (task_id,) = start_tasks(http, 1)
        (task,), _ = operate_until_finished(http, [task_id], no_decision, timeout_s=30)

    assert [s["outcome"] for s in task["steps"]] == ["SUCCEEDED"] * 4
    no_errors = {"api": [], "pc-1-worker-1": [], "workflow-worker": []}
    assert import_errors(lab, "api", "pc-1-worker-1", "workflow-worker") == no_errors


def test_multi_pc_pc2_worker_killed_mid_step_every_task_finishes_after_a_continue(lab: LabNetwork) -> None:
    with lab.http() as http:
        ids = start_tasks(http, 3, sleep={"b1": 3.0})
        cut = wait_for_use(lab, None, "b1")
        killed = lab.processes["pc-2"]
        killed.kill()
        restarted = lab.start_pc("pc-2")

        stopped = wait_for_task(http, cut.task_id, in_error, "stop of the cut-off task")
        assert (current(stopped)["node"], current(stopped)["outcome"]) == ("b1", "LOST"), stopped
        assert "b1" in (stopped["reason"] or ""), stopped
        _, continues = operate_until_finished(http, ids, retry, timeout_s=60)

    assert Continue(cut.task_id, "b1", "retry") in continues
    uses = lab.uses()
    runs_on_b1 = [(u.pid, u.end is None) for u in uses if (u.task_id, u.node) == (cut.task_id, "b1")]
    assert runs_on_b1 == [(killed.pid, True), (restarted.pid, False)]
    assert_no_step_ran_twice_without_a_continue(uses, continues)
    assert_nothing_lost(uses, ids)
    assert_uses_never_overlap(lab, uses)
    assert_each_step_on_its_pc(lab, uses)


def late_end(task: Task) -> dict[str, Any] | None:
    """The late end of the step's cut-off run, once recorded (the step record's `earlier_runs`)."""
    late = [run for run in current(task).get("earlier_runs") or [] if run.get("late_outcome")]
    return late[-1] if late else None


def after_the_late_end(task: Task) -> str | None:
    """The operator's decision on a step whose run was cut off: `next` if that run succeeded after all,
    else `retry`; nothing before its end is known."""
    late = late_end(task)
    if late is None:
        return None
    return "next" if late["late_outcome"] == "SUCCEEDED" else "retry"


# The run cut off goes on to its end over there (a move that cannot be stopped halfway): its late end,
# not "aborted", is what the operator decides on.
@pytest.mark.timeout(200)
def test_multi_pc_pc2_cut_off_mid_step_no_node_use_overlaps_every_task_finishes(lab: LabNetwork) -> None:
    with lab.http() as http:
        # b1's long step is a move that cannot be stopped halfway: it goes on while pc-2 is cut off.
        (long_task,) = start_tasks(http, 1, sleep={"b1": LONG_STEP_S}, uninterruptible=["b1"])
        ids = [long_task, *start_tasks(http, 2)]
        wait_for_use(lab, long_task, "b1")
        lab.lan.cut("pc-2")
        cut_at = time.monotonic()

        stopped = wait_for_task(http, long_task, in_error, "stop of the cut-off task")
        assert (current(stopped)["node"], current(stopped)["outcome"]) == ("b1", "LOST"), stopped
        refused = http.post(f"/tasks/{long_task}/continue", json={"mode": "retry"})
        assert refused.status_code == 409, refused.text  # its run on pc-2 has not reported its end

        time.sleep(max(0.0, CUT_S - (time.monotonic() - cut_at)))  # the outage itself
        lab.lan.restore("pc-2")

        reported = wait_for_task(http, long_task, lambda t: late_end(t) is not None, "late end of the run")
        # The run went on over there and ended well (the drivers' log): that is its late end.
        (cut_off,) = [u for u in lab.uses() if (u.task_id, u.node) == (long_task, "b1")]
        assert cut_off.end is not None and cut_off.end - cut_off.start >= LONG_STEP_S
        late = late_end(reported) or {}
        assert late.get("late_outcome") == "SUCCEEDED", json.dumps(current(reported), indent=1)
        assert all(word in (reported["reason"] or "") for word in ("b1", "pc-2", "finished")), reported
        _, continues = operate_until_finished(http, ids, after_the_late_end, timeout_s=60)

    assert Continue(long_task, "b1", "next") in continues
    uses = lab.uses()
    assert_uses_never_overlap(lab, uses)
    assert_no_step_ran_twice_without_a_continue(uses, continues)
    assert_nothing_lost(uses, ids)
    assert_each_step_on_its_pc(lab, uses)


def worker_entry(listing: Any, name: str) -> dict[str, Any]:
    """One worker of `GET /workers` (a list of {name, host, nodes, online, last_seen})."""
    return next(dict(w) for w in listing if w["name"] == name)


def waits_for_pc2(task: Task) -> bool:
    """Its step on b1 waits, and the task says why: b1's worker, pc-2, is offline."""
    reason = task["reason"] or ""
    waiting = task["steps"][1]["outcome"] == "WAITING"
    return waiting and all(word in reason for word in ("b1", "pc-2", "offline"))


def test_multi_pc_pc2_worker_stopped_task_says_it_waits_for_pc2_and_finishes_when_back(
    lab: LabNetwork,
) -> None:
    assert lab.processes["pc-2"].terminate() == 0
    with lab.http() as http:
        (task_id,) = start_tasks(http, 1)
        waiting = wait_for_task(http, task_id, waits_for_pc2, "word that the task waits for pc-2")
        assert [s["outcome"] for s in waiting["steps"]][:2] == ["SUCCEEDED", "WAITING"], waiting

        workers = http.get("/workers")
        assert workers.status_code == 200, workers.text
        pc2 = worker_entry(workers.json(), "pc-2")
        assert (pc2["online"], sorted(pc2["nodes"])) == (False, ["b1", "b2"]), pc2
        assert pc2["host"] == lab.lan.hosts["pc-2"].hostname, pc2  # the PC it ran on, seen from the server
        assert worker_entry(workers.json(), "pc-1")["online"] is True
        health = http.get("/health").json()
        assert health["workers"] == {"pc-1": True, "pc-2": False}, health

        lab.start_pc("pc-2")
        (task,), _ = operate_until_finished(http, [task_id], no_decision, timeout_s=45)
        assert worker_entry(http.get("/workers").json(), "pc-2")["online"] is True

    assert [s["outcome"] for s in task["steps"]] == ["SUCCEEDED"] * 4
    assert_each_step_on_its_pc(lab, lab.uses())
