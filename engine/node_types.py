"""The loader's check of node types: import the lab's node modules, then resolve the hosted nodes' types,
each failure located where its module was named (nodes.json, or the command line's `--module`).

A node that names its worker runs on that PC, whose vendor SDK may be installed there only. So a driver
that cannot be imported says which node, which module, what is missing, which PC the node runs on, and
the command that checks it there. The lab's view from one PC (`config check` without `--worker`) takes
such a failure as a note for that PC, not as a problem: it cannot know which PC it runs on, and the PC's
own check (`--worker`) is the one that fails on it.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from .config import NodeConfig
from .errors import ConfigProblem, NodeTypeError
from .registry import ImportFailure, import_node_specs, known_types, resolve_node_type

Indexed = list[tuple[int, NodeConfig]]  # valid nodes with their index in nodes.json


@dataclass(frozen=True)
class ModuleSpec:
    """A node module as it was named: a relative path in it is relative to `base`, and a problem with it
    is located at `file` and `path` (`$.modules[0]` of nodes.json, or `--module` of the command line)."""

    spec: str
    file: str
    path: str
    base: Path


@dataclass(frozen=True)
class CheckCommand:
    """`task-scheduler config check ... --worker NAME`, with this lab's files as they were given here."""

    nodes_path: Path
    workflows_path: Path
    modules: tuple[str, ...] = ()

    def on(self, worker: str) -> str:
        nodes, workflows = self.nodes_path, self.workflows_path
        if nodes.name == "nodes.json" and workflows == nodes.with_name("workflows.json"):
            files = f"--config {shlex.quote(str(nodes.parent))}"
        else:
            files = f"-n {shlex.quote(str(nodes))} -w {shlex.quote(str(workflows))}"
        extra = "".join(f" -m {shlex.quote(m)}" for m in self.modules)
        return f"task-scheduler config check {files}{extra} --worker {shlex.quote(worker)}"


class TypeCheck:
    """One check of the hosted nodes' types. With `lenient` (the lab's view from one PC), a driver of a
    node that runs on a named PC, failing here because something it imports is missing, is a note."""

    def __init__(self, nodes_path: Path, command: CheckCommand, lenient: bool) -> None:
        self.nodes_path = nodes_path
        self.command = command
        self.lenient = lenient
        self.problems: list[ConfigProblem] = []
        self.notes: list[ConfigProblem] = []
        self._imported: dict[tuple[str, Path], list[ImportFailure]] = {}

    def run(self, hosted: Indexed, modules: list[ModuleSpec], every: bool) -> None:
        """Import the lab's modules and the hosted nodes' own, then resolve the hosted nodes' types.

        Hosting every node, each module of the lab must import (but see `lenient`). Hosting some, a lab
        module that fails here (another PC's driver, its SDK absent) matters only to a hosted node whose
        type it leaves unresolved, and that node's problem says so. Hosting none, nothing is imported.
        """
        if not hosted and not every:
            return
        named_pcs = any(node.worker for _, node in hosted)
        failed = self._import_lab_modules(modules, every, lenient=self.lenient and named_pcs)
        deferred = [f for _, f in failed if self.lenient and named_pcs and f.missing]
        without_module = self._import_node_modules(hosted)
        explained = False
        for index, node in hosted:
            if index not in without_module:
                explained |= self._resolve(index, node, [f for _, f in failed], deferred, every)
        if deferred and not explained:
            for spec, failure in failed:
                if failure in deferred:
                    self._note(spec.file, spec.path, _unused_module_note(failure))

    def _import_lab_modules(
        self, modules: list[ModuleSpec], every: bool, lenient: bool
    ) -> list[tuple[ModuleSpec, ImportFailure]]:
        """Import the lab's modules; each failure, and, hosting every node, a problem where it was named
        (left to the nodes when lenient and only something it imports is missing here)."""
        failed = [(spec, f) for spec in modules for f in self._import(spec.spec, spec.base)]
        for spec, failure in failed:
            if every and not (lenient and failure.missing):
                self._problem(spec.file, spec.path, str(failure))
        return failed

    def _import_node_modules(self, hosted: Indexed) -> set[int]:
        """Import the hosted nodes' own modules (all before any type is resolved); the nodes whose failed."""
        failed = set()
        for index, node in hosted:
            for failure in self._import(node.module, self.nodes_path.parent) if node.module else []:
                path = f"$.nodes[{index}].module"
                if node.worker and failure.missing and self.lenient:
                    self._note(
                        str(self.nodes_path), path, self._elsewhere(node, failure.spec, failure.missing)
                    )
                elif node.worker:
                    self._problem(str(self.nodes_path), path, self._driver_problem(node, failure))
                else:
                    self._problem(str(self.nodes_path), path, str(failure))
                failed.add(index)
        return failed

    def _resolve(
        self,
        index: int,
        node: NodeConfig,
        failed: list[ImportFailure],
        deferred: list[ImportFailure],
        every: bool,
    ) -> bool:
        """Resolve a node's type; a problem (or, lenient, a note) if it does not. Whether it was a note."""
        try:
            resolve_node_type(node.type)
            return False
        except NodeTypeError as exc:
            path, missing = f"$.nodes[{index}].type", _missing_import(exc)
            if self.lenient and node.worker and missing is not None:
                module = node.type.partition(":")[0]
                self._note(str(self.nodes_path), path, self._elsewhere(node, module, missing))
                return True
            if self.lenient and node.worker and deferred and _unregistered(node):
                self._note(str(self.nodes_path), path, self._type_elsewhere(node, deferred))
                return True
            message = self._type_problem(node, exc, [] if every else failed, every)
            self._problem(str(self.nodes_path), path, message)
            return False

    def _import(self, spec: str, base: Path) -> list[ImportFailure]:
        """Import a spec once per load; what failed."""
        if (spec, base) not in self._imported:
            self._imported[spec, base] = import_node_specs([spec], base)
        return self._imported[spec, base]

    def _driver_problem(self, node: NodeConfig, failure: ImportFailure) -> str:
        """`node b1 runs on pc-2: cannot import its driver module 'drv.py': ModuleNotFoundError: ...`."""
        text = f"node {node.id} runs on {node.worker}: cannot import its driver module {failure.spec!r}: "
        return text + failure.error + self._where_to_check(node, install=True)

    def _type_problem(
        self, node: NodeConfig, exc: NodeTypeError, failed: list[ImportFailure], every: bool
    ) -> str:
        """Why a hosted node's type is unresolved: the registry's answer, or the modules that failed here;
        for a node on a named PC, with where to check it."""
        cause = exc.__cause__
        if node.worker and isinstance(cause, ImportError):
            module = node.type.partition(":")[0]
            return self._driver_problem(node, ImportFailure(module, f"{type(cause).__name__}: {cause}"))
        if failed and _unregistered(node):
            why = "; ".join(f"module {f.spec!r} could not be imported here: {f.error}" for f in failed)
            runs_on = f" (node {node.id} runs on {node.worker})" if node.worker else ""
            install = self._where_to_check(node, install=True) if node.worker else ""
            return f"node {node.id}: unknown node type {node.type!r}; {why}{runs_on}{install}"
        if every and node.worker is not None:
            return f"{exc.message} (node {node.id} runs on {node.worker}){self._where_to_check(node)}"
        return exc.message

    def _elsewhere(self, node: NodeConfig, module: str, missing: str) -> str:
        """A note: the node's driver needs something this PC does not have, as another PC's may."""
        worker = str(node.worker)
        return (
            f"node {node.id} runs on {worker}, not checked here: its driver module {module!r} cannot be "
            f"imported on this PC ({missing}); check it on {worker} with `{self.command.on(worker)}`"
        )

    def _type_elsewhere(self, node: NodeConfig, failed: list[ImportFailure]) -> str:
        modules, worker = "; ".join(f"{f.spec!r} ({f.missing})" for f in failed), str(node.worker)
        return (
            f"node {node.id} runs on {worker}, not checked here: its type {node.type!r} is in none of the "
            f"modules imported on this PC, and these could not be imported here: {modules}; check it on "
            f"{worker} with `{self.command.on(worker)}`"
        )

    def _where_to_check(self, node: NodeConfig, install: bool = False) -> str:
        worker = str(node.worker)
        if install:
            return f". On {worker}, install what it needs, then check with `{self.command.on(worker)}`"
        return f". Check it on {worker} with `{self.command.on(worker)}`"

    def _problem(self, file: str, path: str, message: str) -> None:
        self.problems.append(ConfigProblem(file, path, message))

    def _note(self, file: str, path: str, message: str) -> None:
        self.notes.append(ConfigProblem(file, path, message))


def _unregistered(node: NodeConfig) -> bool:
    return ":" not in node.type and node.type not in known_types()


def _missing_import(exc: NodeTypeError) -> str | None:
    """A dotted type's module (or one it imports) not installed here: the ImportError's message."""
    cause = exc.__cause__
    return str(cause) if isinstance(cause, ImportError) else None


def _unused_module_note(failure: ImportFailure) -> str:
    return (
        f"module {failure.spec!r} cannot be imported on this PC ({failure.missing}); every node's type was "
        "found without it, so it is another PC's to check (`config check --worker NAME` there)"
    )
