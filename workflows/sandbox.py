"""The workflow sandbox of our workers and replayers.

Our own package is passed through: the package root imports the engine, so without this the sandbox
would load a second copy of `engine.states` beside the passed-through one, and an enum member of one
copy is not the member of the other (`state is NodeState.ERROR` was False for an ERROR node). Our
workflow code stays deterministic by review and by the replay tests.
"""

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions


def workflow_runner() -> SandboxedWorkflowRunner:
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("task_scheduler")
    )
