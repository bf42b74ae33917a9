"""The seed's import path `task_scheduler.nodes.enums`."""

from ..engine.seed import NodeErrorNextStep, NodeState

__all__ = ["NodeErrorNextStep", "NodeState"]
