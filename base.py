"""The seed's import path `task_scheduler.base`: a GLAS project's scheduler subclasses BaseScheduler."""

from .glas.scheduler import BaseScheduler

__all__ = ["BaseScheduler"]
