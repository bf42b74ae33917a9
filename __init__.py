"""task_scheduler: durable scheduling of automated-lab tasks on Temporal."""

# The repository root is the package. pytest imports a root folder that holds an `__init__.py` as a
# package named after the folder, and a clone's folder may have any name ("ci-clone"): then this file
# runs as a plain module, where relative imports fail. It exports nothing in that case.
if __package__:
    from .engine.config import LabConfig, NodeConfig, StepConfig, WorkflowConfig, build_node
    from .engine.errors import ConfigError, InvalidTransitionError, TaskSchedulerError
    from .engine.loader import load_config, load_config_dir
    from .engine.models import EmulationConfig, NextExecution, NodeRef, RetryConfig, StepResult
    from .engine.states import NodeState, TaskState
    from .nodes.base import BaseNode

__all__ = [
    "BaseNode",
    "ConfigError",
    "EmulationConfig",
    "InvalidTransitionError",
    "LabConfig",
    "NextExecution",
    "NodeConfig",
    "NodeRef",
    "NodeState",
    "RetryConfig",
    "StepConfig",
    "StepResult",
    "TaskSchedulerError",
    "TaskState",
    "WorkflowConfig",
    "build_node",
    "load_config",
    "load_config_dir",
]
