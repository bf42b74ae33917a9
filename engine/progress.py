"""A task's progress through its protocol, as its TaskWorkflow keeps it: the book rebuilt from the
step records when a Temporal run begins, what an operator's continue is about, and what of the records
a continue-as-new may leave behind. Pure: the workflow gives it its state.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from .book import DONE, Book, BookState
from .errors import CommandRefusedError
from .protocol import Protocol, StepKind
from .states import TaskState
from .task_state import ContinueRequest, StepOutcome, TaskStatus


def book_of(protocol: Protocol, status: TaskStatus) -> Book:
    """The book of a task whose Temporal run begins: at its start, or after a continue-as-new, which
    happens only while no step runs and none awaits a decision, so each step is done or PENDING. The
    steps whose records are archived in earlier runs are done."""
    outcomes: dict[str, StepOutcome] = {
        step.id: StepOutcome.SUCCEEDED for step in protocol.steps[: status.steps_offset]
    }
    for record in status.steps:
        if record.outcome in DONE:
            outcomes[protocol.steps[record.index].id] = record.outcome
    paused = status.pause_requested or status.state is TaskState.PAUSED
    return Book(protocol, BookState(outcomes=outcomes, paused=paused))


def done_from(book: Book, start: int = 0) -> int:
    """The first step, from `start` on in the protocol's order, that is not done (the steps before
    `start` are): a line's next step. Done steps stay done, so it only moves on."""
    steps = book.protocol.steps
    while start < len(steps) and book.outcome(steps[start].id) in DONE:
        start += 1
    return start


def records_needed_from(book: Book) -> int:
    """The first step whose record a new Temporal run must keep: every step before it is done, and no
    step still to run takes its output (the steps a step comes after give it theirs)."""
    first = len(book.protocol.steps)
    for step in book.protocol.steps:
        if book.outcome(step.id) in DONE:
            continue
        before = [book.protocol.step(b).index for b in step.after]
        first = min(first, step.index, *before)
    return first


def running_waits(book: Book) -> list[str]:
    return [s for s in book.running() if book.protocol.step(s).kind is StepKind.WAIT]


def step_named(protocol: Protocol, name: str) -> str:
    """The step an operator names: by its id, or by its number from 1."""
    if protocol.has(name):
        return name
    if name.isdigit() and 1 <= int(name) <= len(protocol.steps):
        return protocol.steps[int(name) - 1].id
    steps = ", ".join(protocol.ids())
    raise CommandRefusedError(f"no step {name!r} in this task; its steps: {steps}")


class ContinueTarget(BaseModel):
    """What an operator's continue does: decide about a failed step, end a running wait (`skip`),
    resume a paused task, or take back a pause not yet in effect (`unpause`)."""

    kind: Literal["decide", "skip", "resume", "unpause"]
    step: str | None = None


def continue_target(
    book: Book, state: TaskState, pause_requested: bool, request: ContinueRequest
) -> ContinueTarget | None:
    """What a continue is about; None if the task's state takes no continue, CommandRefusedError if
    this one cannot be taken, and why."""
    if request.step is not None:
        return _named_target(book, state, step_named(book.protocol, request.step), request)
    if state is TaskState.ERROR:
        failed = book.awaiting_decision()
        if len(failed) > 1:
            raise CommandRefusedError(
                f"steps {', '.join(failed)} failed: name the step this continue is about (--step ID)"
            )
        if failed:
            return ContinueTarget(kind="decide", step=failed[0])
    elif state is TaskState.PAUSED:
        return ContinueTarget(kind="resume")
    waits = running_waits(book)
    if request.mode == "next" and waits and state is TaskState.ACTIVE:
        if len(waits) > 1:
            raise CommandRefusedError(f"waits {', '.join(waits)} run: name the one to end (--step ID)")
        return ContinueTarget(kind="skip", step=waits[0])
    if state is TaskState.ACTIVE and pause_requested:
        return ContinueTarget(kind="unpause")
    return None


def _named_target(book: Book, state: TaskState, step_id: str, request: ContinueRequest) -> ContinueTarget:
    if step_id in running_waits(book):
        if request.mode != "next":
            raise CommandRefusedError(
                f"step {step_id} is a wait: continue --mode next ends it now (a wait cannot be retried)"
            )
        return ContinueTarget(kind="skip", step=step_id)
    if state is TaskState.ERROR and step_id in book.awaiting_decision():
        return ContinueTarget(kind="decide", step=step_id)
    failed = book.awaiting_decision()
    also = f" (failed: {', '.join(failed)})" if failed else ""
    raise CommandRefusedError(
        f"step {step_id} is {book.outcome(step_id).value}: continue names a failed step or a running "
        f"wait{also}"
    )
