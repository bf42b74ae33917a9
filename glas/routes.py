"""The seed's HTTP API (GLAS's routes), beside ours on the same app: `/task/`, `/orchestrator/`,
`/config/reload`, `/node/restart/`, `/workflow/`, `/logs/`, with the status codes and bodies its clients
rely on. Its token is ours (`GET /token/{identifier}`, api/routers/tokens.py).

Built as the seed's `BaseScheduler` built it, so a GLAS project's scheduler (glas/scheduler.py) extends it
the seed's way: its routers are attributes (`task_router`, ...), its handlers plain methods, run in the
thread pool, that a project may override, and `init_*_routes` / `_extends_*_routes` add routes. The
handlers act through the orchestrator (the project's own, or glas/default.py's over our configuration),
whose methods reach the durable lab through our services.

Where the seed had a bug its clients cannot rely on, this does the sensible thing (README, "Moving from
the seed"): GET /task/{unknown} is a plain 204; a refused command is a 409 saying why (the seed: 500, or
200 for a failed restart); a reload that fails changes nothing and says why (422 or 409; the seed: 201
and a half-loaded lab); `DELETE /orchestrator/stop` pauses the running tasks and answers in seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, UploadFile, status
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials

from ..api.deps import bearer
from ..api.responses import errors
from ..api.security import Identity, Role, is_local_caller
from ..engine.errors import (
    InvalidRequestError,
    LabStoppedError,
    PermissionDeniedError,
)
from ..engine.seed import (
    DBLogsModel,
    LoadedCounts,
    OrchestratorErrorCodes,
    OrchestratorState,
    PostTask,
    TaskModel,
    TaskRow,
)
from . import runtime
from .guard import NULL, SeedRouter, role_of, seed_guard, text_answer
from .log import LoggingManager

Codes = OrchestratorErrorCodes


class SeedRoutes:
    def __init__(self, orchestrator: Any, seed: runtime.SeedRuntime) -> None:
        self.logger = LoggingManager.get_logger("glas", app="GLAS")
        self.orchestrator = orchestrator
        self.seed = seed
        orchestrator.attach(seed)
        self.task_router = self._router("/task", "tasks")
        self.orchestrator_router = self._router("/orchestrator", "orchestrator")
        self.config_router = self._router("/config", "config")
        self.node_router = self._router("/node", "nodes")
        self.workflow_router = self._router("/workflow", "workflows")
        self.log_router = self._router("/logs", "logs")
        # The seed's `/token/{identifier}` is ours (api/routers/tokens.py): this router stays empty.
        self.token_router = APIRouter(prefix="/token", tags=["GLAS tokens"])
        self.init_routes()

    def _router(self, prefix: str, what: str) -> SeedRouter:
        return SeedRouter(self._guard, prefix=prefix, tags=[f"GLAS {what}"])

    def routers(self) -> list[APIRouter]:
        return [
            self.task_router,
            self.orchestrator_router,
            self.config_router,
            self.node_router,
            self.workflow_router,
            self.token_router,
            self.log_router,
        ]

    # --- the guard ---------------------------------------------------------------------------------

    def _guard(self, role: Role) -> Callable[..., Coroutine[Any, Any, Identity]]:
        return seed_guard(role, self.seed)

    async def _verify_token(
        self, request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> str:
        """The seed's guard, for a GLAS project's own routers (`dependencies=[Security(self._verify_token)]`):
        a viewer's token to read (GET), an operator's to act; the name it was given to."""
        identity = await self._guard(role_of([request.method]))(request, credentials)
        return identity.name

    def _verify_localhost(self, request: Request) -> None:
        """The seed's guard of `/token/{identifier}`, for a project's own routes."""
        if not is_local_caller(request):
            raise PermissionDeniedError("Only localhost is allowed")

    # --- the routes, in the seed's order -----------------------------------------------------------

    def init_routes(self) -> None:
        self.init_orchestrator_routes()
        self.init_task_routes()
        self._extends_orchestrator_routes()
        self._extends_task_routes()
        self.init_config_routes()
        self.init_node_routes()
        self.init_workflow_routes()
        self.init_token_routes()
        self.init_log_routes()

    def _extends_orchestrator_routes(self) -> None:
        """A project's own routes on `self.orchestrator_router` (the seed's hook)."""

    def _extends_task_routes(self) -> None:
        """A project's own routes on `self.task_router` (the seed's hook)."""

    def init_orchestrator_routes(self) -> None:
        add = self.orchestrator_router.add_api_route
        add(
            "/start",
            self.start_orchestrator,
            methods=["POST"],
            status_code=status.HTTP_204_NO_CONTENT,
            responses={
                409: {"description": "it takes tasks already, or the configuration failed", "content": NULL}
            },
        )
        add(
            "/stop",
            self.stop,
            methods=["DELETE"],
            status_code=status.HTTP_204_NO_CONTENT,
            responses={409: {"description": "it was stopped already", "content": NULL}},
        )
        add(
            "/status",
            self.orchestrator_status,
            methods=["GET"],
            status_code=status.HTTP_204_NO_CONTENT,
            responses={410: {"description": "stopped: the lab takes no new tasks", "content": NULL}},
        )

    def init_task_routes(self) -> None:
        add = self.task_router.add_api_route
        # The order matters: `/{task_id}` last, or it would take `/running`.
        add(
            "/",
            self.lab_add_task,
            methods=["POST"],
            response_model=None,
            responses={
                200: {"description": "the task, started", "model": TaskModel},
                **errors(400),
                404: {"description": "no workflow of that name: the request, echoed", "model": PostTask},
                418: {
                    "description": "the orchestrator is stopped: no new task",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
            },
        )
        add("/running", self.get_running, methods=["GET"], response_model=list[TaskModel])
        add(
            "/pause/{task_id}",
            self.pause_task,
            methods=["PATCH"],
            responses={**_task_missing(), 409: text_answer("the task could not be paused: why")},
        )
        continued = {**_task_missing(), 409: text_answer("the task could not be continued: why")}
        add("/continue/{task_id}", self.continue_task, methods=["PATCH"], responses=continued)
        # GET too: the collection the seed shipped sends its continue as a GET (an act: an operator's).
        add(
            "/continue/{task_id}",
            self.continue_task,
            methods=["GET"],
            responses=continued,
            name="continue_get",
            role=Role.operator,
        )
        add(
            "/{task_id}",
            self.get_task_info,
            methods=["GET"],
            response_model=TaskRow,
            responses={204: {"description": "no task of that id (no body)"}},
        )

    def init_node_routes(self) -> None:
        self.node_router.add_api_route(
            "/restart/{node_id}",
            self.restart_node,
            methods=["PATCH"],
            responses={
                404: text_answer("no node of that id"),
                409: text_answer(
                    "the node could not be restarted (a step runs on it, or its restart failed): why"
                ),
            },
        )

    def init_config_routes(self) -> None:
        self.config_router.add_api_route(
            "/reload",
            self.reload_config,
            methods=["PATCH"],
            response_model=LoadedCounts,
            responses={
                **errors(400),
                409: {"description": "a running worker drives other settings"},
                422: {"description": "invalid"},
            },
        )

    def init_workflow_routes(self) -> None:
        self.workflow_router.add_api_route(
            "/", self.get_workflows, methods=["GET"], response_model=dict[str, list[dict[str, Any]]]
        )

    def init_token_routes(self) -> None:
        """The seed's token route is ours (GET /token/{identifier})."""

    def init_log_routes(self) -> None:
        self.log_router.add_api_route("/", self._logs, methods=["GET"], response_model=list[DBLogsModel])
        self.log_router.add_api_route(
            "/execution",
            self._get_execution_logs,
            methods=["GET"],
            response_model=dict[str, list[dict[str, Any]]],
        )

    # --- the handlers (plain defs, in the thread pool, as the seed's) -------------------------------

    def orchestrator_status(self, response: Response) -> None:
        """204 while the lab takes tasks; 410 once its orchestrator is stopped."""
        if self.orchestrator.state is not OrchestratorState.RUNNING:
            response.status_code = status.HTTP_410_GONE

    def start_orchestrator(self, response: Response) -> None:
        """Read the configuration files again and take tasks (the tasks the stop paused resume)."""
        response.status_code = status.HTTP_204_NO_CONTENT
        if self.orchestrator.start() is not Codes.OK:
            response.status_code = status.HTTP_409_CONFLICT

    def stop(self, response: Response) -> None:
        """Take no new tasks, and pause the running ones after their step (nothing is lost)."""
        response.status_code = status.HTTP_204_NO_CONTENT
        if self.orchestrator.stop() is not Codes.OK:
            response.status_code = status.HTTP_409_CONFLICT

    def lab_add_task(self, data: PostTask, response: Response) -> Any:
        """Start a task of a lab workflow: 200 and the task (its `uuid` is its id everywhere)."""
        if not self.orchestrator.is_running():
            response.status_code = status.HTTP_418_IM_A_TEAPOT
            return {}
        workflow = self.orchestrator.get_workflow_by_name(data.workflow_name)
        if workflow is None:
            response.status_code = status.HTTP_404_NOT_FOUND
            return data
        try:
            task = self.orchestrator.add_task(workflow, data.args)
            # A project's add_task may start it later, in a thread of its own (the seed's way): the
            # answer waits until the task is durable, so the client's next request finds it.
            self.seed.call(lambda: self.seed.operations.ensure_started(task))
        except LabStoppedError:  # stopped since the check
            response.status_code = status.HTTP_418_IM_A_TEAPOT
            return {}
        return task.serialize()

    def get_running(self) -> Any:
        """Every unfinished task: running, paused, or waiting for its operator after a failure."""
        return self.seed.call(lambda: self.seed.operations.running_models())

    def pause_task(self, task_id: str) -> Any:
        """Pause the task after its step in progress."""
        return self._answer(self.orchestrator.pause_task(task_id), "Task does not exist", "Task pause failed")

    def continue_task(self, task_id: str) -> Any:
        """Continue a paused or failed task: on to the next step, or the same where the node says SELF."""
        code = self.orchestrator.continue_task(task_id)
        return self._answer(code, "Task does not exist", "Task continuation failed")

    def get_task_info(self, task_id: str) -> Any:
        """The task as the seed's row (`task_state_id` 1-5, cancelled: 5) and its workflow's; 204 if none."""
        info = self.seed.call(lambda: self.seed.operations.task_info(task_id))
        return Response(status_code=status.HTTP_204_NO_CONTENT) if info is None else info

    def restart_node(self, node_id: str) -> Any:
        """Restart the node (its driver's `_restart()`) and wait for the outcome."""
        return self._answer(
            self.orchestrator.restart_node(node_id), "Node does not exist", "Node restart failed"
        )

    def reload_config(self, files: list[UploadFile]) -> Any:
        """Load the uploaded nodes.json then workflows.json through the lab's loaders: all or nothing."""
        if len(files) != 2:
            raise InvalidRequestError(
                f"got {len(files)} file(s): send two as `files`, nodes.json first, then workflows.json"
            )
        if self.orchestrator.load_config(files[0].file, files[1].file) is not Codes.OK:
            raise self.orchestrator.problems or InvalidRequestError("the configuration was not loaded")
        nodes, workflows = self.orchestrator.loaded()
        return LoadedCounts(loaded_workflows=len(workflows), loaded_nodes=len(nodes))

    def get_workflows(self) -> Any:
        """Every workflow by name, with its steps (`position` from 0, and the node's name)."""
        _, workflows = self.orchestrator.loaded()
        return {
            workflow.name: [{"position": i, "name": step.name} for i, step in enumerate(workflow.steps)]
            for workflow in workflows
        }

    def _logs(self) -> Any:
        """The drivers' lines kept with the steps of the last 8 hours' tasks (the newest 1000)."""
        return self.seed.call(lambda: self.seed.operations.logs())

    def _get_execution_logs(self) -> Any:
        """Each step of the last 8 hours' tasks: its wait for the node (`w. acc.`) and its run."""
        return self.seed.call(lambda: self.seed.operations.execution_logs())

    def _answer(self, code: Codes, missing: str, refused: str) -> Any:
        if code is Codes.CONTENT_NOT_FOUND:
            return PlainTextResponse(missing, status_code=status.HTTP_404_NOT_FOUND)
        if code is not Codes.OK:
            why = self.orchestrator.refusal()
            text = f"{refused}: {why}" if why else refused
            return PlainTextResponse(text, status_code=status.HTTP_409_CONFLICT)
        return None


def _task_missing() -> dict[int | str, dict[str, Any]]:
    return {404: text_answer("no unfinished task of that id")}
