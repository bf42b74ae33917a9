"""The API process loads no worker code: no activity, no worker, no driver. It reads the lab's files
for the nodes' names and settings only, and talks to the workflows through Temporal, so an API host
needs none of the lab PCs' drivers (nor their dependencies), and a driver's import cannot break it."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

DEMO_LAB = Path(__file__).resolve().parents[2] / "examples" / "demo-lab"

# Run in a fresh interpreter: this test process has imported everything already.
PROBE = """
import json, sys
from task_scheduler.api.app import create_app
app = create_app()
paths = {name: getattr(module, "__file__", None) for name, module in list(sys.modules.items())}
routes = sorted(app.openapi()["paths"])
print(json.dumps({"routes": routes, "modules": paths}))
"""
WORKER_CODE = ("task_scheduler.activities", "task_scheduler.worker", "temporalio.worker")


def test_creating_the_app_imports_no_worker_code() -> None:
    env = {
        **os.environ,
        "TASK_SCHEDULER_SECRET": secrets.token_hex(32),
        "TASK_SCHEDULER_CONFIG_DIR": str(DEMO_LAB),
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.splitlines()[-1])
    assert {"/tasks", "/nodes", "/workers", "/stats"} <= set(answer["routes"])  # the whole app was made
    loaded: dict[str, str | None] = answer["modules"]
    assert "task_scheduler.api.routers.tasks" in loaded
    worker = sorted(name for name in loaded if name.startswith(WORKER_CODE))
    assert not worker, f"the API imported worker code: {worker}"
    drivers = sorted(name for name, path in loaded.items() if path and Path(path).is_relative_to(DEMO_LAB))
    assert not drivers, f"the API imported the lab's driver modules: {drivers}"
