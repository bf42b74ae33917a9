"""The seed's database classes, importable and harmless: there is no database (Temporal keeps every
state), but a GLAS project's orchestrator calls these while it loads its configuration.

What the project writes is kept in memory for the life of the process, so that what it reads back is
consistent: `DBWorkflow.insert` then `DBWorkflow.get_by_name(...).id` gives a stable id (1, 2, ... in
the order of insertion, the same at every start if the loader inserts in the same order), which the
project passes to `Workflow(_id, ...)` and the seed's HTTP API shows as `workflow_id`. Tasks, logs and
statistics are not kept here: the API reads them from Temporal.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from ..engine.seed import DBTaskModel, DBWorkflowModel

_lock = threading.Lock()


class DatabaseConnector:
    """No connection is opened: `cursor` is None, as the seed's was when its database was unreachable;
    SQL of the lab's own cannot run here."""

    def __init__(self) -> None:
        self.conn = None
        self.cursor = None

    def is_connected(self) -> bool:
        return True


class DBNode:
    rows: ClassVar[dict[str, str]] = {}  # id -> name

    @classmethod
    def exists(cls, db: Any, _id: str) -> bool:
        return _id in cls.rows

    @classmethod
    def insert(cls, db: Any, _id: str, name: str) -> None:
        with _lock:
            cls.rows.setdefault(_id, name)

    @classmethod
    def update_state(cls, db: Any, _id: str, state_id: int) -> None:
        """A node's state lives in its ledger (GET /nodes/{id})."""


class DBWorkflow:
    rows: ClassVar[dict[str, DBWorkflowModel]] = {}  # name -> row

    @classmethod
    def exists(cls, db: Any, name: str) -> bool:
        return name in cls.rows

    @classmethod
    def insert(cls, db: Any, name: str, source_node_id: str, destination_node_id: str) -> None:
        with _lock:
            row = DBWorkflowModel(
                id=len(cls.rows) + 1,
                name=name,
                source_node_id=source_node_id,
                destination_node_id=destination_node_id,
            )
            cls.rows.setdefault(name, row)

    @classmethod
    def get_by_name(cls, db: Any, name: str) -> DBWorkflowModel:
        if name not in cls.rows:
            raise LookupError(f"no workflow {name!r} was inserted (DBWorkflow.insert) in this process")
        return cls.rows[name]

    @classmethod
    def get_by_id(cls, db: Any, _id: int) -> DBWorkflowModel:
        row = next((r for r in cls.rows.values() if r.id == _id), None)
        if row is None:
            raise LookupError(f"no workflow with id {_id} was inserted (DBWorkflow.insert) in this process")
        return row

    @classmethod
    def get_all(cls, db: Any) -> list[DBWorkflowModel]:
        return list(cls.rows.values())


class DBStep:
    rows: ClassVar[list[tuple[int, str, int]]] = []  # (workflow id, node id, position)

    @classmethod
    def exists(cls, db: Any, workflow_id: int, node_id: str, position: int) -> bool:
        return (workflow_id, node_id, position) in cls.rows

    @classmethod
    def insert(cls, db: Any, workflow_id: int, node_id: str, position: int) -> None:
        with _lock:
            if (workflow_id, node_id, position) not in cls.rows:
                cls.rows.append((workflow_id, node_id, position))

    @classmethod
    def get_all_for_workflow(cls, db: Any, workflow_id: int) -> list[dict[str, Any]]:
        steps = sorted((p, n) for w, n, p in cls.rows if w == workflow_id)
        return [{"position": p, "name": DBNode.rows.get(n, n)} for p, n in steps]


class DBTask:
    """Tasks are Temporal workflows: GET /task/{id} and GET /tasks/{id} read them."""

    @classmethod
    def insert(cls, db: Any, _id: str, workflow_id: int, args: Any = None) -> None: ...

    @classmethod
    def get(cls, db: Any, _id: str) -> DBTaskModel | None:
        return None

    @classmethod
    def set_active(cls, db: Any, _id: str) -> None: ...

    @classmethod
    def set_finished(cls, db: Any, _id: str) -> None: ...

    @classmethod
    def set_error(cls, db: Any, _id: str) -> None: ...

    @classmethod
    def set_paused(cls, db: Any, _id: str) -> None: ...

    @classmethod
    def update_active_step(cls, db: Any, _id: str, node_id: str | None) -> None: ...


class DBWorkflowUsageRecord:
    """Workflow usage is counted from the tasks themselves (GET /stats)."""

    @classmethod
    def insert(cls, db: Any, workflow_id: int) -> None: ...


class DBNodeCallRecord:
    """Each call of a node is in its ledger's statistics (GET /nodes/{id})."""

    @classmethod
    def insert(cls, db: Any, node_id: str, *args: Any) -> None: ...


class DBNodeProperty:
    @classmethod
    def insert_property(cls, db: Any, node_id: str, name: str, value: Any) -> None: ...
