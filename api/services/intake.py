"""Whether the lab takes new tasks: a durable switch in its LabWorkflow (the seed's orchestrator stop
and start), read from the workflow's memo (no worker needed) and changed by an update."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from datetime import datetime, timedelta
from typing import TypeVar

from temporalio.client import Client, RPCTimeoutOrCancelledError, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from ...engine.contracts import INTAKE_MEMO, lab_workflow_id
from ...engine.errors import LabStoppedError, SchedulerUnavailableError
from ...engine.lab_state import IntakeAnswer, IntakeChange, PausedByStop, TaskIntake
from ...workflows.lab import LabWorkflow

T = TypeVar("T")

# A start asks whether the lab takes tasks: a describe of its LabWorkflow, one more round trip per start
# (W3's starts per second measured 17 % fewer). An API process keeps the answer this long; a stop that
# another process gives reaches it within that time, so a stop pauses the running tasks only after
# STOP_SETTLE_S: a task any API process started before it heard of the stop is paused with the others.
ACCEPTING_KEPT_S = 1.0
STOP_SETTLE_S = 1.5
_answers: dict[tuple[str, str], tuple[float, bool]] = {}  # (namespace, lab workflow id) -> (when, answer)


class Intake:
    def __init__(self, client: Client, task_queue: str, rpc_timeout: timedelta) -> None:
        self.handle = client.get_workflow_handle_for(LabWorkflow.run, lab_workflow_id(task_queue))
        self.rpc_timeout = rpc_timeout
        self._key = (client.namespace, self.handle.id)

    async def accepting(self) -> bool:
        """True unless a stop is in force; a lab whose LabWorkflow never ran takes tasks."""
        kept = _answers.get(self._key)
        if kept is not None and time.monotonic() - kept[0] < ACCEPTING_KEPT_S:
            return kept[1]
        answer = await self._read()
        _answers[self._key] = (time.monotonic(), answer)
        return answer

    async def _read(self) -> bool:
        try:
            description = await self.handle.describe(rpc_timeout=self.rpc_timeout)
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                return True
            raise self._unavailable(exc) from exc
        except RPCTimeoutOrCancelledError as exc:
            raise self._unavailable(exc) from exc
        return bool(await description.memo_value(INTAKE_MEMO, True))

    async def refuse_if_stopped(self) -> None:
        if not await self.accepting():
            state = await self.state()
            who = f" by {state.by}" if state.by else ""
            when = f" at {state.changed_at:%Y-%m-%d %H:%M:%S %Z}" if state.changed_at else ""
            raise LabStoppedError(
                f"the lab takes no new tasks: its orchestrator was stopped{who}{when}; POST "
                "/orchestrator/start takes them again (the tasks it paused resume then)"
            )

    async def state(self) -> TaskIntake:
        return await self._asked(self.handle.query(LabWorkflow.intake, rpc_timeout=self.rpc_timeout))

    async def change(self, accepting: bool, by: str | None) -> IntakeAnswer:
        """Stop (False) or start (True) taking tasks; the intake as it was before, and when this took."""
        change = IntakeChange(accepting=accepting, by=by)
        update = self.handle.execute_update(LabWorkflow.set_intake, change, rpc_timeout=self.rpc_timeout)
        answer = await self._asked(update)
        _answers[self._key] = (time.monotonic(), accepting)
        return answer

    async def note_paused(self, task_ids: list[str], changed_at: datetime | None) -> bool:
        """Keep the tasks the stop of `changed_at` paused, for the next start; False if a start came."""
        paused = PausedByStop(task_ids=task_ids, changed_at=changed_at)
        return await self._asked(
            self.handle.execute_update(LabWorkflow.note_paused, paused, rpc_timeout=self.rpc_timeout)
        )

    async def _asked(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except (RPCError, RPCTimeoutOrCancelledError, WorkflowUpdateFailedError) as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: Exception) -> SchedulerUnavailableError:
        return SchedulerUnavailableError(
            f"the lab's LabWorkflow ({self.handle.id}) does not answer ({exc}): it runs while a worker "
            "runs the workflows (`task-scheduler dev`, or a `task-scheduler worker` without --name)"
        )
