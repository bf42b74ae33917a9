# The two commands of README: `make run` (the whole stack on the demo lab) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test soak bench screenshots typecheck lint check-config clean

# A first `make run` says what its quiet minute is for. pip's output goes to .venv/install.log and is shown
# only if it fails: setuptools prints a note at every editable install of a package whose root is the
# repository, and a machine's pip configuration may add warnings of its own.
$(STAMP): requirements.lock pyproject.toml
	@if test -x $(BIN)/python; then echo "requirements.lock or pyproject.toml changed: updating .venv ..."; \
	else echo "first run: installing into .venv (about a minute) ..."; fi
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@{ $(BIN)/python -m pip install --quiet --upgrade pip \
	  && $(BIN)/python -m pip install --quiet -r requirements.lock \
	  && $(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e . ; } >$(VENV)/install.log 2>&1 \
	  || { cat $(VENV)/install.log; echo "installing into $(VENV) failed (the log: $(VENV)/install.log)"; exit 1; }
	@touch $(STAMP)

# Debian's Chromium, which tests/system/test_temporal_ui.py drives headless through Playwright (Playwright's
# own browser download cannot work on a closed network); installed once, when it is missing.
CHROMIUM := /usr/bin/chromium

$(CHROMIUM):
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

# The ports move with `make run PORT=8001 TEMPORAL_PORT=7234 UI_PORT=8234` when others use the defaults.
# PORT is taken from the command line only: cloud shells and containers export a PORT of their own.
ifneq ($(origin PORT),command line)
PORT := 8000
endif
TEMPORAL_PORT ?= 7233
UI_PORT ?= 8233

run: $(STAMP)
	$(BIN)/task-scheduler dev --config examples/demo-lab --port $(PORT) --temporal-port $(TEMPORAL_PORT) --ui-port $(UI_PORT)

test: $(STAMP) $(CHROMIUM)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(MAKE) --no-print-directory typecheck
	$(BIN)/pytest -q -m "not soak"

# The reliability soak (not part of `make test`): 1000 tasks (tests/system/test_soak.py) and a task of
# 5,000 steps (tests/workflows/test_long_tasks.py); several minutes.
soak: $(STAMP)
	$(BIN)/pytest -q -s -m soak tests/system tests/workflows/test_long_tasks.py

# README's pictures of the Temporal UI (docs/images/temporal-ui-*.png), taken by its test in headless Chromium.
screenshots: $(STAMP) $(CHROMIUM)
	TASK_SCHEDULER_SCREENSHOTS=$(CURDIR)/docs/images $(BIN)/pytest -q tests/system/test_temporal_ui.py \
		tests/system/test_lab_page.py

# The benchmarks against bare Temporal (bench/run.py; not part of `make test`), about 8 minutes;
# e.g. `make bench BENCH_ARGS="--quick --only W1,W2"`.
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# mypy names packages after their folder, and a clone's folder may be called anything: check the
# package through a link named task_scheduler.
MYPY_TARGETS := -p task_scheduler.engine -p task_scheduler.activities -p task_scheduler.workflows \
	-p task_scheduler.api -p task_scheduler.client -p task_scheduler.readers -p task_scheduler.glas -m task_scheduler.worker \
	-m task_scheduler.settings -p task_scheduler.cli -m task_scheduler.devserver -m task_scheduler.devhook \
	-m task_scheduler.devstack -m task_scheduler.lifecycle -m task_scheduler.devstate -m task_scheduler.ports

typecheck: $(STAMP)
	mkdir -p $(VENV)/typecheck && ln -sfn ../.. $(VENV)/typecheck/task_scheduler
	cd $(VENV)/typecheck && ../bin/mypy --config-file ../../pyproject.toml $(MYPY_TARGETS)

lint: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

check-config: $(STAMP)
	$(BIN)/task-scheduler config check --config examples/demo-lab

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
