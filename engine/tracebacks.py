"""A driver's traceback as the lab reads it: its own frames only, from its `_execute` (or hook) down.

An exception a driver raises reaches the step activity through the node's thread, the scheduler's own
calls and asyncio, each adding frames above the driver's. Those say nothing of the driver's mistake:
they are dropped, and the frames from the first one outside the scheduler and Python's own library are
kept, with the exceptions chained to it. Pure: frames in, text out.
"""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

PACKAGE = __name__.split(".", 1)[0]  # task_scheduler: our own modules' names start with it
MAX_TRACEBACK_CHARS = 8000  # kept in the task's history: the innermost frames if longer
LIBRARIES = ("site-packages", "dist-packages")


@dataclass(frozen=True)
class DriverTrace:
    text: str  # "Traceback (most recent call last): ..." of the driver's frames
    where: str  # the driver's line the error came from: "lab_nodes.py:42, in _execute"


def driver_traceback(error: BaseException) -> DriverTrace | None:
    """The driver's part of `error`'s traceback; None when no frame is the driver's (the error is the
    scheduler's own, and its message says what is wrong)."""
    first = _first_driver_frame(error.__traceback__)
    if first is None:
        return None
    text = "".join(traceback.TracebackException(type(error), error, first, compact=True).format())
    if len(text) > MAX_TRACEBACK_CHARS:
        left_out = len(text) - MAX_TRACEBACK_CHARS
        text = f"... ({left_out} characters left out)\n{text[-MAX_TRACEBACK_CHARS:]}"
    return DriverTrace(text=text.rstrip("\n"), where=_where(first))


def _first_driver_frame(tb: TracebackType | None) -> TracebackType | None:
    while tb is not None and _not_the_drivers(tb):
        tb = tb.tb_next
    return tb


def _not_the_drivers(tb: TracebackType) -> bool:
    """A frame of the scheduler's (the node's thread, run_step, the step activity) or of Python's own
    library (asyncio, concurrent.futures, threading) above the driver's call."""
    module = str(tb.tb_frame.f_globals.get("__name__", ""))
    top = module.split(".", 1)[0]
    return top == PACKAGE or top in sys.stdlib_module_names


def _where(first: TracebackType) -> str:
    """The innermost frame of the lab's own code: the line of the driver that raised, or that called
    the library that did."""
    found, tb = first, first.tb_next
    while tb is not None:
        if not _not_the_drivers(tb) and not _in_a_library(tb):
            found = tb
        tb = tb.tb_next
    code = found.tb_frame.f_code
    return f"{Path(code.co_filename).name}:{found.tb_lineno}, in {code.co_name}"


def _in_a_library(tb: TracebackType) -> bool:
    return any(part in LIBRARIES for part in Path(tb.tb_frame.f_code.co_filename).parts)
