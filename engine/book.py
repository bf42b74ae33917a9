"""The task's book: which steps of its protocol may start now, what a failed step blocks, and what an
operator's decision or a pause changes. Pure, as `ledger.py` is the node's rules: the task keeps the
outcome of each step and asks the book, and a simulator may ask it the same.

The rules:
- a step is ready when every step it comes after is done (SUCCEEDED, or SKIPPED by an operator), and
  nothing holds the task;
- a failed step (FAILED, or LOST: its worker went away) holds the task until an operator decides about
  it: no new step starts, the steps already running go on and keep their results. With several failed
  steps, each decision names its step, and the task is held until every one is decided;
- the decisions: `retry` (the step is ready again), `next` (the step counts as done, SKIPPED: the steps
  after it may start), `cancel` (the task's: nothing starts any more);
- a pause holds the task too, until resumed: running steps finish, no new one starts;
- the task is finished when every step SUCCEEDED or was SKIPPED.

Answers list steps in the protocol's order, so a workflow that replays gets the same answer.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from .errors import CommandRefusedError, InvalidRequestError, InvalidTransitionError
from .protocol import Protocol
from .task_state import StepOutcome

DONE = (StepOutcome.SUCCEEDED, StepOutcome.SKIPPED)
STARTED = (StepOutcome.WAITING, StepOutcome.RUNNING)  # WAITING: started, waiting in its node's line
FAILED = (StepOutcome.FAILED, StepOutcome.LOST)  # what awaits an operator's decision
ENDINGS = (StepOutcome.SUCCEEDED, StepOutcome.FAILED, StepOutcome.LOST, StepOutcome.CANCELLED)

DecisionMode = Literal["retry", "next", "cancel"]


class Hold(StrEnum):
    """Why no new step starts (the first that applies)."""

    CANCELLED = "cancelled"
    FAILED = "failed"  # a failed step awaits an operator's decision
    PAUSED = "paused"


class BookState(BaseModel):
    """What the book keeps: each step's outcome by step id (PENDING if absent), and the task's pause and
    cancel."""

    outcomes: dict[str, StepOutcome] = Field(default_factory=dict)
    paused: bool = False
    cancelled: bool = False


class Book:
    """A task's scheduling rules over its protocol and its state; changes go through these methods.

    It keeps, besides the state, which steps may follow now, have started, failed or are done, refreshed
    for the step that changes and the steps right after it, so a task of thousands of steps is answered
    without reading them all."""

    def __init__(self, protocol: Protocol, state: BookState | None = None) -> None:
        self.protocol = protocol
        self.state = state or BookState()
        unknown = sorted(s for s in self.state.outcomes if not protocol.has(s))
        if unknown:
            raise InvalidRequestError(f"outcomes of steps not in the protocol: {', '.join(unknown)}")
        self._unblocked: set[str] = set()  # PENDING, and every step it comes after is done
        self._started: set[str] = set()
        self._failed: set[str] = set()
        self._done: set[str] = set()
        for step in protocol.steps:
            self._refresh(step.id)

    # --- answers -----------------------------------------------------------------------------------

    def outcome(self, step_id: str) -> StepOutcome:
        self._known(step_id)
        return self.state.outcomes.get(step_id, StepOutcome.PENDING)

    def hold(self) -> Hold | None:
        """What keeps new steps from starting, if anything."""
        if self.state.cancelled:
            return Hold.CANCELLED
        if self._failed:
            return Hold.FAILED
        return Hold.PAUSED if self.state.paused else None

    def ready(self) -> list[str]:
        """The steps to start now."""
        return [] if self.hold() else self._in_order(self._unblocked)

    def held_back(self) -> list[str]:
        """The steps that would start now but for the hold (a failure, a pause, a cancel)."""
        return self._in_order(self._unblocked) if self.hold() else []

    def running(self) -> list[str]:
        return self._in_order(self._started)

    def awaiting_decision(self) -> list[str]:
        """The failed steps an operator has not decided about yet."""
        return self._in_order(self._failed)

    @property
    def finished(self) -> bool:
        return len(self._done) == len(self.protocol.steps)

    @property
    def over(self) -> bool:
        """Finished, or cancelled with no step still running."""
        return self.finished or (self.state.cancelled and not self._started)

    # --- changes -----------------------------------------------------------------------------------

    def start(self, step_id: str) -> None:
        """The task starts a ready step."""
        self._known(step_id)
        if self.hold() is not None or step_id not in self._unblocked:
            raise InvalidTransitionError("step", self.outcome(step_id).value, "start", self._why_not(step_id))
        self._set(step_id, StepOutcome.RUNNING)

    def end(self, step_id: str, outcome: StepOutcome) -> None:
        """A running step ended: SUCCEEDED, FAILED, LOST or CANCELLED."""
        if outcome not in ENDINGS:
            raise InvalidRequestError(f"a step ends {', '.join(ENDINGS)}, not {outcome}")
        self._running(step_id, "end")
        self._set(step_id, StepOutcome(outcome))

    def again(self, step_id: str) -> None:
        """A started step's run ended before the step began (it was lost while it waited for its node):
        the step is ready again, at no cost and with no decision."""
        self._running(step_id, "start again")
        self._set(step_id, StepOutcome.PENDING)

    def skip(self, step_id: str) -> None:
        """An operator ends a running step as done (a wait cut short): SKIPPED, the steps after it may
        start."""
        self._running(step_id, "skip")
        self._set(step_id, StepOutcome.SKIPPED)

    def decide(self, mode: DecisionMode, step_id: str | None = None) -> str | None:
        """An operator's decision about a failed step (named when several failed); returns the step it
        was about. `cancel` is about the task: nothing starts any more."""
        if mode == "cancel":
            self.cancel()
            return None
        step_id = self._failed_step(step_id)
        self._set(step_id, StepOutcome.PENDING if mode == "retry" else StepOutcome.SKIPPED)
        return step_id

    def pause(self) -> None:
        self.state.paused = True

    def resume(self) -> None:
        self.state.paused = False

    def cancel(self) -> None:
        """The task is cancelled: no step starts again, and failed steps will not be decided about. Steps
        still running end as their runs end (`end`)."""
        self.state.cancelled = True
        for step_id in self.awaiting_decision():
            self._set(step_id, StepOutcome.CANCELLED)

    # --- helpers -----------------------------------------------------------------------------------

    def _set(self, step_id: str, outcome: StepOutcome) -> None:
        """A step's new outcome; whether it and the steps right after it may follow is read again."""
        self.state.outcomes[step_id] = outcome
        for changed in (step_id, *self.protocol.successors(step_id)):
            self._refresh(changed)

    def _refresh(self, step_id: str) -> None:
        outcomes = self.state.outcomes
        outcome = outcomes.get(step_id, StepOutcome.PENDING)
        after = self.protocol.step(step_id).after
        may_follow = outcome is StepOutcome.PENDING and all(outcomes.get(b) in DONE for b in after)
        _mark(self._unblocked, step_id, may_follow)
        _mark(self._started, step_id, outcome in STARTED)
        _mark(self._failed, step_id, outcome in FAILED)
        _mark(self._done, step_id, outcome in DONE)

    def _running(self, step_id: str, change: str) -> None:
        if self.outcome(step_id) not in STARTED:
            raise InvalidTransitionError("step", self.outcome(step_id).value, change, "it is not running")

    def _in_order(self, step_ids: set[str]) -> list[str]:
        return sorted(step_ids, key=lambda s: self.protocol.step(s).index)

    def _known(self, step_id: str) -> None:
        if not self.protocol.has(step_id):
            steps = ", ".join(self.protocol.ids())
            raise InvalidRequestError(f"no step {step_id!r} in this protocol; its steps: {steps}")

    def _why_not(self, step_id: str) -> str:
        if self.outcome(step_id) is not StepOutcome.PENDING:
            return "only a pending step starts"
        hold = self.hold()
        if hold is not None:
            return f"the task is held ({hold.value})"
        waiting = [b for b in self.protocol.step(step_id).after if self.outcome(b) not in DONE]
        return f"it comes after {', '.join(waiting)}, not done yet"

    def _failed_step(self, step_id: str | None) -> str:
        """The step a retry or next is about: the one named, or the only failed one."""
        failed = self.awaiting_decision()
        if step_id is None and len(failed) > 1:
            raise CommandRefusedError(
                f"steps {', '.join(failed)} failed: name the step this decision is about"
            )
        if step_id is None and not failed:
            raise CommandRefusedError("no step failed: there is nothing to retry or move past")
        step_id = step_id if step_id is not None else failed[0]
        if step_id not in failed:
            outcome = self.outcome(step_id).value
            awaiting = f"; failed: {', '.join(failed)}" if failed else ""
            raise InvalidTransitionError("step", outcome, "decide about", f"it did not fail{awaiting}")
        return step_id


def _mark(group: set[str], step_id: str, member: bool) -> None:
    if member:
        group.add(step_id)
    else:
        group.discard(step_id)
