"""The CLI as a user types it, against a `task-scheduler dev` stack on a fast copy of the demo lab:
`task start --wait`, `task list`, `task show`, `task continue`, `node list`, `token create`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from dev_stack import BINARY, DEMO_LAB, REPOSITORY, DevStack, clean_environment, fast_demo_lab

OVERDOSE = '{"volume_ul": 5000}'
SEED = REPOSITORY / "examples" / "seed-example"
OVERDOSE_MESSAGE = "volume 5000 µL exceeds capacity 1000 µL"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    folder = tmp_path_factory.mktemp("cli")
    dev = DevStack(config=fast_demo_lab(folder / "lab", speed=0.05), state_dir=folder / "state")
    try:
        dev.start()
        yield dev
    finally:
        dev.cleanup()


@dataclass
class Run:
    code: int
    out: str
    err: str


def cli(stack: DevStack, *args: str, token: str | None = None, timeout_s: float = 60) -> Run:
    """`task-scheduler ARGS` with the API's address and a token from the environment, as a user sets them."""
    env = clean_environment(TASK_SCHEDULER_API_URL=stack.url, TASK_SCHEDULER_TOKEN=token or stack.token)
    done = subprocess.run(
        [str(BINARY), *args],
        cwd=stack.state_dir.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def started_id(run: Run) -> str:
    match = re.search(r"^started (\S+)$", run.out, re.MULTILINE)
    assert match, run
    return match.group(1)


def test_task_start_wait_follows_the_steps_until_the_task_finishes(stack: DevStack) -> None:
    run = cli(stack, "task", "start", "quick-check", "--args", '{"plate": "P-7"}', "--wait")

    assert run.code == 0, run
    task_id = started_id(run)
    assert f"task {task_id}  quick-check  FINISHED" in run.out
    # Not a terminal: the task once, then a line per change, each step's end printed once.
    ended = r"1\. arm +SUCCEEDED +\d+\.\d s  plate P-7 moved from bench to reader"
    assert len(re.findall(ended, run.out)) == 1, run.out
    assert len(re.findall(r"2\. reader +SUCCEEDED", run.out)) == 1, run.out
    assert len(re.findall(r"3\. arm +SUCCEEDED", run.out)) == 1, run.out
    final = run.out.split(f"task {task_id}  quick-check  FINISHED")[-1]
    assert f"Temporal UI: http://127.0.0.1:{stack.ui_port}/namespaces/default/workflows/{task_id}" in final
    assert "\r" not in run.out

    listed = cli(stack, "task", "list", "--workflow", "quick-check")
    assert listed.out.startswith("TASK "), listed
    assert re.match(r"TASK +WORKFLOW +STATE +NODE\n", listed.out), listed
    assert re.search(rf"^{re.escape(task_id)} +quick-check +FINISHED +-$", listed.out, re.MULTILINE), listed
    assert "CANCELED" not in listed.out and "COMPLETED" not in listed.out


def test_failed_step_waits_for_the_operator_and_continue_next_finishes_the_task(stack: DevStack) -> None:
    run = cli(stack, "task", "start", "prepare-plate", "--args", OVERDOSE, "--wait")

    assert run.code == 1, run
    task_id = started_id(run)
    assert f"task {task_id}  prepare-plate  ERROR" in run.out
    assert OVERDOSE_MESSAGE in run.out
    assert f"task-scheduler task continue {task_id} [--mode next]" in run.out

    shown = cli(stack, "task", "show", task_id)
    assert shown.code == 0, shown
    assert f"reason: step 3 on node dispenser failed with status 2: {OVERDOSE_MESSAGE}" in shown.out
    assert re.search(r"3\. dispenser +FAILED", shown.out)
    in_error = cli(stack, "task", "list", "--state", "ERROR")
    assert re.search(rf"^{re.escape(task_id)} +prepare-plate +ERROR +dispenser", in_error.out, re.MULTILINE)
    nodes = cli(stack, "node", "list")
    assert re.search(r"^dispenser +ERROR +- +online", nodes.out, re.MULTILINE), nodes

    continued = cli(stack, "task", "continue", task_id, "--mode", "next", "--reason", "dosed by hand")
    assert continued.code == 0, continued
    waited = cli(stack, "task", "wait", task_id)

    assert waited.code == 0, waited
    assert f"task {task_id}  prepare-plate  FINISHED" in waited.out
    assert re.search(r"3\. dispenser +SKIPPED", waited.out), waited.out
    decision = r"decision .* UTC  dev-admin: continue --mode next \(step 3\): dosed by hand"
    assert len(re.findall(decision, waited.out)) == 1, waited.out
    assert len(re.findall(r"5\. hotel +SUCCEEDED", waited.out)) == 1, waited.out
    nodes = cli(stack, "node", "list")
    assert re.search(r"^dispenser +AVAILABLE +- +online", nodes.out, re.MULTILINE), nodes


def test_commands_the_api_refuses_print_why_and_fail(stack: DevStack) -> None:
    done = cli(stack, "task", "start", "quick-check", "--wait")
    task_id = started_id(done)

    again = cli(stack, "task", "continue", task_id)
    unknown = cli(stack, "task", "start", "no-such-workflow")
    bad_args = cli(stack, "task", "start", "quick-check", "--args", "{plate: P1}")
    bad_priority = cli(stack, "task", "start", "quick-check", "--priority", "99999")

    assert (again.code, unknown.code, bad_args.code, bad_priority.code) == (1, 1, 1, 1)
    assert bad_priority.err.strip() == "error: 422: body.priority: Input should be less than or equal to 1000"
    assert again.err.strip() == "error: 409: cannot continue a task that is FINISHED: it is over"
    assert "error: 404: unknown workflow 'no-such-workflow'" in unknown.err
    assert "--args is not valid JSON" in bad_args.err
    assert "Traceback" not in again.err + unknown.err + bad_args.err + bad_priority.err


def test_node_list_shows_every_demo_node_hosted(stack: DevStack) -> None:
    run = cli(stack, "node", "list")

    assert run.code == 0, run
    assert re.match(r"NODE +STATE +WORKER +ONLINE +HOLDER +WAITING +REASON\n", run.out), run.out
    for node in ("hotel", "arm", "dispenser", "reader", "storage"):
        assert re.search(rf"^{node} +\w+ +- +online +- +0$", run.out, re.MULTILINE), run.out


def test_workers_shows_the_one_pc_labs_worker_online_with_its_nodes(stack: DevStack) -> None:
    run = cli(stack, "workers")

    assert run.code == 0, run
    assert re.fullmatch(
        r"\(unnamed\) +\S+ +online +nodes: hotel, arm, dispenser, incubator, reader, storage"
        r"  runs the workflows\n",
        run.out,
    ), run.out


def test_token_create_makes_a_token_the_api_accepts_with_its_role(stack: DevStack) -> None:
    run = cli(stack, "token", "create", "robot-7", "--role", "operator", "--state-dir", str(stack.state_dir))

    assert run.code == 0, run
    robot = {"Authorization": f"Bearer {run.out.strip()}"}
    assert httpx.post(f"{stack.url}/lab/resume", headers=robot).status_code == 200
    refused = httpx.post(f"{stack.url}/config/reload", headers=robot)
    assert refused.status_code == 403
    assert refused.json()["detail"] == "this needs the admin role; your token has operator"
    viewer = cli(stack, "token", "create", "screen", "--state-dir", str(stack.state_dir))
    listing = cli(stack, "task", "list", token=viewer.out.strip())
    assert listing.code == 0, listing
    refused_start = cli(stack, "task", "start", "quick-check", token=viewer.out.strip())
    assert refused_start.code == 1
    assert "403" in refused_start.err


def test_cli_without_a_valid_token_says_401(stack: DevStack) -> None:
    run = cli(stack, "task", "list", token="not-a-token")

    assert run.code == 1
    assert run.err.startswith("error: 401: invalid token")


def test_timeline_writes_an_svg_of_the_tasks_on_the_nodes(stack: DevStack) -> None:
    task_id = started_id(cli(stack, "task", "start", "quick-check", "--wait"))
    out = stack.state_dir.parent / "lab.svg"

    run = cli(stack, "timeline", "--since", "30m", "--out", str(out))
    bad = cli(stack, "timeline", "--since", "last week", "--out", str(out))

    assert run.code == 0, run
    assert f"wrote {out}" in run.out
    root = ET.fromstring(out.read_text())
    svg = "{http://www.w3.org/2000/svg}"
    lanes = [t.text for t in root.iter(f"{svg}text") if t.get("class") == "node"]
    assert {"arm", "reader"} <= set(lanes)
    tips = [t.text or "" for t in root.iter(f"{svg}title")]
    assert any(t.startswith(f"{task_id} step 2 on reader: SUCCEEDED") for t in tips), tips
    assert bad.code == 1
    assert "not a time" in bad.err


def test_timeline_by_default_writes_outside_the_current_folder_says_where_and_fits_its_window(
    stack: DevStack,
) -> None:
    task_id = started_id(cli(stack, "task", "start", "quick-check", "--wait"))
    here = stack.state_dir.parent

    run = cli(stack, "timeline")
    printed = cli(stack, "timeline", "-o", "-")

    assert run.code == 0, run
    match = re.search(r"^wrote (/\S+\.svg): ", run.out)
    assert match, run.out
    written = Path(match.group(1))
    assert written.exists() and written.parent != here
    assert not (here / "timeline.svg").exists()
    assert printed.code == 0, printed
    root = ET.fromstring(printed.out)
    svg = "{http://www.w3.org/2000/svg}"
    assert any(task_id in (t.text or "") for t in root.iter(f"{svg}title"))
    heading = next(root.iter(f"{svg}text")).text or ""
    window = re.search(r"(\S+ \S+) to (\S+ \S+) UTC", heading)
    assert window, heading
    since, until = (datetime.fromisoformat(t) for t in window.groups())
    assert until - since < timedelta(minutes=30), heading  # this module's tasks, not 2 hours


def closed_pipe_run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> Run:
    """`task-scheduler ARGS | reader`, the reader gone before the command writes (`| head` that has read
    its lines): every write meets a closed pipe."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [str(BINARY), *args],
            cwd=cwd,
            env=env,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    return Run(done.returncode, "", done.stderr)


def test_commands_whose_reader_closed_the_pipe_exit_quietly(stack: DevStack) -> None:
    task_id = started_id(cli(stack, "task", "start", "quick-check", "--wait"))
    env = clean_environment(TASK_SCHEDULER_API_URL=stack.url, TASK_SCHEDULER_TOKEN=stack.token)

    runs = [
        closed_pipe_run(["task", "show", task_id], stack.state_dir.parent, env),
        closed_pipe_run(["task", "list"], stack.state_dir.parent, env),
        closed_pipe_run(["task", "wait", task_id], stack.state_dir.parent, env),
        closed_pipe_run(["node", "list"], stack.state_dir.parent, env),
        closed_pipe_run(["config", "check", "--config", str(DEMO_LAB)], stack.state_dir.parent, env),
    ]

    assert [(r.code, r.err) for r in runs] == [(141, "")] * len(runs)


def test_config_check_from_a_seed_project_s_folder_finds_its_modules_there(tmp_path: Path) -> None:
    """README's seed-layout check, typed in the project's folder; and from elsewhere, where it says
    which option named the module and where it looked."""
    args = ["config", "check", "-n", "config/nodes.json", "-w", "config/workflows.json", "-m", "src/nodes"]
    here = subprocess.run([str(BINARY), *args], cwd=SEED, capture_output=True, text=True, timeout=60)
    absolute = [str(SEED / a) if a.startswith("config/") else a for a in args]
    elsewhere = subprocess.run(
        [str(BINARY), *absolute], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )

    assert here.returncode == 0, here.stderr
    assert "Configuration OK: config/nodes.json, config/workflows.json" in here.stdout
    assert elsewhere.returncode == 1
    located = "command line: --module src/nodes: cannot import node module 'src/nodes': FileNotFoundError"
    assert f"{located}: no such folder: {tmp_path / 'src' / 'nodes'}" in elsewhere.stderr
    assert "$.modules" not in elsewhere.stderr and "Traceback" not in elsewhere.stderr


def test_stats_print_each_nodes_calls_and_each_workflows_tasks(stack: DevStack) -> None:
    cli(stack, "task", "start", "quick-check", "--wait")

    table = cli(stack, "stats", "--since", "1h")
    as_json = cli(stack, "stats", "--json")

    assert table.code == 0, table
    assert re.search(r"^node +calls +ok +failed +cancel +lost +rate ", table.out, re.MULTILINE), table.out
    assert re.search(r"^arm +[1-9]\d* ", table.out, re.MULTILINE), table.out
    assert re.search(r"^quick-check +[1-9]", table.out, re.MULTILINE), table.out
    nodes = {n["node"]: n for n in json.loads(as_json.out)["nodes"]}
    assert nodes["reader"]["successes"] >= 1
