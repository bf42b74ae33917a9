"""The seed's `LoggingManager`: one logging set-up per process, and loggers bound to an "app" name.

Lines go through Python's `logging` (as everything of ours does), formatted as the seed's:
`time | LEVEL | [app] message`, with `module:function:line` in debug mode. A node's lines are also kept
with its step, as every node's are. The seed also wrote every line to a database table and to a
CSV file of execution times; the step records keep those now (GET /logs/, GET /logs/execution).
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from typing import Any, ClassVar

from ..engine.logger import NODE_LOGGERS, NodeLogger

APP_LOGGERS = "task_scheduler.app"  # a bound logger's lines go to APP_LOGGERS.<app>
LOG_FILE = "scheduler.log"  # in the working directory, as the seed's
LOG_FILE_BYTES = 10 * 1024 * 1024
PLAIN = "%(asctime)s | %(levelname)-8s | [%(app)s] %(message)s"
DEBUG = "%(asctime)s | %(levelname)-8s | %(module)s:%(funcName)s:%(lineno)d - [%(app)s] %(message)s"


class _AppName(logging.Filter):
    """Give each record the seed's "app": `Node <id>` for a node, the bound name, else the logger's."""

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        if name.startswith(f"{NODE_LOGGERS}."):
            record.app = f"Node {name.removeprefix(f'{NODE_LOGGERS}.')}"
        elif name.startswith(f"{APP_LOGGERS}."):
            record.app = name.removeprefix(f"{APP_LOGGERS}.")
        else:
            record.app = name.removeprefix("task_scheduler.")
        return True


class LoggingManager:
    """The first instance sets logging up (the seed's `LoggingManager(save_logs, verbose, debug)`);
    later calls return it unchanged."""

    _instance: ClassVar[LoggingManager | None] = None
    loggers: ClassVar[dict[str, NodeLogger]] = {}

    def __new__(cls, *args: Any, **kwargs: Any) -> LoggingManager:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __init__(self, save_logs: bool = True, verbose: bool = False, debug: bool = False) -> None:
        if getattr(self, "_configured", False):
            return
        self._configured = True
        self.save_logs, self.verbose, self.debug = save_logs, verbose, debug
        formatter = logging.Formatter(DEBUG if debug else PLAIN)
        handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout)]
        if save_logs:
            handlers.append(
                logging.handlers.RotatingFileHandler(LOG_FILE, maxBytes=LOG_FILE_BYTES, backupCount=3)
            )
        root = logging.getLogger()
        for handler in handlers:
            handler.setFormatter(formatter)
            handler.addFilter(_AppName())
            root.addHandler(handler)
        root.setLevel(logging.INFO)
        # Verbose: our lines and the lab's at DEBUG, not every library's (Temporal's SDK is chatty).
        logging.getLogger("task_scheduler").setLevel(logging.DEBUG if verbose else logging.INFO)
        # transitions logs every state change at INFO; the task's history already records them.
        logging.getLogger("transitions").setLevel(logging.WARNING)

    @classmethod
    def configured(cls) -> bool:
        return cls._instance is not None

    @classmethod
    def get_logger(cls, _id: str, **bind_kwargs: Any) -> NodeLogger:
        """The logger of `_id`, bound to its "app" name (the first binding of an id stays, as in the seed)."""
        if _id not in cls.loggers:
            app = str(bind_kwargs.get("app", "General"))
            cls.loggers[_id] = NodeLogger(_id, logger_name=f"{APP_LOGGERS}.{app}")
        return cls.loggers[_id]

    @classmethod
    def insert_data_sample(cls, task_id: str, wf_id: int, name: str, start: float, end: float) -> None:
        """The seed wrote execution times to a table; the step records keep them (GET /logs/execution)."""
