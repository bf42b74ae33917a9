"""A GLAS lab's orchestrator as the seed's README shows one (its loaders read the files they are given)
and its one kind of node: for the tests of the seed's Python surface."""

from __future__ import annotations

import json
from typing import Any

from task_scheduler.nodes.base import BaseNode
from task_scheduler.orchestrator.base import BaseOrchestrator
from task_scheduler.orchestrator.enums import OrchestratorErrorCodes
from task_scheduler.workflow.core import Workflow


class GlasLabNode(BaseNode):
    def _execute(self, src, dst, task_id, args=None):  # the seed's untyped signature
        return 0, None, None


class JsonOrchestrator(BaseOrchestrator):
    def _load_nodes(self, file: Any) -> OrchestratorErrorCodes:
        for node in json.load(file)["nodes"]:
            self._nodes.append(GlasLabNode(node["id"], node["name"]))
        return OrchestratorErrorCodes.OK

    def _load_workflows(self, file: Any) -> OrchestratorErrorCodes:
        for workflow in json.load(file)["workflows"]:
            steps = [self.get_node_by_id(node_id) for node_id in workflow["steps"]]
            self._workflows.append(Workflow(len(self._workflows), workflow["name"], steps))
        return OrchestratorErrorCodes.OK
