"""Value models shared by the configuration, the nodes and the wire (pydantic, JSON-able)."""

from __future__ import annotations

from enum import Enum, StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    """A model that refuses unknown keys, so a typo in the configuration is reported, not ignored."""

    model_config = ConfigDict(extra="forbid")


class NextExecution(StrEnum):
    """Where a task goes when an operator continues past a failed step of this node (the seed's enum)."""

    SELF = "SELF"
    NEXT = "NEXT"

    @classmethod
    def of(cls, value: Any) -> NextExecution:
        """A driver's `next_node_execution()` answer: ours, the seed's `NodeErrorNextStep`, or a name."""
        return cls(value.name if isinstance(value, Enum) else value)


class NodeRef(BaseModel):
    """A light reference to a node, given to drivers as `src` and `dst`: it may live on another machine."""

    id: str
    name: str
    type: str
    properties: dict[str, Any] = Field(default_factory=dict)


class StepResult(BaseModel):
    """What a driver's `_execute` may return instead of the seed's `(status, message, endpoint)`."""

    status: int = 0
    message: str | None = None
    endpoint: str | None = None
    output: dict[str, Any] = Field(default_factory=dict)
    # False when trying again cannot help (e.g. bad arguments): the node's retries are skipped.
    retryable: bool = True
    # Set by the scheduler when the driver raised: the driver's own frames, kept with the step's record.
    traceback: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == 0


class RetryConfig(Strict):
    """How often a step is attempted before the task stops for an operator (hardware: once by default)."""

    max_attempts: int = Field(default=1, ge=1, le=100)
    initial_interval_s: float = Field(default=1.0, gt=0)
    backoff_coefficient: float = Field(default=2.0, ge=1.0)
    maximum_interval_s: float = Field(default=60.0, gt=0)


class EmulationConfig(Strict):
    """How a node behaves in emulation mode: it waits `duration_s` and fails at `failure_rate`."""

    duration_s: float = Field(default=1.0, ge=0)
    failure_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    seed: int | None = None
