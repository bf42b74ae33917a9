"""The node logger: takes every call the seed's nodes made on loguru, and captures a step's lines."""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

TRACE = 5
SUCCESS = 25
logging.addLevelName(TRACE, "TRACE")
logging.addLevelName(SUCCESS, "SUCCESS")

NODE_LOGGERS = "task_scheduler.node"  # a node's lines go to NODE_LOGGERS.<node id>
MAX_CAPTURED_LINES = 200
MAX_LINE_CHARS = 2000


class CapturedLines(list[str]):
    """The log lines of one step, bounded so that a chatty driver cannot bloat a task's history."""

    dropped: int = 0

    def add(self, line: str) -> None:
        if len(self) < MAX_CAPTURED_LINES:
            self.append(line[:MAX_LINE_CHARS])
        else:
            self.dropped += 1

    def as_list(self) -> list[str]:
        if not self.dropped:
            return list(self)
        return [*self, f"... {self.dropped} more line(s) not kept"]


def _format(message: object, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    # loguru formats with str.format; stdlib-style "%s" calls are accepted too.
    text = str(message)
    if not args and not kwargs:
        return text
    if "{" not in text and "%" in text and args:
        try:
            return text % args
        except (TypeError, ValueError):
            pass
    try:
        return text.format(*args, **kwargs)
    except (IndexError, KeyError, ValueError):
        return " ".join([text, *map(str, args)])


class NodeLogger:
    """A loguru-compatible logger for one node, writing to `logging` and to the running step's capture."""

    def __init__(self, node_id: str, logger_name: str | None = None) -> None:
        self._logger = logging.getLogger(logger_name or f"{NODE_LOGGERS}.{node_id}")
        self._lock = threading.Lock()
        # The steps running now, each collecting the node's lines (several on a node of capacity > 1:
        # a line logged then goes to each, since the node's log does not say whose it is).
        self._captures: list[CapturedLines] = []

    @contextmanager
    def capture(self) -> Iterator[CapturedLines]:
        """Collect every line logged until the block ends."""
        lines = CapturedLines()
        with self._lock:
            self._captures.append(lines)
        try:
            yield lines
        finally:
            with self._lock:
                self._captures.remove(lines)

    def log(self, level: int | str, message: object, *args: Any, **kwargs: Any) -> None:
        number = logging.getLevelName(level) if isinstance(level, str) else level
        number = number if isinstance(number, int) else logging.INFO
        text = _format(message, args, kwargs)
        self._logger.log(number, text)
        with self._lock:
            if self._captures:
                stamp = datetime.now(UTC).strftime("%H:%M:%S.%f")[:-3]
                for capture in self._captures:
                    capture.add(f"{stamp} {logging.getLevelName(number)} {text}")

    def trace(self, message: object, *args: Any, **kwargs: Any) -> None:
        self.log(TRACE, message, *args, **kwargs)

    def debug(self, message: object, *args: Any, **kwargs: Any) -> None:
        self.log(logging.DEBUG, message, *args, **kwargs)

    def info(self, message: object, *args: Any, **kwargs: Any) -> None:
        self.log(logging.INFO, message, *args, **kwargs)

    def success(self, message: object, *args: Any, **kwargs: Any) -> None:
        self.log(SUCCESS, message, *args, **kwargs)

    def warning(self, message: object, *args: Any, **kwargs: Any) -> None:
        self.log(logging.WARNING, message, *args, **kwargs)

    warn = warning

    def error(self, message: object, *args: Any, **kwargs: Any) -> None:
        self.log(logging.ERROR, message, *args, **kwargs)

    def critical(self, message: object, *args: Any, **kwargs: Any) -> None:
        self.log(logging.CRITICAL, message, *args, **kwargs)

    def exception(self, message: object, *args: Any, **kwargs: Any) -> None:
        trace = traceback.format_exc()
        text = _format(message, args, kwargs)
        self.log(logging.ERROR, text if trace.startswith("NoneType") else f"{text}\n{trace.rstrip()}")
