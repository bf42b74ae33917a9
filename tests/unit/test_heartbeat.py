"""A step's heartbeats (activities/heartbeat.py), in the SDK's activity test environment: "running" goes
out the moment it is set, the first "waiting" beat only after FIRST_BEAT_S, so a step admitted at once
costs the server one write; then each phase beats at its own pace."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable

from temporalio.testing import ActivityEnvironment

from task_scheduler.activities.heartbeat import FIRST_BEAT_S, Heartbeat
from task_scheduler.engine.contracts import RUNNING, StepBeat

DEADLINE_S = 10.0
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
