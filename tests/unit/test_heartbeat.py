"""A step's heartbeats (activities/heartbeat.py), in the SDK's activity test environment: "running" goes
out the moment it is set, the first "waiting" beat only after FIRST_BEAT_S, so a step admitted at once
costs the server one write; then each phase beats at its own pace."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest
from temporalio.testing import ActivityEnvironment

from task_scheduler.activities import heartbeat
from task_scheduler.activities.gate import NodeGate
from task_scheduler.activities.heartbeat import FIRST_BEAT_S, Heartbeat
from task_scheduler.engine.contracts import RUNNING, StepBeat

DEADLINE_S = 10.0
T0 = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
Beats = list[tuple[float, str]]  # (monotonic time, phase) of each heartbeat sent
Body = Callable[[Heartbeat, Beats], Awaitable[None]]


async def beats_during(body: Body, timeout_s: float = 30) -> Beats:
    """The heartbeats sent while `body` runs inside a step activity."""
    beats: Beats = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append((time.monotonic(), details[0]["phase"]))

    async def step() -> None:
        async with Heartbeat(timeout_s) as beat:
            await body(beat, beats)

    await asyncio.wait_for(env.run(step), DEADLINE_S)  # a step that never ends fails, not hangs
    return beats


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {DEADLINE_S} s"
        await asyncio.sleep(0.01)


def phases(beats: Beats) -> list[str]:
    return [phase for _, phase in beats]


async def test_a_step_admitted_at_once_sends_running_and_nothing_before() -> None:
    async def admitted_at_once(beat: Heartbeat, beats: Beats) -> None:
        beat.set(StepBeat(phase=RUNNING, worker="pc-1"))
        assert phases(beats) == ["running"]  # at once, not with the next beat; and the step ends now

    assert phases(await beats_during(admitted_at_once)) == ["running"]


async def test_a_waiting_step_beats_once_it_has_waited_then_running_at_once() -> None:
    async def waits_then_runs(beat: Heartbeat, beats: Beats) -> None:
        began = time.monotonic()
        await until(lambda: bool(beats), "waiting beat")
        assert beats[0][0] - began >= FIRST_BEAT_S * 0.9  # not at the step's start
        beat.set(StepBeat(phase=RUNNING))
        assert phases(beats) == ["waiting", "running"]

    assert phases(await beats_during(waits_then_runs)) == ["waiting", "running"]


async def test_a_running_step_beats_well_within_its_heartbeat_timeout() -> None:
    async def runs(beat: Heartbeat, beats: Beats) -> None:
        beat.set(StepBeat(phase=RUNNING))
        await until(lambda: len(beats) >= 5, "fifth beat")

    # A 0.9 s timeout: a beat every 0.3 s (a third of it). At the running pace of 1 s the server would
    # give the step up between two beats.
    beats = await beats_during(runs, timeout_s=0.9)
    assert phases(beats) == ["running"] * 5
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(beats)]
    assert max(gaps) < 0.9, gaps


async def test_a_waiting_step_withdrawn_from_its_nodes_line_beats_at_once_to_hear_of_its_cancel() -> None:
    """Its task was cancelled: the cancel comes in the answer to a heartbeat, not 10 s later."""

    async def withdrawn(beat: Heartbeat, beats: Beats) -> None:
        gate = NodeGate("b1")
        busy = gate.enter("t0", 0, T0, step="t0/0", run=1)  # holds the node
        await until(lambda: busy.turn.done(), "the first step admitted")
        waiter = gate.enter("t1", 0, T0, step="t1/0", run=1, hurry=beat.hurry)
        await until(lambda: bool(beats), "the first waiting beat")
        asked = time.monotonic()

        assert gate.withdraw("t1/0", 1) is True
        await until(lambda: len(beats) == 2, "a beat at once")
        assert beats[1][0] - asked < 1.0 and not waiter.turn.done()

    assert phases(await beats_during(withdrawn)) == ["waiting", "waiting"]


async def test_a_run_withdrawn_before_it_joins_its_nodes_line_beats_when_it_joins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(heartbeat, "FIRST_BEAT_S", 60.0)  # any beat within the test is a hurried one

    async def late(beat: Heartbeat, beats: Beats) -> None:
        gate = NodeGate("b1")
        gate.enter("t0", 0, T0, step="t0/0", run=1)
        assert gate.withdraw("t1/0", 1) is False  # still on its way to the worker
        gate.enter("t2", 0, T0, step="t2/0", run=1, hurry=beat.hurry)  # another step: not hurried
        gate.enter("t1", 0, T0, step="t1/0", run=2, hurry=beat.hurry)  # another run: not hurried
        assert beats == []
        gate.enter("t1", 0, T0, step="t1/0", run=1, hurry=beat.hurry)
        await until(lambda: bool(beats), "a beat as it joins the line")

    assert phases(await beats_during(late)) == ["waiting"]
