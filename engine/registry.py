"""Node types: import the lab's node modules, then resolve a `type` to a BaseNode subclass."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import NodeTypeError
from .nodes import BaseNode, hook_problems


@dataclass(frozen=True)
class ImportFailure:
    """A node module that could not be imported in this process, and why."""

    spec: str
    error: str  # "ModuleNotFoundError: No module named 'acc_vendor_sdk'"
    # The module was found, but something it imports is not installed here (another PC's vendor SDK):
    # the ImportError's message, "No module named 'acc_vendor_sdk'". None for any other failure.
    missing: str | None = None

    def __str__(self) -> str:
        return f"cannot import node module {self.spec!r}: {self.error}"


def import_node_modules(specs: list[str], base_dir: Path | None = None) -> list[str]:
    """Import every module that defines nodes; return one message per module that failed."""
    return [str(failure) for failure in import_node_specs(specs, base_dir)]


def import_node_specs(specs: list[str], base_dir: Path | None = None) -> list[ImportFailure]:
    """Import every module that defines nodes; return what failed. A failing file of a folder does not
    stop the others (a lab's folder may hold another PC's driver, whose SDK is not installed here).

    A spec is a dotted module name (`mylab.nodes`), or a path to a `.py` file or to a folder of them
    (it ends in `.py` or holds a `/`), relative to `base_dir` when not absolute: the folder of the file
    that names it, or the current folder for the command line's.
    """
    failures = []
    for spec in specs:
        base = base_dir or Path.cwd()
        try:
            targets = _targets(spec, base)
        except FileNotFoundError as exc:
            failures.append(ImportFailure(spec, f"FileNotFoundError: {exc}"))
            continue
        for shown, target in targets:
            try:
                _import_target(target)
            except Exception as exc:  # a user's module may raise anything while importing
                failures.append(_failure(shown, target, exc, base))
    return failures


def _targets(spec: str, base_dir: Path) -> list[tuple[str, Path | str]]:
    """What a spec imports: its files (each shown as the spec, or `folder/file.py`), or a module name."""
    path = _path_of(spec, base_dir)
    if not (_is_path(spec) or path.is_dir()):
        return [(spec, spec)]
    if not path.exists():
        raise FileNotFoundError(f"no such {'file' if spec.endswith('.py') else 'folder'}: {path}")
    if not path.is_dir():
        return [(spec, path)]
    files = [f for f in sorted(path.glob("*.py")) if f.name != "__init__.py"]
    return [(f"{spec.rstrip('/')}/{f.name}", f) for f in files]


def _is_path(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec or "\\" in spec


def _path_of(spec: str, base_dir: Path) -> Path:
    return Path(spec) if Path(spec).is_absolute() else (base_dir / spec).absolute()


def _failure(shown: str, target: Path | str, exc: Exception, base_dir: Path) -> ImportFailure:
    """Why a target did not import: its own module not found (said with where it was looked for), or a
    package it imports not installed here (`missing`), or any other error its code raised (an
    ImportError of a name that does not exist is the code's own: it fails on every PC)."""
    error = f"{type(exc).__name__}: {exc}"
    if not isinstance(exc, ModuleNotFoundError):  # a bad name imported, a syntax error: the code's own
        return ImportFailure(shown, error)
    if isinstance(target, str) and _names_itself(target, exc):
        where = _path_of(target, base_dir)
        return ImportFailure(
            shown,
            f"{error}: no module {target!r} on the Python path, and no folder or .py file at {where}",
        )
    return ImportFailure(shown, error, missing=str(exc))


def _names_itself(module: str, exc: ModuleNotFoundError) -> bool:
    """The module not found is the one asked for (or a package above it), not one that it imports."""
    return exc.name is not None and (module == exc.name or module.startswith(f"{exc.name}."))


def _import_target(target: Path | str) -> None:
    if isinstance(target, Path):
        _import_file(target)
    else:
        importlib.import_module(target)


def _import_file(file: Path) -> None:
    """Import a node file as a module of its folder, so its own relative imports keep working."""
    folder = file.parent.resolve()
    if (folder / "__init__.py").exists():
        root, name = str(folder.parent), f"{folder.name}.{file.stem}"
    else:
        root, name = str(folder), file.stem
    if root not in sys.path:
        sys.path.insert(0, root)
    importlib.import_module(name)


def known_types() -> list[str]:
    return sorted(BaseNode.registry)


def resolve_node_type(type_name: str) -> type[BaseNode]:
    """`package.module:Class`, or a class name registered by importing the lab's node modules; a class
    whose hooks cannot take the seed's arguments is refused (see `hook_problems`)."""
    cls = _resolve(type_name)
    problems = hook_problems(cls)
    if problems:
        raise NodeTypeError(f"node type {type_name!r}: " + "; ".join(problems))
    return cls


def _resolve(type_name: str) -> type[BaseNode]:
    if ":" in type_name:
        return _resolve_dotted(type_name)
    candidates = BaseNode.registry.get(type_name, [])
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        paths = ", ".join(f"{c.__module__}:{c.__qualname__}" for c in candidates)
        raise NodeTypeError(f"node type {type_name!r} is ambiguous ({paths}): use a dotted path")
    known = ", ".join(known_types()) or "none (no node module was imported)"
    raise NodeTypeError(
        f"unknown node type {type_name!r}; known types: {known}. Name the module that defines it (the "
        "node's `module`, `modules` in nodes.json, or --module), or use a dotted path `package.module:Class`"
    )


def _resolve_dotted(type_name: str) -> type[BaseNode]:
    module_name, _, class_name = type_name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise NodeTypeError(f"node type {type_name!r}: cannot import {module_name!r}: {exc}") from exc
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, BaseNode)):
        raise NodeTypeError(f"node type {type_name!r}: {class_name!r} is not a BaseNode subclass")
    return cls
