"""The package's imports go one way: each part imports only the parts below it, and no module imports
one that imports it back (at any depth, a function-local import included). The picture is in
docs/architecture.md; this test is what keeps it true."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2]
NAME = "task_scheduler"
SKIPPED = {"tests", "bench", "examples", "docs", "deploy"}

# The picture of docs/architecture.md, top line first: a part imports only parts on the lines below it.
LINES: list[set[str]] = [
    {"cli"},
    {"base", "orchestrator", "workflow", "task", "logger", "parser", "database", "nodes"},  # the seed's paths
    {"glas"},
    {"devstack"},
    {"api", "worker"},
    {"client", "devserver"},
    {"workflows", "activities"},
    {"readers"},
    {"settings", "lifecycle", "devhook", "devstate", "ports"},
    {"engine"},
]
ABOVE_ALL = {"", "__main__"}  # the package's face (it exports the driver contract) and `python -m`


def modules(root: Path) -> dict[str, Path]:
    found = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if not any(part in SKIPPED or part.startswith(".") for part in parts):
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Our modules that `name` imports, anywhere in it (a function's body, TYPE_CHECKING blocks)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)] + (node.module or "").split(".")
            stem = ".".join(p for p in base if p)
            targets |= {f"{stem}.{alias.name}".strip(".") for alias in node.names} | {stem}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(NAME):
            stem = node.module.removeprefix(NAME).strip(".")  # type: ignore[union-attr]
            targets |= {f"{stem}.{alias.name}".strip(".") for alias in node.names} | {stem}
        elif isinstance(node, ast.Import):
            targets |= {a.name.removeprefix(NAME).strip(".") for a in node.names if a.name.startswith(NAME)}
    return {_known(target, known) for target in targets} - {"", name}


def _known(target: str, known: dict[str, Path]) -> str:
    """The module a dotted name lands in (`engine.ledger.EndUse` is in `engine.ledger`)."""
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target


def graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    known = modules(root)
    return {name: imported(name, path, known) for name, path in known.items()}


def circle(edges: dict[str, set[str]]) -> list[str] | None:
    try:
        tuple(graphlib.TopologicalSorter(edges).static_order())
    except graphlib.CycleError as found:
        return list(found.args[1])
    return None


def part(module: str) -> str:
    return module.split(".")[0]


def test_the_walk_sees_the_package() -> None:
    edges = graph()
    assert len(edges) > 100
    assert "engine.ledger" in edges["workflows.node"]  # a relative import inside a function's block
    assert "engine.contracts" in edges["activities.steps"]


def test_no_module_imports_one_that_imports_it_back() -> None:
    found = circle(graph())
    assert found is None, f"an import circle: {' -> '.join(found or [])}"


def line_of(name: str) -> int:
    return next(i for i, parts in enumerate(LINES) if part(name) in parts)


def test_every_part_has_its_line_in_the_picture() -> None:
    placed = set().union(*LINES) | ABOVE_ALL
    assert not {part(name) for name in graph()} - placed, "place the new part in LINES and in the picture"


def test_each_part_imports_only_the_parts_below_it() -> None:
    upward = sorted(
        f"{module} imports {target}"
        for module, targets in graph().items()
        if part(module) not in ABOVE_ALL
        for target in targets
        if part(target) != part(module) and line_of(target) <= line_of(module)
    )
    assert not upward, upward


def test_routers_reach_temporal_only_through_the_services() -> None:
    """A router turns HTTP into a call of api/services/ and back; only the services talk to Temporal."""
    edges = graph()
    routers = [name for name in edges if name.startswith("api.routers.")]
    assert routers
    reaching = [
        f"{r} imports {t}" for r in routers for t in edges[r] if part(t) in {"workflows", "client", "readers"}
    ]
    reaching += [
        f"{r} imports {m}" for r in routers for m in third_party(modules(PACKAGE)[r]) if m == "temporalio"
    ]
    assert not reaching, reaching


def third_party(path: Path) -> set[str]:
    """The top-level names of the modules `path` imports from outside the package."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and not node.level:
            found.add((node.module or "").split(".")[0])
        elif isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
    return found


def test_no_module_imports_a_private_name_of_another() -> None:
    """A leading underscore says "mine": a module that needs it elsewhere makes it public first. (The
    SDK's own private names are another matter: workflows/patches.py says why it reads one.)"""
    private = []
    for name, path in modules(PACKAGE).items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            ours = isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith(NAME))
            if isinstance(node, ast.ImportFrom) and ours:
                hidden = [alias.name for alias in node.names if alias.name.startswith("_")]
                private += [f"{name} imports {hidden_name}" for hidden_name in hidden]
    assert not private, private


def test_a_circle_closed_inside_a_function_is_found(tmp_path: Path) -> None:
    """The circle this package once had: three modules, the last import inside a function."""
    (tmp_path / "steps").mkdir()
    (tmp_path / "steps" / "__init__.py").write_text("")
    (tmp_path / "steps" / "run.py").write_text("from ..ledger import Ledger\n")
    (tmp_path / "ledger.py").write_text(f"from {NAME}.ops import restart\nLedger = 1\n")
    (tmp_path / "ops.py").write_text("def restart():\n    from .steps.run import go\n")
    assert circle(graph(tmp_path)) is not None
    (tmp_path / "ops.py").write_text("def restart():\n    pass\n")
    assert circle(graph(tmp_path)) is None
