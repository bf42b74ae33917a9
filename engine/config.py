"""The lab configuration: `nodes.json` and `workflows.json` in the seed's format, plus our extensions."""

from __future__ import annotations

import hashlib
import inspect
import json
from typing import Any

from pydantic import BaseModel, Field, field_validator

from .errors import UnknownWorkerError
from .models import EmulationConfig, RetryConfig, Strict
from .nodes import BaseNode
from .notifications import NotificationsConfig
from .registry import resolve_node_type


class NodeConfig(Strict):
    """One node of `nodes.json`: the seed's `id`, `name`, `type`, and optional extensions."""

    id: str = Field(min_length=1)
    name: str
    type: str = Field(min_length=1)
    description: str | None = None
    worker: str | None = Field(default=None, min_length=1)
    module: str | None = Field(default=None, min_length=1)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    timeout_s: float | None = Field(default=None, gt=0)
    heartbeat_timeout_s: float = Field(default=30.0, gt=0)
    offline_after_s: float = Field(default=60.0, gt=0)  # a task waiting longer for its worker says so
    abort_grace_s: float = Field(default=60.0, gt=0)  # how long a driver asked to abort may take to return
    # The largest output (as JSON) a step on this node may return: outputs travel in Temporal payloads,
    # refused past 2 MiB, and a task's state carries the last one.
    max_output_bytes: int = Field(default=256 * 1024, gt=0, le=1024 * 1024)
    emulate: EmulationConfig = Field(default_factory=EmulationConfig)
    properties: dict[str, Any] = Field(default_factory=dict)
    # How many steps may hold the node at once: an incubator of 32 places, a shaker of four.
    capacity: int = Field(default=1, ge=1, strict=True)


class StepConfig(Strict):
    """One step of a workflow: a node id (the seed), or an object naming the node it runs on and its
    arguments, or a wait (`wait_s`, `wait_until`). An `id` names it (else its number from 1), `after`
    lists the steps it comes after (else the step above it): engine/protocol.py reads the graph."""

    id: str | None = Field(default=None, min_length=1)
    after: list[str] | None = None
    node: str | None = Field(default=None, min_length=1)
    args: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float | None = Field(default=None, gt=0)
    retry: RetryConfig | None = None
    wait_s: float | None = Field(default=None, strict=True)  # "600" or true is a typo, not a wait
    wait_until: str | None = None
    # Nodes kept with `node` while the step runs (the arm moves a plate into the reader: the reader too).
    holds: list[str] | None = None

    @property
    def is_wait(self) -> bool:
        return self.node is None


class WorkflowConfig(Strict):
    """One workflow of `workflows.json`: a name and its ordered steps."""

    name: str = Field(min_length=1)
    description: str | None = None
    steps: list[StepConfig]

    @field_validator("steps", mode="before")
    @classmethod
    def _node_ids_are_steps(cls, steps: Any) -> Any:
        if isinstance(steps, list):
            return [{"node": s} if isinstance(s, str) else s for s in steps]
        return steps


class NodesFile(Strict):
    nodes: list[dict[str, Any]]
    modules: list[str] = Field(default_factory=list)
    default_worker: str | None = Field(default=None, min_length=1)


class WorkflowsFile(Strict):
    workflows: list[dict[str, Any]]


class LabConfig(BaseModel):
    """A validated lab: its nodes, its workflows, and where they were read from."""

    nodes: list[NodeConfig]
    workflows: list[WorkflowConfig]
    modules: list[str] = Field(default_factory=list)
    default_worker: str | None = None
    nodes_file: str = ""
    workflows_file: str = ""
    # notifications.json beside nodes.json, if there is one ("" and none configured otherwise).
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    notifications_file: str = ""
    # The seed's integer id of each workflow, by name, where the lab's own code gave one (a GLAS
    # project's `Workflow(_id, ...)`); the others are numbered by their place in workflows.json.
    workflow_ids: dict[str, int] = Field(default_factory=dict)

    def node(self, node_id: str) -> NodeConfig:
        return next(n for n in self.nodes if n.id == node_id)

    def workflow(self, name: str) -> WorkflowConfig:
        return next(w for w in self.workflows if w.name == name)

    def seed_workflow_id(self, name: str) -> int:
        """The workflow's integer id in the seed's HTTP API (`workflow_id`), -1 for an unknown one."""
        if name in self.workflow_ids:
            return self.workflow_ids[name]
        return next((i for i, w in enumerate(self.workflows) if w.name == name), -1)

    def has_node(self, node_id: str) -> bool:
        return any(n.id == node_id for n in self.nodes)

    def has_workflow(self, name: str) -> bool:
        return any(w.name == name for w in self.workflows)

    def nodes_of_worker(self, worker: str | None) -> list[NodeConfig]:
        """The nodes a worker hosts (see `nodes_of_worker`)."""
        return nodes_of_worker(self.nodes, worker)

    def worker_names(self) -> list[str]:
        """The named workers of the lab; none in a one-PC lab."""
        return worker_names(self.nodes)

    def check_worker(self, worker: str) -> None:
        """Refuse a worker name no node names, in a lab with named workers (it would host nothing)."""
        names = self.worker_names()
        if names and worker not in names:
            raise UnknownWorkerError(
                f"no node names worker {worker!r}; workers in nodes.json: {', '.join(names)}. "
                "Check --name, or the nodes' `worker` fields"
            )


def worker_names(nodes: list[NodeConfig]) -> list[str]:
    return sorted({n.worker for n in nodes if n.worker is not None})


def nodes_of_worker(nodes: list[NodeConfig], worker: str | None) -> list[NodeConfig]:
    """The nodes a worker hosts. Unnamed (`worker` without `--name`, `dev`): every node. In a lab with
    named workers: the nodes naming it (the loader has applied `default_worker`). In a lab without any
    (one PC): every node, whatever the worker's name."""
    if worker is None or not worker_names(nodes):
        return list(nodes)
    return [n for n in nodes if n.worker == worker]


# What a worker uses to build a node's driver: fixed when the worker starts (a reload cannot change it).
DRIVER_FIELDS = frozenset({"type", "module", "properties", "emulate", "worker"})


def driver_digest(node: NodeConfig) -> str:
    """A short stable hash of the node's driver settings, the same in every process that reads the same
    file: a worker reports it, and a configuration reload compares it with the new file's."""
    fields = node.model_dump(mode="json", include=set(DRIVER_FIELDS))
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_node(config: NodeConfig) -> BaseNode:
    """Instantiate a node's driver the way the seed did, `Type(id, name)`, with its properties."""
    cls = resolve_node_type(config.type)
    parameters = inspect.signature(cls.__init__).parameters
    accepts_properties = "properties" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )
    if accepts_properties:
        node = cls(config.id, config.name, properties=config.properties)
    else:
        node = cls(config.id, config.name)
        node.properties = dict(config.properties)
    node.emulation = config.emulate
    node.capacity = config.capacity
    return node
