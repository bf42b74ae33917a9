"""`GET /metrics`: the lab in the Prometheus text format, for a scraper (which has no token)."""

from __future__ import annotations

import asyncio
import logging
import math
import time

from fastapi import APIRouter, Request, Response
from prometheus_client import generate_latest
from prometheus_client.core import Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from ..deps import node_service, task_service, temporal_client
from ..responses import errors
from ..services.metrics import LabMetrics, read_sources, scrape_families

router = APIRouter(tags=["lab"])
log = logging.getLogger(__name__)

# Prometheus says how long it waits for an answer (its scrape_timeout, 10 s by default) in this header;
# the API answers within it, less a margin, or within the default when no header says.
TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
DEFAULT_BUDGET_S = 8.0
MARGIN_S = 0.5
MIN_BUDGET_S = 0.5
MAX_BUDGET_S = 60.0


class _Families(Collector):
    """A collector of a scrape's metric families, for `generate_latest`."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "the metrics, in the Prometheus text format (version 0.0.4)",
        },
        **errors(403),
    },
)
async def metrics(request: Request) -> Response:
    """Public, for Prometheus: tasks by state and workflow, operator waits, nodes by state, deliveries."""
    # Read from Temporal at each scrape, within the scrape's timeout; a source that cannot answer in
    # time is left out and `task_scheduler_metrics_source_up` says which.
    # No token, as /health: a scraper has none. The address allowlist still applies.
    started = time.monotonic()
    deadline = started + scrape_budget(request.headers.get(TIMEOUT_HEADER))
    families, up = await _read(request, deadline)
    body = generate_latest(_Families(scrape_families(families, up, started)))
    return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)


def scrape_budget(header: str | None) -> float:
    """The time this scrape may take: the scraper's timeout less a margin, or the default."""
    try:
        budget = float(header) - MARGIN_S if header else DEFAULT_BUDGET_S
    except ValueError:
        budget = DEFAULT_BUDGET_S
    if not math.isfinite(budget):
        budget = DEFAULT_BUDGET_S
    return min(max(budget, MIN_BUDGET_S), MAX_BUDGET_S)


async def _read(request: Request, deadline: float) -> tuple[list[Metric], dict[str, bool]]:
    try:
        client = await asyncio.wait_for(temporal_client(request), timeout=deadline - time.monotonic())
    except Exception as exc:  # Temporal unreachable: every source is down, the answer is still a 200
        log.warning("metrics: no Temporal client (%s: %s)", type(exc).__name__, exc)
        return [], dict.fromkeys(LabMetrics.SOURCES, False)
    tasks = await task_service(request, client)
    reader = LabMetrics(tasks, await node_service(request, client, tasks))
    return await read_sources(reader.sources(), deadline - time.monotonic())
