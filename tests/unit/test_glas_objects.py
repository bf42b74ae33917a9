"""A GLAS project's lab, built by its own code, as our configuration: every problem located in its files
(engine/objects.py), and the seed's Python surface at its import paths."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from glas_lab import JsonOrchestrator

from task_scheduler.database import DatabaseConnector, DBNode, DBStep, DBWorkflow
from task_scheduler.engine.errors import ConfigError
from task_scheduler.engine.lab_state import IntakeChange, PausedByStop, TaskIntake
from task_scheduler.engine.objects import LabObjects, lab_from_objects
from task_scheduler.engine.seed import TaskState as SeedTaskState
from task_scheduler.engine.seed import seed_task_state
from task_scheduler.engine.states import TaskState
from task_scheduler.logger import LoggingManager
from task_scheduler.nodes.base import BaseNode
from task_scheduler.orchestrator.base import BaseOrchestrator
from task_scheduler.orchestrator.enums import OrchestratorErrorCodes
from task_scheduler.parser import parse_args
from task_scheduler.workflow.core import Workflow


class ObjectsHotel(BaseNode):
    def _execute(self, src, dst, task_id, args=None):  # the seed's untyped signature
        return 0, None, None


NODES = {"nodes": [{"id": "hotel", "name": "Hotel", "type": "ObjectsHotel", "retry": {"max_attempts": 2}}]}
WORKFLOWS = {"workflows": [{"name": "store", "steps": ["hotel", "hotel"]}]}


def _objects(nodes: list[Any], workflows: list[Any], nodes_data: Any = NODES) -> LabObjects:
    return LabObjects(
        nodes=nodes,
        workflows=workflows,
        loader="LabOrchestrator",
        nodes_file="config/nodes.json",
        workflows_file="config/workflows.json",
        nodes_data=nodes_data,
        workflows_data=WORKFLOWS,
    )


def _problems(objects: LabObjects) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        lab_from_objects(objects)
    return [str(p) for p in caught.value.problems]


def test_objects_become_the_configuration_with_the_extensions_of_their_entries() -> None:
    hotel = ObjectsHotel("hotel", "Hotel")
    lab = lab_from_objects(_objects([hotel], [Workflow(7, "store", [hotel, hotel])]))

    assert [(n.id, n.name, n.type) for n in lab.nodes] == [("hotel", "Hotel", "ObjectsHotel")]
    assert lab.node("hotel").retry.max_attempts == 2  # our extension, which the lab's loader ignores
    assert [s.node for s in lab.workflow("store").steps] == ["hotel", "hotel"]
    assert lab.seed_workflow_id("store") == 7 and lab.seed_workflow_id("unknown") == -1


def test_each_problem_of_the_objects_is_located_in_the_lab_files() -> None:
    hotel, again = ObjectsHotel("hotel", "Hotel"), ObjectsHotel("hotel", "Second hotel")
    stray = ObjectsHotel("stray", "Built outside the loader")
    workflows = [Workflow(1, "store", [hotel, stray]), Workflow.of(2, "empty", []), "not a workflow"]

    problems = _problems(_objects([hotel, again, "a string"], workflows))

    assert problems == [
        "config/nodes.json: $.nodes[0].id: duplicate node id 'hotel': the loader built two nodes with it; "
        "ids are unique",
        "config/nodes.json: $.nodes[0].id: duplicate node id 'hotel': the loader built two nodes with it; "
        "ids are unique",
        "config/nodes.json: LabOrchestrator._load_nodes, nodes[2]: str 'a string' is not a node: _load_nodes "
        "must append BaseNode objects (from task_scheduler.nodes.base import BaseNode)",
        "config/workflows.json: $.workflows[0].steps[1]: workflow 'store', step 2: stray is not one of the "
        "loaded nodes (hotel); build the steps from the nodes _load_nodes appended (self._nodes)",
        "config/workflows.json: LabOrchestrator._load_workflows, workflows[1].steps: workflow 'empty' has no "
        "steps",
        "config/workflows.json: LabOrchestrator._load_workflows, workflows[2]: str 'not a workflow' is not a "
        "workflow: _load_workflows must append Workflow objects (from task_scheduler.workflow.core import "
        "Workflow) with a name and steps",
    ]


def test_a_bad_extension_in_nodes_json_is_located_at_its_key() -> None:
    data = {"nodes": [{"id": "hotel", "name": "Hotel", "type": "X", "timeout_s": -1}]}

    problems = _problems(_objects([ObjectsHotel("hotel", "Hotel")], [], data))

    assert problems == [
        "config/nodes.json: $.nodes[0].timeout_s: Input should be greater than 0 (got -1)",
    ]


def _files(folder: Path, nodes: Any = NODES, workflows: Any = WORKFLOWS) -> tuple[str, str]:
    (folder / "nodes.json").write_text(json.dumps(nodes))
    (folder / "workflows.json").write_text(json.dumps(workflows))
    return str(folder / "nodes.json"), str(folder / "workflows.json")


def test_orchestrator_loads_the_files_through_the_labs_loaders(tmp_path: Path) -> None:
    orchestrator = JsonOrchestrator(*_files(tmp_path))

    assert orchestrator.load_config() is OrchestratorErrorCodes.OK
    assert orchestrator.lab_config is not None
    assert [w.name for w in orchestrator.lab_config.workflows] == ["store"]
    assert orchestrator.get_workflow_by_name("store").steps[0] is orchestrator.get_node_by_id("hotel")


def test_a_load_that_fails_changes_nothing_and_says_where(tmp_path: Path) -> None:
    orchestrator = JsonOrchestrator(*_files(tmp_path))
    assert orchestrator.load_config() is OrchestratorErrorCodes.OK
    loaded = (list(orchestrator.nodes), list(orchestrator.workflows), orchestrator.lab_config)
    broken = {"workflows": [{"name": "store", "steps": ["hotel", "nowhere"]}]}

    code = orchestrator.load_config(
        io.BytesIO(json.dumps(NODES).encode()), io.BytesIO(json.dumps(broken).encode())
    )

    assert code is OrchestratorErrorCodes.COULD_NOT_PARSE_CONFIGURATION
    assert (orchestrator.nodes, orchestrator.workflows, orchestrator.lab_config) == loaded
    assert orchestrator.problems is not None
    assert (
        "workflows.json (uploaded): $.workflows[0].steps[1]: workflow 'store', step 2: None is not one of "
        "the loaded nodes (hotel)" in orchestrator.problems.message
    )


def test_a_missing_file_is_the_seeds_could_not_find_configuration(tmp_path: Path) -> None:
    orchestrator = JsonOrchestrator(str(tmp_path / "none.json"), str(tmp_path / "none.json"))

    assert orchestrator.load_config() is OrchestratorErrorCodes.COULD_NOT_FIND_CONFIGURATION
    assert orchestrator.problems is not None and "cannot read the file" in orchestrator.problems.message


def test_readme_and_seed_constructor_signatures_both_set_emulate(tmp_path: Path) -> None:
    nodes, workflows = _files(tmp_path)
    assert JsonOrchestrator(nodes, workflows, True)._emulate is True  # the seed's (nodes, workflows, emulate)
    assert (
        JsonOrchestrator(nodes, workflows, True, False)._emulate is False
    )  # README's (..., verbose, emulate)
    assert JsonOrchestrator(nodes, workflows)._emulate is False


def test_workflow_of_the_seed_needs_two_steps() -> None:
    hotel = ObjectsHotel("hotel", "Hotel")
    with pytest.raises(ValueError, match="has 1 step"):
        Workflow(0, "short", [hotel])
    assert Workflow(0, "pair", [hotel, hotel]).serialize().source.id == "hotel"


def test_parse_args_gives_the_seeds_names_and_defaults() -> None:
    args = parse_args(["-p", "3000", "-vl"])
    assert (args.port, args.verbose, args.logs, args.emulate, args.debug) == (3000, True, True, False, False)
    assert (args.path_to_nodes, args.path_to_workflows) == ("./config/nodes.json", "./config/workflows.json")


def test_database_classes_are_harmless_and_consistent() -> None:
    db = DatabaseConnector()
    DBNode.insert(db, "objects-hotel", "Hotel")
    if not DBWorkflow.exists(db, "objects-store"):
        DBWorkflow.insert(db, "objects-store", "objects-hotel", "objects-hotel")
    workflow_id = DBWorkflow.get_by_name(db, "objects-store").id
    DBStep.insert(db, workflow_id, "objects-hotel", 0)

    assert db.is_connected() and db.cursor is None
    assert DBWorkflow.get_by_id(db, workflow_id).name == "objects-store"
    assert BaseOrchestrator.get_steps(workflow_id) == [{"position": 0, "name": "Hotel"}]
    with pytest.raises(LookupError, match="no workflow 'nowhere' was inserted"):
        DBWorkflow.get_by_name(db, "nowhere")


def test_logging_manager_binds_an_app_name_once_per_id() -> None:
    first = LoggingManager.get_logger("objects-test", app="First")
    assert LoggingManager.get_logger("objects-test", app="Second") is first


@pytest.mark.parametrize(
    ("ours", "pause_requested", "seed"),
    [
        (TaskState.PENDING, False, SeedTaskState.PENDING),
        (TaskState.ACTIVE, False, SeedTaskState.ACTIVE),
        (TaskState.ACTIVE, True, SeedTaskState.PAUSED),  # the seed said PAUSED the moment it was asked
        (TaskState.PAUSED, False, SeedTaskState.PAUSED),
        (TaskState.FINISHED, False, SeedTaskState.FINISHED),
        (TaskState.ERROR, False, SeedTaskState.ERROR),
        (TaskState.CANCELLED, False, SeedTaskState.ERROR),  # ended unfinished, as the seed's stop left tasks
    ],
)
def test_our_task_states_are_the_seeds_task_state_ids(
    ours: TaskState, pause_requested: bool, seed: SeedTaskState
) -> None:
    assert seed_task_state(ours, pause_requested) is seed
    assert [s.value for s in SeedTaskState] == [1, 2, 3, 4, 5]


class RaisingOrchestrator(JsonOrchestrator):
    def _load_nodes(self, file: Any) -> OrchestratorErrorCodes:
        return {"nodes": []}["missing"]  # type: ignore[no-any-return]


class RefusingOrchestrator(JsonOrchestrator):
    def _load_workflows(self, file: Any) -> OrchestratorErrorCodes:
        return OrchestratorErrorCodes.COULD_NOT_FIND_CONFIGURATION


def test_a_loader_that_raises_or_refuses_is_a_located_problem_not_a_traceback(tmp_path: Path) -> None:
    raising, refusing = RaisingOrchestrator(*_files(tmp_path)), RefusingOrchestrator(*_files(tmp_path))

    assert raising.load_config() is OrchestratorErrorCodes.COULD_NOT_PARSE_CONFIGURATION
    assert refusing.load_config() is OrchestratorErrorCodes.COULD_NOT_FIND_CONFIGURATION
    assert raising.problems is not None and refusing.problems is not None
    assert f"{tmp_path}/nodes.json: RaisingOrchestrator._load_nodes raised KeyError: 'missing'" in (
        raising.problems.message
    )
    assert (
        f"{tmp_path}/workflows.json: RefusingOrchestrator._load_workflows returned "
        in refusing.problems.message
    )
    assert raising.lab_config is refusing.lab_config is None


def test_a_stop_remembers_what_it_paused_unless_a_start_came_first() -> None:
    t0 = datetime(2026, 12, 7, tzinfo=UTC)
    intake = TaskIntake()
    stop = intake.change(IntakeChange(accepting=False, by="ana"), t0)
    assert stop.before.accepting and stop.changed_at == t0
    assert intake.note_paused(PausedByStop(task_ids=["t1"], changed_at=t0))
    start = intake.change(IntakeChange(accepting=True, by="ben"), t0 + timedelta(seconds=1))
    assert start.before.paused == ["t1"] and intake.accepting and intake.paused == []

    again = intake.change(IntakeChange(accepting=False), t0 + timedelta(seconds=2))
    intake.change(IntakeChange(accepting=True), t0 + timedelta(seconds=3))  # a start before the pauses
    late = PausedByStop(task_ids=["t2"], changed_at=again.changed_at)
    assert not intake.note_paused(late)  # the stop then resumes t2 itself
    assert intake.accepting and intake.paused == []
