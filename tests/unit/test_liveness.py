"""Liveness as the API reads it: a node is online while a recent poller hosts it and its ledger records
no clean stop of that worker; the workers of nodes.json and the workflow hosts; why a step waits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from task_scheduler import LabConfig, NodeConfig, NodeState
from task_scheduler.api.services.waiting import InLine, PendingStep, in_line_reason, offline_reason
from task_scheduler.api.services.workers import health_workers, workers
from task_scheduler.engine.contracts import StepBeat
from task_scheduler.engine.ledger import Holder, KeptFor, LedgerState, UseKey, WorkerInfo
from task_scheduler.readers.liveness import LabLiveness, NodeLiveness
from task_scheduler.readers.pollers import Poller

T0 = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
PC2 = WorkerInfo(name="pc-2", identity="41@pc2/aa", host="pc2")
PC2_AGAIN = WorkerInfo(name="pc-2", identity="97@pc2/bb", host="pc2")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def poller(worker: WorkerInfo, seconds: float, live: bool = True) -> Poller:
    return Poller(worker.identity, at(seconds), live)


def ledger(state: NodeState = NodeState.AVAILABLE, offline_s: float | None = None) -> LedgerState:
    offline = at(offline_s) if offline_s is not None else None
    return LedgerState(node_id="b1", state=state, worker=PC2, online_since=T0, offline_since=offline)


def test_liveness_recent_poller_and_no_clean_stop_is_online() -> None:
    node = NodeLiveness("b1", [poller(PC2, 5)], ledger())

    assert (node.online, node.offline_since, node.last_seen) == (True, None, at(5))


def test_liveness_clean_stop_counts_at_once_whatever_the_lingering_poller_says() -> None:
    # The worker's last poll came after it announced its stop: still the same process, still offline.
    in_use = NodeLiveness("b1", [poller(PC2, 12)], ledger(NodeState.IN_USE, offline_s=10))
    idle = NodeLiveness("b1", [poller(PC2, 12)], ledger(NodeState.OFFLINE, offline_s=10))

    assert (in_use.online, idle.online) == (False, False)
    assert (in_use.offline_since, idle.offline_since) == (at(12), at(12))


def test_liveness_a_new_process_after_a_clean_stop_is_online_before_its_ledger_hears_of_it() -> None:
    node = NodeLiveness("b1", [poller(PC2, 9), poller(PC2_AGAIN, 30)], ledger(NodeState.IN_USE, offline_s=10))

    assert node.online is True


def test_liveness_killed_worker_is_offline_once_its_poller_ages_out_since_its_last_poll() -> None:
    node = NodeLiveness("b1", [poller(PC2, 7, live=False)], ledger())

    assert (node.online, node.offline_since) == (False, at(7))


def test_liveness_without_a_ledger_goes_by_the_pollers() -> None:
    assert NodeLiveness("b1", [poller(PC2, 1)]).online is True
    assert NodeLiveness("b1", []).offline_since is None


def test_workers_one_per_name_then_the_workflow_hosts_grouped_by_host() -> None:
    lab = LabConfig(
        nodes=[
            NodeConfig(id="a1", name="A", type="T", worker="pc-1"),
            NodeConfig(id="b1", name="B", type="T", worker="pc-2"),
        ],
        workflows=[],
    )
    pc1 = WorkerInfo(name="pc-1", identity="5@pc1/cc", host="pc1")
    flows = [
        Poller("5@pc1/cc", at(3), True),
        Poller("8@server/dd", at(2), False),
        Poller("9@server/ee", at(4), True),
    ]
    live = LabLiveness(
        flows,
        {
            "a1": NodeLiveness("a1", [poller(pc1, 3)]),
            "b1": NodeLiveness("b1", [poller(PC2, 1, live=False)], ledger()),
        },
    )

    listed = workers(lab, live)

    assert [(w.name, w.host, w.nodes, w.online, w.runs_workflows) for w in listed] == [
        ("pc-1", "pc1", ["a1"], True, True),
        ("pc-2", "pc2", ["b1"], False, False),
        (None, "server", [], True, True),
    ]
    assert (listed[1].offline_since, listed[2].identity) == (at(1), "9@server/ee")
    assert health_workers(lab, live) == {"pc-1": True, "pc-2": False}


def test_workers_one_pc_lab_has_one_unnamed_worker() -> None:
    lab = LabConfig(nodes=[NodeConfig(id="a1", name="A", type="T")], workflows=[])
    live = LabLiveness([], {"a1": NodeLiveness("a1", [poller(PC2, 1)])})

    assert [(w.name, w.nodes, w.online) for w in workers(lab, live)] == [(None, ["a1"], True)]
    assert health_workers(lab, live) == {"(unnamed)": True}


def test_offline_reason_says_waiting_then_since_when_after_offline_after_s() -> None:
    node = NodeLiveness("b1", [poller(PC2, 0, live=False)], ledger())

    assert (
        offline_reason(node, "pc-2", 60, at(0), at(30))
        == "waiting for node b1: its worker pc-2 is not online"
    )
    assert offline_reason(node, "pc-2", 60, at(0), at(61)) == (
        "node b1: its worker pc-2 has been offline since 2026-01-01 08:00:00 UTC"
    )


def test_offline_reason_with_no_record_of_the_worker_counts_from_the_steps_request() -> None:
    node = NodeLiveness("b1", [])

    assert offline_reason(node, None, 60, at(0), at(10)) == "waiting for node b1: its worker is not online"
    assert offline_reason(node, "pc-2", 60, at(0), at(90)) == (
        "node b1: its worker pc-2 has been offline for over 60 s (no poll of it on record)"
    )


def test_in_line_reason_after_a_retry_says_the_node_is_restarted_and_kept_for_the_step_not_held_by_it() -> (
    None
):
    """Right after an operator's continue (retry) of a failed step: the node is restarted for that step,
    then kept for it; once the ledger names the step as holder, the step begins (it is not waiting)."""
    retried = InLine("t1", 0, "b1", retried=True)
    pending = PendingStep(
        started=True, heartbeat=StepBeat(reason="node b1 is RECOVERY: waiting for a restart")
    )
    node = ledger(NodeState.RECOVERY)

    assert in_line_reason(retried, pending, node, at(1)) == (
        "waiting for node b1: it is being restarted for this step's retry (the operator's continue), then "
        "kept for it"
    )
    node = ledger().model_copy(update={"kept_for": KeptFor(step="t1/0", since=at(2))})
    assert in_line_reason(retried, pending, node, at(3)) == (
        "waiting for node b1: it was restarted for this step's retry and is kept for it"
    )
    held = Holder(key=UseKey(task_id="t1", step_index=0, run=2), since=at(4), worker=PC2)
    node = ledger(NodeState.IN_USE).model_copy(update={"holder": held})
    assert in_line_reason(retried, PendingStep(started=True), node, at(4)) is None


def test_in_line_reason_of_another_step_names_the_retry_the_node_is_kept_for_then_the_holder() -> None:
    other = InLine("t2", 2, "b1")
    kept = ledger().model_copy(update={"kept_for": KeptFor(step="t1/0", since=at(0))})

    assert in_line_reason(other, PendingStep(started=True), kept, at(1)) == (
        "waiting for node b1: it was restarted for an operator's retry of task t1 step 1, which goes first"
    )
    assert in_line_reason(other, PendingStep(started=True), ledger(NodeState.RECOVERY), at(1)) == (
        "waiting for node b1: it is being restarted"
    )
    held = Holder(key=UseKey(task_id="t1", step_index=0, run=2), since=at(4), worker=PC2)
    busy = ledger(NodeState.IN_USE).model_copy(update={"holder": held})
    assert in_line_reason(other, PendingStep(True, StepBeat(position=1)), busy, at(5)) == (
        "waiting for node b1 (number 1 in its line): it is in use by task t1 step 1 (run 2, attempt 1) since "
        "2026-01-01 08:00:04 UTC"
    )
