"""The node ledger without Temporal: holders, hand-overs, refusals, lost uses, restarts, statistics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from task_scheduler import NodeState
from task_scheduler.engine.ledger import (
    KEPT_FOR_S,
    BeginUse,
    BeginVerdict,
    EndUse,
    Ledger,
    LedgerRefusal,
    LedgerState,
    UseKey,
)

T0 = datetime(2025, 1, 1, 8, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def key(task: str = "t1", step: int = 0, run: int = 1, attempt: int = 1) -> UseKey:
    return UseKey(task_id=task, step_index=step, run=run, attempt=attempt)


def begin(use: UseKey, max_attempts: int = 1, waited_s: float = 0.0, close: EndUse | None = None) -> BeginUse:
    return BeginUse(key=use, max_attempts=max_attempts, waited_s=waited_s, close=close)


@pytest.fixture
def ledger() -> Ledger:
    return Ledger(LedgerState(node_id="arm"))


def failed_node(ledger: Ledger) -> Ledger:
    ledger.begin(begin(key("t1")), at(0))
    ledger.end(EndUse(key=key("t1"), succeeded=False, final=True, message="gripper jammed"), at(1))
    return ledger


# --- begin, end, hand-over -------------------------------------------------------------------------


def test_ledger_begin_makes_the_task_the_holder(ledger: Ledger) -> None:
    verdict = ledger.begin(begin(key("t1"), waited_s=0.5), at(0))

    assert verdict is BeginVerdict.GRANTED
    assert ledger.state.state is NodeState.IN_USE
    assert ledger.state.holder is not None
    assert ledger.state.holder.key == key("t1")
    assert ledger.state.holder.since == at(0)
    assert ledger.state.uses_this_run == 1


def test_ledger_end_frees_the_node_and_records_the_use(ledger: Ledger) -> None:
    ledger.begin(begin(key("t1")), at(0))

    assert ledger.end(EndUse(key=key("t1"), succeeded=True, duration_s=2.0), at(2)) is True

    assert ledger.state.state is NodeState.AVAILABLE
    assert ledger.state.holder is None
    assert [(u.key, u.began, u.ended, u.outcome) for u in ledger.state.recent] == [
        (key("t1"), at(0), at(2), "succeeded")
    ]


def test_ledger_begin_with_close_hands_the_node_over_in_one_step(ledger: Ledger) -> None:
    ledger.begin(begin(key("t1")), at(0))

    close = EndUse(key=key("t1"), succeeded=True, duration_s=1.0)
    verdict = ledger.begin(begin(key("t2"), close=close), at(1))

    assert verdict is BeginVerdict.GRANTED
    assert ledger.state.state is NodeState.IN_USE
    assert ledger.state.holder is not None and ledger.state.holder.key == key("t2")
    assert ledger.state.stats.calls == 1
    assert [(u.key.task_id, u.outcome) for u in ledger.state.recent] == [("t1", "succeeded")]


def test_ledger_keeps_only_the_recent_uses(ledger: Ledger) -> None:
    for n in range(30):
        ledger.begin(begin(key(f"t{n}")), at(n))
        ledger.end(EndUse(key=key(f"t{n}"), succeeded=True), at(n + 0.5))

    assert len(ledger.state.recent) == 20
    assert ledger.state.recent[-1].key.task_id == "t29"
    assert ledger.state.stats.calls == 30


# --- refusals --------------------------------------------------------------------------------------


def test_ledger_refuses_a_second_holder(ledger: Ledger) -> None:
    ledger.begin(begin(key("t1")), at(0))

    with pytest.raises(LedgerRefusal, match="node arm is in use by task t1 step 1"):
        ledger.begin(begin(key("t2")), at(1))

    assert ledger.state.holder is not None and ledger.state.holder.key == key("t1")


def test_ledger_refuses_a_hand_over_that_closes_another_use(ledger: Ledger) -> None:
    ledger.begin(begin(key("t1")), at(0))

    with pytest.raises(LedgerRefusal, match="in use by task t1"):
        ledger.begin(begin(key("t3"), close=EndUse(key=key("t2"), succeeded=True)), at(1))


def test_ledger_refuses_a_node_in_error_and_says_why(ledger: Ledger) -> None:
    failed_node(ledger)

    assert ledger.state.state is NodeState.ERROR
    with pytest.raises(LedgerRefusal, match=r"node arm is ERROR \(.*gripper jammed\): waiting for a restart"):
        ledger.check_begin(begin(key("t2")))
    with pytest.raises(LedgerRefusal):
        ledger.begin(begin(key("t2")), at(2))
    assert ledger.state.holder is None


def test_ledger_refuses_a_node_in_recovery(ledger: Ledger) -> None:
    failed_node(ledger).start_restart()

    assert ledger.state.state is NodeState.RECOVERY
    with pytest.raises(LedgerRefusal, match="RECOVERY"):
        ledger.begin(begin(key("t2")), at(2))


# --- idempotence ------------------------------------------------------------------------------------


def test_ledger_begin_again_with_the_same_key_is_idempotent(ledger: Ledger) -> None:
    ledger.begin(begin(key("t1")), at(0))

    assert ledger.begin(begin(key("t1")), at(5)) is BeginVerdict.GRANTED

    assert ledger.state.holder is not None and ledger.state.holder.since == at(0)
    assert ledger.state.uses_this_run == 1
    assert ledger.state.stats.lost == 0


def test_ledger_end_again_is_ignored(ledger: Ledger) -> None:
    ledger.begin(begin(key("t1")), at(0))
    end = EndUse(key=key("t1"), succeeded=True, duration_s=1.0)

    assert ledger.end(end, at(1)) is True
    assert ledger.end(end, at(2)) is False

    assert ledger.state.stats.calls == 1
    assert ledger.state.state is NodeState.AVAILABLE


def test_ledger_ignores_the_end_of_a_use_it_does_not_hold(ledger: Ledger) -> None:
    ledger.begin(begin(key("t1")), at(0))

    assert ledger.end(EndUse(key=key("t2"), succeeded=False, message="not mine"), at(1)) is False

    assert ledger.state.state is NodeState.IN_USE
    assert ledger.state.holder is not None and ledger.state.holder.key == key("t1")


# --- uses that never ended --------------------------------------------------------------------------


def test_ledger_lets_a_temporal_retry_take_over_a_cut_off_attempt(ledger: Ledger) -> None:
    ledger.begin(begin(key("t1", attempt=1), max_attempts=3), at(0))

    verdict = ledger.begin(begin(key("t1", attempt=2), max_attempts=3), at(5))

    assert verdict is BeginVerdict.GRANTED
    assert ledger.state.state is NodeState.IN_USE
    assert ledger.state.holder is not None and ledger.state.holder.key == key("t1", attempt=2)
    assert ledger.state.stats.lost == 1
    assert [(u.key.attempt, u.outcome) for u in ledger.state.recent] == [(1, "lost")]


def test_ledger_refuses_a_retry_once_the_attempts_are_spent(ledger: Ledger) -> None:
    ledger.begin(begin(key("t1", attempt=3), max_attempts=3), at(0))

    verdict = ledger.begin(begin(key("t1", attempt=4), max_attempts=3), at(5))

    assert verdict is BeginVerdict.LOST_PREVIOUS
    assert ledger.state.state is NodeState.ERROR


def test_ledger_new_run_of_a_cut_off_one_attempt_step_is_lost_previous(ledger: Ledger) -> None:
    ledger.begin(begin(key("t1", run=1)), at(0))

    verdict = ledger.begin(begin(key("t1", run=2)), at(5))

    assert verdict is BeginVerdict.LOST_PREVIOUS
    assert ledger.state.state is NodeState.ERROR
    assert ledger.state.holder is None
    assert (
        ledger.state.reason is not None
        and "task t1 step 1 (run 1, attempt 1) was cut off" in ledger.state.reason
    )
    assert ledger.state.stats.lost == 1
    with pytest.raises(LedgerRefusal, match="ERROR"):
        ledger.begin(begin(key("t1", run=2)), at(6))


def test_ledger_abandon_puts_the_node_in_error(ledger: Ledger) -> None:
    ledger.begin(begin(key("t1")), at(0))

    assert ledger.abandon(key("t1", attempt=0), at(9), "task t1 was terminated") is True

    assert ledger.state.state is NodeState.ERROR
    assert ledger.state.reason == "task t1 was terminated"
    assert ledger.state.holder is None
    assert ledger.state.stats.lost == 1
    assert ledger.state.recent[-1].outcome == "lost"


@pytest.mark.parametrize(
    "other",
    [key("t2"), key("t1", step=1), key("t1", run=1)],
    ids=["another-task", "another-step", "an-older-run"],
)
def test_ledger_abandon_of_another_use_changes_nothing(ledger: Ledger, other: UseKey) -> None:
    ledger.begin(begin(key("t1", run=2)), at(0))

    assert ledger.abandon(other, at(1), "not the holder") is False

    assert ledger.state.state is NodeState.IN_USE
    assert ledger.state.holder is not None and ledger.state.holder.key == key("t1", run=2)


def test_ledger_abandon_of_a_free_node_changes_nothing(ledger: Ledger) -> None:
    ledger.come_online()

    assert ledger.abandon(key("t1"), at(1), "nobody holds it") is False

    assert ledger.state.state is NodeState.AVAILABLE


# --- the node's life --------------------------------------------------------------------------------


def test_ledger_comes_online_and_goes_offline(ledger: Ledger) -> None:
    assert ledger.state.state is NodeState.OFFLINE
    ledger.come_online()
    assert ledger.state.state is NodeState.AVAILABLE
    ledger.go_offline()
    assert ledger.state.state is NodeState.OFFLINE


def test_ledger_restart_that_succeeds_makes_the_node_available(ledger: Ledger) -> None:
    failed_node(ledger)

    ledger.start_restart()
    assert ledger.state.state is NodeState.RECOVERY
    ledger.finish_restart(ok=True, message=None)

    assert ledger.state.state is NodeState.AVAILABLE
    assert ledger.state.reason is None
    assert ledger.state.restarts == 1
    assert ledger.begin(begin(key("t2")), at(5)) is BeginVerdict.GRANTED


def test_ledger_restarted_for_a_retry_is_kept_for_that_step(ledger: Ledger) -> None:
    """An operator's retry: the restarted node waits for that step; others are told why, and which step
    their worker's gate should let go first."""
    failed_node(ledger)
    ledger.start_restart()
    ledger.finish_restart(ok=True, message=None, now=at(10), retry_of="t1/0")

    with pytest.raises(LedgerRefusal, match="kept for task t1 step 1,") as refused:
        ledger.check_begin(begin(key("t2")), at(11))
    assert refused.value.kept_for == "t1/0"
    assert ledger.begin(begin(key("t1", run=2)), at(12)) is BeginVerdict.GRANTED
    assert ledger.state.kept_for is None  # its step began: the node is in the line's order again
    ledger.end(EndUse(key=key("t1", run=2), succeeded=True), at(13))
    assert ledger.begin(begin(key("t2")), at(14)) is BeginVerdict.GRANTED


def test_ledger_kept_for_a_retry_that_never_comes_serves_the_others_after_a_while(ledger: Ledger) -> None:
    failed_node(ledger)
    ledger.start_restart()
    ledger.finish_restart(ok=True, message=None, now=at(10), retry_of="t1/0")  # then t1 was cancelled

    with pytest.raises(LedgerRefusal):
        ledger.check_begin(begin(key("t2")), at(10 + KEPT_FOR_S))
    assert ledger.begin(begin(key("t2")), at(11 + KEPT_FOR_S)) is BeginVerdict.GRANTED
    assert ledger.state.kept_for is None


def test_ledger_restart_that_fails_leaves_the_node_in_error(ledger: Ledger) -> None:
    failed_node(ledger)

    ledger.start_restart()
    ledger.finish_restart(ok=False, message="no power")

    assert ledger.state.state is NodeState.ERROR
    assert ledger.state.reason == "restart failed: no power"
    assert ledger.state.restarts == 1


def test_ledger_refuses_a_restart_in_the_middle_of_a_step(ledger: Ledger) -> None:
    ledger.begin(begin(key("t1")), at(0))

    with pytest.raises(LedgerRefusal, match="cannot restart node arm: it is IN_USE by task t1"):
        ledger.start_restart()

    assert ledger.state.state is NodeState.IN_USE


# --- statistics -------------------------------------------------------------------------------------


def test_ledger_statistics_add_up(ledger: Ledger) -> None:
    uses = [  # (task, succeeded, final, duration_s, waited_s)
        ("t1", True, True, 0.0, 0.0),
        ("t2", True, True, 2.0, 1.0),
        ("t3", False, False, 4.0, 3.0),
        ("t4", True, True, 6.0, 0.5),
    ]
    for n, (task, succeeded, final, duration_s, waited_s) in enumerate(uses):
        ledger.begin(begin(key(task), waited_s=waited_s), at(10 * n))
        ledger.end(
            EndUse(key=key(task), succeeded=succeeded, final=final, duration_s=duration_s), at(10 * n + 1)
        )
    ledger.begin(begin(key("t5", run=1), waited_s=7.0), at(50))
    ledger.begin(begin(key("t5", run=2)), at(60))  # the first run was cut off

    stats = ledger.state.stats
    assert (stats.calls, stats.successes, stats.failures, stats.lost) == (4, 3, 1, 1)
    assert stats.calls == stats.successes + stats.failures
    assert stats.min_run_s == 0.0
    assert stats.max_run_s == 6.0
    assert stats.mean_run_s == pytest.approx(3.0)
    assert stats.total_wait_s == pytest.approx(4.5)
    assert stats.max_wait_s == 3.0
    assert [u.outcome for u in ledger.state.recent] == [
        "succeeded",
        "succeeded",
        "failed",
        "succeeded",
        "lost",
    ]


def test_ledger_without_calls_has_no_mean(ledger: Ledger) -> None:
    assert ledger.state.stats.mean_run_s is None
    assert ledger.state.stats.min_run_s is None


def test_ledger_state_survives_a_round_trip_with_its_holder(ledger: Ledger) -> None:
    ledger.begin(begin(key("t1")), at(0))

    copy = Ledger(LedgerState.model_validate_json(ledger.state.model_dump_json()))

    assert copy.state == ledger.state
    with pytest.raises(LedgerRefusal, match="in use by task t1"):
        copy.begin(begin(key("t2")), at(1))
    assert copy.end(EndUse(key=key("t1"), succeeded=True), at(2)) is True
    assert copy.state.state is NodeState.AVAILABLE


def test_ledger_counts_a_cancelled_use_apart_from_failures_and_without_its_cut_short_time(
    ledger: Ledger,
) -> None:
    ledger.begin(begin(key("t1")), at(0))
    ledger.end(EndUse(key=key("t1"), succeeded=True, duration_s=4.0), at(4))
    ledger.begin(begin(key("t2"), waited_s=2.0), at(10))
    ledger.end(EndUse(key=key("t2"), succeeded=False, final=False, duration_s=1.0, cancelled=True), at(11))

    stats = ledger.state.stats
    assert (stats.calls, stats.successes, stats.failures, stats.cancelled) == (2, 1, 0, 1)
    assert (stats.min_run_s, stats.max_run_s, stats.mean_run_s) == (4.0, 4.0, 4.0)
    assert stats.max_wait_s == 2.0
    assert [u.outcome for u in ledger.state.recent] == ["succeeded", "cancelled"]
    assert ledger.state.state is NodeState.AVAILABLE and ledger.state.errors == 0


def test_ledger_names_the_failed_step_whose_task_waits_until_the_restart(ledger: Ledger) -> None:
    failed_node(ledger)
    assert ledger.state.failed_step == key("t1")  # its task waits for an operator's decision

    ledger.start_restart()
    ledger.finish_restart(False, "no power", at(5))
    assert ledger.state.state is NodeState.ERROR and ledger.state.failed_step is None
