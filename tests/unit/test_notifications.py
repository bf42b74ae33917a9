"""notifications.json (located errors, `${NAME}`, masking), the messages, their targets, and the rules
that decide when a PC's worker is told offline and back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from task_scheduler.activities.notify import check_targets, webhook_url
from task_scheduler.cli import main
from task_scheduler.engine.config import LabConfig, NodeConfig
from task_scheduler.engine.errors import ConfigError
from task_scheduler.engine.lab_state import LabState, WorkerPlan, WorkerSeen, WorkerWatch, lab_plan, observe
from task_scheduler.engine.loader import load_config
from task_scheduler.engine.notifications import (
    Event,
    NotificationsConfig,
    TaskStop,
    masked,
    node_error_notification,
    reminder_notification,
    targets_for,
    task_error_notification,
    task_finished_notification,
    worker_offline_notification,
)

NODES = {"nodes": [{"id": "arm", "name": "arm", "type": "task_scheduler.engine.nodes:BaseNode"}]}
WORKFLOWS = {"workflows": [{"name": "move", "steps": ["arm"]}]}
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def lab_with(folder: Path, notifications: Any | None) -> Path:
    (folder / "nodes.json").write_text(json.dumps(NODES))
    (folder / "workflows.json").write_text(json.dumps(WORKFLOWS))
    if notifications is not None:
        text = notifications if isinstance(notifications, str) else json.dumps(notifications)
        (folder / "notifications.json").write_text(text)
    return folder


def load(folder: Path) -> LabConfig:
    return load_config(folder / "nodes.json", folder / "workflows.json")


def problems(folder: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(folder)
    return [f"{p.path}: {p.message}" for p in caught.value.problems]


def test_config_without_notifications_file_has_none_configured(tmp_path: Path) -> None:
    lab = load(lab_with(tmp_path, None))
    assert not lab.notifications.configured and lab.notifications_file == ""
    assert targets_for(lab.notifications, Event.TASK_ERROR) == []


def test_config_targets_as_urls_or_objects_with_their_own_events(tmp_path: Path) -> None:
    config = {
        "targets": ["slack://T1/B2/C3", {"url": "json://127.0.0.1:9000/hook", "events": ["task_finished"]}],
        "escalate_to": ["mailtos://boss:pw@mail.example.org"],
    }
    lab = load(lab_with(tmp_path, config))
    notifications = lab.notifications
    assert lab.notifications_file == str(tmp_path / "notifications.json")
    assert [t.place for t in targets_for(notifications, Event.TASK_ERROR)] == ["targets[0]"]
    assert [t.place for t in targets_for(notifications, Event.TASK_REMINDER)] == ["targets[0]"]
    assert [t.label for t in targets_for(notifications, Event.TASK_FINISHED)] == ["json://127.0.0.1:9000/***"]
    assert [t.place for t in targets_for(notifications, Event.TASK_ESCALATION)] == ["escalate_to[0]"]
    assert targets_for(notifications, Event.TASK_CANCELLED) == []  # not in the default events
    assert notifications.url_at("escalate_to[0]") == "mailtos://boss:pw@mail.example.org"


def test_config_errors_are_located_in_notifications_json(tmp_path: Path) -> None:
    config = {
        "targets": ["no-scheme-here", {"url": "json://h/x", "events": ["task_reminder"]}],
        "remind_after_s": 0,
        "max_reminder": 3,
    }
    found = problems(lab_with(tmp_path, config))
    assert any(p.startswith("$.targets[0].url: Value error, not a notification URL") for p in found)
    assert any(p.startswith("$.targets[1].events[0]: Input should be 'task_error'") for p in found)
    assert "$.remind_after_s: remind_after_s must be a positive number of seconds, got 0" in found
    assert "$.max_reminder: unknown key 'max_reminder'; remove it or check its spelling" in found
    assert all("no-scheme-here" not in p for p in found)  # a bad URL is not printed back


def test_config_invalid_json_is_located(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(lab_with(tmp_path, '{"targets": ['))
    [problem] = caught.value.problems
    assert problem.file.endswith("notifications.json") and problem.path.startswith("line 1")


def test_config_variables_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_SLACK", "TA/TB/TC")
    config = {
        "targets": ["slack://${LAB_SLACK}", {"url": "ntfy://${LAB_TOPIC}"}],
        "escalate_to": ["tgram://${X}"],
    }
    found = problems(lab_with(tmp_path, config))
    assert [p.split(":")[0] for p in found] == ["$.targets[1].url", "$.escalate_to[0]"]
    assert "environment variable LAB_TOPIC is not set" in found[0] and "variable X is" in found[1]
    monkeypatch.setenv("LAB_TOPIC", "lab-alerts")
    monkeypatch.setenv("X", "123:abc/456")
    lab = load(tmp_path)
    assert [t.url for t in lab.notifications.targets] == ["slack://TA/TB/TC", "ntfy://lab-alerts"]


def test_masked_hides_tokens_passwords_and_paths() -> None:
    assert masked("slack://TA/TB/TC") == "slack://***"
    assert masked("mailtos://me:secret@mail.example.org?to=ops@example.org") == "mailtos://***"
    assert masked("json://user:pw@10.0.0.5:8080/hooks/s3cret?x=1") == "json://10.0.0.5:8080/***"
    assert masked("not a url") == "***"
    for url in ("slack://TA/TB", "jsons://host:1/a/b"):
        assert masked(masked(url)) == masked(url)


def test_config_secrets_never_printed_by_repr_public_or_config_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = {
        "targets": ["slack://TA/TB/TC", "json://127.0.0.1:9000/token-xyz"],
        "escalate_to": ["mailto://u:pw@h.org"],
    }
    lab = load(lab_with(tmp_path, config))
    public = lab.notifications.public().model_dump_json()
    for text in (repr(lab.notifications), repr(lab), public, str(lab_plan(lab).model_dump_json())):
        assert "TA/TB" not in text and "token-xyz" not in text and "pw@" not in text
    assert (
        main(["config", "check", "-n", str(tmp_path / "nodes.json"), "-w", str(tmp_path / "workflows.json")])
        == 0
    )
    out = capsys.readouterr().out
    assert "slack://***: task_error, node_error, worker_offline, worker_online" in out
    assert "json://127.0.0.1:9000/***" in out and "mailto://***: escalations" in out
    assert "TA/TB" not in out and "token-xyz" not in out and "pw@" not in out


def test_config_check_refuses_a_url_apprise_does_not_understand(tmp_path: Path) -> None:
    config = NotificationsConfig.model_validate({"targets": ["nosuchservice://abc", "json://localhost/x"]})
    [problem] = check_targets(config, "notifications.json")
    assert problem.path == "$.targets[0].url" and problem.message.startswith("nosuchservice://***: Apprise")


def test_task_error_message_names_task_step_node_message_and_commands() -> None:
    notification = task_error_notification(
        TaskStop("t-1", "measure-plate", 2, "reader", "lamp failure", attempt=3)
    )
    assert notification.key == "t-1/task_error/3"
    assert notification.title == "Task t-1 needs an operator: step 3 on reader failed"
    body = notification.body
    assert "Task t-1 (workflow measure-plate) stopped at step 3, node reader:" in body
    assert "lamp failure" in body
    assert "task-scheduler task continue t-1\n" in body
    assert "task-scheduler task continue t-1 --mode next" in body
    assert "task-scheduler task cancel t-1" in body
    assert body.endswith("key: t-1/task_error/3")


def test_reminder_and_node_error_messages_have_keys_of_their_own() -> None:
    reminder = reminder_notification(
        TaskStop("t-1", "w", 0, "arm", "stuck", attempt=1), reminder_number=2, waiting_s=3600
    )
    assert reminder.key == "t-1/task_reminder/1.2" and reminder.event is Event.TASK_REMINDER
    assert "Reminder 2: task t-1 has waited 60 min" in reminder.body
    assert "task-scheduler task continue t-1" in reminder.body
    node = node_error_notification("arm", "restart failed: no power", attempt=4)
    assert node.key == "node arm/node_error/4" and "task-scheduler node restart arm" in node.body


def test_task_and_node_messages_about_one_failure_advise_the_same_decision_on_the_task() -> None:
    stop = TaskStop("t-1", "measure-plate", 2, "reader", "lamp failure", attempt=1)
    task = task_error_notification(stop).body
    reason = "task t-1 step 3 (run 1, attempt 1) failed: lamp failure"
    node = node_error_notification("reader", reason, attempt=2, waiting_task="t-1").body

    advice = task[task.index("Task t-1 waits for an operator") : task.index("\n\nkey:")]
    assert advice in node  # the node's message says what the task's says, word for word
    assert "decide on the task (a continue restarts node reader first):" in advice
    assert "task-scheduler task continue t-1\n" in advice
    assert "task-scheduler task continue t-1 --mode next" in advice
    # A restart by hand only after a cancel, which leaves the node in ERROR.
    cancel_line = next(line for line in advice.splitlines() if "task cancel t-1" in line)
    assert cancel_line.endswith("(then restart the node: task-scheduler node restart reader)")
    assert [line for line in node.splitlines() if "node restart" in line] == [cancel_line]


def test_node_error_without_a_waiting_task_advises_a_restart_of_the_node() -> None:
    body = node_error_notification("arm", "restart failed: no power", attempt=4).body
    assert "Check the device, then:\n  task-scheduler node restart arm" in body
    assert "task continue" not in body


@pytest.mark.parametrize(
    ("steps", "skipped", "said"),
    [
        (5, 1, "4 steps done, 1 skipped."),
        (5, 0, "5 steps done."),
        (1, 0, "1 step done."),
        (2, 1, "1 step done, 1 skipped."),
        (3, 2, "1 step done, 2 skipped."),
    ],
)
def test_task_finished_message_counts_the_steps_done_and_skipped(steps: int, skipped: int, said: str) -> None:
    notification = task_finished_notification("t-1", "prep", steps, skipped=skipped)
    assert notification.body.splitlines()[0] == f"Task t-1 (workflow prep) finished: {said}"


def test_webhook_url_carries_the_key_as_field_and_header() -> None:
    notification = task_error_notification(TaskStop("t/1", "w", 0, "arm", "x", attempt=1))
    url = webhook_url("json://h:1/hook?x=1", notification)
    assert url.startswith("json://h:1/hook?x=1&:idempotency_key=t%2F1%2Ftask_error%2F1&:event=task_error")
    assert url.endswith("+Idempotency-Key=t%2F1%2Ftask_error%2F1")
    assert webhook_url("slack://a/b/c", notification) == "slack://a/b/c"


def test_lab_plan_groups_nodes_by_worker_with_the_smallest_offline_after() -> None:
    nodes = [
        NodeConfig(id="a", name="a", type="T", worker="pc-1", offline_after_s=30),
        NodeConfig(id="b", name="b", type="T", worker="pc-1", offline_after_s=10),
        NodeConfig(id="c", name="c", type="T", worker="pc-2"),
    ]
    plan = lab_plan(LabConfig(nodes=nodes, workflows=[]))
    assert [(w.name, w.nodes, w.offline_after_s) for w in plan.workers] == [
        ("pc-1", ["a", "b"], 10),
        ("pc-2", ["c"], 60),
    ]
    assert not plan.watches_workers  # nobody to tell


PC = WorkerPlan(name="pc-1", nodes=["a"], offline_after_s=60)


def test_worker_offline_told_once_after_offline_after_s_and_back_once() -> None:
    watch = WorkerWatch(name="pc-1")
    assert observe(watch, PC, WorkerSeen(name="pc-1", online=True), NOW) is None
    gone = WorkerSeen(name="pc-1", online=False, offline_since=NOW)
    assert observe(watch, PC, gone, NOW + timedelta(seconds=59)) is None
    told = observe(watch, PC, gone, NOW + timedelta(seconds=61))
    assert (
        told is not None and told.event is Event.WORKER_OFFLINE and told.key == "worker pc-1/worker_offline/1"
    )
    assert observe(watch, PC, gone, NOW + timedelta(seconds=600)) is None
    back = observe(watch, PC, WorkerSeen(name="pc-1", online=True), NOW + timedelta(seconds=900))
    assert (
        back is not None and back.event is Event.WORKER_ONLINE and back.key == "worker pc-1/worker_online/1"
    )
    assert "after 15 min offline" in back.body
    assert observe(watch, PC, WorkerSeen(name="pc-1", online=True), NOW + timedelta(seconds=901)) is None


def test_worker_never_hosted_is_not_told_offline_but_one_seen_going_is() -> None:
    never = WorkerWatch(name="pc-1")
    unknown = WorkerSeen(name="pc-1", online=False, offline_since=None)
    assert observe(never, PC, unknown, NOW) is None
    assert observe(never, PC, unknown, NOW + timedelta(hours=1)) is None
    seen = WorkerWatch(name="pc-1", online=True)
    assert observe(seen, PC, unknown, NOW) is None  # offline from now on, as far as we know
    assert observe(seen, PC, unknown, NOW + timedelta(seconds=61)) is not None


def test_worker_offline_message_names_the_pc_its_nodes_and_the_command() -> None:
    notification = worker_offline_notification("pc-2", ["reader", "storage"], NOW, episode=2)
    assert "Worker pc-2 has been offline since 2030-01-01 12:00:00 UTC" in notification.body
    assert (
        "(reader, storage)" in notification.body and "task-scheduler worker --name pc-2" in notification.body
    )
    assert notification.key == "worker pc-2/worker_offline/2" and notification.worker == "pc-2"


def test_lab_state_drops_a_repeated_key() -> None:
    state = LabState()
    notification = task_error_notification(TaskStop("t-1", "w", 0, "arm", "x", attempt=1))
    assert state.accept(notification) and not state.accept(notification)
    assert state.dropped_repeats == 1
