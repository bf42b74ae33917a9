"""A step run again after its worker was lost while its heartbeat still said "waiting": that heartbeat
can be stale (the driver may have started, even ended, before "running" reached the server). The
ledger remembers which runs of a step used the node to their end, so the rerun is refused (RAN_BEFORE)
rather than running a one-attempt step twice without an operator (found by the faults test)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from task_scheduler import NodeState
from task_scheduler.engine.ledger import (
    ENDED_RUNS_KEPT,
    BeginUse,
    BeginVerdict,
    EndUse,
    Ledger,
    LedgerState,
    UseKey,
)

T0 = datetime(2025, 1, 1, 8, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def key(task: str = "t1", step: int = 0, run: int = 1) -> UseKey:
    return UseKey(task_id=task, step_index=step, run=run)


def ended(use: UseKey, succeeded: bool = True) -> EndUse:
    return EndUse(key=use, succeeded=succeeded, final=True, duration_s=0.1)


def used_to_the_end(ledger: Ledger, use: UseKey) -> None:
    ledger.begin(BeginUse(key=use), at(0))
    ledger.end(ended(use), at(1))


def test_rerun_of_a_run_that_used_the_node_to_the_end_is_not_granted() -> None:
    ledger = Ledger(LedgerState(node_id="camera"))
    used_to_the_end(ledger, key(run=1))

    verdict = ledger.begin(BeginUse(key=key(run=2), lost_run=1), at(5))

    assert verdict is BeginVerdict.RAN_BEFORE
    assert (ledger.state.state, ledger.state.holder) == (NodeState.AVAILABLE, None)
    assert ledger.state.stats.calls == 1


def test_rerun_handed_the_node_records_the_previous_use_and_leaves_the_node_free() -> None:
    ledger = Ledger(LedgerState(node_id="camera"))
    used_to_the_end(ledger, key(run=1))  # t1's first run ended, its result never reached t1
    ledger.begin(BeginUse(key=key("t2")), at(2))

    verdict = ledger.begin(BeginUse(key=key(run=2), lost_run=1, close=ended(key("t2"))), at(3))

    assert verdict is BeginVerdict.RAN_BEFORE
    assert (ledger.state.state, ledger.state.holder) == (NodeState.AVAILABLE, None)
    assert ledger.state.stats.calls == 2  # t2's use was recorded


def test_rerun_of_a_run_that_never_began_is_granted() -> None:
    ledger = Ledger(LedgerState(node_id="camera"))
    used_to_the_end(ledger, key("t2"))

    assert ledger.begin(BeginUse(key=key(run=2), lost_run=1), at(5)) is BeginVerdict.GRANTED


def test_run_after_an_operators_retry_is_granted() -> None:
    ledger = Ledger(LedgerState(node_id="camera"))
    ledger.begin(BeginUse(key=key(run=1)), at(0))
    ledger.end(ended(key(run=1), succeeded=False), at(1))
    ledger.start_restart()
    ledger.finish_restart(True, None)

    assert ledger.begin(BeginUse(key=key(run=2)), at(5)) is BeginVerdict.GRANTED


def test_earlier_run_that_ended_does_not_refuse_a_rerun_of_a_later_lost_run() -> None:
    ledger = Ledger(LedgerState(node_id="camera"))
    ledger.begin(BeginUse(key=key(run=1)), at(0))
    ledger.end(ended(key(run=1), succeeded=False), at(1))  # failed; the operator retried (run 2)
    ledger.start_restart()
    ledger.finish_restart(True, None)

    assert ledger.begin(BeginUse(key=key(run=3), lost_run=2), at(5)) is BeginVerdict.GRANTED


def test_ended_runs_are_bounded_and_survive_continue_as_new() -> None:
    ledger = Ledger(LedgerState(node_id="camera"))
    for number in range(ENDED_RUNS_KEPT + 10):
        used_to_the_end(ledger, key(f"t{number}"))

    carried = Ledger(LedgerState.model_validate_json(ledger.state.model_dump_json()))

    assert len(carried.state.ended_runs) == ENDED_RUNS_KEPT
    assert "t0/0" not in carried.state.ended_runs
    last = f"t{ENDED_RUNS_KEPT + 9}"
    assert carried.begin(BeginUse(key=key(last, run=2), lost_run=1), at(9)) is BeginVerdict.RAN_BEFORE
