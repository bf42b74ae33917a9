"""Histories of real tasks and ledgers, saved for the replay test (tests/workflows/test_replay.py):
the tests that produce a scenario (a crash, a cut-off PC, a continue-as-new) keep its history here, so
every later change of workflow code is replayed against it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from temporalio.client import WorkflowHistory

HISTORIES = Path(__file__).parent / "workflows" / "histories"
SAVE = os.environ.get("TASK_SCHEDULER_SAVE_HISTORIES") == "1"


def save(name: str, history: WorkflowHistory) -> None:
    HISTORIES.mkdir(exist_ok=True)
    events = ",\n".join(
        json.dumps(event, separators=(",", ":")) for event in history.to_json_dict()["events"]
    )
    # One event a line: small, and a diff shows which events changed.
    text = f'{{"workflowId":{json.dumps(history.workflow_id)},\n"events":[\n{events}\n]}}\n'
    (HISTORIES / f"{name}.json").write_text(text)


def keep(name: str, history: WorkflowHistory) -> None:
    """Save the scenario's history if it has none yet (or when asked to record them all again)."""
    if SAVE or not (HISTORIES / f"{name}.json").exists():
        save(name, history)


def load(path: Path) -> WorkflowHistory:
    document = json.loads(path.read_text())
    return WorkflowHistory.from_json(document.pop("workflowId"), document)
