"""The custom search attributes of task workflows, defined once: how a server gets them (`task-scheduler
setup`, `dev`) and how a task keeps them current.

They keep listings filterable without a worker (visibility answers when queries cannot) and make the
Temporal UI useful: `TaskState="ERROR"`, `LabWorkflow="dose-and-analyse"`, `CurrentNode="hplc"`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

from temporalio import workflow
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

from ..engine.errors import SearchAttributeRegistrationError
from ..engine.states import TaskState

if TYPE_CHECKING:
    from temporalio.client import Client

TASK_STATE = SearchAttributeKey.for_keyword("TaskState")
LAB_WORKFLOW = SearchAttributeKey.for_keyword("LabWorkflow")
CURRENT_NODE = SearchAttributeKey.for_keyword("CurrentNode")

ProtoType: TypeAlias = (
    IndexedValueType.ValueType
)  # the proto enum's value (KEYWORD = 2), as requests carry it

CUSTOM_SEARCH_ATTRIBUTES: tuple[SearchAttributeKey, ...] = (TASK_STATE, LAB_WORKFLOW, CURRENT_NODE)
# Patched: a task's search attributes are upserted only where they changed (the step's CurrentNode, the
# state), and the start goes with the first step's. Tasks that began before upsert all three each time.
UPSERT_CHANGES_ONLY = "upsert-changes-only"
# Patched: a task that ends (cancelled at a step) clears its CurrentNode; earlier tasks kept it.
NO_NODE_WHEN_OVER = "no-node-when-over"
OVER = frozenset({TaskState.FINISHED, TaskState.CANCELLED})


def upsert_task_attributes(state: TaskState, workflow_name: str, node: str | None) -> None:
    """In a TaskWorkflow: say its state, lab workflow and current node to visibility. A task that is
    over is at no node (`CurrentNode="arm"` lists the tasks at the arm, not those cancelled there)."""
    if node is not None and state in OVER and workflow.patched(NO_NODE_WHEN_OVER):
        node = None
    wanted = [(TASK_STATE, state.value), (LAB_WORKFLOW, workflow_name), (CURRENT_NODE, node or "")]
    if workflow.patched(UPSERT_CHANGES_ONLY):
        now = workflow.info().typed_search_attributes
        wanted = [(key, value) for key, value in wanted if (now.get(key) or "") != value]
        if not wanted:
            return
    workflow.upsert_search_attributes([key.value_set(value) for key, value in wanted])


def type_name(key: SearchAttributeKey) -> str:
    """The type as the `temporal` CLI spells it (`Keyword`), for flags and hints."""
    return "".join(part.capitalize() for part in key.indexed_value_type.name.split("_"))


def manual_registration_hint(namespace: str) -> str:
    commands = [
        f"temporal operator search-attribute create --namespace {namespace} "
        f"--name {key.name} --type {type_name(key)}"
        for key in CUSTOM_SEARCH_ATTRIBUTES
    ]
    return "register them by hand (as an admin of the server):\n  " + "\n  ".join(commands)


async def ensure_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register the custom search attributes missing in `namespace`; return the names added."""
    existing = await _list_custom_search_attributes(client, namespace)
    _check_types(existing, namespace)
    missing = {key.name: _proto_type(key) for key in CUSTOM_SEARCH_ATTRIBUTES if key.name not in existing}
    if missing:
        await _add_search_attributes(client, namespace, missing)
    return sorted(missing)


def _proto_type(key: SearchAttributeKey) -> ProtoType:
    # The SDK's enum mirrors the proto's numbers (KEYWORD = 2 in both).
    return IndexedValueType.ValueType(key.indexed_value_type.value)


async def _list_custom_search_attributes(client: Client, namespace: str) -> dict[str, ProtoType]:
    request = ListSearchAttributesRequest(namespace=namespace)
    try:
        response = await client.operator_service.list_search_attributes(request)
    except RPCError as err:
        raise _refused("list", namespace, err) from err
    return dict(response.custom_attributes)


def _check_types(existing: dict[str, ProtoType], namespace: str) -> None:
    # A name registered with another type would make every upsert of it fail later, deep in a workflow.
    for key in CUSTOM_SEARCH_ATTRIBUTES:
        found = existing.get(key.name)
        if found is not None and found != _proto_type(key):
            raise SearchAttributeRegistrationError(
                f"search attribute {key.name} exists in namespace {namespace!r} with type "
                f"{IndexedValueType.Name(found)}, task_scheduler needs {type_name(key)}: "
                "use another namespace, or a fresh dev server database file"
            )


async def _add_search_attributes(client: Client, namespace: str, missing: dict[str, ProtoType]) -> None:
    request = AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
    try:
        await client.operator_service.add_search_attributes(request)
    except RPCError as err:
        # Another process registering the same names at the same moment is not a failure.
        if err.status != RPCStatusCode.ALREADY_EXISTS:
            raise _refused("register", namespace, err) from err


def _refused(action: str, namespace: str, err: RPCError) -> SearchAttributeRegistrationError:
    return SearchAttributeRegistrationError(
        f"the Temporal server refused to {action} search attributes in namespace {namespace!r} "
        f"({err.status.name if err.status else 'error'}: {err.message}); "
        + manual_registration_hint(namespace)
    )
