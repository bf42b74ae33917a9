"""The seed's import path `task_scheduler.orchestrator` (glas/orchestrator.py)."""
