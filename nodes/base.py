"""The import path of the seed's node files: `from task_scheduler.nodes.base import BaseNode`."""

from ..engine.errors import StepAbortedError
from ..engine.models import NextExecution, NodeRef, StepResult
from ..engine.nodes import BaseNode

__all__ = ["BaseNode", "NextExecution", "NodeRef", "StepAbortedError", "StepResult"]
