"""A worker stopped with SIGTERM (or Ctrl-C) stops taking work, lets its running step finish, hands its
waiting steps back, and exits: nothing is cut off, nothing is lost."""

from __future__ import annotations

import signal
from typing import Any

from crash_lab import MakeLab, StartWorker
from temporalio.client import Client
from test_crash import finished, start_task, status, step_running, wait_for, waiting_in_gate

from task_scheduler.devserver import DevServer
from task_scheduler.engine.task_state import StepOutcome


async def test_sigterm_lets_the_running_step_finish_and_hands_back_the_waiting_ones(
    temporal_server: DevServer,
    temporal_client: Client,
    task_queue: str,
    make_lab: MakeLab,
    start_worker: StartWorker,
) -> None:
    lab = make_lab(nodes={"a": {}}, workflows={"one": ["a"]})
    first = start_worker(lab, temporal_server.address, task_queue)
    running = await step_running(temporal_client, lab, "one", task_queue, sleep_s=1.5)
    waiting = await start_task(temporal_client, lab, "one", task_queue)
    await wait_for(lambda: waiting_in_gate(temporal_client, waiting), "the second step to wait")

    first.process.send_signal(signal.SIGTERM)
    assert first.process.wait(timeout=20) == 0, first.output_tail()
    ended = [e.event for e in lab.events() if e.task_id == running.id]
    assert ended == ["start", "end"]  # the running step finished, it was not aborted
    assert not lab.starts(waiting.id)  # the waiting one never reached the device

    second = start_worker(lab, temporal_server.address, task_queue)
    await finished([running, waiting], timeout_s=30, worker=second)
    for handle in (running, waiting):
        assert [s.outcome for s in (await status(handle)).steps] == [StepOutcome.SUCCEEDED]
    assert len(lab.starts(waiting.id)) == 1


async def test_a_named_worker_stopped_after_the_server_says_so_once_and_exits_promptly(
    start_dev_server: Any, task_queue: str, make_lab: MakeLab, start_worker: StartWorker
) -> None:
    """The lab's server stopped first (a PC shut down in the wrong order): the worker does not spend the
    client's 10 s of retries on each node it would mark offline, and says so in one line."""
    server = await start_dev_server()
    nodes = {name: {"worker": "pc1"} for name in ("a", "b", "c", "d")}
    lab = make_lab(nodes=nodes, workflows={"one": ["a"]})
    start_worker(lab, server.address, task_queue, "--workflows-only")
    worker = start_worker(lab, server.address, task_queue, "--name", "pc1")

    async def hosting() -> bool:
        return "hosts nodes: a-" in worker.output_tail()

    await wait_for(hosting, "the worker to host its nodes")
    server.kill()

    worker.process.send_signal(signal.SIGTERM)
    # Four nodes at 10 s each took 40 s and more; the deadline for all of them together is 3 s.
    assert worker.process.wait(timeout=30) == 0, worker.output_tail()
    said = worker.output_tail(80)
    assert said.count("the Temporal server did not answer within 3 s: the nodes a-") == 1, said
    assert "Beginning worker shutdown" not in said
    assert said.rstrip().endswith("stopped"), said
