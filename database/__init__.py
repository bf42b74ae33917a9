"""The seed's import path `task_scheduler.database`: its classes, harmless (glas/database.py)."""

from ..glas.database import (
    DatabaseConnector,
    DBNode,
    DBNodeCallRecord,
    DBNodeProperty,
    DBStep,
    DBTask,
    DBWorkflow,
    DBWorkflowUsageRecord,
)

__all__ = [
    "DBNode",
    "DBNodeCallRecord",
    "DBNodeProperty",
    "DBStep",
    "DBTask",
    "DBWorkflow",
    "DBWorkflowUsageRecord",
    "DatabaseConnector",
]
