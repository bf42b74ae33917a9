import json
import os
from pathlib import Path

import pytest

from task_scheduler import ConfigError, build_node, load_config, load_config_dir
from task_scheduler.cli import main
from task_scheduler.engine.registry import resolve_node_type

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "seed-example"
DEMO = ROOT / "examples" / "demo-lab"
SEED_NODES = str(SEED / "src" / "nodes")


def write_lab(tmp_path: Path, nodes: object, workflows: object) -> tuple[Path, Path]:
    nodes_path, workflows_path = tmp_path / "nodes.json", tmp_path / "workflows.json"
    for path, data in ((nodes_path, nodes), (workflows_path, workflows)):
        path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2))
    return nodes_path, workflows_path


def problems_of(nodes_path: Path, workflows_path: Path, modules: list[str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(nodes_path, workflows_path, modules=modules)
    return [str(p) for p in caught.value.problems]


def seed_node(node_id: str, node_type: str = "FirstNode", **extra: object) -> dict[str, object]:
    return {"id": node_id, "name": node_id.title(), "type": node_type, **extra}


def test_load_config_seed_example_loads_unchanged() -> None:
    lab = load_config_dir(SEED)
    assert [n.id for n in lab.nodes] == ["node-1", "node-2"]
    assert [s.node for s in lab.workflow("my-workflow").steps] == ["node-1", "node-2"]
    node = build_node(lab.node("node-1"))
    assert (node.id, node.name, node.type) == ("node-1", "Node one", "FirstNode")
    assert node.run_step(None, None, "task-1", {}).status == 0


def test_load_config_demo_lab_loads() -> None:
    lab = load_config_dir(DEMO)
    assert len(lab.nodes) >= 5
    assert len(lab.workflows) >= 3
    for workflow in lab.workflows:
        assert 3 <= len(workflow.steps) <= 8
        assert all(lab.has_node(step.node) for step in workflow.steps if step.node is not None)


def test_load_config_reads_extensions(tmp_path: Path) -> None:
    node = seed_node(
        "hplc",
        worker="pc-2",
        retry={"max_attempts": 3, "initial_interval_s": 2},
        timeout_s=60,
        heartbeat_timeout_s=10,
        emulate={"duration_s": 0.5, "failure_rate": 0.1},
        properties={"port": "COM3"},
    )
    step = {"node": "hplc", "args": {"method": "fast"}, "timeout_s": 30, "retry": {"max_attempts": 2}}
    lab = load_config(
        *write_lab(tmp_path, {"nodes": [node]}, {"workflows": [{"name": "w", "steps": [step]}]}),
        modules=[SEED_NODES],
    )
    hplc = lab.node("hplc")
    assert (hplc.worker, hplc.retry.max_attempts, hplc.timeout_s) == ("pc-2", 3, 60)
    assert hplc.emulate.failure_rate == 0.1
    assert build_node(hplc).properties == {"port": "COM3"}
    only_step = lab.workflow("w").steps[0]
    assert (only_step.args, only_step.timeout_s, only_step.retry.max_attempts) == ({"method": "fast"}, 30, 2)


def test_load_config_reports_invalid_json_with_line_and_column(tmp_path: Path) -> None:
    paths = write_lab(tmp_path, '{"nodes": [\n  {"id": "x",}\n]}', {"workflows": []})
    (problem,) = problems_of(*paths)
    assert "nodes.json: line 2 column 14: invalid JSON" in problem


def test_load_config_reports_unreadable_file(tmp_path: Path) -> None:
    problems = problems_of(tmp_path / "missing.json", tmp_path / "also-missing.json")
    assert len(problems) == 2
    assert all("cannot read the file" in p for p in problems)


def test_load_config_reports_unknown_keys(tmp_path: Path) -> None:
    paths = write_lab(tmp_path, {"nodes": [seed_node("a", colour="red")], "extra": 1}, {"workflows": []})
    problems = problems_of(*paths, modules=[SEED_NODES])
    assert any("$.extra: unknown key 'extra'" in p for p in problems)


def test_load_config_reports_unknown_key_in_node(tmp_path: Path) -> None:
    paths = write_lab(tmp_path, {"nodes": [seed_node("a", colour="red")]}, {"workflows": []})
    assert problems_of(*paths, modules=[SEED_NODES]) == [
        f"{paths[0]}: $.nodes[0].colour: unknown key 'colour'; remove it or check its spelling"
    ]


def test_load_config_reports_duplicates(tmp_path: Path) -> None:
    workflows = {"workflows": [{"name": "w", "steps": ["a"]}, {"name": "w", "steps": ["a"]}]}
    paths = write_lab(tmp_path, {"nodes": [seed_node("a"), seed_node("a")]}, workflows)
    problems = problems_of(*paths, modules=[SEED_NODES])
    assert any("$.nodes[1].id: duplicate node id 'a'" in p for p in problems)
    assert any("$.workflows[1].name: duplicate workflow name 'w'" in p for p in problems)


def test_load_config_reports_unknown_step_node_and_empty_workflow(tmp_path: Path) -> None:
    workflows = {"workflows": [{"name": "w", "steps": ["a", "ghost"]}, {"name": "empty", "steps": []}]}
    paths = write_lab(tmp_path, {"nodes": [seed_node("a")]}, workflows)
    problems = problems_of(*paths, modules=[SEED_NODES])
    assert f"{paths[1]}: $.workflows[0].steps[1]: unknown node 'ghost'; known nodes: a" in problems
    assert any("$.workflows[1].steps: workflow 'empty' has no steps" in p for p in problems)


def test_load_config_reports_unresolvable_type_with_known_types(tmp_path: Path) -> None:
    paths = write_lab(tmp_path, {"nodes": [seed_node("a", "Centrifuge")]}, {"workflows": []})
    (problem,) = problems_of(*paths, modules=[SEED_NODES])
    assert "$.nodes[0].type: unknown node type 'Centrifuge'" in problem
    assert "FirstNode" in problem and "SecondNode" in problem


def test_load_config_reports_negative_timeout(tmp_path: Path) -> None:
    paths = write_lab(tmp_path, {"nodes": [seed_node("a", timeout_s=-1)]}, {"workflows": []})
    (problem,) = problems_of(*paths, modules=[SEED_NODES])
    assert "$.nodes[0].timeout_s: timeout_s must be a positive number of seconds, got -1" in problem


def test_load_config_reports_module_that_fails_to_import(tmp_path: Path) -> None:
    paths = write_lab(tmp_path, {"nodes": [], "modules": ["no_such_lab_module"]}, {"workflows": []})
    (problem,) = problems_of(*paths)
    assert "$.modules[0]: cannot import node module 'no_such_lab_module'" in problem
    assert f"no folder or .py file at {tmp_path / 'no_such_lab_module'}" in problem


def test_resolve_node_type_accepts_dotted_path() -> None:
    cls = resolve_node_type("task_scheduler.engine.nodes:BaseNode")
    assert cls.__name__ == "BaseNode"


def test_config_check_passes_on_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", "--config", str(DEMO)]) == 0
    assert (
        main(
            [
                "config",
                "check",
                "-n",
                str(SEED / "config" / "nodes.json"),
                "-w",
                str(SEED / "config" / "workflows.json"),
            ]
        )
        == 0
    )
    assert "my-workflow" in capsys.readouterr().out


def test_config_check_prints_every_located_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nodes = {"nodes": [seed_node("a", timeout_s=-5), seed_node("a", "Nope"), seed_node("b", colour=1)]}
    workflows = {"workflows": [{"name": "w", "steps": ["a", "zzz"]}]}
    nodes_path, workflows_path = write_lab(tmp_path, nodes, workflows)
    code = main(["config", "check", "-n", str(nodes_path), "-w", str(workflows_path), "-m", SEED_NODES])
    err = capsys.readouterr().err
    assert code == 1
    assert "5 problem(s)" in err
    for where in (
        "$.nodes[0].timeout_s",
        "$.nodes[1].id",
        "$.nodes[1].type",
        "$.nodes[2].colour",
        "$.workflows[0].steps[1]",
    ):
        assert where in err


SEED_CHECK = ["config", "check", "-n", "config/nodes.json", "-w", "config/workflows.json"]


@pytest.mark.parametrize("module", ["src/nodes", "./src/nodes", str(SEED / "src" / "nodes")])
def test_config_check_module_of_the_command_line_is_relative_to_the_current_folder(
    module: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(SEED)  # README's seed-layout check, typed in the project's folder

    code = main([*SEED_CHECK, "-m", module])

    assert code == 0, capsys.readouterr().err
    assert "node-1         FirstNode" in capsys.readouterr().out


def test_config_check_module_not_found_names_the_option_and_the_folder_looked_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    nodes_path, workflows_path = SEED / "config" / "nodes.json", SEED / "config" / "workflows.json"

    code = main(["config", "check", "-n", str(nodes_path), "-w", str(workflows_path), "-m", "src/nodes"])

    err = capsys.readouterr().err
    assert code == 1
    assert (
        f"command line: --module src/nodes: cannot import node module 'src/nodes': FileNotFoundError: "
        f"no such folder: {tmp_path / 'src' / 'nodes'}"
    ) in err
    assert "$.modules" not in err


def test_config_check_paths_of_the_command_line_are_relative_to_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(SEED.parent)

    by_folder = main(["config", "check", "--config", "seed-example", "-m", "seed-example/src/nodes"])
    by_files = main(
        [*(a.replace("config/", "seed-example/config/") for a in SEED_CHECK), "-m", "seed-example/src/nodes"]
    )

    assert (by_folder, by_files) == (0, 0), capsys.readouterr().err


def test_load_config_modules_in_nodes_json_stay_relative_to_that_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config").mkdir()
    nodes = {"modules": [os.path.relpath(SEED_NODES, tmp_path / "config")], "nodes": [seed_node("a")]}
    paths = write_lab(tmp_path / "config", nodes, {"workflows": [{"name": "w", "steps": ["a"]}]})
    monkeypatch.chdir(ROOT / "docs")  # anywhere but the file's folder

    lab = load_config(*paths)

    assert lab.modules == nodes["modules"]


def test_load_config_a_missing_file_is_named_with_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    problems = problems_of(Path("lab/nodes.json"), Path("lab/workflows.json"))

    looked_at = tmp_path / "lab" / "nodes.json"
    assert problems[0] == (
        f"lab/nodes.json: cannot read the file (No such file or directory: {looked_at}); check the path"
    )
