"""The import path of every node driver, the seed's too: `from task_scheduler.nodes.base import BaseNode`."""

from ..engine.errors import StepAbortedError
from ..engine.models import NextExecution, NodeRef, StepResult
from ..glas.nodes import BaseNode

__all__ = ["BaseNode", "NextExecution", "NodeRef", "StepAbortedError", "StepResult"]
