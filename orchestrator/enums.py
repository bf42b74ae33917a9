"""The seed's import path `task_scheduler.orchestrator.enums`."""

from ..engine.seed import OrchestratorErrorCodes, OrchestratorState

__all__ = ["OrchestratorErrorCodes", "OrchestratorState"]
