"""The task and node state machines: every allowed transition, every refused command, guards, rebuilds."""

from __future__ import annotations

import threading
from enum import StrEnum
from typing import Any

import pytest

from task_scheduler import InvalidTransitionError, NodeState, TaskState
from task_scheduler.engine.states import (
    NODE_TRANSITIONS,
    TASK_TRANSITIONS,
    NodeMachine,
    TaskMachine,
    _StateMachine,
)

MACHINES: dict[str, tuple[type[_StateMachine], type[StrEnum], list[dict[str, Any]]]] = {
    "task": (TaskMachine, TaskState, TASK_TRANSITIONS),
    "node": (NodeMachine, NodeState, NODE_TRANSITIONS),
}


def _sources(transition: dict[str, Any]) -> list[Any]:
    source = transition["source"]
    return list(source) if isinstance(source, list) else [source]


def allowed() -> list[Any]:
    """(kind, state, trigger, dest) for every source of every row of both tables."""
    return [
        pytest.param(kind, source, row["trigger"], row["dest"], id=f"{kind}-{source}-{row['trigger']}")
        for kind, (_, _, table) in MACHINES.items()
        for row in table
        for source in _sources(row)
    ]


def refused() -> list[Any]:
    """(kind, state, trigger) for every pair of a state and a trigger that no row allows."""
    pairs = []
    for kind, (_, states, table) in MACHINES.items():
        allowed_pairs = {(source, row["trigger"]) for row in table for source in _sources(row)}
        triggers = dict.fromkeys(row["trigger"] for row in table)
        pairs += [
            pytest.param(kind, state, trigger, id=f"{kind}-{state}-{trigger}")
            for state in states
            for trigger in triggers
            if (state, trigger) not in allowed_pairs
        ]
    return pairs


def machine(kind: str, state: Any) -> _StateMachine:
    """A machine in `state` whose guards pass (no step left, no holder)."""
    cls, _, _ = MACHINES[kind]
    return cls(state)


def test_tables_give_both_allowed_and_refused_pairs() -> None:
    # 7 task triggers x 6 states, 8 node triggers x 5 states.
    assert len(allowed()) + len(refused()) == 7 * 6 + 8 * 5
    assert len(allowed()) == 11 + 15


@pytest.mark.parametrize(("kind", "state", "trigger", "dest"), allowed())
def test_machine_accepts_every_allowed_transition(kind: str, state: Any, trigger: str, dest: Any) -> None:
    subject = machine(kind, state)
    assert subject.can(trigger)
    assert trigger in subject.commands()
    subject.trigger(trigger)
    assert subject.state is dest


@pytest.mark.parametrize(("kind", "state", "trigger"), refused())
def test_machine_refuses_every_other_command(kind: str, state: Any, trigger: str) -> None:
    subject = machine(kind, state)
    assert not subject.can(trigger)
    assert trigger not in subject.commands()
    with pytest.raises(InvalidTransitionError) as caught:
        subject.trigger(trigger)
    assert str(caught.value) == f"cannot {trigger} a {kind} that is {state.value}"
    assert (caught.value.kind, caught.value.state, caught.value.command) == (kind, state.value, trigger)
    assert subject.state is state


@pytest.mark.parametrize("kind", MACHINES)
@pytest.mark.parametrize("command", ["explode", "to_FINISHED", "state", "may_start", "trigger"])
def test_machine_refuses_unknown_commands(kind: str, command: str) -> None:
    _, states, _ = MACHINES[kind]
    first = next(iter(states))
    with pytest.raises(InvalidTransitionError, match=f"cannot {command} a {kind} that is {first.value}"):
        machine(kind, first).trigger(command)


def test_machine_refusal_carries_the_reason() -> None:
    with pytest.raises(InvalidTransitionError) as caught:
        TaskMachine(TaskState.FINISHED).trigger("pause", reason="the task is over")
    assert caught.value.message == "cannot pause a task that is FINISHED: the task is over"


def test_task_finish_needs_every_step_done() -> None:
    task = TaskMachine(TaskState.ACTIVE, steps_total=3, steps_done=2)
    assert not task.can("finish")
    assert "finish" not in task.commands()
    with pytest.raises(InvalidTransitionError, match="cannot finish a task that is ACTIVE"):
        task.trigger("finish")
    assert task.state is TaskState.ACTIVE
    task.set_progress(3)
    task.trigger("finish")
    assert task.state is TaskState.FINISHED
    assert task.is_over


def test_node_acquire_needs_no_holder() -> None:
    node = NodeMachine(NodeState.AVAILABLE, holder="task-1/step-0")
    assert not node.can("acquire")
    with pytest.raises(InvalidTransitionError, match="cannot acquire a node that is AVAILABLE"):
        node.trigger("acquire")
    node.set_holder(None)
    node.trigger("acquire")
    assert node.state is NodeState.IN_USE


def test_task_machine_rebuilt_from_stored_state_continues() -> None:
    task = TaskMachine(steps_total=2)
    task.trigger("start")
    task.set_progress(1)
    task.trigger("pause")
    stored = (task.state.value, task.steps_total, task.steps_done)
    assert stored == ("PAUSED", 2, 1)

    rebuilt = TaskMachine(*stored)
    assert rebuilt.state is TaskState.PAUSED
    assert rebuilt.commands() == ["resume", "cancel"]
    rebuilt.trigger("resume")
    assert not rebuilt.can("finish")
    rebuilt.set_progress(2)
    rebuilt.trigger("finish")
    assert rebuilt.state is TaskState.FINISHED


def test_node_machine_rebuilt_from_stored_state_continues() -> None:
    rebuilt = NodeMachine("IN_USE", holder="task-1/step-2")
    assert rebuilt.state is NodeState.IN_USE
    assert rebuilt.commands() == ["hand_over", "release", "fail"]
    rebuilt.trigger("release")
    rebuilt.set_holder(None)
    rebuilt.trigger("acquire")
    assert rebuilt.state is NodeState.IN_USE


@pytest.mark.parametrize(
    ("state", "command", "dest"),
    [(TaskState.ERROR, "recover", TaskState.ACTIVE), (TaskState.PAUSED, "resume", TaskState.ACTIVE)],
)
def test_task_continue_command_depends_on_state(state: TaskState, command: str, dest: TaskState) -> None:
    task = TaskMachine(state)
    assert task.continue_command() == command
    task.trigger(task.continue_command())
    assert task.state is dest


@pytest.mark.parametrize("state", list(TaskState))
def test_task_is_over_only_when_finished_or_cancelled(state: TaskState) -> None:
    assert TaskMachine(state).is_over is (state in (TaskState.FINISHED, TaskState.CANCELLED))


def test_machines_start_pending_and_offline() -> None:
    assert TaskMachine().state is TaskState.PENDING
    assert NodeMachine().state is NodeState.OFFLINE


def test_machines_of_one_kind_keep_their_own_state_and_guards() -> None:
    # One transitions machine per kind and thread serves every instance: nothing may leak between them.
    short, done = TaskMachine(steps_total=1), TaskMachine(state=TaskState.ACTIVE, steps_total=2, steps_done=2)
    short.trigger("start")
    assert (short.state, done.state) == (TaskState.ACTIVE, TaskState.ACTIVE)
    assert done.can("finish") and not short.can("finish")  # each its own progress
    done.trigger("finish")
    assert (short.state, done.state) == (TaskState.ACTIVE, TaskState.FINISHED)
    free, held = NodeMachine(NodeState.AVAILABLE), NodeMachine(NodeState.AVAILABLE, holder="t1")
    assert free.can("acquire") and not held.can("acquire")


def test_machines_in_threads_at_once_each_keep_their_own_state() -> None:
    def run(results: list[TaskState]) -> None:
        for _ in range(2000):
            task = TaskMachine(steps_total=1)
            task.trigger("start")
            task.trigger("pause")
            task.trigger("resume")
            task.set_progress(1)
            task.trigger("finish")
            results.append(task.state)

    outcomes: list[list[TaskState]] = [[] for _ in range(4)]
    threads = [threading.Thread(target=run, args=(out,)) for out in outcomes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(out == [TaskState.FINISHED] * 2000 for out in outcomes)
