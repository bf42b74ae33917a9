"""The seed's import path `task_scheduler.task` (glas/task.py)."""
