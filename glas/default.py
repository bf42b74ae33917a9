"""The seed's orchestrator over our own configuration, for the seed's routes of `task-scheduler dev` and
`task-scheduler api`: a seed client (a lab script, the Postman collection the seed shipped) works with
any lab, not only a GLAS project. It builds no driver (the API imports none): its nodes are stand-ins
that name the lab's nodes; a reload's uploads are nodes.json and workflows.json in our format, checked
as `config check` checks them and served all or nothing, as `POST /config/reload` serves the files."""

from __future__ import annotations

from typing import IO, Any, BinaryIO

from fastapi import FastAPI

from ..engine.config import LabConfig
from ..engine.loader import load_config, load_config_texts
from ..engine.seed import OrchestratorErrorCodes, OrchestratorState
from .nodes import BaseNode
from .orchestrator import BaseOrchestrator
from .workflow import Workflow


class ConfigOrchestrator(BaseOrchestrator):
    def __init__(self, app: FastAPI) -> None:
        lab: LabConfig = app.state.lab
        super().__init__(lab.nodes_file, lab.workflows_file)
        self.app = app
        self.lab_config = lab
        self._state = OrchestratorState.RUNNING
        self._shown: tuple[LabConfig, list[Any], list[Any]] | None = None

    @property
    def nodes(self) -> list[Any]:
        return self._stand_ins()[0]

    @property
    def workflows(self) -> list[Any]:
        return self._stand_ins()[1]

    def get_node_by_id(self, node_id: str) -> Any | None:
        return next((node for node in self.nodes if node.id == node_id), None)

    def get_workflow_by_name(self, name: str) -> Any | None:
        return next((w for w in self.workflows if w.name == name), None)

    def _stand_ins(self) -> tuple[list[Any], list[Any]]:
        """The lab the API serves now (a reload of ours may have replaced it), as the seed's objects."""
        lab: LabConfig = self.app.state.lab
        if self._shown is None or self._shown[0] is not lab:
            nodes = {node.id: BaseNode(node.id, node.name) for node in lab.nodes}
            workflows = [
                Workflow.of(lab.seed_workflow_id(w.name), w.name, [nodes[s.node] for s in w.steps if s.node])
                for w in lab.workflows
            ]
            self._shown = (lab, list(nodes.values()), workflows)
        return self._shown[1], self._shown[2]

    def _load_nodes(self, file: IO[bytes]) -> OrchestratorErrorCodes:
        """Not used: our loader reads both files at once (`_read`)."""
        return OrchestratorErrorCodes.OK

    def _load_workflows(self, file: IO[bytes]) -> OrchestratorErrorCodes:
        """Not used: our loader reads both files at once (`_read`)."""
        return OrchestratorErrorCodes.OK

    def _read(self, nodes_config: BinaryIO | None, workflows_config: BinaryIO | None) -> LabConfig:
        current: LabConfig = self.app.state.lab
        if nodes_config is not None and workflows_config is not None:
            return load_config_texts(nodes_config.read(), workflows_config.read(), current)
        return load_config(current.nodes_file, current.workflows_file, hosted=None)

    def _take(self, lab: LabConfig) -> None:
        self._call(lambda ops: ops.serve_lab(lab))
        self.lab_config = lab
