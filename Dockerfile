# The task_scheduler image of docker-compose.temporal.yml: `task-scheduler api`, `task-scheduler worker
# --workflows-only` and `task-scheduler setup` on the server host. Lab PCs run their workers natively,
# next to their instruments and their vendors' SDKs.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The repository root is the package (pyproject.toml: package-dir); every package folder it lists.
COPY pyproject.toml requirements.lock README.md /src/
COPY *.py /src/
COPY activities /src/activities
COPY api /src/api
COPY cli /src/cli
COPY client /src/client
COPY database /src/database
COPY engine /src/engine
COPY glas /src/glas
COPY nodes /src/nodes
COPY orchestrator /src/orchestrator
COPY readers /src/readers
COPY task /src/task
COPY workflow /src/workflow
COPY workflows /src/workflows

# The runtime dependencies only, at the versions of requirements.lock (its test tools are left out).
RUN pip install --constraint /src/requirements.lock /src \
    && rm -rf /src \
    && useradd --system --uid 10001 --home-dir /var/lib/task-scheduler --create-home lab

USER lab
# An empty working directory: no stray .env is read; settings come from the environment.
WORKDIR /var/lib/task-scheduler
ENTRYPOINT ["task-scheduler"]
CMD ["--help"]
