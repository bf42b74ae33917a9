"""The seed's import path `task_scheduler.workflow` (glas/workflow.py)."""
