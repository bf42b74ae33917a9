"""The seed's import path `task_scheduler.workflow.core`."""

from ..glas.workflow import Workflow

__all__ = ["Workflow"]
