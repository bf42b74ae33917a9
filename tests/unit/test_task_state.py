"""A task's state and its rules (engine/task_state.py), without a server: the records a task makes as
it reaches its steps, the pages and the window it answers with, what it hands on at continue-as-new,
and what a cut-off run and its accounting leave in a step's record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from task_scheduler.engine.ledger_models import RunAccounted, RunOutcome, UseKey
from task_scheduler.engine.states import TaskState
from task_scheduler.engine.task_state import (
    DECISIONS_KEPT,
    Decision,
    StepOutcome,
    StepRecord,
    StepReport,
    TaskMemory,
    TaskStatus,
)

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
NODES = ["hotel", "arm", "dispenser", "arm", "hotel"]


def memory(total: int = len(NODES)) -> TaskMemory:
    return TaskMemory(status=TaskStatus(task_id="t1", workflow_name="prep", steps_total=total))


def test_reaching_a_step_makes_its_record_and_the_pending_ones_before_it() -> None:
    state = memory()
    record = state.status.reach(2, NODES)
    assert [(r.index, r.node, r.outcome) for r in state.status.steps] == [
        (0, "hotel", StepOutcome.PENDING),
        (1, "arm", StepOutcome.PENDING),
        (2, "dispenser", StepOutcome.PENDING),
    ]
    assert state.status.reach(2, NODES) is record  # reached again: the same record


def test_records_answer_the_steps_not_reached_as_pending_and_name_the_archives() -> None:
    state = memory()
    state.status.reach(1, NODES).take(StepReport(output={"plate": "P1"}), StepOutcome.SUCCEEDED)
    page = state.records(1, 10, NODES)
    assert (page.total, page.offset) == (5, 1)
    assert [(s.index, s.outcome) for s in page.steps] == [
        (1, StepOutcome.SUCCEEDED),
        (2, StepOutcome.PENDING),
        (3, StepOutcome.PENDING),
        (4, StepOutcome.PENDING),
    ]
    assert state.status.output_of(1) == {"plate": "P1"} and state.status.output_of(0) is None


def test_the_state_handed_on_keeps_the_last_step_and_archives_those_before() -> None:
    state = memory()
    for index in range(3):
        state.status.reach(index, NODES).take(StepReport(output={"n": index}), StepOutcome.SUCCEEDED)
    state.next_step = 3

    carried = state.carried("run-1")

    assert carried.status.steps_offset == 2  # step 3's output is the next step's input
    assert [s.index for s in carried.status.steps] == [2]
    assert [(a.first, a.last, a.run_id) for a in carried.archives] == [(0, 1, "run-1")]
    assert carried.temporal_runs == 2 and state.temporal_runs == 1  # a copy: this run keeps its own
    page = carried.records(0, 5, NODES)
    assert page.offset == 2 and [a.run_id for a in page.archives] == ["run-1"]


def test_the_status_window_follows_the_current_step() -> None:
    status = TaskStatus(task_id="t1", workflow_name="long", steps_total=1000, current_step=500)
    assert status.window(200) == 450
    status.current_step = None  # finished: the last ones
    assert status.window(200) == 800
    assert TaskStatus(task_id="t2", workflow_name="short", steps_total=5).window(200) == 0


def test_a_run_cut_off_is_kept_and_then_accounted_for() -> None:
    record = memory().status.reach(0, NODES)
    record.runs = 1
    started = T0 - timedelta(minutes=3)
    run = record.cut_off(T0, attempt=None, worker="pc-2", started_at=started)
    assert record.outcome is StepOutcome.LOST
    assert (run.run, run.attempt, run.worker, run.started_at, run.lost_at) == (1, 1, "pc-2", started, T0)
    assert record.unaccounted_run() is run

    key = UseKey(task_id="t1", step_index=0, run=1)
    late = RunAccounted(key=key, outcome=RunOutcome.SUCCEEDED, ended=T0, status=0, message="done")
    assert record.account(late) is run
    assert (run.accounted, run.late_outcome, run.late_message) == (True, "SUCCEEDED", "done")
    assert record.unaccounted_run() is None
    other = late.model_copy(update={"key": key.model_copy(update={"run": 7})})
    assert record.account(other) is None


def test_decisions_keep_the_newest() -> None:
    status = memory().status
    for n in range(DECISIONS_KEPT + 3):
        status.decide(Decision(at=T0, command="pause", by=f"op{n}", state=TaskState.ACTIVE))
    assert len(status.decisions) == DECISIONS_KEPT
    assert status.decisions[-1].by == f"op{DECISIONS_KEPT + 2}" and status.decisions[0].by == "op3"


def test_a_cancelled_run_keeps_its_times_lines_and_says_who_cancelled_it_after_how_long() -> None:
    state = memory()
    state.status.decide(Decision(at=T0, command="cancel", by="alice", state=TaskState.ACTIVE))
    record = state.status.reach(0, NODES)
    report = StepReport(
        status=-1,
        message="its driver stopped when asked to abort",
        logs=["09:00:01.000 INFO dispensed 40 of 96 wells"],
        started_at=T0,
        finished_at=T0 + timedelta(seconds=12.34),
    )

    record.take_cancelled(report, state.status.cancelled_by())

    assert record.outcome is StepOutcome.CANCELLED
    assert (record.started_at, record.finished_at) == (T0, T0 + timedelta(seconds=12.34))
    assert record.message == "cancelled by alice after 12.3 s: its driver stopped when asked to abort"
    assert record.logs == ["09:00:01.000 INFO dispensed 40 of 96 wells"]


def test_a_step_cancelled_before_its_driver_started_says_so_and_a_failed_one_keeps_its_failure() -> None:
    state = memory()
    waiting = state.status.reach(0, NODES)
    waiting.outcome = StepOutcome.RUNNING  # asked for, its driver not started
    waiting.take_cancel(None)
    assert waiting.outcome is StepOutcome.CANCELLED
    assert waiting.message == "cancelled by an operator before its driver started"

    failed = state.status.reach(1, NODES)
    failed.take(
        StepReport(status=1, message="gripper jammed", started_at=T0, finished_at=T0), StepOutcome.FAILED
    )
    failed.take_cancel("bob")
    assert (failed.outcome, failed.message) == (StepOutcome.CANCELLED, "gripper jammed")


def test_a_step_taking_its_nodes_says_which_it_holds_and_keeps_each_grant_once() -> None:
    record = StepRecord(index=5, node="arm", id="load", runs=2, holds=["arm", "reader"])
    assert record.holding_text() == "waiting for arm (it takes arm, reader in this order)"
    assert record.take_grant(1, "arm") is False  # an earlier run's grant
    assert record.take_grant(2, "washer") is False  # not one of its nodes
    assert record.take_grant(2, "arm") is True and record.take_grant(2, "arm") is False
    assert record.holding_text() == "holds arm; waiting for reader (it takes arm, reader in this order)"
    record.take_grant(2, "reader")
    assert record.holding_text() is None  # it has them all: it runs
