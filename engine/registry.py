"""Node types: import the lab's node modules, then resolve a `type` to a BaseNode subclass."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from .errors import NodeTypeError
from .nodes import BaseNode


def import_node_modules(specs: list[str], base_dir: Path | None = None) -> list[str]:
    """Import every module that defines nodes; return one message per module that failed.

    A spec is a dotted module name (`mylab.nodes`), or a path to a `.py` file or to a folder of them,
    relative to `base_dir` (the configuration's folder) when not absolute.
    """
    errors = []
    for spec in specs:
        try:
            _import_spec(spec, base_dir or Path.cwd())
        except Exception as exc:  # a user's module may raise anything while importing
            errors.append(f"cannot import node module {spec!r}: {type(exc).__name__}: {exc}")
    return errors


def _import_spec(spec: str, base_dir: Path) -> None:
    path = Path(spec) if Path(spec).is_absolute() else base_dir / spec
    if spec.endswith(".py") or path.is_dir():
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist")
        for file in sorted(path.glob("*.py")) if path.is_dir() else [path]:
            if file.name != "__init__.py":
                _import_file(file)
        return
    importlib.import_module(spec)


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
    """`package.module:Class`, or a class name registered by importing the lab's node modules."""
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
        f"unknown node type {type_name!r}; known types: {known}. Name the module that defines it "
        "(`modules` in nodes.json or --module), or use a dotted path `package.module:Class`"
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
