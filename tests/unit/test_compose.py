"""docker-compose.temporal.yml and the Dockerfile, checked by parsing: no Docker engine runs here. The
services start in order behind healthchecks, the ports and volumes are the lab's, the dynamic config is
the dev server's, every command our image runs is a real `task-scheduler` command, and the image copies
files that exist and runs `task-scheduler`."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from task_scheduler.cli import build_parser
from task_scheduler.devserver import DEV_SERVER_DYNAMIC_CONFIG
from task_scheduler.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.temporal.yml"
DOCKERFILE = ROOT / "Dockerfile"
BINARY = Path(sys.executable).parent / "task-scheduler"
OUR_SERVICES = ["task-scheduler-setup", "api", "worker"]  # built from the Dockerfile
ONE_SHOT = ["temporal-schema", "temporal-namespace", "task-scheduler-setup"]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines()]
    pairs = [line.split(None, 1) for line in lines if line and not line.startswith("#")]
    return [(pair[0].upper(), pair[1] if len(pair) > 1 else "") for pair in pairs]


def copy_sources() -> list[str]:
    sources = []
    for instruction, arguments in dockerfile_instructions():
        if instruction == "COPY":
            words = [w for w in shlex.split(arguments) if not w.startswith("--")]
            sources += words[:-1]
    return sources


def dockerignored(path: str) -> bool:
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [p for p in patterns if p and not p.startswith("#")]
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        anywhere = pattern.removeprefix("**/")
        if any(fnmatch.fnmatch(p, pattern) for p in prefixes):
            return True
        if pattern.startswith("**/") and any(fnmatch.fnmatch(part, anywhere) for part in parts):
            return True
    return False


def run_help(words: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BINARY), *words, "--help"], capture_output=True, text=True, timeout=60, check=False
    )


def subcommand(command: list[str]) -> list[str]:
    """The subcommand words of a `task-scheduler` command line (before its first option)."""
    words = []
    for word in command:
        if word.startswith("-"):
            break
        words.append(word)
    return words


def test_compose_runs_the_lab_services(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == {
        "postgresql",
        "temporal-schema",
        "temporal",
        "temporal-namespace",
        "task-scheduler-setup",
        "temporal-ui",
        "api",
        "worker",
    }
    assert services["temporal"]["image"].startswith("temporalio/server:")
    assert services["temporal"]["environment"]["DB"] == "postgres12"
    assert services["temporal-ui"]["image"].startswith("temporalio/ui:")
    for name in OUR_SERVICES:
        assert services[name]["build"] == "."


def test_compose_publishes_the_lab_ports_only(services: dict[str, dict[str, Any]]) -> None:
    published = {name: service.get("ports", []) for name, service in services.items()}

    assert published == {
        "postgresql": [],
        "temporal-schema": [],
        "temporal": ["7233:7233"],
        "temporal-namespace": [],
        "task-scheduler-setup": [],
        "temporal-ui": ["8233:8080"],
        "api": ["8000:8000"],
        "worker": [],
    }
    assert services["temporal"]["environment"]["BIND_ON_IP"] == "0.0.0.0"
    assert services["api"]["command"][1:] == ["--host", "0.0.0.0", "--port", "8000"]


def test_compose_keeps_postgres_data_in_a_named_volume(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    assert services["postgresql"]["volumes"] == ["postgres-data:/var/lib/postgresql/data"]
    assert "postgres-data" in compose["volumes"]


def test_compose_mounts_the_lab_config_where_the_settings_point(services: dict[str, dict[str, Any]]) -> None:
    for name in ["api", "worker"]:
        service = services[name]
        source, target, mode = service["volumes"][0].rsplit(":", 2)
        assert (target, mode) == ("/lab", "ro"), name
        assert service["environment"]["TASK_SCHEDULER_CONFIG_DIR"] == target, name
        default = re.fullmatch(r"\$\{LAB_CONFIG_DIR:-(.+)\}", source)
        assert default is not None and (ROOT / default.group(1) / "nodes.json").is_file(), source
    # `worker` reads --config (its default is not TASK_SCHEDULER_CONFIG_DIR): given explicitly.
    assert services["worker"]["command"][-2:] == ["--config", "/lab"]


def test_compose_mounts_the_dev_servers_dynamic_config(services: dict[str, dict[str, Any]]) -> None:
    temporal = services["temporal"]
    source, target, _ = temporal["volumes"][0].split(":")
    mounted = ROOT / source / Path(temporal["environment"]["DYNAMIC_CONFIG_FILE_PATH"]).name
    assert target == "/etc/temporal/config/dynamicconfig"
    assert temporal["environment"]["DYNAMIC_CONFIG_FILE_PATH"].startswith("config/dynamicconfig/")

    config = yaml.safe_load(mounted.read_text(encoding="utf-8"))

    for key, value in DEV_SERVER_DYNAMIC_CONFIG.items():
        assert config[key] == [{"value": json.loads(value), "constraints": {}}], key


def test_compose_starts_each_service_when_what_it_needs_is_ready(services: dict[str, dict[str, Any]]) -> None:
    needs = {
        name: {dep: how["condition"] for dep, how in service.get("depends_on", {}).items()}
        for name, service in services.items()
    }

    assert needs == {
        "postgresql": {},
        "temporal-schema": {"postgresql": "service_healthy"},
        "temporal": {"temporal-schema": "service_completed_successfully"},
        "temporal-namespace": {"temporal": "service_healthy"},
        "task-scheduler-setup": {"temporal-namespace": "service_completed_successfully"},
        "temporal-ui": {"temporal": "service_healthy"},
        "api": {"task-scheduler-setup": "service_completed_successfully"},
        "worker": {"task-scheduler-setup": "service_completed_successfully"},
    }
    for name in ONE_SHOT:
        assert services[name]["restart"].startswith("on-failure"), name  # retried, then done
    for name in set(services) - set(ONE_SHOT):
        assert services[name]["restart"] == "unless-stopped", name


def test_compose_healthchecks_probe_the_services(services: dict[str, dict[str, Any]]) -> None:
    checked = {name for name, service in services.items() if "healthcheck" in service}

    assert checked == {"postgresql", "temporal", "api"}
    assert "pg_isready" in services["postgresql"]["healthcheck"]["test"][1]
    assert services["temporal"]["healthcheck"]["test"][-1] == "7233"
    assert "http://127.0.0.1:8000/health" in services["api"]["healthcheck"]["test"][-1]
    # /health answers loopback only if the allowlist keeps it: its default does.
    assert "127.0.0.1/32" in services["api"]["environment"]["TASK_SCHEDULER_AUTHORIZED_IPS"]


def test_compose_configures_our_services_with_the_settings_variables(
    services: dict[str, dict[str, Any]],
) -> None:
    known = set()
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        choices = getattr(alias, "choices", None)
        known |= set(choices) if choices else {f"TASK_SCHEDULER_{name.upper()}"}

    for name in OUR_SERVICES:
        environment = services[name]["environment"]
        assert set(environment) <= known, name
        assert environment["TEMPORAL_ADDRESS"] == "temporal:7233", name
        # Refused at `up` without a secret, rather than an API that accepts no token.
        assert environment["TASK_SCHEDULER_SECRET"].startswith("${TASK_SCHEDULER_SECRET:?"), name


@pytest.mark.parametrize("service", OUR_SERVICES)
def test_compose_runs_real_task_scheduler_commands(services: dict[str, dict[str, Any]], service: str) -> None:
    command = services[service]["command"]

    shown = run_help(subcommand(command))

    assert shown.returncode == 0, shown.stderr
    try:
        build_parser().parse_args(command)  # every option it passes exists
    except SystemExit:
        pytest.fail(f"`task-scheduler {' '.join(command)}` is refused by the command line")


def test_dockerfile_copies_files_that_exist_and_every_package() -> None:
    sources = copy_sources()
    folders = [ROOT / s for s in sources if (ROOT / s).is_dir()]

    for source in sources:
        matched = list(ROOT.glob(source))
        assert matched, f"COPY {source}: no such file"
        assert not any(dockerignored(str(m.relative_to(ROOT))) for m in matched), source
    assert {p.name for p in ROOT.glob("*.py")} <= {m.name for s in sources for m in ROOT.glob(s)}
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    for package in packages:
        folder = ROOT.joinpath(*package.split(".")[1:])
        assert folder == ROOT or any(folder.is_relative_to(f) for f in folders), f"{package} not copied"


def test_dockerfile_runs_task_scheduler() -> None:
    instructions = dict(dockerfile_instructions())

    assert json.loads(instructions["ENTRYPOINT"]) == ["task-scheduler"]
    assert instructions["FROM"].startswith("python:3.11")
    assert "requirements.lock" in instructions["RUN"]  # the locked versions


def test_compose_worker_runs_the_workflows_only(services: dict[str, dict[str, Any]]) -> None:
    command = services["worker"]["command"]

    assert command[:2] == ["worker", "--workflows-only"]
    assert "--workflows-only" in run_help(["worker"]).stdout
