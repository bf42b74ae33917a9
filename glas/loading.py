"""A GLAS project's loaders run on its files: the files of `-n`/`-w` (or a reload's uploads) handed to
its `_load_nodes` and `_load_workflows` as open binary files, as the seed handed them; what they build
checked as our configuration (engine/objects.py), each problem located; a loader that raises, or
returns an error code, is a problem of its own."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol

from ..engine.config import LabConfig
from ..engine.errors import ConfigError, ConfigProblem
from ..engine.objects import LabObjects, lab_from_objects
from ..engine.seed import OrchestratorErrorCodes

Codes = OrchestratorErrorCodes
log = logging.getLogger("task_scheduler.app.Orchestrator")


class Loaders(Protocol):
    """What of an orchestrator its loaders' run uses (glas/orchestrator.py's BaseOrchestrator)."""

    _nodes_path: str
    _workflows_path: str
    _nodes: list[Any]
    _workflows: list[Any]
    lab_config: LabConfig | None

    def _load_nodes(self, file: IO[bytes]) -> OrchestratorErrorCodes: ...

    def _load_workflows(self, file: IO[bytes]) -> OrchestratorErrorCodes: ...


class LoaderConfigError(ConfigError):
    """A lab loader's problems, with the seed's code that says which kind."""

    def __init__(self, problems: list[ConfigProblem], code: Codes) -> None:
        super().__init__(problems)
        self.code = code


def read_lab(
    orchestrator: Loaders, nodes_config: BinaryIO | None, workflows_config: BinaryIO | None
) -> LabConfig:
    """Run the orchestrator's loaders (they fill its `_nodes` and `_workflows`) and check what they built."""
    nodes_file, nodes_name = _opened(nodes_config, orchestrator._nodes_path, "nodes.json (uploaded)")
    workflows_file, workflows_name = _opened(
        workflows_config, orchestrator._workflows_path, "workflows.json (uploaded)"
    )
    try:
        nodes_data, workflows_data = _json(nodes_file), _json(workflows_file)
        orchestrator._nodes.clear()
        _run_loader(orchestrator, orchestrator._load_nodes, nodes_file, nodes_name)
        orchestrator._workflows.clear()
        _run_loader(orchestrator, orchestrator._load_workflows, workflows_file, workflows_name)
    finally:
        nodes_file.close()
        workflows_file.close()
    objects = LabObjects(
        nodes=list(orchestrator._nodes),
        workflows=list(orchestrator._workflows),
        loader=type(orchestrator).__name__,
        nodes_file=nodes_name,
        workflows_file=workflows_name,
        nodes_data=nodes_data,
        workflows_data=workflows_data,
    )
    return lab_from_objects(objects, base=orchestrator.lab_config)


def _run_loader(
    orchestrator: Loaders, loader: Callable[[IO[bytes]], Any], file: IO[bytes], name: str
) -> None:
    where = f"{type(orchestrator).__name__}.{loader.__name__}"
    try:
        code = loader(file)
    except Exception as exc:  # the lab's code: any error is a problem of its configuration
        log.exception("%s raised", where)
        message = f"{where} raised {type(exc).__name__}: {exc} (the traceback is in the log)"
        problem = ConfigProblem(name, "", message)
        raise LoaderConfigError([problem], Codes.COULD_NOT_PARSE_CONFIGURATION) from exc
    if isinstance(code, Codes) and code is not Codes.OK:
        message = f"{where} returned {code.name}"
        raise LoaderConfigError([ConfigProblem(name, "", message)], code)


def _opened(given: BinaryIO | None, path: str, upload_name: str) -> tuple[IO[bytes], str]:
    if given is not None:
        return given, upload_name
    try:
        file = io.BytesIO(Path(path).read_bytes())
    except OSError as exc:
        problem = ConfigProblem(path, "", f"cannot read the file ({exc.strerror or exc}); check -n and -w")
        raise LoaderConfigError([problem], Codes.COULD_NOT_FIND_CONFIGURATION) from exc
    file.name = path  # as an open file's
    return file, path


def _json(file: IO[bytes]) -> Any:
    """The file as JSON if it is (to locate problems), read and rewound for the lab's loader."""
    try:
        return json.loads(file.read())
    except (ValueError, UnicodeDecodeError):
        return None
    finally:
        file.seek(0)
