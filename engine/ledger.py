"""The node ledger: who holds a node, since when, and every use counted. Pure logic; the NodeWorkflow
keeps one and changes it only through these methods, so it can be tested without Temporal.

Lab safety: a node serves one step at a time, a node in ERROR serves none until an operator restarts
it, a use that was cut off (its worker died) is never silently run again on a one-attempt node, and a
use cut off while its driver may still run (the PC lost its link) keeps the node closed until its end
is accounted for.
"""

from __future__ import annotations

from datetime import datetime

from .ledger_models import (
    ENDED_RUNS_KEPT,
    KEPT_FOR_S,
    RECENT_USES_KEPT,
    BeginUse,
    BeginVerdict,
    CutOff,
    EndUse,
    Holder,
    HolderAnswer,
    HolderCheck,
    HoldRelease,
    KeptFor,
    LedgerRefusal,
    LedgerState,
    NodeCommand,
    NodeCommandResult,
    NodeStats,
    Reachability,
    RunAccounted,
    RunOutcome,
    UseKey,
    UseSummary,
    WorkerInfo,
)
from .states import NodeMachine, NodeState

# A use's outcome in the ledger's records, as a run accounted for: a cancelled run did not finish.
ENDED_AS = {"succeeded": RunOutcome.SUCCEEDED, "failed": RunOutcome.FAILED, "cancelled": RunOutcome.FAILED}

__all__ = [
    "KEPT_FOR_S",
    "BeginUse",
    "BeginVerdict",
    "CutOff",
    "EndUse",
    "HoldRelease",
    "Holder",
    "HolderAnswer",
    "HolderCheck",
    "KeptFor",
    "Ledger",
    "LedgerRefusal",
    "LedgerState",
    "NodeCommand",
    "NodeCommandResult",
    "NodeStats",
    "Reachability",
    "RunAccounted",
    "RunOutcome",
    "UseKey",
    "UseSummary",
    "WorkerInfo",
    "step_of",
    "step_text",
]


class Ledger:
    """Operations on a LedgerState; `check_*` refuse (for update validators), the others apply."""

    def __init__(self, state: LedgerState) -> None:
        self.state = state
        self.machine = NodeMachine(state.state, holder=state.holder)

    def _sync(self) -> None:
        self.machine.set_holder(self.state.holder)
        if self.machine.state is NodeState.ERROR and self.state.state is not NodeState.ERROR:
            self.state.errors += 1
        self.state.state = self.machine.state

    # --- beginning a use ---------------------------------------------------------------------------

    def check_begin(self, request: BeginUse, now: datetime | None = None) -> None:
        """Refuse a begin the node cannot take now (LedgerRefusal, saying why); `now` ends a keeping
        for a retry that did not come (without it, a keeping counts whatever its age)."""
        holders = self.state.holders
        if self._find(request.key, request.hold) is not None:
            return  # the same begin again (a lost response retried): idempotent
        if self.state.cut_off:
            raise LedgerRefusal(self.state.reason or self._cut_off_text())
        if request.key.run <= self.state.withdrawn.get(step_of(request.key), 0):
            raise LedgerRefusal(
                f"{request.key} was given up by its task while it waited; a newer run replaces it"
            )
        if self.state.state in (NodeState.ERROR, NodeState.RECOVERY):
            why = f" ({self.state.reason})" if self.state.reason else ""
            raise LedgerRefusal(
                f"node {self.state.node_id} is {self.state.state.value}{why}: waiting for a restart"
            )
        kept = self.state.kept_for
        if kept is not None and kept.step != step_of(request.key) and not _kept_too_long(kept, now):
            raise LedgerRefusal(
                f"node {self.state.node_id} is kept for {step_text(kept.step)}, which an operator chose "
                "to run again after the restart",
                kept_for=kept.step,
            )
        if not holders or self._same_step(request.key) is not None:
            return
        if request.close is not None and self._find(request.close.key, request.close.hold) is not None:
            return
        if len(holders) < request.capacity:
            return
        raise LedgerRefusal(f"node {self.state.node_id} is in use by {_holders_text(holders)}")

    def begin(self, request: BeginUse, now: datetime) -> BeginVerdict:
        self.check_begin(request, now)
        if self._find(request.key, request.hold) is not None:
            return BeginVerdict.GRANTED
        closed = self._find(request.close.key, request.close.hold) if request.close is not None else None
        if closed is not None:
            assert request.close is not None
            self._close(request.close, now, closed)
            if self._ran_before(request):
                self._release_if_free()
                self._sync()
                return BeginVerdict.RAN_BEFORE
        current = self._same_step(request.key)
        if current is None and self._ran_before(request):
            return BeginVerdict.RAN_BEFORE
        if current is not None and current.hold:
            self._remove(current)  # the step takes its own hold over (or a hold's retry its own)
        elif current is not None and request.hold:
            return BeginVerdict.GRANTED  # the step uses the node already: a hold adds nothing
        elif current is not None and not self._may_take_over(current.key, request):
            self.abandon(current.key, now, f"{current.key} was cut off (its worker was lost)")
            self.state.failed_step = request.key  # its task stops for an operator (WorkerLost)
            return BeginVerdict.LOST_PREVIOUS
        elif current is not None:
            self._record(current, now, "lost")
            self._count_lost(now)
            self._remove(current)
        self._hold(request, now)
        return BeginVerdict.GRANTED

    # --- the holders -------------------------------------------------------------------------------

    def _find(self, key: UseKey, hold: bool = False) -> Holder | None:
        """The holder of this very use (or, `hold`, this very hold: a step's hold and its use share
        their key when both are the first attempt)."""
        return next((h for h in self.state.holders if h.key == key and h.hold == hold), None)

    def _same_step(self, key: UseKey) -> Holder | None:
        return next((h for h in self.state.holders if h.key.same_step(key)), None)

    def _add(self, holder: Holder) -> None:
        if self.state.holder is None:
            self.state.holder = holder
        else:
            self.state.others.append(holder)

    def _remove(self, holder: Holder) -> None:
        """The first holder's place goes to the next one: `holder` is always set while any hold."""
        if self.state.holder is not None and self.state.holder.key == holder.key:
            self.state.holder = self.state.others.pop(0) if self.state.others else None
        else:
            self.state.others = [h for h in self.state.others if h.key != holder.key]

    def _release_if_free(self) -> None:
        if not self.state.holders and self.machine.state is NodeState.IN_USE:
            self.state.holder = None
            self._sync()
            self.machine.trigger("release")

    def _ran_before(self, request: BeginUse) -> bool:
        """The run this one replaces, thought lost before it began, did use the node to its end."""
        ended = self.state.ended_runs.get(step_of(request.key), 0)
        return request.lost_run is not None and ended >= request.lost_run

    def _may_take_over(self, previous: UseKey, request: BeginUse) -> bool:
        """A previous use of the same step never ended: only a retry the node's policy allows may run."""
        return previous.attempt < request.max_attempts and request.key.attempt <= request.max_attempts

    def _hold(self, request: BeginUse, now: datetime) -> None:
        self.state.kept_for = None  # kept for this step, or kept too long: either way it is over
        if self.machine.state is NodeState.OFFLINE:
            self.machine.trigger("come_online")
        self._sync()
        self.machine.trigger("hand_over" if self.machine.state is NodeState.IN_USE else "acquire")
        self._add(
            Holder(
                key=request.key,
                since=now,
                waited_s=request.waited_s,
                worker=request.worker,
                hold=request.hold,
            )
        )
        self.state.uses_this_run += 1
        self.state.usage.record_wait(now, request.waited_s)
        self._sync()

    # --- ending a use ------------------------------------------------------------------------------

    def end(self, request: EndUse, now: datetime) -> bool:
        """Record the end of the holder's use; an end of a use that is not held is ignored (idempotent)."""
        if request.driver_running:
            return self._keep_open(request)
        holder = self._find(request.key, request.hold)
        if holder is None:
            return False if request.hold else self._late_end(request, now)
        self._close(request, now, holder)
        self._release_if_free()
        if not request.succeeded and request.final and not holder.hold and self.machine.can("fail"):
            self.machine.trigger("fail")
            self.state.reason = f"{request.key} failed: {request.message or 'no message'}"
            self.state.failed_step = request.key
        self._sync()
        return True

    def _keep_open(self, request: EndUse) -> bool:
        """The holder's driver did not stop when asked to abort: its use is not over. It joins the runs
        cut off while their driver ran (see cut_off_use), the node closed in ERROR until its end."""
        holder = self._find(request.key)
        if holder is not None:
            self._fail(holder, cut_off=CutOff(**holder.model_dump(), reason=request.message))
            return True
        cut = next((c for c in self.state.cut_off if c.key == request.key), None)
        if cut is None:
            return False  # never held
        # Its task gave it up as cut off first: the driver not stopping is why, not a lost link.
        cut.reason = request.message
        self.state.reason = self._cut_off_text()
        return True

    def _fail(self, holder: Holder, reason: str | None = None, cut_off: CutOff | None = None) -> None:
        """The holder's use is over for the ledger without its end: the node goes to ERROR until an
        operator restarts it, saying why. A use `cut_off` stays open, and the node closed, until it is
        accounted for (the reason is then the cut-off uses' own)."""
        if cut_off is not None:
            self.state.cut_off.append(cut_off)
        self._remove(holder)
        self.state.failed_step = None
        self._sync()
        if self.machine.can("fail"):
            self.machine.trigger("fail")
        self.state.reason = reason or self._cut_off_text()
        self._sync()

    def _close(self, request: EndUse, now: datetime, holder: Holder) -> None:
        if holder.hold:
            self._count_hold(holder, now)
        else:
            self._count_end(request, holder.waited_s, now)
            self._record(holder, now, _outcome(request), request)
        self._remove(holder)

    def _count_hold(self, holder: Holder, now: datetime) -> None:
        """A hold ended: no driver ran here, so it is no use of the device (not in `calls`, not a run
        that ended for `ended_runs`), but the node was taken: its figures count it apart."""
        self.state.stats.holds += 1
        self.state.stats.total_held_s += max(0.0, (now - holder.since).total_seconds())
        summary = UseSummary(key=holder.key, began=holder.since, ended=now, outcome="held")
        self.state.recent = [*self.state.recent, summary][-RECENT_USES_KEPT:]

    def release_hold(self, release: HoldRelease, now: datetime) -> bool:
        """The task releases the hold of its step's run (or of an earlier run): the step is over, or
        its run given up. A use the step began here is its own end's business, never a hold's."""
        self.withdraw(release.key)  # a late retry of that hold activity must not take the node again
        holder = self._same_step(release.key)
        if holder is None or not holder.hold or holder.key.run > release.key.run:
            return False
        self._count_hold(holder, now)
        self._remove(holder)
        self._release_if_free()
        self._sync()
        return True

    def _record(self, holder: Holder, now: datetime, outcome: str, end: EndUse | None = None) -> None:
        summary = UseSummary(
            key=holder.key,
            began=holder.since,
            ended=now,
            outcome=outcome,
            status=end.status if end else None,
            message=end.message if end else None,
            late=holder in self.state.cut_off,
        )
        self.state.recent = [*self.state.recent, summary][-RECENT_USES_KEPT:]
        step, runs = step_of(holder.key), self.state.ended_runs
        runs[step] = max(runs.pop(step, 0), holder.key.run)  # re-inserted: the newest last
        for oldest in list(runs)[: max(0, len(runs) - ENDED_RUNS_KEPT)]:
            del runs[oldest]

    def _count_end(self, end: EndUse, waited_s: float, now: datetime) -> None:
        """A use ended: in the node's lifetime figures and in its windowed usage."""
        self.state.stats.add(end, waited_s)
        self.state.usage.record_end(now, end.duration_s, end.succeeded, cancelled=end.cancelled)

    def _count_lost(self, now: datetime) -> None:
        self.state.stats.lost += 1
        self.state.usage.record_lost(now)

    def abandon(self, key: UseKey, now: datetime, reason: str) -> bool:
        """The holder will never end its use (worker lost, task terminated): the device may have stopped
        mid-action, so the node goes to ERROR and waits for an operator's restart."""
        holder = self._same_step(key)
        if holder is None or holder.key.run > key.run:
            return False
        if holder.hold:  # no driver ran here: nothing to check on the device
            return self.release_hold(HoldRelease(key=holder.key), now)
        self._record(holder, now, "lost")
        self._count_lost(now)
        self._fail(holder, reason)
        return True

    # --- uses cut off while their driver ran --------------------------------------------------------

    def cut_off_use(self, key: UseKey, now: datetime) -> None:
        """A task gave up a run whose heartbeat stopped while its driver ran: its worker died, or its PC
        lost the link and the driver may still be running there. Keep the node closed until that run is
        accounted for; if it already is (its end arrived first, or its worker was replaced), tell the
        task at once."""
        if any(c.key.same_step(key) and c.key.run == key.run for c in self.state.cut_off):
            return  # already kept open: its driver did not stop when asked to abort
        holder = self._same_step(key)
        if holder is not None and holder.hold:
            self.release_hold(HoldRelease(key=holder.key), now)  # the run never began here
            holder = None
        if holder is None or holder.key.run != key.run:
            self._report(self._accounted_from_record(key))
            return
        cut = CutOff(**holder.model_dump())
        self._fail(holder, cut_off=cut)
        if self._replaced(cut):
            self._account_unknown(cut, now, "its worker process was replaced before the run reported")

    def withdraw(self, key: UseKey) -> None:
        """A task gave up a run that was waiting for the node (its heartbeat stopped) and asks for a
        new one: the old run's waiter, if it still lives in a worker cut off from the server, is refused."""
        step, withdrawn = step_of(key), self.state.withdrawn
        withdrawn[step] = max(withdrawn.pop(step, 0), key.run)  # re-inserted: the newest last
        for oldest in list(withdrawn)[: max(0, len(withdrawn) - ENDED_RUNS_KEPT)]:
            del withdrawn[oldest]

    def _late_end(self, request: EndUse, now: datetime) -> bool:
        """The end of a run given up as cut off: recorded, counted, and reported to its task; the node
        stays in ERROR (an operator's restart reopens it)."""
        cut = next((c for c in self.state.cut_off if c.key == request.key), None)
        if cut is None:
            return False
        self._count_end(request, cut.waited_s, now)
        self._record(cut, now, _outcome(request), request)
        self.state.cut_off.remove(cut)
        outcome = RunOutcome.SUCCEEDED if request.succeeded else RunOutcome.FAILED
        ended = request.ended_at or now
        self._report(_accounted(cut, outcome, ended, request.status, request.message))
        self._after_accounting(f"{cut.key} was cut off; its end arrived late ({outcome.value.lower()})")
        return True

    def _account_unknown(self, cut: CutOff, now: datetime, why: str) -> None:
        self._record(cut, now, "lost")
        self._count_lost(now)
        self.state.cut_off.remove(cut)
        self._report(_accounted(cut, RunOutcome.UNKNOWN, now, None, f"{why}: its outcome is unknown"))
        self._after_accounting(f"{cut.key} was cut off and {why}")

    def _after_accounting(self, reason: str) -> None:
        self.state.reason = self._cut_off_text() if self.state.cut_off else f"{reason}; check the device"

    def _accounted_from_record(self, key: UseKey) -> RunAccounted:
        """The run is not open here: its end arrived before the task gave it up, or it never began."""
        done = [u for u in self.state.recent if u.key.same_step(key) and u.key.run == key.run]
        if not done:
            message = "the node's ledger has no use of this run: it never reached the driver"
            return RunAccounted(key=key, outcome=RunOutcome.UNKNOWN, message=message)
        use = done[-1]
        outcome = ENDED_AS.get(use.outcome)
        return RunAccounted(
            key=use.key,
            outcome=outcome or RunOutcome.UNKNOWN,
            began=use.began,
            ended=use.ended,
            status=use.status,
            message=use.message,
        )

    def _replaced(self, holder: Holder) -> bool:
        """The worker process that ran the use is no longer the one hosting the node."""
        now_hosting = self.state.worker.identity if self.state.worker else None
        ran_it = holder.worker.identity if holder.worker else None
        return bool(ran_it and now_hosting and ran_it != now_hosting)

    def _report(self, accounted: RunAccounted) -> None:
        self.state.to_report.append(accounted.model_copy(update={"node_id": self.state.node_id}))

    def _cut_off_text(self) -> str:
        """Why the node is closed: each use kept open says its own reason (a driver that did not stop),
        and the runs cut off from their PC are said together."""
        own = [c.reason for c in self.state.cut_off if c.reason]
        unheard = [c for c in self.state.cut_off if not c.reason]
        if unheard:
            runs = "; ".join(f"{c.key} on {c.worker.label if c.worker else 'its PC'}" for c in unheard)
            own.append(
                f"node {self.state.node_id} is closed: a run was cut off while its driver ran ({runs}); it "
                "may still be running there. The node stays closed until that run's end is known: its PC "
                "reports back when the link returns, or its worker is restarted"
            )
        return "; ".join(own)

    # --- the node's life ---------------------------------------------------------------------------

    def come_online(self, worker: WorkerInfo | None = None, now: datetime | None = None) -> None:
        """A worker process starts hosting the node; a run cut off in another process has ended with it."""
        if worker is not None:
            self.state.worker = worker
            self.state.online_since, self.state.offline_since = now, None
        label = worker.label if worker else "its worker"
        for cut in [c for c in self.state.cut_off if self._replaced(c)]:
            assert now is not None
            self._account_unknown(cut, now, f"its worker process ended ({label} started again)")
        if self.machine.can("come_online"):
            self.machine.trigger("come_online")
            self._sync()

    def go_offline(self, now: datetime | None = None) -> None:
        self.state.offline_since = now
        if self.machine.can("go_offline"):
            self.machine.trigger("go_offline")
            self._sync()

    def set_reachable(self, reachable: bool, reason: str | None, now: datetime) -> None:
        """What the hosting worker's last probe of the device said (`is_reachable()`)."""
        if reachable == self.state.reachable:
            return
        self.state.reachable = reachable
        self.state.unreachable_since = None if reachable else now
        self.state.unreachable_reason = None if reachable else reason

    def check_restart(self) -> None:
        if self.state.cut_off:
            raise LedgerRefusal(f"cannot restart: {self.state.reason or self._cut_off_text()}")
        if self.state.holders and self.machine.state is not NodeState.IN_USE:
            # A node of capacity > 1 in ERROR while other steps still run on it: never mid-step.
            raise LedgerRefusal(
                f"cannot restart node {self.state.node_id} while steps still hold it: "
                f"{_holders_text(self.state.holders)}; restart it once they end"
            )
        if not self.machine.can("restart"):
            held = f" by {self.state.holder.key}" if self.state.holder else ""
            raise LedgerRefusal(
                f"cannot restart node {self.state.node_id}: it is {self.state.state.value}{held}"
            )

    def start_restart(self) -> None:
        self.check_restart()
        self.machine.trigger("restart")
        self._sync()

    def finish_restart(
        self, ok: bool, message: str | None, now: datetime | None = None, retry_of: str | None = None
    ) -> None:
        """The restart ended. Asked for by a task whose operator runs its failed step again (`retry_of`),
        the node is kept for that step: the steps that waited meanwhile must not take it first."""
        self.state.restarts += 1
        self.state.failed_step = None  # the operator's decision is carried out: the ERROR is the restart's
        if ok:
            self.machine.trigger("recovered")
            self.state.reason = None
            if retry_of is not None and now is not None:
                self.state.kept_for = KeptFor(step=retry_of, since=now)
        else:
            self.machine.trigger("fail")
            self.state.reason = f"restart failed: {message or 'no message'}"
        self._sync()


def _holders_text(holders: list[Holder]) -> str:
    def one(holder: Holder) -> str:
        return f"{holder.key}, which holds it for its step" if holder.hold else str(holder.key)

    return " and ".join(one(h) for h in holders)


def _kept_too_long(kept: KeptFor, now: datetime | None) -> bool:
    return now is not None and not kept.holds_at(now)


def step_of(key: UseKey) -> str:
    """The step a use belongs to, whatever its run or attempt: "task id/step index"."""
    return f"{key.task_id}/{key.step_index}"


def step_text(step: str) -> str:
    """A step_of as people read it: "task T step 1" for "T/0" (steps count from 1)."""
    task_id, _, index = step.rpartition("/")
    return f"task {task_id} step {int(index) + 1}" if index.isdigit() else step


def _outcome(end: EndUse) -> str:
    if end.succeeded:
        return "succeeded"
    return "cancelled" if end.cancelled else "failed"


def _accounted(
    cut: Holder, outcome: RunOutcome, now: datetime, status: int | None, message: str | None
) -> RunAccounted:
    return RunAccounted(
        key=cut.key,
        outcome=outcome,
        worker=cut.worker.label if cut.worker else None,
        began=cut.since,
        ended=now,
        status=status,
        message=message,
    )
