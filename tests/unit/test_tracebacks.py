"""A driver's traceback (engine/tracebacks.py): its own frames only, whatever called it, and the line
of the driver's own code that the error came from."""

from __future__ import annotations

import asyncio
import functools
import json
from pathlib import Path
from typing import Any

from task_scheduler.activities.host import DriverThread
from task_scheduler.engine.nodes import BaseNode
from task_scheduler.engine.tracebacks import MAX_TRACEBACK_CHARS, driver_traceback

HERE = Path(__file__).name


class ReaderNode(BaseNode):
    def _execute(self, src: Any, dst: Any, task_id: str, args: dict[str, Any] | None = None) -> Any:
        return self._parse((args or {})["raw"])

    def _parse(self, raw: str) -> Any:
        return json.loads(raw)  # a library raises: the driver's line is this one


class AsyncReaderNode(BaseNode):
    async def _execute(self, src: Any, dst: Any, task_id: str, args: dict[str, Any] | None = None) -> Any:
        await asyncio.sleep(0)
        raise RuntimeError("lid open")


def raised(node: BaseNode, args: dict[str, Any]) -> BaseException:
    """What the driver's call raised, as the step activity gets it: from the node's own thread, under
    the scheduler's frames (DriverThread, BaseNode.run_step)."""
    thread = DriverThread("test-node")
    try:
        error = thread.submit(functools.partial(node.run_step, None, None, "t-1", args)).exception(timeout=10)
    finally:
        thread.close()
    assert error is not None
    return error


def line_of(text: str) -> int:
    return next(n for n, line in enumerate(Path(__file__).read_text().splitlines(), 1) if text in line)


def test_traceback_keeps_the_drivers_frames_down_to_the_library_and_says_the_drivers_line() -> None:
    trace = driver_traceback(raised(ReaderNode("r", "reader"), {"raw": "{"}))

    assert trace is not None
    assert trace.where == f"{HERE}:{line_of('return json.loads(raw)')}, in _parse"
    frames = [line for line in trace.text.splitlines() if line.startswith("  File ")]
    assert HERE in frames[0] and "in _execute" in frames[0]  # the first frame is the driver's call
    assert "json" in frames[-1]  # the library's frames below the driver's stay
    assert "engine/nodes.py" not in trace.text
    assert trace.text.endswith(
        "json.decoder.JSONDecodeError: Expecting property name enclosed in double "
        "quotes: line 1 column 2 (char 1)"
    )


def test_traceback_of_an_async_driver_drops_the_event_loop_it_ran_in() -> None:
    trace = driver_traceback(raised(AsyncReaderNode("r", "reader"), {}))

    assert trace is not None and trace.where == f"{HERE}:{line_of('lid open')}, in _execute"
    assert "asyncio" not in trace.text and "engine/nodes.py" not in trace.text
    assert trace.text.endswith("RuntimeError: lid open")


def test_an_error_of_the_scheduler_alone_has_no_driver_traceback() -> None:
    class NotAResult(BaseNode):
        def _execute(self, *args: Any, **kwargs: Any) -> Any:
            return "done"  # not a result: the scheduler raises, in its own frames

    assert driver_traceback(raised(NotAResult("n", "n"), {})) is None


def test_a_long_traceback_keeps_its_innermost_frames() -> None:
    class DeepNode(BaseNode):
        def _execute(self, *args: Any, **kwargs: Any) -> Any:
            return self._down(60)

        def _down(self, depth: int) -> Any:
            if depth:
                return self._down(depth - 1) if depth % 2 else self._also_down(depth - 1)
            raise ValueError("bottom " + "x" * 200)

        def _also_down(self, depth: int) -> Any:
            return self._down(depth)

    trace = driver_traceback(raised(DeepNode("d", "d"), {}))

    assert trace is not None and len(trace.text) <= MAX_TRACEBACK_CHARS + 60
    assert trace.text.startswith("... (") and trace.text.endswith("ValueError: bottom " + "x" * 200)
