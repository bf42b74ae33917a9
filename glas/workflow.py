"""The seed's `Workflow`: a named, ordered list of node objects, as a GLAS project's loader builds it.
The lab's configuration is made from these (engine/objects.py); a task keeps a snapshot of its steps."""

from __future__ import annotations

from typing import Any

from ..engine.seed import WorkflowModel


class Workflow:
    def __init__(self, _id: int, name: str, steps: list[Any]) -> None:
        if len(steps) < 2:
            raise ValueError(f"workflow {name!r} has {len(steps)} step(s); the seed's have at least 2")
        self._set(_id, name, steps)

    @classmethod
    def of(cls, _id: int, name: str, steps: list[Any]) -> Workflow:
        """A workflow of any length (ours may have one step), for views of tasks and configurations."""
        workflow = cls.__new__(cls)
        workflow._set(_id, name, steps)
        return workflow

    def _set(self, _id: int, name: str, steps: list[Any]) -> None:
        self.id = _id
        self.name = name
        self.steps = steps
        self.source = steps[0] if steps else None
        self.destination = steps[-1] if steps else None

    def __repr__(self) -> str:
        return f"{self.source} - {self.destination}"

    def serialize(self) -> WorkflowModel:
        steps = [step.serialize() for step in self.steps]
        return WorkflowModel(id=self.id, name=self.name, source=steps[0], destination=steps[-1], steps=steps)

    def model_dump(self) -> dict[str, Any]:
        return self.serialize().model_dump()
