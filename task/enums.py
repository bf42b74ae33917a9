"""The seed's import path `task_scheduler.task.enums`: its values are the seed's `task_state_id`."""

from ..engine.seed import TaskState

__all__ = ["TaskState"]
