"""The seed's import path `task_scheduler.logger`."""

from .glas.log import LoggingManager

__all__ = ["LoggingManager"]
