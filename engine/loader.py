"""Read and validate a lab configuration, reporting every problem at once with its location."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from .config import LabConfig, NodeConfig, NodesFile, WorkflowConfig, WorkflowsFile
from .errors import ConfigError, ConfigProblem, NodeTypeError
from .registry import import_node_modules, resolve_node_type

# Where node modules are looked for when the configuration names none (the seed's project layout).
DEFAULT_NODE_FOLDERS = ("nodes", "../nodes", "../src/nodes", "src/nodes")


def find_config_files(config_dir: Path) -> tuple[Path, Path]:
    """`nodes.json` and `workflows.json` in a folder, or in its `config/` subfolder (the seed's)."""
    for folder in (config_dir, config_dir / "config"):
        if (folder / "nodes.json").exists():
            return folder / "nodes.json", folder / "workflows.json"
    return config_dir / "nodes.json", config_dir / "workflows.json"


def load_config(
    nodes_path: str | Path, workflows_path: str | Path, modules: list[str] | None = None
) -> LabConfig:
    """Load and validate both files; raise ConfigError listing every problem found."""
    loader = _Loader(Path(nodes_path), Path(workflows_path))
    return loader.load(list(modules or []))


def load_config_dir(config_dir: str | Path, modules: list[str] | None = None) -> LabConfig:
    nodes_path, workflows_path = find_config_files(Path(config_dir))
    return load_config(nodes_path, workflows_path, modules)


class _Loader:
    def __init__(self, nodes_path: Path, workflows_path: Path) -> None:
        self.nodes_path = nodes_path
        self.workflows_path = workflows_path
        self.problems: list[ConfigProblem] = []

    def problem(self, file: Path, path: str, message: str) -> None:
        self.problems.append(ConfigProblem(str(file), path, message))

    def load(self, extra_modules: list[str]) -> LabConfig:
        nodes_file = self._read_model(self.nodes_path, NodesFile)
        workflows_file = self._read_model(self.workflows_path, WorkflowsFile)
        nodes = self._items(self.nodes_path, "nodes", nodes_file, NodeConfig)
        workflows = self._items(self.workflows_path, "workflows", workflows_file, WorkflowConfig)
        modules = [*(nodes_file.modules if isinstance(nodes_file, NodesFile) else []), *extra_modules]
        modules = self._import_modules(modules)
        node_ids = _raw_ids(nodes_file, "nodes", "id")
        self._check_nodes(nodes, _duplicates(node_ids))
        self._check_workflows(workflows, _raw_ids(workflows_file, "workflows", "name"), set(node_ids))
        if self.problems:
            raise ConfigError(self.problems)
        return LabConfig(
            nodes=[n for _, n in nodes],
            workflows=[w for _, w in workflows],
            modules=modules,
            nodes_file=str(self.nodes_path),
            workflows_file=str(self.workflows_path),
        )

    def _read_model(self, file: Path, model: type[BaseModel]) -> BaseModel | None:
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            self.problem(file, "", f"cannot read the file ({exc.strerror or exc}); check the path")
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            self.problem(file, f"line {exc.lineno} column {exc.colno}", f"invalid JSON: {exc.msg}")
            return None
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            self._add_validation_problems(file, "$", exc)
            return None

    def _items(self, file: Path, key: str, parsed: BaseModel | None, model: type[Any]) -> list[Any]:
        """Validate items one by one, so one bad node does not hide the problems of the others."""
        if parsed is None:
            return []
        valid = []
        for index, raw in enumerate(getattr(parsed, key)):
            try:
                valid.append((index, model.model_validate(raw)))
            except ValidationError as exc:
                self._add_validation_problems(file, f"$.{key}[{index}]", exc)
        return valid

    def _add_validation_problems(self, file: Path, prefix: str, exc: ValidationError) -> None:
        for error in exc.errors(include_url=False):
            self.problem(file, _json_path(prefix, error["loc"]), _explain(error))

    def _import_modules(self, modules: list[str]) -> list[str]:
        base = self.nodes_path.parent
        if not modules:
            modules = [f for f in DEFAULT_NODE_FOLDERS if (base / f).is_dir()]
        for message in import_node_modules(modules, base):
            self.problem(self.nodes_path, "$.modules", message)
        return modules

    def _check_nodes(self, nodes: list[tuple[int, NodeConfig]], duplicated: set[str]) -> None:
        for index, node in nodes:
            path = f"$.nodes[{index}]"
            if node.id in duplicated:
                self.problem(
                    self.nodes_path, f"{path}.id", f"duplicate node id {node.id!r}; ids must be unique"
                )
            try:
                resolve_node_type(node.type)
            except NodeTypeError as exc:
                self.problem(self.nodes_path, f"{path}.type", exc.message)

    def _check_workflows(
        self, workflows: list[tuple[int, WorkflowConfig]], names: list[str], node_ids: set[str]
    ) -> None:
        duplicated = _duplicates(names)
        known = ", ".join(sorted(node_ids)) or "none"
        for index, workflow in workflows:
            path = f"$.workflows[{index}]"
            if workflow.name in duplicated:
                message = f"duplicate workflow name {workflow.name!r}; names must be unique"
                self.problem(self.workflows_path, f"{path}.name", message)
            if not workflow.steps:
                message = f"workflow {workflow.name!r} has no steps; list at least one node id"
                self.problem(self.workflows_path, f"{path}.steps", message)
            for step_index, step in enumerate(workflow.steps):
                if step.node not in node_ids:
                    message = f"unknown node {step.node!r}; known nodes: {known}"
                    self.problem(self.workflows_path, f"{path}.steps[{step_index}]", message)


def _raw_ids(parsed: BaseModel | None, key: str, field: str) -> list[str]:
    """The ids as written, so a node with a bad timeout still counts as known and as a duplicate."""
    items = getattr(parsed, key, None) or []
    return [item[field] for item in items if isinstance(item, dict) and isinstance(item.get(field), str)]


def _duplicates(values: Any) -> set[str]:
    return {value for value, count in Counter(values).items() if count > 1}


def _json_path(prefix: str, loc: tuple[int | str, ...]) -> str:
    path = prefix
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _explain(error: Any) -> str:
    """Turn a pydantic error into a sentence a lab engineer can act on."""
    kind, field, value = error["type"], error["loc"][-1] if error["loc"] else "", error.get("input")
    if kind == "extra_forbidden":
        return f"unknown key {field!r}; remove it or check its spelling"
    if kind == "missing":
        return f"missing required key {field!r}"
    if kind in ("greater_than", "greater_than_equal") and str(field).endswith("_s"):
        return f"{field} must be a positive number of seconds, got {value!r}"
    return f"{error['msg']} (got {value!r})"
