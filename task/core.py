"""The seed's import path `task_scheduler.task.core`: a GLAS project may subclass Task (its step hooks)."""

from ..glas.task import Task

__all__ = ["Task"]
