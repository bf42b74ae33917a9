"""Read and validate a lab configuration, reporting every problem at once with its location.

A process resolves the types of the nodes it hosts only, and imports only their driver modules: the
API hosts none and imports none; a lab PC's worker imports its own nodes' modules, never another PC's
vendor SDK.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from .config import (
    LabConfig,
    NodeConfig,
    NodesFile,
    StepConfig,
    WorkflowConfig,
    WorkflowsFile,
    nodes_of_worker,
)
from .errors import ConfigError, ConfigProblem
from .node_types import CheckCommand, Indexed, ModuleSpec, TypeCheck
from .notifications import NotificationsConfig, expand_variables, masked
from .protocol import ProtocolCheck

# Where node modules are looked for when the configuration names none (the seed's project layout).
DEFAULT_NODE_FOLDERS = ("nodes", "../nodes", "../src/nodes", "src/nodes")
# Optional, beside nodes.json: who is told what (engine/notifications.py).
NOTIFICATIONS_FILE = "notifications.json"
# Where the node modules given to `load_config` come from, for a problem's location: `--module`.
COMMAND_LINE = "command line"


class AllNodes(Enum):
    ALL_NODES = "all nodes"


# The process hosts every node: one PC (`dev`, `worker` without `--name`), and `config check`'s full view.
ALL_NODES = AllNodes.ALL_NODES


@dataclass(frozen=True)
class NodesOfWorker:
    """The process is the worker `name` (`worker --name`): it hosts the nodes that name it."""

    name: str


# What a process hosts, hence which node types the loader resolves and which driver modules it imports:
# None (nothing: the API, a workflows-only worker), a named worker's nodes, a set of node ids, or
# ALL_NODES (the default).
Hosted = AllNodes | NodesOfWorker | Collection[str] | None

_Indexed = Indexed


def find_config_files(config_dir: Path) -> tuple[Path, Path]:
    """`nodes.json` and `workflows.json` in a folder, or in its `config/` subfolder (the seed's)."""
    for folder in (config_dir, config_dir / "config"):
        if (folder / "nodes.json").exists():
            return folder / "nodes.json", folder / "workflows.json"
    return config_dir / "nodes.json", config_dir / "workflows.json"


def load_config(
    nodes_path: str | Path,
    workflows_path: str | Path,
    modules: list[str] | None = None,
    *,
    hosted: Hosted = ALL_NODES,
) -> LabConfig:
    """Load and validate both files; raise ConfigError listing every problem found. Only the types of
    the `hosted` nodes are resolved (their modules imported): see `Hosted`. `modules` are the command
    line's (`--module`): a relative path among them is relative to the current folder."""
    if isinstance(hosted, str):
        raise TypeError("hosted is a set of node ids or NodesOfWorker(name), not a string")
    loader = _Loader(Path(nodes_path), Path(workflows_path))
    return loader.load(list(modules or []), hosted)


@dataclass(frozen=True)
class LabCheck:
    """`config check`'s answer: the lab, and what it could not check on this PC (see `check_config`)."""

    lab: LabConfig
    notes: list[ConfigProblem]


def check_config(
    nodes_path: str | Path,
    workflows_path: str | Path,
    modules: list[str] | None = None,
    worker: str | None = None,
) -> LabCheck:
    """The lab as `config check` sees it. With `worker`, that PC's view (`NodesOfWorker`). Without, every
    node's type is checked here, but a driver that cannot be imported because something it imports is
    missing on this PC, for a node that runs on a named PC, is a note for that PC rather than a problem:
    this PC may not be that one. ConfigError lists the problems, and the notes after them."""
    loader = _Loader(Path(nodes_path), Path(workflows_path))
    hosted: Hosted = NodesOfWorker(worker) if worker else ALL_NODES
    return LabCheck(loader.load(list(modules or []), hosted, lenient=worker is None), loader.notes)


def load_config_dir(
    config_dir: str | Path, modules: list[str] | None = None, *, hosted: Hosted = ALL_NODES
) -> LabConfig:
    nodes_path, workflows_path = find_config_files(Path(config_dir))
    return load_config(nodes_path, workflows_path, modules, hosted=hosted)


def load_config_texts(nodes: bytes, workflows: bytes, base: LabConfig) -> LabConfig:
    """The configuration in two uploaded files (the seed's `PATCH /config/reload`), checked as files on
    disk are, for a process that hosts no node (nothing is imported); `base`'s notifications are kept."""
    nodes_path, workflows_path = Path("nodes.json (uploaded)"), Path("workflows.json (uploaded)")
    loader = _Loader(nodes_path, workflows_path, texts={nodes_path: nodes, workflows_path: workflows})
    fresh = loader.load([], None)
    return fresh.model_copy(
        update={"notifications": base.notifications, "notifications_file": base.notifications_file}
    )


class _Loader:
    def __init__(
        self, nodes_path: Path, workflows_path: Path, texts: dict[Path, bytes] | None = None
    ) -> None:
        self.nodes_path = nodes_path
        self.workflows_path = workflows_path
        self.texts = texts or {}  # files given whole (uploads) instead of read from disk
        self.problems: list[ConfigProblem] = []
        self.notes: list[ConfigProblem] = []

    def problem(self, file: Path, path: str, message: str) -> None:
        self.problems.append(ConfigProblem(str(file), path, message))

    def load(self, extra_modules: list[str], hosted: Hosted, lenient: bool = False) -> LabConfig:
        nodes_file = self._read_model(self.nodes_path, NodesFile)
        workflows_file = self._read_model(self.workflows_path, WorkflowsFile)
        parsed = nodes_file if isinstance(nodes_file, NodesFile) else NodesFile(nodes=[])
        nodes = self._items(self.nodes_path, "nodes", nodes_file, NodeConfig)
        workflows = self._items(self.workflows_path, "workflows", workflows_file, WorkflowConfig)
        nodes = self._assign_workers(nodes, parsed.default_worker)
        node_ids = _raw_ids(nodes_file, "nodes", "id")
        self._check_ids(nodes, _duplicates(node_ids))
        modules = self._modules(parsed.modules, extra_modules)
        types = TypeCheck(
            self.nodes_path, CheckCommand(self.nodes_path, self.workflows_path, tuple(extra_modules)), lenient
        )
        types.run(_select(nodes, hosted), modules, every=hosted is ALL_NODES)
        self.problems += types.problems
        self.notes += types.notes
        self._check_workflows(workflows, _raw_ids(workflows_file, "workflows", "name"), set(node_ids))
        notifications_path = self.nodes_path.parent / NOTIFICATIONS_FILE
        notifications = self._notifications(notifications_path) if not self.texts else None
        if self.problems:
            raise ConfigError(self.problems, self.notes)
        return LabConfig(
            nodes=[n for _, n in nodes],
            workflows=[w for _, w in workflows],
            modules=[m.spec for m in modules],
            default_worker=parsed.default_worker,
            nodes_file=str(self.nodes_path),
            workflows_file=str(self.workflows_path),
            notifications=notifications or NotificationsConfig(),
            notifications_file=str(notifications_path) if notifications_path.exists() else "",
        )

    def _read_model(self, file: Path, model: type[BaseModel]) -> BaseModel | None:
        data = self._read_json(file)
        return None if data is None else self._validate(file, model, data)

    def _read_json(self, file: Path) -> Any:
        try:
            text = self.texts[file].decode() if file in self.texts else file.read_text(encoding="utf-8")
        except OSError as exc:
            where = "" if file.is_absolute() else f": {file.absolute()}"
            self.problem(file, "", f"cannot read the file ({exc.strerror or exc}{where}); check the path")
            return None
        except UnicodeDecodeError as exc:
            self.problem(file, "", f"not a UTF-8 text file ({exc.reason} at byte {exc.start})")
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            self.problem(file, f"line {exc.lineno} column {exc.colno}", f"invalid JSON: {exc.msg}")
            return None

    def _validate(
        self, file: Path, model: type[BaseModel], data: Any, mask: bool = False
    ) -> BaseModel | None:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            self._add_validation_problems(file, "$", exc, mask)
            return None

    def _notifications(self, file: Path) -> NotificationsConfig | None:
        """notifications.json if there is one, its `${NAME}`s taken from the environment."""
        if not file.exists():
            return NotificationsConfig()
        data = self._read_json(file)
        if isinstance(data, dict):
            data = {**data, **self._expand_urls(file, data)}
        parsed = None if data is None else self._validate(file, NotificationsConfig, data, mask=True)
        return parsed if isinstance(parsed, NotificationsConfig) else None

    def _expand_urls(self, file: Path, data: dict[str, Any]) -> dict[str, Any]:
        """The URLs of `targets` and `escalate_to` with their variables expanded; each variable that is
        not set is a problem at its URL."""
        expanded: dict[str, Any] = {}
        for key in ("targets", "escalate_to"):
            items = data.get(key)
            if isinstance(items, list):
                expanded[key] = [
                    self._expand_item(file, f"$.{key}[{i}]", item) for i, item in enumerate(items)
                ]
        return expanded

    def _expand_item(self, file: Path, path: str, item: Any) -> Any:
        if isinstance(item, dict) and isinstance(item.get("url"), str):
            return {**item, "url": self._expand_item(file, f"{path}.url", item["url"])}
        if not isinstance(item, str):
            return item
        url, missing = expand_variables(item, os.environ)
        for name in missing:
            message = (
                f"environment variable {name} is not set (the URL names ${{{name}}}): set it in the "
                "environment of the processes that load this lab (export it, or your service manager's "
                "environment file), or write the value in the URL"
            )
            self.problem(file, path, message)
        return url

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

    def _add_validation_problems(
        self, file: Path, prefix: str, exc: ValidationError, mask: bool = False
    ) -> None:
        """Each error at its JSON path; with `mask`, a string it quotes is masked (it may be a URL)."""
        for error in exc.errors(include_url=False):
            if mask and _may_be_url(error):
                error = {**error, "input": masked(error["input"])}
            self.problem(file, _json_path(prefix, error["loc"]), _explain(error))

    def _assign_workers(self, nodes: _Indexed, default: str | None) -> _Indexed:
        """With named workers (a node names one, or `default_worker` is set), every node has one: its
        own or the default. Without any (one PC), every worker hosts every node."""
        names = sorted({n.worker for _, n in nodes if n.worker is not None})
        if default is None and not names:
            return nodes
        assigned = []
        for index, node in nodes:
            if node.worker is None and default is not None:
                node = node.model_copy(update={"worker": default})
            elif node.worker is None:
                message = (
                    f"node {node.id!r} names no worker, while other nodes do ({', '.join(names)}), so no "
                    f'worker would host it: add "worker": "<name>" to it, or a top-level "default_worker": '
                    '"<name>" to nodes.json for every node that names none'
                )
                self.problem(self.nodes_path, f"$.nodes[{index}].worker", message)
            assigned.append((index, node))
        return assigned

    def _modules(self, in_file: list[str], extra: list[str]) -> list[ModuleSpec]:
        """The lab's modules, each with where it was named: nodes.json's `modules` (relative to its
        folder), the command line's (relative to the current folder), or, with neither, the default
        folders found beside nodes.json."""
        base, file = self.nodes_path.parent, str(self.nodes_path)
        named = [ModuleSpec(spec, file, f"$.modules[{i}]", base) for i, spec in enumerate(in_file)]
        named += [ModuleSpec(spec, COMMAND_LINE, f"--module {spec}", Path.cwd()) for spec in extra]
        if named:
            return named
        folders = [f for f in DEFAULT_NODE_FOLDERS if (base / f).is_dir()]
        return [ModuleSpec(f, file, f"$.modules (none: the default folder {f!r})", base) for f in folders]

    def _check_ids(self, nodes: _Indexed, duplicated: set[str]) -> None:
        for index, node in nodes:
            if node.id in duplicated:
                message = f"duplicate node id {node.id!r}; ids must be unique"
                self.problem(self.nodes_path, f"$.nodes[{index}].id", message)

    def _check_workflows(
        self, workflows: list[tuple[int, WorkflowConfig]], names: list[str], node_ids: set[str]
    ) -> None:
        duplicated = _duplicates(names)
        for index, workflow in workflows:
            path = f"$.workflows[{index}]"
            if workflow.name in duplicated:
                message = f"duplicate workflow name {workflow.name!r}; names must be unique"
                self.problem(self.workflows_path, f"{path}.name", message)
            if not workflow.steps:
                message = f"workflow {workflow.name!r} has no steps; list at least one node id"
                self.problem(self.workflows_path, f"{path}.steps", message)
            # The graph of its steps (ids, after, waits): engine/protocol.py's check, located here.
            check = ProtocolCheck(str(self.workflows_path), f"{path}.steps", node_ids)
            check.read([step.model_dump(exclude_none=True) for step in workflow.steps])
            self.problems += check.problems
            for step_index, step in enumerate(workflow.steps):
                self._check_step(f"{path}.steps[{step_index}]", step, node_ids)

    def _check_step(self, where: str, step: StepConfig, node_ids: set[str]) -> None:
        """What the graph's check leaves to the lab: the node exists, and a wait takes no node's keys."""
        if step.node is not None and step.node not in node_ids:
            known = ", ".join(sorted(node_ids)) or "none"
            self.problem(self.workflows_path, where, f"unknown node {step.node!r}; known nodes: {known}")
        if step.is_wait and (step.wait_s is not None or step.wait_until is not None):
            for key in ("args", "timeout_s", "retry"):
                if key in step.model_fields_set:
                    message = f"a wait runs on no node, so it takes no {key}: remove it"
                    self.problem(self.workflows_path, f"{where}.{key}", message)


def _select(nodes: _Indexed, hosted: Hosted) -> _Indexed:
    if hosted is ALL_NODES:
        return nodes
    if hosted is None:
        return []
    if isinstance(hosted, NodesOfWorker):
        ids = {n.id for n in nodes_of_worker([n for _, n in nodes], hosted.name)}
    else:
        ids = set(hosted)
    return [(index, node) for index, node in nodes if node.id in ids]


def _raw_ids(parsed: BaseModel | None, key: str, field: str) -> list[str]:
    """The ids as written, so a node with a bad timeout still counts as known and as a duplicate."""
    items = getattr(parsed, key, None) or []
    return [item[field] for item in items if isinstance(item, dict) and isinstance(item.get(field), str)]


def _duplicates(values: Any) -> set[str]:
    return {value for value, count in Counter(values).items() if count > 1}


def _may_be_url(error: Any) -> bool:
    value, loc = error.get("input"), error["loc"]
    if not isinstance(value, str):
        return False
    return "://" in value or (bool(loc) and (loc[-1] == "url" or loc[0] == "escalate_to"))


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
    if field == "capacity":
        return f"capacity must be a whole number of steps that may hold the node at once, got {value!r}"
    if kind in ("greater_than", "greater_than_equal") and str(field).endswith("_s"):
        return f"{field} must be a positive number of seconds, got {value!r}"
    return f"{error['msg']} (got {value!r})"
