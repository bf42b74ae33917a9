"""A worker's metrics, in the Prometheus text format on its own port (`task-scheduler worker
--metrics-port N`): step durations and waits per node, driver failures, steps cancelled, ledger round
trips, and the Temporal SDK's own metrics.

The SDK's exporter (its Runtime's PrometheusConfig) binds a port of its own: it is bound to a free
loopback port, and this module's endpoint appends its text as it is (names unchanged, as Temporal's
dashboards expect them), so one port per worker serves both and only that one is ever opened.

The step activity reports through `observe_step` and `ledger_call`; the metric objects live in the
worker's own registry (`REGISTRY`), apart from prometheus_client's global one.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from temporalio.client import WorkflowUpdateFailedError
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from ..engine.errors import MetricsPortError

log = logging.getLogger("task_scheduler.metrics")

SDK_SCRAPE_TIMEOUT_S = 2.0
# A step lasts from a fraction of a second (a valve) to hours (an incubation); a wait as long.
STEP_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200)
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 600, 1800, 3600, 7200, 14400, 43200)
LEDGER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20)

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

STEP_DURATION = Histogram(
    "task_scheduler_step_duration_seconds",
    "How long a step's driver ran on the node (succeeded or failed), per node",
    ["node"],
    buckets=STEP_BUCKETS,
    registry=REGISTRY,
)
STEP_WAIT = Histogram(
    "task_scheduler_step_wait_seconds",
    "How long a step waited for its node (its place in the node's line) before its driver ran",
    ["node"],
    buckets=WAIT_BUCKETS,
    registry=REGISTRY,
)
DRIVER_FAILURES = Counter(
    "task_scheduler_driver_failures",
    "Steps whose driver failed (a failed status, an exception, a timeout), per node",
    ["node"],
    registry=REGISTRY,
)
STEPS_CANCELLED = Counter(
    "task_scheduler_steps_cancelled",
    "Steps an operator cancelled while their driver ran (the driver asked to abort; not failures), per node",
    ["node"],
    registry=REGISTRY,
)
LEDGER_CALLS = Histogram(
    "task_scheduler_ledger_call_duration_seconds",
    "Round trips to a node's ledger (begin_use, end_use...), answered or not, and how long each took",
    ["kind"],
    buckets=LEDGER_BUCKETS,
    registry=REGISTRY,
)
LEDGER_ERRORS = Counter(
    "task_scheduler_ledger_call_errors",
    "Round trips to a node's ledger that got no answer (Temporal unreachable, timed out); retried",
    ["kind"],
    registry=REGISTRY,
)


def observe_step(node_id: str, duration_s: float, waited_s: float, failed: bool) -> None:
    """One step's use of its node: how long its driver ran, how long it waited first, whether it failed."""
    STEP_DURATION.labels(node=node_id).observe(duration_s)
    STEP_WAIT.labels(node=node_id).observe(waited_s)
    if failed:
        DRIVER_FAILURES.labels(node=node_id).inc()


def observe_cancel(node_id: str) -> None:
    """An operator cancelled a step while its driver ran: counted apart from the driver's failures."""
    STEPS_CANCELLED.labels(node=node_id).inc()


def observe_ledger_call(kind: str, duration_s: float, failed: bool = False) -> None:
    """One round trip to a ledger (`kind`: the update, e.g. begin_use); `failed`: no answer came."""
    LEDGER_CALLS.labels(kind=kind).observe(duration_s)
    if failed:
        LEDGER_ERRORS.labels(kind=kind).inc()


@contextlib.contextmanager
def ledger_call(kind: str) -> Iterator[None]:
    """Time the round trip in the block. The ledger's refusal is an answer; any other error is not."""
    started = time.monotonic()
    failed = False
    try:
        yield
    except WorkflowUpdateFailedError:
        raise
    except BaseException:
        failed = True
        raise
    finally:
        observe_ledger_call(kind, time.monotonic() - started, failed)


def declare_nodes(node_ids: Iterable[str]) -> None:
    """Give every hosted node its series at zero, so a node that never failed shows 0, not nothing."""
    for node_id in node_ids:
        STEP_DURATION.labels(node=node_id)
        STEP_WAIT.labels(node=node_id)
        DRIVER_FAILURES.labels(node=node_id)
        STEPS_CANCELLED.labels(node=node_id)


# --- the Temporal SDK's metrics ------------------------------------------------------------------


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def sdk_runtime(port: int) -> Runtime:
    """A Temporal runtime whose SDK metrics are served on 127.0.0.1:`port` (merged into ours). Create
    it once per process, before the client: `connect(settings, runtime)`."""
    address = f"127.0.0.1:{port}"
    try:
        return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))
    except Exception as exc:  # the SDK's core raises a bare exception for a port it cannot bind
        raise MetricsPortError(f"the Temporal SDK cannot serve its metrics on {address}: {exc}") from exc


def _sdk_text(port: int | None) -> bytes:
    """The SDK exporter's text as it is, or nothing (a scrape must not fail because of it)."""
    if port is None:
        return b""
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=SDK_SCRAPE_TIMEOUT_S) as answer:
            text: bytes = answer.read()
    except OSError as exc:
        log.warning("the Temporal SDK's metrics on 127.0.0.1:%s do not answer: %s", port, exc)
        return b""
    return text if not text or text.endswith(b"\n") else text + b"\n"


# --- the endpoint --------------------------------------------------------------------------------


def exposition(sdk_port: int | None) -> bytes:
    """This worker's metrics, then the SDK's: two expositions whose metric names never overlap."""
    return generate_latest(REGISTRY) + _sdk_text(sdk_port)


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def serve_metrics(host: str, port: int, sdk_port: int | None = None) -> Callable[[], None]:
    """Serve `GET /metrics` on host:port in a thread of its own (a busy event loop still answers);
    return the function that stops it."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] not in ("/metrics", "/"):
                self.send_error(404, "the metrics are at /metrics")
                return
            body = exposition(sdk_port)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_PLAIN_0_0_4)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # a scrape every few seconds is not worth a log line

    server_class = _IPv6Server if ":" in host else ThreadingHTTPServer
    try:
        server = server_class((host, port), Handler)
    except OSError as exc:
        raise MetricsPortError(f"cannot serve the worker's metrics on {host}:{port}: {exc}") from exc
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    log.info("metrics at http://%s:%s/metrics", host, port)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
