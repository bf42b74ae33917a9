"""A small HTTP client of the API, used by the CLI: every command is one or two requests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from ..engine.errors import TaskSchedulerError

TERMINAL_STATES = {"FINISHED", "CANCELLED"}


class ApiError(TaskSchedulerError):
    """The API refused the request."""

    def __init__(self, status: int, detail: object) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"{status}: {_detail_text(detail)}")


def _detail_text(detail: object) -> str:
    """Our errors' message, a configuration's problems one a line, or FastAPI's validation errors."""
    if isinstance(detail, dict) and "problems" in detail:
        return "\n  ".join([detail["message"], *detail["problems"]])
    if isinstance(detail, list) and all(isinstance(d, dict) and "msg" in d for d in detail):
        return "; ".join(f"{'.'.join(str(p) for p in d.get('loc', []))}: {d['msg']}" for d in detail)
    return str(detail)


class ApiClient:
    """`origin` says where the address and the token came from, added to the errors it explains: a
    connection refused, a token refused."""

    def __init__(self, base_url: str, token: str | None, timeout_s: float = 60.0, origin: str = "") -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout_s)
        self.origin = f" (used {origin})" if origin else ""

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.send(method, path, **kwargs).json()

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The API's answer, raised as an ApiError when it refuses."""
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise TaskSchedulerError(
                f"cannot reach the API at {self.http.base_url}{self.origin}: {exc}. Is the stack running? "
                "Give its address with --api or $TASK_SCHEDULER_API_URL"
            ) from exc
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text
            if response.status_code == 401:
                detail = f"{_detail_text(detail)}{self.origin}"
            raise ApiError(response.status_code, detail)
        return response

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body)

    def follow(
        self, task_id: str, show: Callable[[dict[str, Any]], None], poll_s: float = 0.5
    ) -> dict[str, Any]:
        """Show the task at each answer (about once a second), until it is over or stops for an operator."""
        while True:
            task = self.get(f"/tasks/{task_id}/wait", timeout_s=poll_s)
            show(task)
            if (
                task["state"] in TERMINAL_STATES
                or task["state"] == "ERROR"
                or task["temporal_status"] != "RUNNING"
            ):
                return task
            time.sleep(poll_s if task["live"] else 2 * poll_s)
