"""A lab given as objects: the nodes and workflows a GLAS project's orchestrator builds in its own code
(`_load_nodes`, `_load_workflows`), turned into our configuration and checked like nodes.json and
workflows.json, every problem located.

A problem is located in the lab's file where the object can be matched to an entry of it (a node by its
id, a workflow by its name): `config/nodes.json: $.nodes[2].id`. Otherwise it names the loader and the
place in its list: `config/nodes.json: MyOrchestrator._load_nodes, nodes[2]`. A node's entry in
nodes.json may also carry our extensions (`retry`, `timeout_s`, ...), which the lab's loader ignores and
this applies; the lab's own keys are the loader's business.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from .config import LabConfig, NodeConfig, StepConfig, WorkflowConfig
from .errors import ConfigError, ConfigProblem
from .nodes import BaseNode, hook_problems

# The keys of a node's entry in nodes.json that apply to a node the lab's code built (the others are
# the loader's own: its id, name and type, and whatever else the lab keeps there).
EXTENSION_KEYS = (
    "description",
    "retry",
    "timeout_s",
    "heartbeat_timeout_s",
    "offline_after_s",
    "abort_grace_s",
    "max_output_bytes",
    "emulate",
)


@dataclass
class LabObjects:
    """What the lab's loaders built, and where from."""

    nodes: list[Any]
    workflows: list[Any]
    loader: str  # the orchestrator's class name, for messages
    nodes_file: str
    workflows_file: str
    nodes_data: Any = None  # the files as JSON, when they parse: to locate problems, read extensions
    workflows_data: Any = None


@dataclass
class _Check:
    objects: LabObjects
    problems: list[ConfigProblem] = field(default_factory=list)

    def problem(self, kind: str, index: int, entry: int | None, suffix: str, message: str) -> None:
        """A problem of the `index`th node or workflow the loader built (`entry`: its place in the file)."""
        objects = self.objects
        file = objects.nodes_file if kind == "nodes" else objects.workflows_file
        if entry is not None:
            where = f"$.{kind}[{entry}]{suffix}"
        else:
            loader = "_load_nodes" if kind == "nodes" else "_load_workflows"
            where = f"{objects.loader}.{loader}, {kind}[{index}]{suffix}"
        self.problems.append(ConfigProblem(file, where, message))


def lab_from_objects(objects: LabObjects, base: LabConfig | None = None) -> LabConfig:
    """Our configuration of the lab the objects describe; ConfigError listing every problem. `base`
    gives what the objects cannot (the notifications)."""
    check = _Check(objects)
    nodes = _nodes(check)
    built = {node.id for node in objects.nodes if isinstance(getattr(node, "id", None), str)}
    workflows, ids = _workflows(check, built)
    if check.problems:
        raise ConfigError(check.problems)
    lab = LabConfig(
        nodes=nodes,
        workflows=workflows,
        workflow_ids=ids,
        nodes_file=objects.nodes_file,
        workflows_file=objects.workflows_file,
    )
    if base is None:
        return lab
    return lab.model_copy(
        update={"notifications": base.notifications, "notifications_file": base.notifications_file}
    )


def _nodes(check: _Check) -> list[NodeConfig]:
    objects = check.objects
    entries = _entries(objects.nodes_data, "nodes", "id")
    ids = [_text(getattr(n, "id", None)) for n in objects.nodes]
    duplicated = {i for i, count in Counter(ids).items() if i and count > 1}
    configs = []
    for index, node in enumerate(objects.nodes):
        entry = entries.get(ids[index])
        config = _node(check, index, node, entry)
        if config is not None and config.id in duplicated:
            message = f"duplicate node id {config.id!r}: the loader built two nodes with it; ids are unique"
            check.problem("nodes", index, entry[0] if entry else None, ".id", message)
        elif config is not None:
            configs.append(config)
    return configs


def _node(check: _Check, index: int, node: Any, entry: tuple[int, Any] | None) -> NodeConfig | None:
    where = entry[0] if entry else None
    if not isinstance(node, BaseNode):
        message = (
            f"{type(node).__name__} {node!r} is not a node: _load_nodes must append BaseNode objects "
            "(from task_scheduler.nodes.base import BaseNode)"
        )
        check.problem("nodes", index, where, "", message)
        return None
    for problem in hook_problems(type(node)):
        check.problem("nodes", index, where, "", f"node {node.id!r}: {problem}")
        return None
    if not (isinstance(node.id, str) and node.id) or not isinstance(node.name, str):
        message = f"node {node.id!r} ({node.type}): its id must be a non-empty string and its name a string"
        check.problem("nodes", index, where, "", message)
        return None
    extensions = {k: v for k, v in (entry[1] if entry else {}).items() if k in EXTENSION_KEYS}
    fields = {"id": node.id, "name": node.name, "type": node.type, **extensions}
    try:
        return NodeConfig.model_validate({**fields, "properties": _properties(node)})
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            suffix = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
            check.problem("nodes", index, where, suffix, f"{error['msg']} (got {error.get('input')!r})")
        return None


def _properties(node: BaseNode) -> dict[str, Any]:
    """The node's properties as the API shows them: only what JSON can carry (a lab's driver may keep
    anything there)."""
    return {k: v for k, v in node.properties.items() if isinstance(v, str | int | float | bool | None)}


def _workflows(check: _Check, node_ids: set[str]) -> tuple[list[WorkflowConfig], dict[str, int]]:
    objects = check.objects
    entries = _entries(objects.workflows_data, "workflows", "name")
    names = [_text(getattr(w, "name", None)) for w in objects.workflows]
    duplicated = {n for n, count in Counter(names).items() if n and count > 1}
    configs, ids = [], {}
    for index, workflow in enumerate(objects.workflows):
        entry = entries.get(names[index])
        config = _workflow(check, index, workflow, entry[0] if entry else None, node_ids)
        if config is not None and config.name in duplicated:
            message = f"duplicate workflow name {config.name!r}: the loader built two workflows with it"
            check.problem("workflows", index, entry[0] if entry else None, ".name", message)
        elif config is not None:
            configs.append(config)
            ids[config.name] = _seed_id(workflow, index)
    return configs, ids


def _seed_id(workflow: Any, index: int) -> int:
    """The id the lab gave the workflow (`Workflow(_id, ...)`), or its place in the list."""
    given = getattr(workflow, "id", None)
    return given if isinstance(given, int) and not isinstance(given, bool) else index


def _workflow(
    check: _Check, index: int, workflow: Any, entry: int | None, node_ids: set[str]
) -> WorkflowConfig | None:
    name, steps = getattr(workflow, "name", None), getattr(workflow, "steps", None)
    if not (isinstance(name, str) and name) or not isinstance(steps, list | tuple):
        message = (
            f"{type(workflow).__name__} {workflow!r} is not a workflow: _load_workflows must append "
            "Workflow objects (from task_scheduler.workflow.core import Workflow) with a name and steps"
        )
        check.problem("workflows", index, entry, "", message)
        return None
    if not steps:
        check.problem("workflows", index, entry, ".steps", f"workflow {name!r} has no steps")
        return None
    known = ", ".join(sorted(node_ids)) or "none"
    valid = True
    for position, step in enumerate(steps):
        step_id = getattr(step, "id", None)
        if not isinstance(step, BaseNode) or step_id not in node_ids:
            shown = step_id if isinstance(step, BaseNode) else repr(step)
            message = (
                f"workflow {name!r}, step {position + 1}: {shown} is not one of the loaded nodes ({known}); "
                "build the steps from the nodes _load_nodes appended (self._nodes)"
            )
            check.problem("workflows", index, entry, f".steps[{position}]", message)
            valid = False
    if not valid:
        return None
    return WorkflowConfig(name=name, steps=[StepConfig(node=step.id) for step in steps])


def _text(value: Any) -> str:
    """An id or a name as a key: "" when it is no string (its object's problem says why)."""
    return value if isinstance(value, str) else ""


def _entries(data: Any, key: str, field_name: str) -> dict[str, tuple[int, dict[str, Any]]]:
    """The file's entries by id (or name), with their index: where an object's problem is located."""
    items = data.get(key) if isinstance(data, dict) else None
    if not isinstance(items, list):
        return {}
    found: dict[str, tuple[int, dict[str, Any]]] = {}
    for index, item in enumerate(items):
        if isinstance(item, dict) and isinstance(item.get(field_name), str):
            found.setdefault(item[field_name], (index, item))
    return found
