"""A lab on several PCs: each process resolves the types of the nodes it hosts only (and imports only
their driver modules), and every node of a lab with named workers has one."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from task_scheduler import ConfigError, load_config
from task_scheduler.cli import build_parser, main
from task_scheduler.cli.stack import runs_workflows
from task_scheduler.engine.config import NodeConfig, driver_digest
from task_scheduler.engine.errors import UnknownWorkerError
from task_scheduler.engine.loader import NodesOfWorker

MISSING_SDK = "acc_vendor_sdk_not_installed"


def driver_file(folder: Path, class_name: str, needs_missing_sdk: bool = False) -> str:
    """A node module defining `class_name`; with `needs_missing_sdk` it imports an SDK absent here.
    Module and class names are unique per test: imported modules stay in sys.modules."""
    module = f"drv_{class_name.lower()}"
    lines = ["from task_scheduler import BaseNode", ""]
    if needs_missing_sdk:
        lines.insert(0, f"import {MISSING_SDK}")
    lines += [f"class {class_name}(BaseNode):", "    def _execute(self, src, dst, task_id, args=None):"]
    lines += ["        return 0, None, None", ""]
    (folder / f"{module}.py").write_text("\n".join(lines))
    return f"{module}.py"


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def write(folder: Path, nodes: list[dict[str, Any]], **top: Any) -> tuple[Path, Path]:
    nodes_path, workflows_path = folder / "nodes.json", folder / "workflows.json"
    nodes_path.write_text(json.dumps({"nodes": nodes, **top}))
    steps = [n["id"] for n in nodes if isinstance(n.get("id"), str)]
    workflows_path.write_text(json.dumps({"workflows": [{"name": "w", "steps": steps}]}))
    return nodes_path, workflows_path


def node(node_id: str, node_type: str, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "name": node_id, "type": node_type, **extra}


def problems(paths: tuple[Path, Path], **options: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(*paths, **options)
    return [str(p) for p in caught.value.problems]


@pytest.fixture
def two_pcs(tmp_path: Path) -> tuple[tuple[Path, Path], str, str]:
    """a1 on pc-1 (its driver imports here), b1 on pc-2 (its driver needs an SDK only pc-2 has); both
    modules in the top-level `modules` list. Returns the files and the two type names."""
    arm, pump = unique("Arm"), unique("Pump")
    modules = [driver_file(tmp_path, arm), driver_file(tmp_path, pump, needs_missing_sdk=True)]
    nodes = [node("a1", arm, worker="pc-1"), node("b1", pump, worker="pc-2")]
    return write(tmp_path, nodes, modules=modules), arm, pump


def test_load_config_hosting_nothing_imports_no_driver_module(tmp_path: Path) -> None:
    arm, pump = unique("Arm"), unique("Pump")
    modules = [driver_file(tmp_path, arm), driver_file(tmp_path, pump, needs_missing_sdk=True)]
    nodes = [node("a1", arm), node("b1", pump), node("c1", "no.such.package:Class")]
    paths = write(tmp_path, nodes, modules=modules)

    lab = load_config(*paths, hosted=None)

    assert [n.id for n in lab.nodes] == ["a1", "b1", "c1"]
    assert modules[0].removesuffix(".py") not in sys.modules
    load_config(*paths, hosted={"a1"})
    assert modules[0].removesuffix(".py") in sys.modules


def test_load_config_hosting_a_worker_s_nodes_ignores_the_other_pc_s_failing_module(
    two_pcs: tuple[tuple[Path, Path], str, str],
) -> None:
    paths, _, _ = two_pcs

    lab = load_config(*paths, hosted=NodesOfWorker("pc-1"))

    assert [n.id for n in lab.nodes_of_worker("pc-1")] == ["a1"]


def test_load_config_unresolved_hosted_type_names_the_node_and_the_import_error(
    two_pcs: tuple[tuple[Path, Path], str, str],
) -> None:
    paths, _, pump = two_pcs
    module = f"drv_{pump.lower()}.py"

    (problem,) = problems(paths, hosted=NodesOfWorker("pc-2"))

    assert problem == (
        f"{paths[0]}: $.nodes[1].type: node b1: unknown node type {pump!r}; module {module!r} could not "
        f"be imported here: ModuleNotFoundError: No module named {MISSING_SDK!r} (node b1 runs on pc-2). "
        f"On pc-2, install what it needs, then check with `task-scheduler config check --config "
        f"{paths[0].parent} --worker pc-2`"
    )


def test_load_config_full_view_reports_the_failing_module_and_where_to_check_the_node(
    two_pcs: tuple[tuple[Path, Path], str, str],
) -> None:
    paths, _, pump = two_pcs

    found = problems(paths)

    assert len(found) == 2
    assert f"$.modules[1]: cannot import node module 'drv_{pump.lower()}.py'" in found[0]
    assert "$.nodes[1].type" in found[1] and "(node b1 runs on pc-2)" in found[1]
    assert f"task-scheduler config check --config {paths[0].parent} --worker pc-2" in found[1]


def test_load_config_hosting_node_ids_resolves_only_theirs(
    two_pcs: tuple[tuple[Path, Path], str, str],
) -> None:
    paths, _, _ = two_pcs

    assert load_config(*paths, hosted={"a1"}).has_node("b1")
    assert "$.nodes[1].type" in problems(paths, hosted={"a1", "b1"})[0]


def test_load_config_node_module_is_imported_only_where_the_node_is_hosted(tmp_path: Path) -> None:
    arm, pump = unique("Arm"), unique("Pump")
    arm_module = driver_file(tmp_path, arm)
    pump_module = driver_file(tmp_path, pump, needs_missing_sdk=True)
    nodes = [node("a1", arm, worker="pc-1", module=arm_module)]
    nodes.append(node("b1", pump, worker="pc-2", module=pump_module))
    paths = write(tmp_path, nodes)

    lab = load_config(*paths, hosted=NodesOfWorker("pc-1"))
    (problem,) = problems(paths, hosted=NodesOfWorker("pc-2"))

    assert lab.node("b1").module == pump_module
    assert problem.startswith(
        f"{paths[0]}: $.nodes[1].module: node b1 runs on pc-2: cannot import its driver module "
        f"{pump_module!r}: ModuleNotFoundError: No module named {MISSING_SDK!r}. On pc-2, install what it "
        "needs"
    )


def test_load_config_dotted_type_is_imported_only_where_the_node_is_hosted(tmp_path: Path) -> None:
    arm = unique("Arm")
    nodes = [node("a1", arm, worker="pc-1"), node("b1", f"{MISSING_SDK}.pumps:Pump", worker="pc-2")]
    paths = write(tmp_path, nodes, modules=[driver_file(tmp_path, arm)])

    load_config(*paths, hosted=NodesOfWorker("pc-1"))
    (problem,) = problems(paths, hosted=NodesOfWorker("pc-2"))

    assert (
        f"$.nodes[1].type: node b1 runs on pc-2: cannot import its driver module '{MISSING_SDK}.pumps'"
        in problem
    )


def test_load_config_a_failing_file_of_a_node_folder_does_not_hide_the_others(tmp_path: Path) -> None:
    folder = tmp_path / "nodes"
    folder.mkdir()
    arm, pump = unique("Arm"), unique("Pump")
    driver_file(folder, pump, needs_missing_sdk=True)
    driver_file(folder, arm)
    paths = write(tmp_path, [node("a1", arm, worker="pc-1"), node("b1", pump, worker="pc-2")])

    lab = load_config(*paths, hosted=NodesOfWorker("pc-1"))

    assert lab.modules == ["nodes"]


def test_load_config_with_named_workers_reports_each_node_naming_none(tmp_path: Path) -> None:
    arm = unique("Arm")
    nodes = [node("a1", arm, worker="pc-1"), node("a2", arm), node("a3", arm, worker="pc-2"), node("a4", arm)]
    paths = write(tmp_path, nodes, modules=[driver_file(tmp_path, arm)])

    found = problems(paths, hosted=None)

    assert [p.split(": ")[1] for p in found] == ["$.nodes[1].worker", "$.nodes[3].worker"]
    assert "node 'a2' names no worker, while other nodes do (pc-1, pc-2)" in found[0]
    assert '"default_worker"' in found[0]


def test_load_config_default_worker_hosts_the_nodes_naming_none(tmp_path: Path) -> None:
    arm = unique("Arm")
    nodes = [node("a1", arm), node("b1", arm, worker="pc-2")]
    paths = write(tmp_path, nodes, modules=[driver_file(tmp_path, arm)], default_worker="pc-1")

    lab = load_config(*paths)

    assert (lab.node("a1").worker, lab.default_worker) == ("pc-1", "pc-1")
    assert [n.id for n in lab.nodes_of_worker("pc-1")] == ["a1"]
    assert [n.id for n in lab.nodes_of_worker("pc-2")] == ["b1"]
    assert [n.id for n in lab.nodes_of_worker(None)] == ["a1", "b1"]
    assert lab.worker_names() == ["pc-1", "pc-2"]


def test_nodes_of_worker_in_a_one_pc_lab_is_every_node_whatever_the_name(tmp_path: Path) -> None:
    arm = unique("Arm")
    paths = write(tmp_path, [node("a1", arm), node("a2", arm)], modules=[driver_file(tmp_path, arm)])

    lab = load_config(*paths, hosted=NodesOfWorker("bench-pc"))

    assert [n.id for n in lab.nodes_of_worker("bench-pc")] == ["a1", "a2"]
    assert lab.worker_names() == []
    lab.check_worker("bench-pc")  # no named worker: any name hosts every node


def test_check_worker_refuses_a_name_no_node_names(two_pcs: tuple[tuple[Path, Path], str, str]) -> None:
    lab = load_config(*two_pcs[0], hosted=None)

    with pytest.raises(UnknownWorkerError) as caught:
        lab.check_worker("pc-3")

    assert "no node names worker 'pc-3'; workers in nodes.json: pc-1, pc-2" in caught.value.message


def test_driver_digest_changes_with_the_driver_settings_only() -> None:
    base = NodeConfig(id="b1", name="Pump", type="Pump", worker="pc-2", properties={"port": "COM3"})
    same = [
        base.model_copy(update={"name": "Pump two", "timeout_s": 5.0, "heartbeat_timeout_s": 9.0}),
        NodeConfig.model_validate({**base.model_dump(), "retry": {"max_attempts": 3}}),
    ]
    changed = [
        base.model_copy(update={"type": "OtherPump"}),
        base.model_copy(update={"module": "pc2_nodes.py"}),
        base.model_copy(update={"worker": "pc-1"}),
        base.model_copy(update={"properties": {"port": "COM4"}}),
        NodeConfig.model_validate({**base.model_dump(), "emulate": {"duration_s": 2}}),
    ]

    assert {driver_digest(n) for n in same} == {driver_digest(base)}
    assert len({driver_digest(n) for n in changed} | {driver_digest(base)}) == len(changed) + 1
    assert driver_digest(base) == driver_digest(NodeConfig.model_validate(base.model_dump()))


def test_worker_with_a_name_no_node_names_is_refused_at_start(
    two_pcs: tuple[tuple[Path, Path], str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    nodes_path, workflows_path = two_pcs[0]

    # Refused before it connects: no Temporal server listens at this address.
    code = main(["worker", "--name", "pc-3", "-n", str(nodes_path), "-w", str(workflows_path)])

    assert code == 1
    assert "no node names worker 'pc-3'; workers in nodes.json: pc-1, pc-2" in capsys.readouterr().err


def test_worker_workflows_only_takes_no_name(
    two_pcs: tuple[tuple[Path, Path], str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    nodes_path, workflows_path = two_pcs[0]

    code = main(
        ["worker", "--workflows-only", "--name", "pc-1", "-n", str(nodes_path), "-w", str(workflows_path)]
    )

    assert code == 1
    assert "--workflows-only hosts no node" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "runs_them"),
    [
        ([], True),
        (["--no-workflows"], False),
        (["--name", "pc-1"], False),
        (["--name", "pc-1", "--run-workflows"], True),
        (["--name", "pc-1", "--no-workflows"], False),
        (["--workflows-only"], True),
    ],
)
def test_worker_runs_workflows_unless_named(options: list[str], runs_them: bool) -> None:
    assert runs_workflows(build_parser().parse_args(["worker", *options])) is runs_them


def test_config_check_worker_checks_that_pc_s_nodes_and_says_which_it_hosts(
    two_pcs: tuple[tuple[Path, Path], str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    nodes_path, workflows_path = (str(p) for p in two_pcs[0])

    on_pc1 = main(["config", "check", "--worker", "pc-1", "-n", nodes_path, "-w", workflows_path])
    pc1 = capsys.readouterr()
    on_pc2 = main(["config", "check", "--worker", "pc-2", "-n", nodes_path, "-w", workflows_path])
    pc2 = capsys.readouterr()

    assert on_pc1 == 0, pc1.err
    assert "worker pc-1's view" in pc1.out and "worker pc-1 hosts: a1\n" in pc1.out
    assert on_pc2 == 1
    assert "node b1: unknown node type" in pc2.err and f"No module named {MISSING_SDK!r}" in pc2.err


def test_config_check_full_view_of_a_lab_with_named_workers_hints_at_the_per_pc_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arm = unique("Arm")
    nodes = [node("a1", arm, worker="pc-1"), node("a2", arm, worker="pc-2")]
    nodes_path, workflows_path = write(tmp_path, nodes, modules=[driver_file(tmp_path, arm)])

    code = main(["config", "check", "-n", str(nodes_path), "-w", str(workflows_path)])

    out = capsys.readouterr().out
    assert code == 0
    assert "named workers (pc-1, pc-2)" in out
    assert f"`task-scheduler config check --config {tmp_path} --worker NAME`" in out


def test_config_check_worker_refuses_an_unknown_worker(
    two_pcs: tuple[tuple[Path, Path], str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    nodes_path, workflows_path = (str(p) for p in two_pcs[0])

    code = main(["config", "check", "--worker", "pc-9", "-n", nodes_path, "-w", workflows_path])

    assert code == 1
    assert "no node names worker 'pc-9'" in capsys.readouterr().err


def check(paths: tuple[Path, Path], *options: str) -> list[str]:
    nodes_path, workflows_path = paths
    return ["config", "check", "-n", str(nodes_path), "-w", str(workflows_path), *options]


@pytest.fixture
def sdk_on_pc2(tmp_path: Path) -> tuple[Path, Path]:
    """The server PC's view of a lab whose pc-2 node has its own driver module, needing pc-2's SDK."""
    arm, pump = unique("Arm"), unique("Pump")
    nodes = [node("a1", arm, worker="pc-1", module=driver_file(tmp_path, arm))]
    nodes.append(node("b1", pump, worker="pc-2", module=driver_file(tmp_path, pump, needs_missing_sdk=True)))
    return write(tmp_path, nodes)


def test_config_check_without_worker_notes_another_pc_s_missing_sdk_and_passes(
    sdk_on_pc2: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(check(sdk_on_pc2))

    out = capsys.readouterr().out
    assert code == 0, out
    (note,) = [line for line in out.splitlines() if "$.nodes[1].module" in line]
    assert "node b1 runs on pc-2, not checked here: its driver module 'drv_" in note
    assert f"cannot be imported on this PC (No module named {MISSING_SDK!r})" in note
    command = f"task-scheduler config check --config {sdk_on_pc2[0].parent} --worker pc-2"
    assert note.endswith(f"check it on pc-2 with `{command}`")
    assert "1 note(s), not problems:" in out


def test_config_check_without_worker_lists_every_real_problem_beside_the_note(
    sdk_on_pc2: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    nodes_path, workflows_path = sdk_on_pc2
    nodes = json.loads(nodes_path.read_text())
    nodes["nodes"].append(node("c1", "NoSuchType", worker="pc-1", timeout_s=-1))
    nodes_path.write_text(json.dumps(nodes))
    workflows_path.write_text(json.dumps({"workflows": [{"name": "w", "steps": ["a1", "b1", "ghost"]}]}))

    code = main(check(sdk_on_pc2))

    err = capsys.readouterr().err
    assert code == 1
    assert "2 problem(s)" in err and "$.nodes[2].timeout_s" in err and "$.workflows[0].steps[2]" in err
    assert "1 note(s), not problems:" in err and "node b1 runs on pc-2, not checked here" in err


def test_config_check_without_worker_fails_on_a_driver_that_is_broken_everywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "drv_broken.py"
    broken.write_text("def oops(:\n")
    paths = write(tmp_path, [node("b1", "Broken", worker="pc-2", module=broken.name)])

    code = main(check(paths))

    err = capsys.readouterr().err
    assert code == 1
    assert "$.nodes[0].module: node b1 runs on pc-2: cannot import its driver module 'drv_broken.py'" in err
    assert "SyntaxError" in err


def test_config_check_without_worker_fails_on_a_name_its_driver_imports_that_exists_nowhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An ImportError of a name (not a package missing here) is the driver's own bug, on every PC."""
    wrong = tmp_path / "drv_wrong_name.py"
    wrong.write_text("from json import no_such_name\n")
    paths = write(tmp_path, [node("b1", "WrongName", worker="pc-2", module=wrong.name)])

    code = main(check(paths))

    err = capsys.readouterr().err
    assert code == 1
    located = "$.nodes[0].module: node b1 runs on pc-2: cannot import its driver module 'drv_wrong_name.py'"
    assert located in err
    assert "ImportError: cannot import name 'no_such_name'" in err
    assert "note(s)" not in err


def test_config_check_worker_on_the_pc_without_the_sdk_fails_and_says_what_is_missing(
    sdk_on_pc2: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(check(sdk_on_pc2, "--worker", "pc-2"))

    err = capsys.readouterr().err
    assert code == 1
    assert "$.nodes[1].module: node b1 runs on pc-2: cannot import its driver module 'drv_" in err
    assert f"ModuleNotFoundError: No module named {MISSING_SDK!r}. On pc-2, install what it needs" in err
    assert "note(s)" not in err


def test_config_check_without_worker_notes_a_lab_module_only_another_pc_can_import(
    two_pcs: tuple[tuple[Path, Path], str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(check(two_pcs[0]))

    out = capsys.readouterr().out
    assert code == 0, out
    assert f"$.nodes[1].type: node b1 runs on pc-2, not checked here: its type {two_pcs[2]!r}" in out
    assert f"No module named {MISSING_SDK!r}" in out and "--worker pc-2`" in out


def test_load_config_hosting_every_node_still_needs_every_driver(sdk_on_pc2: tuple[Path, Path]) -> None:
    """`dev` and a worker without --name run every node here: another PC's driver is a problem for them."""
    (problem,) = problems(sdk_on_pc2)

    assert "$.nodes[1].module: node b1 runs on pc-2: cannot import its driver module" in problem
