"""A task's protocol (the graph of its steps, checked with located problems) and its book (which steps
may start, what a failure blocks, what a decision or a pause changes), without Temporal."""

from __future__ import annotations

from datetime import datetime, time
from pathlib import Path
from typing import Any

import pytest

from task_scheduler import ConfigError
from task_scheduler.engine.book import Book, BookState, Hold
from task_scheduler.engine.config import WorkflowConfig
from task_scheduler.engine.errors import CommandRefusedError, InvalidRequestError, InvalidTransitionError
from task_scheduler.engine.loader import load_config_dir
from task_scheduler.engine.protocol import (
    MAX_WAIT_S,
    Protocol,
    StepKind,
    parse_wait_until,
    protocol_of,
    read_protocol,
    read_protocols,
)
from task_scheduler.engine.task_state import StepOutcome

ROOT = Path(__file__).resolve().parents[2]
NODES = [{"id": "arm"}, {"id": "reader"}, {"id": "incubator"}]
SUCCEEDED, FAILED = StepOutcome.SUCCEEDED, StepOutcome.FAILED


def protocol(*steps: Any) -> Protocol:
    return read_protocol(list(steps), ["arm", "reader", "incubator"], file="workflows.json", path="$")


def problems(*steps: Any, nodes: list[Any] | None = None) -> list[str]:
    """The problems of a workflows.json holding one workflow of these steps."""
    with pytest.raises(ConfigError) as caught:
        read_protocols([{"name": "w", "steps": list(steps)}], NODES if nodes is None else nodes)
    return [str(p) for p in caught.value.problems]


def at(step: int, where: str = "") -> str:
    return f"workflows.json: $.workflows[0].steps[{step}]{where}: "


LINE = protocol("arm", "reader", "arm")
DIAMOND = protocol(
    {"id": "A", "node": "arm"},
    {"id": "B", "after": ["A"], "node": "reader"},
    {"id": "C", "after": ["A"], "node": "incubator"},
    {"id": "D", "after": ["B", "C"], "node": "arm"},
)
# Two branches, written interleaved: the book answers in this order.
BRANCHES = protocol(
    {"id": "a1", "after": [], "node": "arm"},
    {"id": "b1", "after": [], "node": "reader"},
    {"id": "a2", "after": ["a1"], "node": "arm"},
    {"id": "b2", "after": ["b1"], "node": "reader"},
)


def run(book: Book, step_id: str, outcome: StepOutcome = SUCCEEDED) -> None:
    book.start(step_id)
    book.end(step_id, outcome)


# --- the protocol ----------------------------------------------------------------------------------


def test_protocol_of_a_workflow_of_today_is_a_line_of_numbered_steps() -> None:
    workflow = WorkflowConfig.model_validate(
        {"name": "w", "steps": ["arm", {"node": "reader", "args": {"x": 1}, "timeout_s": 5}, "arm"]}
    )
    line = protocol_of(workflow)

    assert line.ids() == ["1", "2", "3"]
    assert [s.after for s in line.steps] == [(), ("1",), ("2",)]
    assert [s.node for s in line.steps] == ["arm", "reader", "arm"]
    assert {s.kind for s in line.steps} == {StepKind.NODE}


@pytest.mark.parametrize("lab", ["examples/demo-lab", "examples/seed-example"])
def test_protocol_of_every_example_workflow_is_its_line(lab: str) -> None:
    for workflow in load_config_dir(ROOT / lab).workflows:
        if any(step.id is not None or step.after is not None for step in workflow.steps):
            continue  # written as a protocol (the demo lab's incubate-and-read), not as a line
        steps = protocol_of(workflow).steps
        assert [s.node for s in steps] == [s.node for s in workflow.steps]
        assert [s.after for s in steps] == [(), *[(str(i),) for i in range(1, len(steps))]]


def test_read_protocol_reads_ids_links_holds_and_waits() -> None:
    read = protocol(
        {"id": "prep", "node": "arm", "holds": ["reader"]},
        {"id": "settle", "wait_s": 600},
        {"wait_until": "14:30"},
        {"id": "read", "after": ["prep"], "node": "reader"},
        "arm",
    )

    assert read.ids() == ["prep", "settle", "3", "read", "5"]
    assert [s.after for s in read.steps] == [(), ("prep",), ("settle",), ("prep",), ("read",)]
    assert read.step("prep").holds == ("reader",)
    node, wait = StepKind.NODE, StepKind.WAIT
    assert [s.kind for s in read.steps] == [node, wait, wait, node, node]
    assert (read.step("settle").wait_s, read.step("3").wait_until) == (600, "14:30")


def test_read_protocol_empty_after_starts_with_the_first_step() -> None:
    read = protocol({"id": "a", "node": "arm"}, {"id": "b", "after": [], "node": "reader"})
    assert read.step("b").after == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("14:30", time(14, 30)),
        ("07:05:30", time(7, 5, 30)),
        ("2025-06-01T14:30", datetime(2025, 6, 1, 14, 30)),
        ("2025-06-01 14:30:00+02:00", datetime.fromisoformat("2025-06-01T14:30:00+02:00")),
    ],
)
def test_parse_wait_until_reads_a_time_or_a_time_of_day(text: str, expected: object) -> None:
    assert parse_wait_until(text) == expected


# --- the protocol's problems -----------------------------------------------------------------------


def test_protocol_unknown_after_is_located_and_lists_the_steps() -> None:
    found = problems({"id": "a", "node": "arm"}, {"id": "b", "after": ["a", "z"], "node": "arm"})
    assert found == [at(1, ".after[1]") + "unknown step 'z'; steps of this workflow: a, b"]


def test_protocol_duplicate_ids_are_each_located() -> None:
    found = problems({"id": "a", "node": "arm"}, {"id": "a", "node": "reader"})
    assert found == [
        at(0, ".id") + "duplicate step id 'a' (also at steps[1])",
        at(1, ".id") + "duplicate step id 'a' (also at steps[0])",
    ]


def test_protocol_a_step_without_id_clashes_with_an_id_equal_to_its_number() -> None:
    found = problems({"id": "2", "node": "arm"}, "reader")
    assert found[1] == (
        at(1) + "this step has no id, so its id is its number '2', which steps[0] has too: "
        "give one of them another id"
    )
    assert len(found) == 2


def test_protocol_a_cycle_is_named_by_its_steps_implicit_links_included() -> None:
    # a after c; b follows a, c follows b (no `after`): a circle.
    found = problems(
        {"id": "a", "after": ["c"], "node": "arm"}, {"id": "b", "node": "arm"}, {"id": "c", "node": "arm"}
    )
    assert len(found) == 1
    assert found[0].startswith(at(0, ".after") + "steps 'a' -> 'b' -> 'c' -> 'a' form a circle")


def test_protocol_every_cycle_is_named_at_once() -> None:
    found = problems(
        {"id": "x", "after": ["y"], "node": "arm"},
        {"id": "y", "after": ["x"], "node": "arm"},
        {"id": "p", "after": ["q"], "node": "arm"},
        {"id": "q", "after": ["p"], "node": "arm"},
    )
    assert [p.split(": steps ")[1].split(" form")[0] for p in found] == [
        "'x' -> 'y' -> 'x'",
        "'p' -> 'q' -> 'p'",
    ]
    assert found[1].startswith(at(2, ".after"))


def test_protocol_a_self_reference_is_named_once_not_also_as_a_cycle() -> None:
    found = problems({"id": "a", "after": ["a"], "node": "arm"})
    assert found == [at(0, ".after[0]") + "step 'a' names itself: a step cannot come after itself"]


def test_protocol_holds_an_unknown_node() -> None:
    found = problems({"node": "arm", "holds": ["reader", "washer"]})
    assert found == [at(0, ".holds[1]") + "unknown node 'washer'; known nodes: arm, incubator, reader"]


def test_protocol_holds_its_own_node() -> None:
    found = problems({"node": "arm", "holds": ["arm"]})
    assert found == [
        at(0, ".holds[0]") + "the step runs on 'arm', which it holds anyway: remove it from holds"
    ]


def test_protocol_holds_without_a_node() -> None:
    found = problems({"wait_s": 5, "holds": ["arm"]})
    assert found == [at(0, ".holds") + "only a step that runs on a `node` holds other nodes with it"]


@pytest.mark.parametrize("capacity", [0, -2, 1.5, "4", True])
def test_protocol_capacity_must_be_one_or_more(capacity: object) -> None:
    found = problems("arm", nodes=[{"id": "arm", "capacity": capacity}])
    assert found == [
        "nodes.json: $.nodes[0].capacity: capacity must be a whole number of steps that may hold the node "
        f"at once, 1 or more, got {capacity!r}; leave it out for a node that serves one step at a time"
    ]


def test_protocol_capacity_of_several_is_accepted() -> None:
    protocols = read_protocols([{"name": "w", "steps": ["arm"]}], [{"id": "arm", "capacity": 32}])
    assert protocols["w"].ids() == ["1"]


@pytest.mark.parametrize("wait_s", [-1, MAX_WAIT_S + 1, 1e9])
def test_protocol_wait_s_negative_or_over_30_days(wait_s: float) -> None:
    found = problems({"wait_s": wait_s})
    assert found == [at(0, ".wait_s") + f"wait_s must be from 0 to 2592000 seconds (30 days), got {wait_s:g}"]


@pytest.mark.parametrize("wait_s", [0, 0.5, MAX_WAIT_S])
def test_protocol_wait_s_within_30_days_is_a_wait(wait_s: float) -> None:
    assert protocol({"wait_s": wait_s}).steps[0].wait_s == wait_s


def test_protocol_wait_s_that_is_not_a_number() -> None:
    found = problems({"wait_s": "600"})
    assert found == [at(0, ".wait_s") + "Input should be a valid number (got '600')"]


@pytest.mark.parametrize("text", ["tomorrow", "25:00", "14:5", "2025-06-01", "2025-13-01T10:00", ""])
def test_protocol_wait_until_neither_an_iso_time_nor_hh_mm(text: str) -> None:
    found = problems({"wait_until": text})
    assert found == [
        at(0, ".wait_until") + "wait_until must be an ISO time such as 2025-06-01T14:30 (a time zone may "
        f"follow) or a time of day HH:MM, got {text!r}"
    ]


def test_protocol_a_step_on_a_node_that_also_waits() -> None:
    found = problems({"node": "arm", "wait_s": 5})
    assert found == [at(0) + "a step runs on a node or waits, not both: remove `node` or `wait_s`"]


def test_protocol_a_step_that_neither_runs_nor_waits() -> None:
    found = problems({"id": "nothing"})
    assert found == [at(0) + "a step names the `node` it runs on, or waits (`wait_s` or `wait_until`)"]


def test_protocol_a_step_that_waits_twice() -> None:
    found = problems({"wait_s": 5, "wait_until": "10:00"})
    assert found == [at(0) + "a step waits `wait_s` seconds or `wait_until` a time, not both"]


def test_protocol_a_step_that_is_neither_a_node_id_nor_an_object() -> None:
    assert problems("arm", 5) == [at(1) + "a step is a node id or an object, got 5"]


def test_protocol_every_problem_of_both_files_at_once_and_no_protocol() -> None:
    workflows = [
        {"name": "good", "steps": ["arm", "reader"]},
        {"name": "bad", "steps": [{"id": "a", "after": ["nope"], "node": "arm"}, {"wait_s": -5}]},
    ]
    with pytest.raises(ConfigError) as caught:
        read_protocols(workflows, [{"id": "arm", "capacity": 0}, {"id": "reader"}])

    where = [f"{p.file}: {p.path}" for p in caught.value.problems]
    assert where == [
        "nodes.json: $.nodes[0].capacity",
        "workflows.json: $.workflows[1].steps[0].after[0]",
        "workflows.json: $.workflows[1].steps[1].wait_s",
    ]
    assert "3 problem(s) in the lab configuration:" in str(caught.value)


# --- the book: readiness ---------------------------------------------------------------------------


def test_book_line_runs_one_step_after_the_other() -> None:
    book = Book(LINE)
    assert book.ready() == ["1"]
    book.start("1")
    assert (book.ready(), book.running()) == ([], ["1"])
    book.end("1", SUCCEEDED)
    assert book.ready() == ["2"]
    run(book, "2")
    assert book.ready() == ["3"]


def test_book_diamond_runs_both_branches_at_once_and_joins_them() -> None:
    book = Book(DIAMOND)
    assert book.ready() == ["A"]
    run(book, "A")
    assert book.ready() == ["B", "C"]
    book.start("B")
    book.start("C")
    book.end("C", SUCCEEDED)
    assert book.ready() == []  # D comes after B too
    book.end("B", SUCCEEDED)
    assert book.ready() == ["D"]


def test_book_independent_branches_are_ready_in_the_protocols_order() -> None:
    book = Book(BRANCHES)
    assert book.ready() == ["a1", "b1"]
    run(book, "b1")
    assert book.ready() == ["a1", "b2"]
    run(book, "a1")
    assert book.ready() == ["a2", "b2"]


def test_book_ready_steps_keep_the_protocols_order_not_their_names() -> None:
    book = Book(
        protocol({"id": "wash", "after": [], "node": "arm"}, {"id": "dose", "after": [], "node": "reader"})
    )
    assert book.ready() == ["wash", "dose"]


def test_book_a_step_not_ready_does_not_start() -> None:
    book = Book(DIAMOND)
    with pytest.raises(InvalidTransitionError, match="cannot start a step that is PENDING: it comes after A"):
        book.start("B")
    run(book, "A")
    with pytest.raises(InvalidTransitionError, match="only a pending step starts"):
        book.start("A")
    with pytest.raises(InvalidRequestError, match="no step 'Z' in this protocol; its steps: A, B, C, D"):
        book.start("Z")


def test_book_only_a_running_step_ends() -> None:
    book = Book(LINE)
    with pytest.raises(InvalidTransitionError, match="it is not running"):
        book.end("1", SUCCEEDED)
    book.start("1")
    with pytest.raises(InvalidRequestError):
        book.end("1", StepOutcome.SKIPPED)


# --- the book: failures and decisions --------------------------------------------------------------


def failed_branch() -> Book:
    """a1 failed while b1 ran; b1 then succeeded: b2 would be next."""
    book = Book(BRANCHES)
    book.start("a1")
    book.start("b1")
    book.end("a1", FAILED)
    return book


def test_book_a_failure_starts_nothing_new_while_the_other_branch_goes_on() -> None:
    book = failed_branch()
    assert (book.hold(), book.awaiting_decision(), book.running()) == (Hold.FAILED, ["a1"], ["b1"])
    assert book.ready() == []

    book.end("b1", SUCCEEDED)  # the running branch keeps its result
    assert book.outcome("b1") is SUCCEEDED
    assert book.ready() == []
    assert book.held_back() == ["b2"]
    with pytest.raises(InvalidTransitionError, match=r"the task is held \(failed\)"):
        book.start("b2")


def test_book_a_lost_run_awaits_a_decision_as_a_failure_does() -> None:
    book = Book(BRANCHES)
    book.start("a1")
    book.end("a1", StepOutcome.LOST)
    assert (book.awaiting_decision(), book.ready()) == (["a1"], [])


def test_book_retry_makes_the_failed_step_ready_again() -> None:
    book = failed_branch()
    book.end("b1", SUCCEEDED)

    assert book.decide("retry") == "a1"
    assert book.outcome("a1") is StepOutcome.PENDING
    assert (book.hold(), book.ready()) == (None, ["a1", "b2"])


def test_book_next_counts_the_failed_step_as_done() -> None:
    book = failed_branch()
    book.end("b1", SUCCEEDED)

    assert book.decide("next", "a1") == "a1"
    assert book.outcome("a1") is StepOutcome.SKIPPED
    assert book.ready() == ["a2", "b2"]
    run(book, "a2")
    run(book, "b2")
    assert book.finished


def test_book_cancel_starts_nothing_any_more() -> None:
    book = failed_branch()

    assert book.decide("cancel") is None
    assert (book.hold(), book.outcome("a1"), book.awaiting_decision()) == (Hold.CANCELLED, "CANCELLED", [])
    assert not book.over  # b1 still runs
    book.end("b1", SUCCEEDED)
    assert (book.ready(), book.held_back()) == ([], ["b2"])
    assert book.over
    assert not book.finished


def test_book_several_failures_each_need_a_decision_naming_its_step() -> None:
    book = failed_branch()
    book.end("b1", FAILED)
    assert book.awaiting_decision() == ["a1", "b1"]

    with pytest.raises(
        CommandRefusedError, match="steps a1, b1 failed: name the step this decision is about"
    ):
        book.decide("retry")
    assert book.decide("next", "b1") == "b1"
    assert (book.hold(), book.awaiting_decision(), book.ready()) == (Hold.FAILED, ["a1"], [])
    assert book.held_back() == ["b2"]
    book.decide("retry")  # the only one left: no need to name it
    assert book.ready() == ["a1", "b2"]


def test_book_a_decision_about_a_step_that_did_not_fail_is_refused() -> None:
    book = failed_branch()
    with pytest.raises(InvalidTransitionError, match="it did not fail; failed: a1"):
        book.decide("retry", "b1")
    book.decide("retry")
    with pytest.raises(CommandRefusedError, match="no step failed"):
        book.decide("next")


# --- the book: pause, finish, state ----------------------------------------------------------------


def test_book_pause_lets_running_steps_finish_and_starts_none() -> None:
    book = Book(DIAMOND)
    run(book, "A")
    book.start("B")
    book.pause()

    assert (book.hold(), book.ready(), book.held_back()) == (Hold.PAUSED, [], ["C"])
    book.end("B", SUCCEEDED)
    assert book.ready() == []
    book.resume()
    assert book.ready() == ["C"]


def test_book_a_failure_while_paused_holds_the_task_after_its_resume() -> None:
    book = failed_branch()
    book.pause()
    assert book.hold() is Hold.FAILED
    book.resume()
    assert book.hold() is Hold.FAILED
    book.decide("retry")
    assert book.ready() == ["a1"]


def test_book_finished_when_every_step_succeeded_or_was_skipped() -> None:
    book = Book(LINE)
    run(book, "1")
    run(book, "2", FAILED)
    assert not book.finished
    book.decide("next")
    assert not book.finished
    run(book, "3")
    assert book.finished
    assert book.over


def test_book_not_finished_when_the_last_step_failed_or_was_cancelled() -> None:
    book = Book(LINE)
    run(book, "1")
    run(book, "2")
    run(book, "3", FAILED)
    assert (book.finished, book.over) == (False, False)
    book.decide("cancel")
    assert (book.finished, book.over) == (False, True)


def test_book_a_wait_step_is_a_step_like_any_other() -> None:
    book = Book(protocol("arm", {"id": "settle", "wait_s": 600}, "reader"))
    run(book, "1")
    assert book.ready() == ["settle"]
    book.start("settle")
    assert book.running() == ["settle"]


def test_book_from_a_kept_state_answers_the_same() -> None:
    kept = BookState(outcomes={"A": SUCCEEDED, "B": StepOutcome.WAITING}, paused=False)
    book = Book(DIAMOND, BookState.model_validate(kept.model_dump(mode="json")))
    assert (book.running(), book.ready()) == (["B"], ["C"])
    with pytest.raises(InvalidRequestError, match="outcomes of steps not in the protocol: E"):
        Book(DIAMOND, BookState(outcomes={"E": SUCCEEDED}))


def test_book_a_run_lost_before_it_began_makes_its_step_ready_again() -> None:
    book = Book(LINE)
    book.start("1")
    book.again("1")
    assert (book.outcome("1"), book.ready(), book.hold()) == (StepOutcome.PENDING, ["1"], None)
    with pytest.raises(InvalidTransitionError):
        book.again("2")  # not running


def test_book_a_running_wait_ended_by_an_operator_lets_the_steps_after_it_start() -> None:
    book = Book(protocol("arm", {"id": "settle", "wait_s": 600}, "reader"))
    run(book, "1")
    book.start("settle")
    book.skip("settle")
    assert (book.outcome("settle"), book.ready()) == (StepOutcome.SKIPPED, ["3"])
    with pytest.raises(InvalidTransitionError):
        book.skip("3")  # only a running step is ended so
