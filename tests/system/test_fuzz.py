"""Bad input, generated: schemathesis (`st run`) against the live OpenAPI schema of `task-scheduler dev`
(real HTTP, real dev server, real worker, the demo lab), every operation, with an admin token. No
answer may be a 500, and every answer must be one its operation documents, with the body its schema
gives.

Bounded: a fixed number of examples per operation and a fixed seed, so `make test` stays fast and a
failure reproduces. Real tasks in each state (finished, paused, failed, cancelled), the lab's nodes
and its workflows are offered to the generator as known values, so that commands and reads reach the
code behind the 404s."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from dev_stack import DevStack, clean_environment, fast_demo_lab, wait_until

ST = Path(sys.executable).parent / "st"
HERE = Path(__file__).resolve().parent
EXAMPLES_PER_OPERATION = 40
SEED = 20260905
RUN_TIMEOUT_S = 180

# Every check that judges one answer, plus refusal of missing auth, of bad input and of unknown methods.
# Left out: `allow_header_conformance` (Starlette's 405 lists only the methods of the first route that
# matches the path: known and harmless), and the stateful checks, which need OpenAPI links.
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_acceptance",
    "missing_required_header",
    "ignored_auth",
    "unsupported_method",
]
# Schema-valid requests the API may still refuse as bad input (422): a page token it did not sign, a
# since / until of the timeline or the stats that is no time (or a window that ends before it starts).
# The seed's config reload too: the uploaded files' contents are checked as a configuration.
SEMANTIC_422 = ["GET /tasks", "GET /timeline", "GET /timeline.svg", "GET /stats", "PATCH /config/reload"]
# The seed's routes answer with statuses of its own: 418 for a task while its orchestrator is stopped
# (the generator stops it too), 410 for that orchestrator's status.
SEED_STATUSES = {"POST /task/": "418", "GET /orchestrator/status": "410"}
ACCEPTED = ["2xx", "401", "403", "404", "409", "503"]
KNOWN_PARAMETERS = {
    "path.task_id": ("tasks", 0.5),
    "path.node_id": ("nodes", 0.5),
    "path.name": ("workflows", 0.5),
    "query.node": ("nodes", 0.3),
    "query.workflow_name": ("workflows", 0.3),
    "body.workflow_name": ("workflows", 0.5),
}


@pytest.fixture
def fuzz_stack(tmp_path: Path) -> Iterator[DevStack]:
    stack = DevStack(config=fast_demo_lab(tmp_path / "lab", speed=0.1), state_dir=tmp_path / "state")
    try:
        stack.start()
        yield stack
    finally:
        stack.cleanup()


def _start(http: httpx.Client, workflow: str, args: dict[str, Any] | None = None) -> str:
    response = http.post("/tasks", json={"workflow_name": workflow, "args": args or {}})
    assert response.status_code == 201, response.text
    return str(response.json()["task_id"])


def _reaches(http: httpx.Client, task_id: str, state: str) -> None:
    def probe() -> bool:
        return bool(http.get(f"/tasks/{task_id}").json()["state"] == state)

    wait_until(probe, f"task {task_id} in {state}", timeout_s=30)


def tasks_in_every_state(http: httpx.Client) -> list[str]:
    """A finished, a paused, a failed (ERROR) and a cancelled task of the demo lab."""
    finished = _start(http, "quick-check")
    paused = _start(http, "prepare-plate")
    assert http.post(f"/tasks/{paused}/pause").status_code == 200
    failed = _start(http, "quick-check", {"wavelength_nm": 10})  # out of the reader's range
    cancelled = _start(http, "measure-plate")
    assert http.post(f"/tasks/{cancelled}/cancel", json={"reason": "fuzz"}).status_code == 200
    states = {finished: "FINISHED", paused: "PAUSED", failed: "ERROR", cancelled: "CANCELLED"}
    for task_id, state in states.items():
        _reaches(http, task_id, state)
    return list(states)


def _toml(value: Any) -> str:
    """A TOML value: JSON's strings, numbers and arrays are TOML's too; tables become inline tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def schemathesis_config(stack: DevStack, known: dict[str, list[str]]) -> str:
    """The run's `schemathesis.toml`."""
    top = {
        "seed": SEED,
        "suppress-health-check": ["all"],
        "request-timeout": 30,
        "headers": {"Authorization": f"Bearer {stack.token}"},
    }
    tables: dict[str, dict[str, Any]] = {
        "generation": {"max-examples": EXAMPLES_PER_OPERATION, "deterministic": True, "allow-x00": True},
        "phases.examples": {"enabled": False},
        "phases.stateful": {"enabled": False},
        "checks": {"enabled": False, **{f"{name}.enabled": True for name in CHECKS}},
        **{f"dictionaries.{name}": {"values": values} for name, values in known.items()},
        "parameters": {
            json.dumps(key): {"dictionary": name, "probability": p}
            for key, (name, p) in KNOWN_PARAMETERS.items()
        },
    }
    lines = [f"{key} = {_toml(value)}" for key, value in top.items()]
    for table, entries in tables.items():
        lines += ["", f"[{table}]", *(f"{key} = {_toml(value)}" for key, value in entries.items())]
    lines += [
        "",
        "[[operations]]",
        f"include-name = {_toml(SEMANTIC_422)}",
        f"checks.positive_data_acceptance.expected-statuses = {_toml([*ACCEPTED, '422'])}",
    ]
    for operation, status in SEED_STATUSES.items():
        lines += [
            "",
            "[[operations]]",
            f"include-name = {_toml([operation])}",
            f"checks.positive_data_acceptance.expected-statuses = {_toml([*ACCEPTED, status])}",
        ]
    return "\n".join(lines) + "\n"


@pytest.mark.timeout(RUN_TIMEOUT_S + 60)
def test_api_answers_generated_requests_without_500_and_as_documented(
    fuzz_stack: DevStack, tmp_path: Path
) -> None:
    with fuzz_stack.client() as http:
        known = {
            "tasks": tasks_in_every_state(http),
            "nodes": [n["id"] for n in http.get("/nodes").json()],
            "workflows": [w["name"] for w in http.get("/workflows").json()],
        }
    config = tmp_path / "schemathesis.toml"
    config.write_text(schemathesis_config(fuzz_stack, known), encoding="utf-8")
    environment = clean_environment(
        SCHEMATHESIS_HOOKS="fuzz_hooks",
        PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        NO_COLOR="1",
    )

    run = subprocess.run(
        [str(ST), "--config-file", str(config), "run", f"{fuzz_stack.url}/openapi.json", "--no-color"],
        cwd=tmp_path,  # its reports and caches stay in the test's folder
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )

    report = run.stdout + run.stderr
    print(report)  # shown with -s or -rP: what was generated, per phase
    assert run.returncode == 0, report[-25_000:]
