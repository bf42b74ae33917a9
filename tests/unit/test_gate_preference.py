"""The node gate after a worker was lost mid-step: the ledger admits only the retry of the step whose
use never ended, so the gate lets that retry go first; the steps ahead of it in line, refused by the
ledger, would otherwise hold the head of the line for ever (found by the faults test)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from task_scheduler.activities.gate import NodeGate

T0 = datetime(2025, 1, 1, 8, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def test_gate_lets_the_retry_of_the_cut_off_step_pass_the_steps_the_ledger_refuses() -> None:
    gate = NodeGate("camera")
    gate.prefer("t9/1")  # the worker read the ledger: t9's step 2 never ended
    first = gate.enter("t1", 0, at(0), step="t1/1")  # admitted: no retry of t9 waits yet
    gate.step_back(first)  # the ledger refused it
    second = gate.enter("t2", 0, at(1), step="t2/1")  # the node is free: first in line goes again
    gate.step_back(first)  # refused again
    retry = gate.enter("t9 run 2", 0, at(5), step="t9/1")

    assert retry.turn.done()
    assert not first.turn.done() and not second.turn.done()
    assert gate.waiting == ["t1", "t2"]


async def test_gate_goes_back_to_request_order_once_the_retry_went_first() -> None:
    gate = NodeGate("camera")
    gate.prefer("t9/1")
    retry = gate.enter("t9 run 2", 0, at(5), step="t9/1")
    later = gate.enter("t3", 0, at(3), step="t3/1")
    earlier = gate.enter("t1", 0, at(1), step="t1/1")
    gate.enter("t9 run 3", 0, at(5), step="t9/1")

    gate.release(None)

    assert retry.turn.done() and earlier.turn.done()
    assert not later.turn.done()


async def test_gate_of_a_starting_worker_admits_in_request_order_once_deliveries_settled() -> None:
    gate = NodeGate("camera", settle_s=0.2)
    late_asker = gate.enter("t2", 0, at(1.3), step="t2/0")  # delivered first after the outage
    early_asker = gate.enter("t1", 0, at(0), step="t1/0")
    assert not late_asker.turn.done() and not early_asker.turn.done()

    await asyncio.wait_for(early_asker.turn, timeout=5)

    assert not late_asker.turn.done()
    assert gate.waiting == ["t2"]
