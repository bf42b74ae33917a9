"""Protocols wired into the lab: workflows.json steps with ids, `after` and waits, checked by the
loader (config check, the API's reload, start) with located problems; what a task of such a workflow
carries (its spec, its graph, a wait's end, a join's arguments); and the rules its workflow applies
between Temporal runs and to an operator's continue (engine/progress.py). No server."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from task_scheduler import ConfigError, load_config, load_config_dir
from task_scheduler.cli import main
from task_scheduler.engine.book import Book
from task_scheduler.engine.errors import CommandRefusedError
from task_scheduler.engine.loader import load_config_texts
from task_scheduler.engine.progress import (
    book_of,
    continue_target,
    done_from,
    records_needed_from,
    step_named,
)
from task_scheduler.engine.protocol import StepKind, protocol_of
from task_scheduler.engine.states import TaskState
from task_scheduler.engine.task_state import ContinueRequest, StepOutcome, StepRecord, TaskStatus
from task_scheduler.engine.tasks import StepSpec, TaskSpec, make_task_spec, step_args, wait_end

ROOT = Path(__file__).resolve().parents[2]
SEED_NODES = str(ROOT / "examples" / "seed-example" / "src" / "nodes")
NODES = {"nodes": [{"id": n, "name": n, "type": "FirstNode"} for n in ("arm", "reader", "incubator")]}
DIAMOND = [
    {"id": "A", "node": "arm"},
    {"id": "B", "after": ["A"], "node": "reader"},
    {"id": "C", "after": ["A"], "node": "incubator"},
    {"id": "settle", "after": ["B", "C"], "wait_s": 600},
    {"id": "D", "node": "arm"},
]


def write(tmp_path: Path, steps: list[Any], nodes: dict[str, Any] | None = None) -> tuple[Path, Path]:
    nodes_path, workflows_path = tmp_path / "nodes.json", tmp_path / "workflows.json"
    nodes_path.write_text(json.dumps(nodes or NODES))
    workflows_path.write_text(json.dumps({"workflows": [{"name": "w", "steps": steps}]}))
    return nodes_path, workflows_path


def problems(tmp_path: Path, steps: list[Any], nodes: dict[str, Any] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(*write(tmp_path, steps, nodes), modules=[SEED_NODES])
    return [str(p) for p in caught.value.problems]


def at(step: int, where: str = "") -> str:
    return f"workflows.json: $.workflows[0].steps[{step}]{where}: "


# --- the configuration -----------------------------------------------------------------------------


def test_load_config_reads_ids_after_and_waits(tmp_path: Path) -> None:
    lab = load_config(*write(tmp_path, DIAMOND), modules=[SEED_NODES])
    steps = lab.workflow("w").steps
    assert [(s.id, s.after, s.node) for s in steps[:3]] == [
        ("A", None, "arm"),
        ("B", ["A"], "reader"),
        ("C", ["A"], "incubator"),
    ]
    assert (steps[3].node, steps[3].wait_s, steps[3].is_wait) == (None, 600, True)
    graph = protocol_of(lab.workflow("w"))
    assert [(s.id, s.after, s.kind) for s in graph.steps][3:] == [
        ("settle", ("B", "C"), StepKind.WAIT),
        ("D", ("settle",), StepKind.NODE),  # no `after`: the step above it
    ]


def test_load_config_locates_every_problem_of_the_graph_and_its_nodes(tmp_path: Path) -> None:
    steps = [
        {"id": "A", "node": "arm", "after": ["Z"]},
        {"id": "A", "node": "nowhere"},
        {"wait_s": 600, "node": "arm"},
        {"wait_until": "half past two"},
    ]
    found = problems(tmp_path, steps)
    expected = [
        at(0, ".id") + "duplicate step id 'A' (also at steps[1])",
        at(1, ".id") + "duplicate step id 'A' (also at steps[0])",
        at(0, ".after[0]") + "unknown step 'Z'; steps of this workflow: A, 3, 4",
        at(2) + "a step runs on a node or waits, not both: remove `node` or `wait_s`",
        at(3, ".wait_until") + "wait_until must be an ISO time",
        at(1) + "unknown node 'nowhere'; known nodes: arm, incubator, reader",
    ]
    assert len(found) == len(expected)
    for where in expected:
        assert any(where in problem for problem in found), (where, found)


def test_load_config_a_wait_takes_no_node_settings(tmp_path: Path) -> None:
    found = problems(tmp_path, ["arm", {"wait_s": 60, "args": {"x": 1}, "timeout_s": 5}])
    assert [p.split("workflows.json: ")[1] for p in found] == [
        "$.workflows[0].steps[1].args: a wait runs on no node, so it takes no args: remove it",
        "$.workflows[0].steps[1].timeout_s: a wait runs on no node, so it takes no timeout_s: remove it",
    ]


def test_load_config_reads_holds_and_capacity_into_the_task_spec(tmp_path: Path) -> None:
    nodes = {"nodes": [*NODES["nodes"][:2], {**NODES["nodes"][2], "capacity": 4}]}
    steps = ["arm", {"node": "arm", "holds": ["reader", "incubator"]}]
    lab = load_config(*write(tmp_path, steps, nodes), modules=[SEED_NODES])
    assert lab.node("incubator").capacity == 4
    spec = make_task_spec(lab, "w")
    assert spec.steps[1].holds == ["reader", "incubator"]
    assert spec.steps[0].holds == []


def test_load_config_locates_each_bad_hold(tmp_path: Path) -> None:
    steps = [{"node": "arm", "holds": ["reader", "washer", "arm", "reader"]}]
    found = [text.rpartition("/")[2] for text in problems(tmp_path, steps)]
    assert found == [
        at(0, ".holds[1]") + "unknown node 'washer'; known nodes: arm, incubator, reader",
        at(0, ".holds[2]") + "the step runs on 'arm', which it holds anyway: remove it from holds",
        at(0, ".holds[3]") + "node 'reader' is listed twice: keep one",
    ]


@pytest.mark.parametrize("capacity", [0, -1, "2", True, 1.5])
def test_load_config_capacity_must_be_a_whole_number_of_one_or_more(tmp_path: Path, capacity: object) -> None:
    nodes = {"nodes": [{**NODES["nodes"][0], "capacity": capacity}]}
    (found,) = problems(tmp_path, ["arm"], nodes)
    assert "$.nodes[0].capacity: capacity must be a whole number of steps" in found


def test_load_config_capacity_of_one_is_the_default(tmp_path: Path) -> None:
    nodes = {"nodes": [{**NODES["nodes"][0], "capacity": 1}]}
    assert load_config(*write(tmp_path, ["arm"], nodes), modules=[SEED_NODES]).node("arm").capacity == 1


def test_reload_of_uploaded_files_refuses_a_bad_graph_with_located_problems(tmp_path: Path) -> None:
    base = load_config(*write(tmp_path, ["arm"]), modules=[SEED_NODES])
    workflows = {"workflows": [{"name": "w", "steps": [{"id": "a", "node": "arm", "after": ["a"]}]}]}
    with pytest.raises(ConfigError) as caught:
        load_config_texts(json.dumps(NODES).encode(), json.dumps(workflows).encode(), base)
    (problem,) = [str(p) for p in caught.value.problems]
    assert problem == (
        "workflows.json (uploaded): $.workflows[0].steps[0].after[0]: step 'a' names itself: a step "
        "cannot come after itself"
    )


def test_config_check_refuses_a_cycle_and_prints_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nodes_path, workflows_path = write(
        tmp_path, [{"id": "x", "after": ["y"], "node": "arm"}, {"id": "y", "after": ["x"], "node": "arm"}]
    )
    code = main(["config", "check", "-n", str(nodes_path), "-w", str(workflows_path), "-m", SEED_NODES])
    err = capsys.readouterr().err
    assert code == 1
    assert "$.workflows[0].steps[0].after: steps 'x' -> 'y' -> 'x' form a circle" in err


def test_config_check_shows_a_protocol_with_its_branches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nodes_path, workflows_path = write(tmp_path, DIAMOND)
    assert main(["config", "check", "-n", str(nodes_path), "-w", str(workflows_path), "-m", SEED_NODES]) == 0
    out = capsys.readouterr().out
    assert (
        "A: arm; B: reader after A; C: incubator after A; settle: wait 600 s after B, C; D: arm after settle"
        in out
    )


@pytest.mark.parametrize("lab", ["demo-lab", "seed-example"])
def test_every_example_workflow_means_the_line_it_meant(lab: str) -> None:
    config = load_config_dir(ROOT / "examples" / lab)
    for workflow in config.workflows:
        if any(step.id is not None or step.after is not None for step in workflow.steps):
            continue  # written as a protocol (the demo lab's incubate-and-read), not as a line
        spec = make_task_spec(config, workflow.name)
        graph = spec.protocol()
        assert graph.ids() == [str(i + 1) for i in range(len(workflow.steps))]
        assert [s.after for s in graph.steps] == [()] + [(str(i),) for i in range(1, len(workflow.steps))]
        assert [s.node for s in graph.steps] == [s.node for s in workflow.steps]


# --- what a task carries ---------------------------------------------------------------------------


def test_task_spec_of_a_protocol_is_its_graph(tmp_path: Path) -> None:
    lab = load_config(*write(tmp_path, DIAMOND), modules=[SEED_NODES])
    spec = make_task_spec(lab, "w", utc_offset_s=3600)
    assert spec.protocol() == protocol_of(lab.workflow("w"))
    wait = spec.steps[3]
    assert (wait.node, wait.wait_s, wait.step_id, spec.utc_offset_s) == (None, 600, "settle", 3600)
    assert [s.step_id for s in spec.steps] == ["A", "B", "C", "settle", "D"]


def test_task_spec_kept_by_a_task_of_older_code_is_a_line() -> None:
    old = {"workflow_name": "w", "steps": [{"index": i, "node": NODE} for i in range(3)]}
    spec = TaskSpec.model_validate(old)
    assert [(s.id, s.after) for s in spec.protocol().steps] == [("1", ()), ("2", ("1",)), ("3", ("2",))]


NODE = {"id": "arm", "name": "arm", "type": "FirstNode"}
STARTED = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)  # 14:00 in a lab one hour ahead of UTC


@pytest.mark.parametrize(
    ("wait", "offset_s", "ends"),
    [
        ({"wait_s": 600}, 0, datetime(2026, 3, 2, 13, 10, tzinfo=UTC)),
        ({"wait_until": "14:30"}, 3600, datetime(2026, 3, 2, 13, 30, tzinfo=UTC)),  # later today
        ({"wait_until": "13:30"}, 3600, datetime(2026, 3, 3, 12, 30, tzinfo=UTC)),  # past: tomorrow
        ({"wait_until": "14:00"}, 3600, STARTED),  # now: no wait
        ({"wait_until": "2026-03-02T15:00"}, 3600, datetime(2026, 3, 2, 14, 0, tzinfo=UTC)),  # lab time
        ({"wait_until": "2026-03-02T15:00+00:00"}, 3600, datetime(2026, 3, 2, 15, 0, tzinfo=UTC)),
        ({"wait_until": "2026-03-01T09:00"}, 0, datetime(2026, 3, 1, 9, 0, tzinfo=UTC)),  # past: no wait
    ],
)
def test_wait_end(wait: dict[str, Any], offset_s: int, ends: datetime) -> None:
    assert wait_end(StepSpec(index=0, **wait), STARTED, offset_s) == ends


def test_step_args_a_step_after_one_gets_its_output_a_join_gets_each_by_id() -> None:
    spec = TaskSpec(workflow_name="w", steps=[StepSpec(index=i, node=NODE) for i in range(4)], args={"p": 1})
    assert step_args(spec, 1, {"A": {"x": 1}}) == {"p": 1, "previous_output": {"x": 1}}
    assert step_args(spec, 3, {"B": {"x": 2}, "C": None}) == {"p": 1, "previous_outputs": {"B": {"x": 2}}}
    assert step_args(spec, 0, {}) == {"p": 1}
    assert step_args(spec, 2, {"B": None}) == {"p": 1}  # a skipped step gives nothing


def test_step_record_kept_before_ids_is_its_number() -> None:
    record = StepRecord.model_validate({"index": 2, "node": "arm", "outcome": "SUCCEEDED"})
    assert (record.id, record.is_wait) == ("3", False)
    assert StepRecord(index=0, id="settle").is_wait


# --- the task's progress ---------------------------------------------------------------------------


def diamond_spec() -> TaskSpec:
    steps = [
        StepSpec(
            index=i, node=None if s.get("wait_s") else NODE, **{k: v for k, v in s.items() if k != "node"}
        )
        for i, s in enumerate(DIAMOND)
    ]
    return TaskSpec(workflow_name="w", steps=steps)


def test_book_of_a_new_run_counts_archived_and_done_steps_as_done() -> None:
    graph = diamond_spec().protocol()
    status = TaskStatus(task_id="t", workflow_name="w", steps_offset=1, state=TaskState.ACTIVE)
    status.steps = [
        StepRecord(index=1, id="B", node="reader", outcome=StepOutcome.SKIPPED),
        StepRecord(index=2, id="C", node="incubator", outcome=StepOutcome.FAILED),  # retried: runs again
    ]
    book = book_of(graph, status)
    assert [book.outcome(s) for s in ("A", "B", "C")] == [
        StepOutcome.SUCCEEDED,
        StepOutcome.SKIPPED,
        StepOutcome.PENDING,
    ]
    assert book.ready() == ["C"]
    status.pause_requested = True
    assert book_of(graph, status).ready() == []


def test_done_from_and_the_records_a_new_run_keeps() -> None:
    book = Book(diamond_spec().protocol())
    for step in ("A", "B"):
        book.start(step)
        book.end(step, StepOutcome.SUCCEEDED)
    assert done_from(book) == 2  # C is next in the protocol's order
    assert records_needed_from(book) == 0  # C still needs A's output
    book.start("C")
    book.end("C", StepOutcome.SUCCEEDED)
    assert (done_from(book, 2), records_needed_from(book)) == (3, 1)  # settle needs B's and C's


def test_step_named_by_id_or_number() -> None:
    graph = diamond_spec().protocol()
    assert [step_named(graph, n) for n in ("settle", "4", "1")] == ["settle", "settle", "A"]
    with pytest.raises(CommandRefusedError, match="no step 'Z' in this task; its steps: A, B, C, settle, D"):
        step_named(graph, "Z")


def branches_failed(*failed: str) -> Book:
    book = Book(diamond_spec().protocol())
    book.start("A")
    book.end("A", StepOutcome.SUCCEEDED)
    for step in ("B", "C"):
        book.start(step)
    for step in failed:
        book.end(step, StepOutcome.FAILED)
    return book


def test_continue_in_error_is_about_the_only_failed_step_or_the_one_named() -> None:
    one = continue_target(branches_failed("B"), TaskState.ERROR, False, ContinueRequest())
    assert one is not None and (one.kind, one.step) == ("decide", "B")
    both = branches_failed("B", "C")
    with pytest.raises(CommandRefusedError, match=r"steps B, C failed: name the step .* \(--step ID\)"):
        continue_target(both, TaskState.ERROR, False, ContinueRequest())
    named = continue_target(both, TaskState.ERROR, False, ContinueRequest(mode="next", step="3"))
    assert named is not None and (named.kind, named.step) == ("decide", "C")
    with pytest.raises(CommandRefusedError, match="step A is SUCCEEDED: continue names a failed step"):
        continue_target(both, TaskState.ERROR, False, ContinueRequest(step="A"))


def waiting_book() -> Book:
    book = branches_failed()
    for step in ("B", "C"):
        book.end(step, StepOutcome.SUCCEEDED)
    book.start("settle")
    return book


def test_continue_next_ends_a_running_wait() -> None:
    book = waiting_book()
    target = continue_target(book, TaskState.ACTIVE, False, ContinueRequest(mode="next"))
    assert target is not None and (target.kind, target.step) == ("skip", "settle")
    with pytest.raises(CommandRefusedError, match="step settle is a wait: continue --mode next ends it"):
        continue_target(book, TaskState.ACTIVE, False, ContinueRequest(step="settle"))
    # Without --mode next, a continue of an active task is about its pause, as it always was.
    assert continue_target(book, TaskState.ACTIVE, False, ContinueRequest()) is None
    unpause = continue_target(book, TaskState.ACTIVE, True, ContinueRequest())
    assert unpause is not None and unpause.kind == "unpause"


def test_continue_of_a_paused_task_resumes_it() -> None:
    target = continue_target(Book(diamond_spec().protocol()), TaskState.PAUSED, False, ContinueRequest())
    assert target is not None and target.kind == "resume"


def test_the_temporal_ui_details_of_two_failures_name_the_step_they_describe(tmp_path: Path) -> None:
    from task_scheduler.engine.explain import current_details

    lab = load_config(*write(tmp_path, DIAMOND), modules=[SEED_NODES])
    spec = make_task_spec(lab, "w")
    done, failed, pending = StepOutcome.SUCCEEDED, StepOutcome.FAILED, StepOutcome.PENDING
    outcomes = [done, failed, failed, pending, pending]  # B, then C failed: the details describe C
    records = [
        StepRecord(index=i, node=step.node_id, id=step.step_id, outcome=outcome)
        for i, (step, outcome) in enumerate(zip(spec.steps, outcomes, strict=True))
    ]
    status = TaskStatus(
        task_id="t", workflow_name="w", state=TaskState.ERROR, steps=records, current_step=2, reason="C broke"
    )

    details = current_details(status, spec)

    assert "C broke" in details and "task continue t --step C`" in details
