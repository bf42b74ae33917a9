"""The ledger and a driver that did not stop within its abort grace (EndUse.driver_running): its use
stays open and the node closed in ERROR, no step and no restart until the driver's real end arrives (or
its worker process is replaced); that late end is recorded as such, and only a restart reopens the node."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from task_scheduler import NodeState
from task_scheduler.engine.ledger import (
    BeginUse,
    EndUse,
    Ledger,
    LedgerRefusal,
    LedgerState,
    RunOutcome,
    UseKey,
    WorkerInfo,
)

T0 = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
PC1 = WorkerInfo(name="pc-1", identity="41@pc1/pc-1/aa", host="pc1")
PC1_AGAIN = WorkerInfo(name="pc-1", identity="97@pc1/pc-1/bb", host="pc1")
STUCK = "node n1: its driver did not stop within 1 s of the abort; check the device"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def key(task: str = "t1", run: int = 1) -> UseKey:
    return UseKey(task_id=task, step_index=0, run=run)


def stuck_end() -> EndUse:
    return EndUse(key=key(), succeeded=False, final=True, driver_running=True, message=STUCK, duration_s=2)


@pytest.fixture
def stuck() -> Ledger:
    """Task t1's step ran on pc-1; it was cancelled and its driver did not stop within the grace."""
    ledger = Ledger(LedgerState(node_id="n1"))
    ledger.come_online(PC1, at(0))
    ledger.begin(BeginUse(key=key(), worker=PC1), at(1))
    assert ledger.end(stuck_end(), at(3))
    return ledger


def test_stuck_driver_keeps_its_use_open_and_the_node_closed(stuck: Ledger) -> None:
    state = stuck.state
    assert (state.state, state.reason, state.holder) == (NodeState.ERROR, STUCK, None)
    assert [c.key for c in state.cut_off] == [key()]
    assert state.recent == [] and state.stats.calls == 0  # not recorded as an end: the use is not over
    assert state.to_report == []
    with pytest.raises(LedgerRefusal, match=f"^{STUCK}$"):
        stuck.check_begin(BeginUse(key=key("t2"), worker=PC1))
    with pytest.raises(LedgerRefusal, match=f"^cannot restart: {STUCK}$"):
        stuck.check_restart()


def test_stuck_driver_late_end_is_recorded_and_only_a_restart_reopens_the_node(stuck: Ledger) -> None:
    late = EndUse(key=key(), succeeded=False, status=3, message="aborted, 5 s late", duration_s=6)
    assert stuck.end(late, at(7))
    state = stuck.state
    assert state.cut_off == []
    (use,) = state.recent
    assert (use.outcome, use.status, use.late, use.ended) == ("failed", 3, True, at(7))
    assert (state.stats.calls, state.stats.failures) == (1, 1)
    assert state.state is NodeState.ERROR
    assert "its end arrived late (failed); check the device" in (state.reason or "")
    (report,) = state.to_report  # the task is told (a cancelled task no longer listens: no harm)
    assert (report.outcome, report.status) == (RunOutcome.FAILED, 3)
    with pytest.raises(LedgerRefusal, match="is ERROR"):
        stuck.check_begin(BeginUse(key=key("t2"), worker=PC1))
    stuck.start_restart()
    stuck.finish_restart(True, None)
    assert stuck.state.state is NodeState.AVAILABLE
    assert stuck.begin(BeginUse(key=key("t2"), worker=PC1), at(9)).value == "GRANTED"


def test_stuck_driver_given_up_as_cut_off_by_its_task_stays_open_once(stuck: Ledger) -> None:
    stuck.cut_off_use(key(), at(4))  # its heartbeat stopped meanwhile: the task gives the run up too
    assert [c.key for c in stuck.state.cut_off] == [key()]
    assert stuck.state.to_report == []  # not "never reached the driver": the use is open
    assert stuck.state.reason == STUCK


def test_stuck_driver_after_its_task_gave_it_up_keeps_its_own_reason() -> None:
    """The task gave the run up first (its heartbeats stopped); then the worker says the driver did not
    stop when asked to abort: the run stays open once, and the node says the driver's reason, not a
    lost link."""
    ledger = Ledger(LedgerState(node_id="n1"))
    ledger.come_online(PC1, at(0))
    ledger.begin(BeginUse(key=key(), worker=PC1), at(1))
    ledger.cut_off_use(key(), at(40))
    assert "may still be running there" in (ledger.state.reason or "")
    assert ledger.end(stuck_end(), at(41))
    assert [c.key for c in ledger.state.cut_off] == [key()]
    assert ledger.state.reason == STUCK
    assert ledger.state.cut_off[0].reason == STUCK


def test_stuck_driver_use_ends_with_its_worker_process(stuck: Ledger) -> None:
    stuck.come_online(PC1_AGAIN, at(60))  # the operator restarted the worker: the call ended with it
    assert stuck.state.cut_off == []
    (report,) = stuck.state.to_report
    assert report.outcome is RunOutcome.UNKNOWN
    assert stuck.state.state is NodeState.ERROR
    stuck.check_restart()


def test_stuck_driver_end_of_a_use_not_held_is_ignored() -> None:
    ledger = Ledger(LedgerState(node_id="n1"))
    ledger.come_online(PC1, at(0))
    assert not ledger.end(stuck_end(), at(3))
    assert ledger.state.state is NodeState.AVAILABLE and ledger.state.cut_off == []
