"""The seed's import path `task_scheduler.orchestrator.base`: a GLAS project's orchestrator subclasses
BaseOrchestrator."""

from ..glas.orchestrator import BaseOrchestrator

__all__ = ["BaseOrchestrator"]
