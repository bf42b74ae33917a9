"""The seed's `BaseScheduler` as a GLAS project extends it, without running it: its routers and hooks in
the seed's order, the seed's `.env` read where ours says nothing, and a lab that does not load stops the
start with every problem said (tests/system/test_glas_project.py runs a whole project)."""

from __future__ import annotations

import json
import logging
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter
from glas_lab import JsonOrchestrator

from task_scheduler.base import BaseScheduler
from task_scheduler.orchestrator.enums import OrchestratorErrorCodes

STRONG = "a-secret-of-the-lab-long-enough-to-sign-0123456789"


class BrokenOrchestrator(JsonOrchestrator):
    def _load_nodes(self, file: Any) -> OrchestratorErrorCodes:
        return json.load(file)["machines"]  # type: ignore[no-any-return]


class LabScheduler(BaseScheduler):
    def __init__(self, orchestrator: Any, port: int) -> None:
        super().__init__(orchestrator, port)
        self.bind_logger_name("Lab")

    def init_extra_routes(self) -> None:
        mine = APIRouter(prefix="/my-prefix")
        mine.add_api_route("/hello", lambda: {"message": "hi"})
        self.api.include_router(mine)

    def _extends_task_routes(self) -> None:
        self.task_router.add_api_route("/mine/count", lambda: 0, methods=["POST"])


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("TASK_SCHEDULER_SECRET", "TASK_SCHEDULER_AUTHORIZED_IPS", "JWT_SECRET", "AUTHORIZED_IPS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env of the repository; the state directory lands here
    config = tmp_path / "config"
    config.mkdir()
    nodes = {"nodes": [{"id": "hotel", "name": "Hotel", "type": "GlasLabNode"}]}
    (config / "nodes.json").write_text(json.dumps(nodes))
    (config / "workflows.json").write_text(
        json.dumps({"workflows": [{"name": "w", "steps": ["hotel", "hotel"]}]})
    )
    return tmp_path


def _orchestrator(kind: type[JsonOrchestrator] = JsonOrchestrator) -> JsonOrchestrator:
    return kind("config/nodes.json", "config/workflows.json")


def test_routes_and_hooks_of_a_project_are_served_the_seeds_way(project: Path) -> None:
    scheduler = LabScheduler(_orchestrator(), 3000)
    schema = scheduler.api.openapi()["paths"]
    paths = {(path, method.upper()) for path, item in schema.items() for method in item}

    assert ("/my-prefix/hello", "GET") in paths
    assert ("/task/mine/count", "POST") in paths  # a project's route on the seed's router: guarded
    assert {("/task/", "POST"), ("/orchestrator/stop", "DELETE"), ("/tasks", "POST")} <= paths
    assert scheduler.config.host == "0.0.0.0" and scheduler.config.port == 3000
    assert schema["/task/mine/count"]["post"]["security"] == [{"HTTPBearer": ["operator"]}]


def test_env_of_the_seed_is_read_where_ours_says_nothing(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JWT_SECRET", STRONG)
    monkeypatch.setenv("AUTHORIZED_IPS", "127.0.0.1 10.1.2.3")

    settings = LabScheduler(_orchestrator(), 3000).settings

    assert settings.secret is not None and settings.secret.get_secret_value() == STRONG
    assert settings.authorized_ips == [ip_network("127.0.0.1/32"), ip_network("10.1.2.3/32")]


def test_a_short_jwt_secret_is_replaced_by_a_safe_one_and_said(
    project: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("JWT_SECRET", "secret")
    caplog.set_level(logging.WARNING)

    settings = LabScheduler(_orchestrator(), 3000).settings

    assert settings.secret is not None and len(settings.secret.get_secret_value()) >= 32
    assert (project / ".task-scheduler" / "secret").exists()
    assert "JWT_SECRET is 6 bytes, too short to sign tokens safely" in caplog.text


def test_a_bad_allowlist_stops_the_start_saying_why(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHORIZED_IPS", "127.0.0.1 not-an-address")

    with pytest.raises(SystemExit, match="AUTHORIZED_IPS: 'not-an-address' does not appear to be an IPv4"):
        LabScheduler(_orchestrator(), 3000)


def test_a_lab_that_does_not_load_stops_the_start_with_its_problem(
    project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler = LabScheduler(_orchestrator(BrokenOrchestrator), 3000)

    with pytest.raises(SystemExit) as stopped:
        scheduler.run()

    assert stopped.value.code == 1
    assert "the orchestrator did not start (COULD_NOT_PARSE_CONFIGURATION)" in caplog.text
    assert "config/nodes.json: BrokenOrchestrator._load_nodes raised KeyError: 'machines'" in caplog.text
