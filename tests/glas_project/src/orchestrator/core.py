import json
import threading
from typing import Optional

from nodes import journal
from nodes.devices import Dispenser, Hotel, Reader
from task_scheduler.database import (
    DatabaseConnector,
    DBNode,
    DBStep,
    DBTask,
    DBWorkflow,
    DBWorkflowUsageRecord,
)
from task_scheduler.nodes.base import BaseNode
from task_scheduler.orchestrator.base import BaseOrchestrator
from task_scheduler.orchestrator.enums import OrchestratorErrorCodes
from task_scheduler.task.core import Task
from task_scheduler.workflow.core import Workflow


class TracedTask(Task):
    """A task of this lab: writes each step down, before and after (the seed's task hooks)."""

    def _pre_step_execution(self, current_node, src_node, dst_node):
        journal.write(
            hook="task-pre",
            task_id=str(self.uuid),
            node=current_node.id,
            src=journal.node_id(src_node),
            dst=journal.node_id(dst_node),
        )

    def _post_step_execution(self, status, message, current_node, src_node, dst_node):
        journal.write(hook="task-post", task_id=str(self.uuid), node=current_node.id, status=status)


class MyOrchestrator(BaseOrchestrator):
    def __init__(self, nodes_path, workflows_path, emulate=False):
        super().__init__(nodes_path, workflows_path, emulate)
        self.register_start_callback(lambda: journal.write(hook="orchestrator-start"))
        self.register_stop_callback(lambda: journal.write(hook="orchestrator-stop"))

    def _find_node_by_id(self, _id: str) -> Optional[BaseNode]:
        for node in self._nodes:
            if node.id == _id:
                return node
        return None

    def _load_nodes(self, file) -> OrchestratorErrorCodes:
        db = DatabaseConnector()
        for node in json.load(file)["nodes"]:
            match node["type"]:
                case "Hotel":
                    self._nodes.append(Hotel(node["id"], node["name"]))
                case "Dispenser":
                    self._nodes.append(Dispenser(node["id"], node["name"], node["max_volume_ul"]))
                case "Reader":
                    self._nodes.append(Reader(node["id"], node["name"]))
                case _:
                    return OrchestratorErrorCodes.COULD_NOT_PARSE_CONFIGURATION
            DBNode.insert(db, node["id"], node["name"])
        return OrchestratorErrorCodes.OK

    def _load_workflows(self, file) -> OrchestratorErrorCodes:
        db = DatabaseConnector()
        for workflow in json.load(file)["workflows"]:
            steps = [self._find_node_by_id(node_id) for node_id in workflow["steps"]]
            if None in steps:
                self.logger.error("skipping workflow {}: a node was not found", workflow["name"])
                continue
            if not DBWorkflow.exists(db, workflow["name"]):
                DBWorkflow.insert(db, workflow["name"], steps[0].id, steps[-1].id)
            wf_id = DBWorkflow.get_by_name(db, workflow["name"]).id
            for position, node in enumerate(steps):
                DBStep.insert(db, wf_id, node.id, position)
            self._workflows.append(Workflow(wf_id, workflow["name"], steps))
        return OrchestratorErrorCodes.OK

    def add_task(self, workflow, args=None):
        """The lab's own task class, run in a thread of its own as the seed's tasks were."""
        db = DatabaseConnector()
        task = TracedTask(workflow, args)
        DBTask.insert(db, str(task.uuid), workflow.id, args)
        DBWorkflowUsageRecord.insert(db, workflow.id)
        journal.write(hook="add-task", task_id=str(task.uuid), workflow=workflow.name)
        thread = threading.Thread(
            name=f"task:{workflow.name}", target=task.run, args=(self._remove_finished_task,)
        )
        thread.start()
        self._running_tasks.append((thread, task))
        return task
