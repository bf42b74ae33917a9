"""The node ledger with several holders (capacity > 1) and holds (a step keeping a node it does not
run on), without Temporal."""

from __future__ import annotations

import pytest
from test_ledger import at, key

from task_scheduler import NodeState
from task_scheduler.engine.ledger import (
    BeginUse,
    BeginVerdict,
    EndUse,
    HoldRelease,
    Ledger,
    LedgerRefusal,
    LedgerState,
)


def begin(task: str, capacity: int = 1, hold: bool = False, step: int = 0, attempt: int = 1) -> BeginUse:
    return BeginUse(key=key(task, step=step, attempt=attempt), capacity=capacity, hold=hold)


def end(task: str, succeeded: bool = True, step: int = 0) -> EndUse:
    return EndUse(key=key(task, step=step), succeeded=succeeded, message=None if succeeded else "spilled")


@pytest.fixture
def incubator() -> Ledger:
    return Ledger(LedgerState(node_id="incubator"))


def test_capacity_admits_that_many_holders_and_refuses_the_next(incubator: Ledger) -> None:
    assert incubator.begin(begin("t1", capacity=2), at(0)) is BeginVerdict.GRANTED
    assert incubator.begin(begin("t2", capacity=2), at(1)) is BeginVerdict.GRANTED
    assert [h.key.task_id for h in incubator.state.holders] == ["t1", "t2"]
    assert incubator.state.state is NodeState.IN_USE
    with pytest.raises(LedgerRefusal, match=r"in use by task t1 step 1 .* and task t2 step 1"):
        incubator.check_begin(begin("t3", capacity=2))


def test_the_node_is_free_only_when_the_last_holder_ends(incubator: Ledger) -> None:
    incubator.begin(begin("t1", capacity=2), at(0))
    incubator.begin(begin("t2", capacity=2), at(1))
    incubator.end(end("t1"), at(5))
    assert incubator.state.holder is not None and incubator.state.holder.key.task_id == "t2"
    assert incubator.state.others == []
    assert incubator.state.state is NodeState.IN_USE
    incubator.begin(begin("t3", capacity=2), at(6))  # t1's place
    incubator.end(end("t2"), at(7))
    incubator.end(end("t3"), at(8))
    assert incubator.state.holders == [] and incubator.state.state is NodeState.AVAILABLE
    assert incubator.state.stats.calls == 3 and incubator.state.stats.successes == 3


def test_a_failure_closes_the_node_but_the_other_holders_finish(incubator: Ledger) -> None:
    incubator.begin(begin("t1", capacity=2), at(0))
    incubator.begin(begin("t2", capacity=2), at(1))
    incubator.end(end("t1", succeeded=False), at(2))
    assert incubator.state.state is NodeState.ERROR
    with pytest.raises(LedgerRefusal, match="ERROR"):
        incubator.check_begin(begin("t3", capacity=2))
    with pytest.raises(LedgerRefusal, match="while steps still hold it: task t2"):
        incubator.check_restart()  # never restarted under a running step
    incubator.end(end("t2"), at(3))
    assert incubator.state.holders == [] and incubator.state.state is NodeState.ERROR
    incubator.start_restart()
    incubator.finish_restart(True, None)
    assert incubator.state.state is NodeState.AVAILABLE


def test_a_hold_takes_the_node_and_its_release_frees_it(incubator: Ledger) -> None:
    incubator.begin(begin("t1", hold=True), at(0))
    with pytest.raises(LedgerRefusal, match="which holds it for its step"):
        incubator.check_begin(begin("t2"))
    assert incubator.release_hold(HoldRelease(key=key("t1")), at(4)) is True
    assert incubator.state.state is NodeState.AVAILABLE and incubator.state.holders == []
    assert incubator.state.stats.holds == 1 and incubator.state.stats.total_held_s == 4.0
    assert incubator.state.stats.calls == 0  # no driver ran here
    assert incubator.state.recent[-1].outcome == "held"


def test_the_step_takes_its_own_hold_over_and_its_end_frees_the_node(incubator: Ledger) -> None:
    incubator.begin(begin("t1", hold=True), at(0))
    assert incubator.begin(begin("t1"), at(1)) is BeginVerdict.GRANTED
    (holder,) = incubator.state.holders
    assert holder.hold is False
    assert incubator.release_hold(HoldRelease(key=key("t1")), at(2)) is False  # a use is not a hold
    incubator.end(end("t1"), at(3))
    assert incubator.state.state is NodeState.AVAILABLE
    assert incubator.state.stats.calls == 1


def test_a_holds_retry_takes_its_own_hold_over_and_never_a_use(incubator: Ledger) -> None:
    incubator.begin(begin("t1", hold=True), at(0))
    assert incubator.begin(begin("t1", hold=True, attempt=2), at(1)) is BeginVerdict.GRANTED
    assert [h.key.attempt for h in incubator.state.holders] == [2]
    incubator.begin(begin("t1"), at(2))  # the step began
    assert incubator.begin(begin("t1", hold=True, attempt=3), at(3)) is BeginVerdict.GRANTED
    (holder,) = incubator.state.holders
    assert holder.hold is False and holder.key.attempt == 1


def test_a_holds_end_never_ends_the_use_of_the_same_key(incubator: Ledger) -> None:
    incubator.begin(begin("t1", hold=True), at(0))
    incubator.begin(begin("t1"), at(1))  # the same key: both are the first attempt of run 1
    released = EndUse(key=key("t1"), succeeded=True, hold=True)
    assert incubator.end(released, at(2)) is False
    assert incubator.state.state is NodeState.IN_USE
    incubator.end(end("t1", succeeded=False), at(3))
    assert incubator.state.state is NodeState.ERROR


def test_a_hold_whose_task_is_gone_is_let_go_without_an_error(incubator: Ledger) -> None:
    incubator.begin(begin("t1", hold=True), at(0))
    assert incubator.abandon(key("t1"), at(60), "t1 ended") is True
    assert incubator.state.state is NodeState.AVAILABLE and incubator.state.stats.lost == 0


def test_a_release_of_an_earlier_run_leaves_a_newer_hold(incubator: Ledger) -> None:
    newer = BeginUse(key=key("t1", run=2), hold=True)
    incubator.begin(newer, at(0))
    assert incubator.release_hold(HoldRelease(key=key("t1", run=1)), at(1)) is False
    assert incubator.state.holders[0].key.run == 2
