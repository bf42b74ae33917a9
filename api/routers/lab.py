"""The lab: workflows, health, lab-wide pause and resume, configuration reload."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response

from ...engine.config import LabConfig
from ...engine.errors import SchedulerUnavailableError, UnknownWorkflowError
from ..deps import Admin, Nodes, Operator, Viewer, node_service, task_service, temporal_client
from ..responses import GUARDED, errors
from ..schemas import ConfigPublic, HealthPublic, LabCommandPublic, WorkflowPublic
from ..services.config import reload_lab
from ..services.nodes import unreachable

router = APIRouter(tags=["lab"])
log = logging.getLogger(__name__)


def _workflow(config: object) -> WorkflowPublic:
    return WorkflowPublic.model_validate(config, from_attributes=True)


@router.get("/workflows", tags=["workflows"], responses=GUARDED)
async def list_workflows(request: Request, who: Viewer) -> list[WorkflowPublic]:
    """The lab workflows tasks can run."""
    return [_workflow(w) for w in request.app.state.lab.workflows]


@router.get("/workflows/{name}", tags=["workflows"], responses={**GUARDED, **errors(404)})
async def show_workflow(name: str, request: Request, who: Viewer) -> WorkflowPublic:
    """One lab workflow and its steps."""
    lab = request.app.state.lab
    if not lab.has_workflow(name):
        raise UnknownWorkflowError(
            f"unknown workflow {name!r}; known: {', '.join(w.name for w in lab.workflows)}"
        )
    return _workflow(lab.workflow(name))


@router.get(
    "/health",
    responses={503: {"model": HealthPublic, "description": "Temporal is unreachable"}, **errors(403)},
)
async def health(request: Request, response: Response) -> HealthPublic:
    """Public, for monitoring: the API is up, is Temporal reachable (else 503), which nodes have a worker."""
    # No token: a monitor has none, and this tells less than a node listing. The address allowlist
    # still applies. Temporal down is what a monitor must see in the status code.
    address = request.app.state.settings.temporal_address
    try:
        client = await temporal_client(request)
        nodes = await node_service(request, client, await task_service(request, client))
        report = await nodes.health()
    except SchedulerUnavailableError as exc:
        report = unreachable(address, exc.message)
    except Exception as exc:  # whatever failed, a monitor gets a report (and 503), never a 500
        log.warning("GET /health failed", exc_info=True)
        report = unreachable(address, f"the health check failed: {type(exc).__name__}: {exc}")
    if not report.temporal:
        response.status_code = 503
    return report


@router.post("/lab/pause", responses={**GUARDED, **errors(503)})
async def pause_lab(who: Operator, nodes: Nodes) -> LabCommandPublic:
    """Every running task pauses after its current step (an operator must enter the lab)."""
    return await nodes.pause_lab(who.name)


@router.post("/lab/resume", responses={**GUARDED, **errors(503)})
async def resume_lab(who: Operator, nodes: Nodes) -> LabCommandPublic:
    """Every paused task continues."""
    return await nodes.resume_lab(who.name)


@router.get("/config", responses=GUARDED)
async def show_config(request: Request, who: Viewer) -> ConfigPublic:
    """The configuration the API serves."""
    return _config_public(request.app.state.lab)


@router.post("/config/reload", responses={**GUARDED, **errors(409, 422, 503)})
async def reload_config(request: Request, who: Admin, nodes: Nodes) -> ConfigPublic:
    """Reread and validate the configuration: all or nothing; refused if a running worker's drivers differ."""
    state = request.app.state
    fresh = await reload_lab(nodes, state.lab, state.settings.node_modules)
    state.lab = fresh
    return _config_public(fresh)


def _config_public(lab: LabConfig) -> ConfigPublic:
    return ConfigPublic(
        nodes=[n.id for n in lab.nodes],
        workflows=[w.name for w in lab.workflows],
        nodes_file=lab.nodes_file,
        workflows_file=lab.workflows_file,
    )
