"""The ledger and a use cut off while its driver ran (a PC cut off from the network, or its worker
killed): the node stays closed until the run is accounted for, its late end is recorded and reported to
its task, never taken as permission; a replaced worker process accounts for it as unknown."""

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
PC2 = WorkerInfo(name="pc-2", identity="41@pc2/pc-2/aa", host="pc2")
PC2_AGAIN = WorkerInfo(name="pc-2", identity="97@pc2/pc-2/bb", host="pc2")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def key(task: str = "t1", run: int = 1) -> UseKey:
    return UseKey(task_id=task, step_index=2, run=run)


@pytest.fixture
def cut_ledger() -> Ledger:
    """pc-2 hosts the node; task t1's run 1 began there, then its heartbeats stopped and t1 gave it up."""
    ledger = Ledger(LedgerState(node_id="b1"))
    ledger.come_online(PC2, at(0))
    ledger.begin(BeginUse(key=key(), worker=PC2), at(1))
    ledger.cut_off_use(key(), at(40))
    return ledger


def test_cut_off_use_keeps_the_node_closed_while_the_driver_may_run(cut_ledger: Ledger) -> None:
    state = cut_ledger.state
    assert state.state is NodeState.ERROR
    assert state.holder is None
    assert [c.key for c in state.cut_off] == [key()]
    assert "may still be running" in (state.reason or "")
    assert state.to_report == []  # nothing to tell the task yet
    with pytest.raises(LedgerRefusal, match="cut off"):
        cut_ledger.check_restart()
    with pytest.raises(LedgerRefusal, match="cut off"):
        cut_ledger.check_begin(BeginUse(key=key("t2"), worker=PC2))
    with pytest.raises(LedgerRefusal, match="cut off"):
        cut_ledger.check_begin(BeginUse(key=key(run=2), worker=PC2))  # not even the step's own retry


def test_late_end_is_recorded_and_reported_never_opens_the_node(cut_ledger: Ledger) -> None:
    late = EndUse(key=key(), succeeded=True, status=0, message="dispensed 100 uL", duration_s=50)

    assert cut_ledger.end(late, at(70)) is True

    state = cut_ledger.state
    assert state.state is NodeState.ERROR  # an operator's restart reopens it, not the late end
    assert state.cut_off == []
    assert (state.stats.calls, state.stats.successes) == (1, 1)
    assert state.recent[-1].late and state.recent[-1].outcome == "succeeded"
    (report,) = state.to_report
    assert (report.key, report.node_id, report.outcome) == (key(), "b1", RunOutcome.SUCCEEDED)
    assert (report.worker, report.status, report.message) == ("pc-2", 0, "dispensed 100 uL")
    assert (report.began, report.ended) == (at(1), at(70))
    cut_ledger.check_restart()  # now possible


def test_late_end_of_a_failed_run_is_reported_as_failed(cut_ledger: Ledger) -> None:
    cut_ledger.end(EndUse(key=key(), succeeded=False, final=False, status=-1, message="aborted"), at(70))

    (report,) = cut_ledger.state.to_report
    assert (report.outcome, report.status, report.message) == (RunOutcome.FAILED, -1, "aborted")


def test_a_new_worker_process_accounts_for_the_cut_off_run_as_unknown(cut_ledger: Ledger) -> None:
    cut_ledger.come_online(PC2_AGAIN, at(90))

    state = cut_ledger.state
    assert state.cut_off == []
    assert state.worker == PC2_AGAIN
    assert state.stats.lost == 1
    (report,) = state.to_report
    assert report.outcome is RunOutcome.UNKNOWN
    assert "worker process ended" in (report.message or "")
    assert state.state is NodeState.ERROR  # the device may have stopped mid-action


def test_cut_off_after_the_worker_was_already_replaced_is_accounted_at_once() -> None:
    ledger = Ledger(LedgerState(node_id="b1"))
    ledger.come_online(PC2, at(0))
    ledger.begin(BeginUse(key=key(), worker=PC2), at(1))
    ledger.come_online(PC2_AGAIN, at(5))  # restarted before the server noticed the lost heartbeat

    ledger.cut_off_use(key(), at(40))

    assert ledger.state.cut_off == []
    (report,) = ledger.state.to_report
    assert report.outcome is RunOutcome.UNKNOWN
    assert ledger.state.state is NodeState.ERROR


def test_cut_off_of_a_run_whose_end_arrived_first_reports_that_end() -> None:
    ledger = Ledger(LedgerState(node_id="b1"))
    ledger.come_online(PC2, at(0))
    ledger.begin(BeginUse(key=key(), worker=PC2), at(1))
    ledger.end(EndUse(key=key(), succeeded=True, status=0, message="ok"), at(30))

    ledger.cut_off_use(key(), at(31))  # the task gave it up just before the end reached it

    (report,) = ledger.state.to_report
    assert (report.outcome, report.status, report.ended) == (RunOutcome.SUCCEEDED, 0, at(30))
    assert ledger.state.state is NodeState.AVAILABLE


def test_cut_off_of_a_run_the_ledger_never_saw_is_unknown() -> None:
    ledger = Ledger(LedgerState(node_id="b1"))
    ledger.come_online(PC2, at(0))

    ledger.cut_off_use(key(), at(3))

    (report,) = ledger.state.to_report
    assert report.outcome is RunOutcome.UNKNOWN
    assert "never reached the driver" in (report.message or "")


def test_clean_stop_and_start_record_when_the_worker_went_and_came(cut_ledger: Ledger) -> None:
    ledger = Ledger(LedgerState(node_id="a1"))
    ledger.come_online(PC2, at(0))
    ledger.go_offline(at(10))
    assert (ledger.state.state, ledger.state.offline_since) == (NodeState.OFFLINE, at(10))

    ledger.come_online(PC2_AGAIN, at(20))
    assert (ledger.state.online_since, ledger.state.offline_since) == (at(20), None)


def test_a_withdrawn_waiting_run_is_refused_and_its_successor_admitted() -> None:
    ledger = Ledger(LedgerState(node_id="b1"))
    ledger.come_online(PC2, at(0))

    ledger.withdraw(key("t2", run=1))  # t2 gave run 1 up while it waited (its worker went silent)

    with pytest.raises(LedgerRefusal, match="given up by its task"):
        ledger.check_begin(BeginUse(key=key("t2", run=1), worker=PC2))
    ledger.check_begin(BeginUse(key=key("t2", run=2), worker=PC2))
    ledger.check_begin(BeginUse(key=key("t3", run=1), worker=PC2))  # other tasks are not concerned
