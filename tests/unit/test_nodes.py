"""BaseNode as the scheduler drives it (driver styles, hooks, logger, emulation, abort), and the demo
lab's drivers."""

from __future__ import annotations

import errno
import inspect
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from task_scheduler import BaseNode, EmulationConfig, NodeRef, StepResult, build_node, load_config_dir
from task_scheduler.engine import nodes as engine_nodes
from task_scheduler.engine.errors import (
    DriverResultError,
    NodeTypeError,
    StepAbortedError,
    StepWithdrawnError,
)
from task_scheduler.engine.logger import MAX_CAPTURED_LINES, NodeLogger
from task_scheduler.engine.nodes import CallState
from task_scheduler.engine.protocol import protocol_of
from task_scheduler.engine.registry import resolve_node_type
from task_scheduler.nodes.enums import NodeErrorNextStep, NodeState

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo-lab"
PROMPTLY_S = 2.0  # an aborted step must end well within this


class NodesTestTupleNode(BaseNode):
    def _execute(self, src, dst, task_id, args=None):  # the seed's untyped signature
        self.logger.info("tuple node runs {} with {}", task_id, args)
        return 0, f"done {task_id}", "http://lab/result/1"


class NodesTestResultNode(BaseNode):
    def _execute(
        self, src: NodeRef | None, dst: NodeRef | None, task_id: str, args: dict[str, Any] | None = None
    ) -> StepResult:
        moved = f"{src.id if src else '-'}->{dst.id if dst else '-'}"
        return StepResult(status=0, message="measured", output={"moved": moved, **(args or {})})


class NodesTestAsyncNode(BaseNode):
    async def _execute(
        self, src: NodeRef | None, dst: NodeRef | None, task_id: str, args: dict[str, Any] | None = None
    ) -> StepResult:
        return StepResult(status=3, message=f"async {task_id}", endpoint="e")


class NodesTestHookNode(BaseNode):
    def __init__(self, id: str, name: str, properties: dict[str, Any] | None = None) -> None:
        super().__init__(id, name, properties)
        self.calls: list[str] = []

    def _pre_execution(self, task_id: str, wf_name: str, src: Any, dst: Any, args: Any = None) -> None:
        self.calls.append(f"pre {task_id} {wf_name}")

    def _execute(self, src: Any, dst: Any, task_id: str, args: Any = None) -> tuple[int, str | None, None]:
        self.calls.append(f"execute {task_id}")
        failing = bool((args or {}).get("fail"))
        return (4, "jammed", None) if failing else (0, None, None)

    def _post_execution(
        self, status: int, msg: Any, task_id: str, wf_name: str, src: Any, dst: Any, args: Any = None
    ) -> None:
        self.calls.append(f"post {status} {task_id} {wf_name}")


class NodesTestGarbageNode(BaseNode):
    returned: Any = None

    def _execute(self, src: Any, dst: Any, task_id: str, args: Any = None) -> Any:
        return self.returned


class NodesTestUnusedDriver(BaseNode):
    """Emulation must never reach the driver."""

    def _execute(self, src: Any, dst: Any, task_id: str, args: Any = None) -> Any:
        raise AssertionError("the driver ran in emulation mode")


# --- helpers --------------------------------------------------------------------------------------


class _LineSeen(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=1)
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.event.set()

    def wait(self) -> None:
        assert self.event.wait(PROMPTLY_S), "the step never logged its first line"


@pytest.fixture
def first_log_line() -> Iterator[Callable[[BaseNode], _LineSeen]]:
    """Watch a node's logger: its first line tells that the step has begun (and may now be aborted)."""
    watched: list[tuple[logging.Logger, _LineSeen, int]] = []

    def watch(node: BaseNode) -> _LineSeen:
        logger, handler = logging.getLogger(f"task_scheduler.node.{node.id}"), _LineSeen()
        watched.append((logger, handler, logger.level))
        logger.setLevel(1)
        logger.addHandler(handler)
        return handler

    yield watch
    for logger, handler, level in watched:
        logger.removeHandler(handler)
        logger.setLevel(level)


def run_in_thread(call: Callable[[], StepResult]) -> Future[StepResult]:
    """Run a step in its own daemon thread (as the worker's driver thread does)."""
    future: Future[StepResult] = Future()

    def target() -> None:
        try:
            future.set_result(call())
        except BaseException as exc:  # handed to the test through the future
            future.set_exception(exc)

    threading.Thread(target=target, daemon=True).start()
    return future


def ref(node_id: str) -> NodeRef:
    return NodeRef(id=node_id, name=node_id.title(), type="Any")


# --- driver styles and hooks ----------------------------------------------------------------------


def test_run_step_seed_tuple_driver_gives_step_result() -> None:
    result = NodesTestTupleNode("n1", "Node one").run_step(None, None, "task-1", {"x": 1})
    assert result == StepResult(status=0, message="done task-1", endpoint="http://lab/result/1")
    assert result.succeeded


def test_run_step_step_result_driver_keeps_output_and_sees_src_dst() -> None:
    node = NodesTestResultNode("n2", "Node two")
    result = node.run_step(ref("hotel"), ref("reader"), "task-1", {"plate": "P-1"})
    assert result.message == "measured"
    assert result.output == {"moved": "hotel->reader", "plate": "P-1"}


def test_run_step_async_driver_is_awaited() -> None:
    result = NodesTestAsyncNode("n3", "Node three").run_step(None, None, "task-7", {})
    assert (result.status, result.message, result.endpoint) == (3, "async task-7", "e")
    assert not result.succeeded


def test_run_step_calls_hooks_in_order_with_the_seeds_arguments() -> None:
    node = NodesTestHookNode("n4", "Node four")
    node.run_step(None, None, "t1", {}, workflow_name="assay")
    node.run_step(None, None, "t2", {})
    assert node.calls == [
        "pre t1 assay",
        "execute t1",
        "post 0 t1 assay",
        "pre t2 ",
        "execute t2",
        "post 0 t2 ",
    ]


def test_run_step_calls_post_execution_only_after_a_success_as_the_seed() -> None:
    node = NodesTestHookNode("n4", "Node four")
    result = node.run_step(None, None, "t1", {"fail": True}, workflow_name="assay")
    assert (result.status, result.message) == (4, "jammed")
    assert node.calls == ["pre t1 assay", "execute t1"]
    assert node.state is NodeState.ERROR  # the seed's node object says so until it is restarted
    assert node.restart() == 0 and node.state is NodeState.AVAILABLE


def test_run_step_on_a_node_that_does_not_answer_fails_without_touching_it() -> None:
    node = NodesTestHookNode("n4", "Node four")
    node.is_reachable = lambda: False  # type: ignore[method-assign]
    result = node.run_step(None, None, "t1", {})
    assert result.status == errno.EHOSTUNREACH
    assert "is not reachable" in (result.message or "") and "not touched" in (result.message or "")
    assert node.calls == []


@pytest.mark.parametrize(
    "returned", [None, (0, "only two"), "ok", 0, ("0", None, None), (0, None, None, None)], ids=repr
)
def test_run_step_garbage_result_raises_driver_result_error(returned: Any) -> None:
    node = NodesTestGarbageNode("n5", "Node five")
    node.returned = returned
    with pytest.raises(DriverResultError) as caught:
        node.run_step(None, None, "t", {})
    assert "NodesTestGarbageNode._execute returned" in caught.value.message
    assert "must return (status, message, endpoint) or a StepResult" in caught.value.message


def test_seed_import_path_is_the_one_node_class() -> None:
    from task_scheduler.nodes.base import BaseNode as SeedBaseNode

    assert SeedBaseNode is BaseNode and issubclass(BaseNode, engine_nodes.BaseNode)
    assert resolve_node_type("NodesTestTupleNode") is NodesTestTupleNode
    assert "BaseNode" not in engine_nodes.BaseNode.registry  # a base, not a node type


@pytest.mark.parametrize(
    ("returned", "ok"), [(None, True), (True, True), (0, True), (False, False), (1, False), (-5, False)]
)
def test_restart_result_means_what_it_meant_to_the_seed_and_to_us(returned: Any, ok: bool) -> None:
    node = NodesTestHookNode("n4", "Node four")
    node._restart = lambda: returned  # type: ignore[method-assign]
    assert node.restart_device()[0] is ok


def test_next_node_execution_takes_the_seeds_enum_and_ours() -> None:
    node = NodesTestHookNode("n4", "Node four")
    for given, meant in [
        (NodeErrorNextStep.SELF, "SELF"),
        (NodeErrorNextStep.NEXT, "NEXT"),
        ("SELF", "SELF"),
    ]:
        node.next_node_execution = lambda g=given: g  # type: ignore[method-assign]
        assert node.next_execution().value == meant


# --- the logger -----------------------------------------------------------------------------------


def test_node_logger_accepts_every_loguru_call_of_seed_nodes() -> None:
    logger = NodeLogger("logger-test")
    with logger.capture() as lines:
        logger.trace("trace {}", 1)
        logger.debug("debug {} {}", 2, "b")
        logger.info("info {name}", name="hotel")
        logger.success("success {:.1f}", 4.0)
        logger.warning("warning {}", [5])
        logger.error("error {}", "six")
        logger.critical("critical {}", 7)
        try:
            raise ValueError("broken valve")
        except ValueError:
            logger.exception("exception {}", 8)
    texts = [line.split(" ", 1)[1] for line in lines.as_list()]
    assert texts[:7] == [
        "TRACE trace 1",
        "DEBUG debug 2 b",
        "INFO info hotel",
        "SUCCESS success 4.0",
        "WARNING warning [5]",
        "ERROR error six",
        "CRITICAL critical 7",
    ]
    assert texts[7].startswith("ERROR exception 8\nTraceback")
    assert "ValueError: broken valve" in texts[7]


def test_node_logger_formats_like_loguru() -> None:
    logger = NodeLogger("logger-test")
    with logger.capture() as lines:
        logger.info("no placeholder", 1)  # loguru's str.format drops the extra argument too
        logger.info("braces {} but no args")
        logger.info("{} missing {}", "one")
    assert [line.split(" ", 2)[2] for line in lines] == [
        "no placeholder",
        "braces {} but no args",
        "{} missing {} one",
    ]


def test_node_logger_accepts_percent_style() -> None:
    logger = NodeLogger("logger-test")
    with logger.capture() as lines:
        logger.info("percent %s", "style")
    assert lines[0].endswith("INFO percent style")


def test_node_logger_capture_collects_only_the_step_lines() -> None:
    node = NodesTestTupleNode("n6", "Node six")
    node.logger.info("before the step")
    with node.logger.capture() as lines:
        node.run_step(None, None, "task-9", {"plate": "P"})
    node.logger.info("after the step")
    assert len(lines) == 1
    assert lines[0].endswith("INFO tuple node runs task-9 with {'plate': 'P'}")


def test_node_logger_capture_is_bounded() -> None:
    logger = NodeLogger("logger-test")
    with logger.capture() as lines:
        for index in range(MAX_CAPTURED_LINES + 5):
            logger.info("line {}", index)
    kept = lines.as_list()
    assert len(kept) == MAX_CAPTURED_LINES + 1
    assert kept[-2].endswith(f"line {MAX_CAPTURED_LINES - 1}")
    assert kept[-1] == "... 5 more line(s) not kept"


# --- emulation ------------------------------------------------------------------------------------


def emulated_node(**spec: Any) -> BaseNode:
    node = NodesTestUnusedDriver("emulated", "Emulated")
    node.emulation = EmulationConfig(**spec)
    return node


def test_emulation_honours_its_duration() -> None:
    node = emulated_node(duration_s=0.2)
    started = time.monotonic()
    result = node.run_step(None, None, "t", {}, emulate=True)
    elapsed = time.monotonic() - started
    assert result == StepResult(status=0, message="emulated emulated")
    assert 0.2 <= elapsed < 0.2 + PROMPTLY_S


def test_emulation_fails_at_its_failure_rate() -> None:
    node = emulated_node(duration_s=0, failure_rate=0.3, seed=7)
    statuses = [node.run_step(None, None, "t", {}, emulate=True).status for _ in range(1000)]
    assert 250 <= statuses.count(1) <= 350
    assert set(statuses) == {0, 1}


def test_emulation_with_a_seed_repeats_its_failures() -> None:
    first, second = (emulated_node(duration_s=0, failure_rate=0.5, seed=42) for _ in range(2))
    runs = [(first.run_step(None, None, "t", {}, emulate=True).status) for _ in range(50)]
    assert runs == [second.run_step(None, None, "t", {}, emulate=True).status for _ in range(50)]


@pytest.mark.parametrize(("rate", "expected_status"), [(0.0, 0), (1.0, 1)])
def test_emulation_extreme_rates_never_or_always_fail(rate: float, expected_status: int) -> None:
    node = emulated_node(duration_s=0, failure_rate=rate)
    results = [node.run_step(None, None, "t", {}, emulate=True) for _ in range(200)]
    assert {r.status for r in results} == {expected_status}
    if expected_status:
        assert results[0].message == "emulated failure of emulated"


def test_abort_ends_an_emulated_step_promptly(first_log_line: Callable[[BaseNode], _LineSeen]) -> None:
    node = emulated_node(duration_s=60)
    began = first_log_line(node)
    started = time.monotonic()
    step = run_in_thread(lambda: node.run_step(None, None, "t", {}, emulate=True))
    began.wait()
    node.abort()
    with pytest.raises(StepAbortedError, match="emulated step of emulated aborted"):
        step.result(timeout=PROMPTLY_S)
    assert time.monotonic() - started < PROMPTLY_S
    assert not node.abort_requested  # cleared once the step ended, ready for the next one


# --- the abort, asked per call --------------------------------------------------------------------


class NodesTestAbortableNode(BaseNode):
    """Runs until its call is asked to abort (reads `abort_requested`, as a polling driver does), or for
    `args["run_s"]`; writes down each hook and, for each `_abort()`, the call the node ran then."""

    def __init__(self, id: str, name: str, properties: dict[str, Any] | None = None) -> None:
        super().__init__(id, name, properties)
        self.calls: list[str] = []
        self.aborted_during: list[str | None] = []

    def _pre_execution(self, task_id: str, wf_name: str, src: Any, dst: Any, args: Any = None) -> None:
        self.calls.append(f"pre {task_id}")

    def _execute(self, src: Any, dst: Any, task_id: str, args: Any = None) -> tuple[int, str, None]:
        self.calls.append(f"execute {task_id}")
        self.logger.info("{} runs", task_id)
        deadline = time.monotonic() + float((args or {}).get("run_s", 60))
        while time.monotonic() < deadline:
            if self.abort_requested:
                return 3, f"{task_id} aborted", None
            time.sleep(0.0005)
        return 0, f"{task_id} done", None

    def _abort(self) -> None:
        running = self._call
        self.aborted_during.append(running.task_id if running is not None else None)


def test_abort_before_the_call_reaches_the_driver_withdraws_it() -> None:
    node = NodesTestAbortableNode("n7", "Node seven")
    call = node.new_call("t1")
    assert call.abort() is CallState.QUEUED
    with pytest.raises(StepWithdrawnError, match="withdrawn before it reached the driver"):
        node.run_step(None, None, "t1", {}, call=call)
    assert node.calls == []  # not even _pre_execution: the device was not touched
    assert node.aborted_during == []
    assert call.state is CallState.WITHDRAWN
    assert node.run_step(None, None, "t2", {"run_s": 0}).status == 0  # the node serves the next call


def test_abort_of_a_running_call_reaches_its_driver_once(
    first_log_line: Callable[[BaseNode], _LineSeen],
) -> None:
    node = NodesTestAbortableNode("n8", "Node eight")
    began = first_log_line(node)
    call = node.new_call("t1")
    step = run_in_thread(lambda: node.run_step(None, None, "t1", {}, call=call))
    began.wait()
    assert call.abort() is CallState.RUNNING
    assert call.abort() is not CallState.QUEUED  # asked twice (timeout, then cancel): one _abort()
    assert step.result(timeout=PROMPTLY_S).message == "t1 aborted"
    assert node.aborted_during == ["t1"]
    assert call.state is CallState.OVER


def test_abort_of_an_ended_call_never_reaches_the_next_call() -> None:
    node = NodesTestAbortableNode("n9", "Node nine")
    first = node.new_call("t1")
    assert node.run_step(None, None, "t1", {"run_s": 0}, call=first).message == "t1 done"
    assert first.abort() is CallState.OVER  # late: the step that asked gave up after it ended
    node.abort()  # nothing runs: nothing to abort, nothing kept for later
    assert node.run_step(None, None, "t2", {"run_s": 0.05}).message == "t2 done"
    assert node.aborted_during == []


def test_abort_racing_the_end_of_its_call_never_reaches_another_call() -> None:
    """An abort sent just as its call begins or ends: the driver's `_abort()` runs while that very call
    runs, or not at all (the call was over, or withdrawn before it began); never after its end."""
    node = NodesTestAbortableNode("n10", "Node ten")
    seen: Counter[CallState] = Counter()
    for index in range(200):
        call = node.new_call(f"t{index}")
        step = run_in_thread(
            lambda c=call, i=index: node.run_step(None, None, c.task_id, {"run_s": i % 2 * 0.003}, call=c)
        )
        time.sleep(index % 3 * 0.0008)
        state = call.abort()
        seen[state] += 1
        if state is CallState.QUEUED:
            with pytest.raises(StepWithdrawnError):
                step.result(timeout=PROMPTLY_S)
        else:
            step.result(timeout=PROMPTLY_S)
        reached_driver = call.task_id in node.aborted_during
        assert reached_driver == (state is CallState.RUNNING), f"{call.task_id}: the abort found it {state}"
    assert seen[CallState.RUNNING] and seen[CallState.OVER], f"the race was not exercised: {seen}"
    assert None not in node.aborted_during


def test_abort_requested_is_the_running_calls_own() -> None:
    node = emulated_node(duration_s=0.05)
    node.abort()  # before any step: not kept for the next one (it would end at once)
    assert node.run_step(None, None, "t", {}, emulate=True).status == 0
    call = node.new_call("t2")
    call.abort()
    with pytest.raises(StepWithdrawnError):
        node.run_step(None, None, "t2", {}, emulate=True, call=call)
    assert not node.abort_requested


# --- the demo lab's drivers -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_lab() -> Any:
    return load_config_dir(DEMO)


@pytest.fixture
def demo_node(demo_lab: Any, tmp_path: Path) -> Callable[..., BaseNode]:
    """A fresh demo node, its durations scaled by `speed` (0: instant); the hotel keeps its slots in the
    test's own folder."""

    def build(node_id: str, speed: float = 0) -> BaseNode:
        config = demo_lab.node(node_id)
        if "slots_file" in config.properties:
            properties = {**config.properties, "slots_file": str(tmp_path / f"{node_id}-slots.json")}
            config = config.model_copy(update={"properties": properties})
        node = build_node(config)
        node.properties["speed"] = speed
        return node

    return build


def test_demo_lab_every_workflow_runs_at_speed_zero(
    demo_lab: Any, demo_node: Callable[..., BaseNode]
) -> None:
    nodes = {config.id: demo_node(config.id) for config in demo_lab.nodes}
    for workflow in demo_lab.workflows:
        steps, graph = workflow.steps, protocol_of(workflow)
        for index, step in enumerate(steps):
            if step.node is None:
                continue  # a wait: no driver
            # As a task gives them: the node of the one step it comes after, and of the one after it.
            before = [graph.step(s).node for s in graph.steps[index].after]
            after = [s.node for s in graph.steps if graph.steps[index].id in s.after]
            src = nodes[before[0]].ref() if len(before) == 1 and before[0] else None
            dst = nodes[after[0]].ref() if len(after) == 1 and after[0] else None
            node = nodes[step.node]
            with node.logger.capture() as lines:
                result = node.run_step(src, dst, "task-1", {"plate": "P-001", **step.args})
            assert result.status == 0, f"{workflow.name} step {index}: {result.message}"
            assert [line.split(" ")[1] for line in lines] == ["INFO", "SUCCESS"]


def test_demo_lab_shows_every_driver_style(demo_node: Callable[..., BaseNode]) -> None:
    arm = demo_node("arm")
    assert arm._execute(None, None, "t", {}) == (0, "plate plate-t moved from bench to bench", "bench")
    assert inspect.iscoroutinefunction(demo_node("dispenser")._execute)
    assert isinstance(demo_node("reader")._execute(None, None, "t", {}), StepResult)


def test_demo_lab_reader_data_are_deterministic(demo_node: Callable[..., BaseNode]) -> None:
    reader = demo_node("reader")
    first = reader.run_step(None, None, "t1", {"plate": "P-001"}).output
    again = demo_node("reader").run_step(None, None, "t2", {"plate": "P-001"}).output
    other = reader.run_step(None, None, "t3", {"plate": "P-002"}).output
    assert first == again
    assert first["wavelength_nm"] == 450
    assert len(first["absorbance"]) == 96
    assert all(0.05 <= value <= 2.0 for value in first["absorbance"])
    assert other["absorbance"] != first["absorbance"]


def test_demo_lab_hotel_remembers_its_slots(demo_node: Callable[..., BaseNode]) -> None:
    hotel = demo_node("hotel")
    assert hotel.run_step(None, None, "t", {"plate": "P-1", "action": "store"}).output == {"slot": 1}
    assert hotel.run_step(None, None, "t", {"plate": "P-2", "action": "store"}).output == {"slot": 2}
    taken = hotel.run_step(None, None, "t", {"plate": "P-3", "action": "store", "slot": 2})
    assert (taken.status, taken.message) == (1, "slot 2 already holds plate P-2")
    assert hotel.run_step(None, None, "t", {"plate": "P-2"}).message == "plate P-2 retrieved from slot 2"


def test_demo_lab_hotel_remembers_its_slots_across_a_restart(
    demo_node: Callable[..., BaseNode], tmp_path: Path
) -> None:
    hotel = demo_node("hotel")
    hotel.run_step(None, None, "t", {"plate": "P-1", "action": "store"})
    hotel.run_step(None, None, "t", {"plate": "P-2", "action": "store"})
    hotel.run_step(None, None, "t", {"plate": "P-1"})  # out of slot 1 again

    restarted = demo_node("hotel")  # a new worker process builds its driver anew

    taken = restarted.run_step(None, None, "t", {"plate": "P-3", "action": "store", "slot": 2})
    assert (taken.status, taken.message) == (1, "slot 2 already holds plate P-2")
    assert restarted.run_step(None, None, "t", {"plate": "P-3", "action": "store"}).output == {"slot": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hotel-slots.json"]  # no temporary file left


def test_demo_lab_hotel_refuses_to_start_on_a_slots_file_it_cannot_read(
    demo_node: Callable[..., BaseNode], tmp_path: Path
) -> None:
    (tmp_path / "hotel-slots.json").write_text("{not json", encoding="utf-8")

    with pytest.raises(ValueError, match=r"cannot read the hotel's slots from .*hotel-slots.json"):
        demo_node("hotel")


@pytest.mark.parametrize(
    ("node_id", "args", "message"),
    [
        ("dispenser", {"volume_ul": 5000}, "volume 5000 µL exceeds capacity 1000 µL"),
        ("dispenser", {"volume_ul": -5}, "volume must be positive, got -5 µL"),
        ("dispenser", {"volume_ul": "lots"}, "volume_ul must be a number, got 'lots'"),
        ("dispenser", {"reagent": "gin"}, "unknown reagent 'gin'; loaded reagents: buffer, substrate, water"),
        ("hotel", {"slot": 99}, "slot 99 is out of range 1-20"),
        ("hotel", {"action": "juggle"}, "action must be 'retrieve' or 'store', got 'juggle'"),
        ("reader", {"wavelength_nm": 100}, "wavelength 100 nm is out of range 230-1000 nm"),
    ],
)
def test_demo_lab_driver_refuses_bad_args_clearly(
    demo_node: Callable[..., BaseNode], node_id: str, args: dict[str, Any], message: str
) -> None:
    node = demo_node(node_id)
    with node.logger.capture() as lines:
        result = node.run_step(None, None, "t", args)
    assert (result.status, result.message, result.retryable) == (2, message, False)
    assert lines[-1].endswith(f"ERROR {message}")


def test_demo_lab_arm_refuses_a_node_out_of_reach(demo_node: Callable[..., BaseNode]) -> None:
    result = demo_node("arm").run_step(ref("hotel"), ref("hplc"), "t", {})
    assert result.status == 2
    reach = "hotel, dispenser, incubator, reader, storage"
    assert result.message == f"the arm cannot reach 'hplc'; it reaches {reach}"


def test_demo_lab_storage_refuses_when_full(demo_node: Callable[..., BaseNode]) -> None:
    storage = demo_node("storage")
    storage.properties["capacity"] = 1
    assert storage.run_step(None, None, "t", {"plate": "P-1"}).status == 0
    full = storage.run_step(None, None, "t", {"plate": "P-2"})
    assert (full.status, full.message) == (1, "the cold storage is full (1 positions)")


@pytest.mark.parametrize("node_id", ["hotel", "arm", "dispenser", "reader", "storage"])
def test_demo_lab_abort_stops_a_running_step_promptly(
    demo_node: Callable[..., BaseNode], first_log_line: Callable[[BaseNode], _LineSeen], node_id: str
) -> None:
    node = demo_node(node_id, speed=100)  # every action would take over a minute
    began = first_log_line(node)
    started = time.monotonic()
    step = run_in_thread(lambda: node.run_step(ref("hotel"), ref("storage"), "t", {"plate": "P-1"}))
    began.wait()
    node.abort()
    with pytest.raises(StepAbortedError, match=f"{node_id}: .* aborted"):
        step.result(timeout=PROMPTLY_S)
    assert time.monotonic() - started < PROMPTLY_S


@pytest.mark.parametrize("node_id", ["hotel", "arm", "dispenser", "reader", "storage"])
def test_demo_lab_restart_and_reachability(demo_node: Callable[..., BaseNode], node_id: str) -> None:
    node = demo_node(node_id)
    assert node.is_reachable()
    assert node._restart() is True
    assert node.run_step(None, None, "t", {}).status == 0
    node.properties["online"] = False
    assert not node.is_reachable()
    assert node._restart() is False


class NodesTestOldHooksNode(BaseNode):
    """Hooks in the signature this package had before it took the seed's: refused, never misfed."""

    def _pre_execution(self, src: Any, dst: Any, task_id: str, args: Any) -> None:  # type: ignore[override]
        pass

    def _execute(self, src: Any, dst: Any, task_id: str, args: Any = None) -> tuple[int, None, None]:
        return 0, None, None


class NodesTestFailingPostNode(NodesTestHookNode):
    def _post_execution(
        self, status: int, msg: Any, task_id: str, wf_name: str, src: Any, dst: Any, args: Any = None
    ) -> None:
        raise KeyError("sample")


def test_a_node_whose_hooks_take_the_old_arguments_is_refused_saying_how_to_fix_it() -> None:
    with pytest.raises(NodeTypeError) as refused:
        resolve_node_type("NodesTestOldHooksNode")

    assert "NodesTestOldHooksNode._pre_execution(self, src, dst, task_id, args) cannot take the seed's" in (
        refused.value.message
    )
    assert "make it _pre_execution(self, task_id, wf_name, src, dst, args)" in refused.value.message


def test_a_hook_that_raises_after_the_driver_acted_fails_the_step_saying_so_without_retries() -> None:
    node = NodesTestFailingPostNode("n4", "Node four")

    result = node.run_step(None, None, "t1", {}, workflow_name="assay")

    assert (result.status, result.retryable) == (-1, False)
    assert "_execute returned 0 (no message), then a hook after it raised KeyError: 'sample'" in (
        result.message or ""
    )
    assert "The device did act" in (result.message or "")
