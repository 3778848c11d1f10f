# The two commands a newcomer needs: `make run` and `make test`. Everything else is
# a step of those, or an operator's convenience. `make help` lists the targets.

SHELL := /bin/bash
.DEFAULT_GOAL := help
.SUFFIXES:

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .cache/tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

# Use the machine's Python; never download an interpreter behind the user's back.
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

# --- environment ------------------------------------------------------------------------

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) uv.lock pyproject.toml $(wildcard */*/pyproject.toml)
	$(UV) sync --locked --all-packages
	@touch $@

.PHONY: venv
venv: $(VENV)/.synced ## create/update the virtual environment (.venv) from uv.lock

.PHONY: lock
lock: $(UV) ## re-resolve uv.lock after changing a pyproject.toml
	$(UV) lock

.PHONY: system-deps
system-deps: ## install the system packages the tests need (Debian/Ubuntu, as root)
	bash tools/system-deps.sh

# --- the local stack --------------------------------------------------------------------

.PHONY: kafka-fetch
kafka-fetch: venv ## fetch the Kafka broker jars from Maven Central (cached)
	$(BIN)/rts-devstack kafka fetch

.PHONY: run
run: kafka-fetch ## run the whole platform locally; Ctrl-C stops it
	$(BIN)/rts-devstack run

.PHONY: kafka-start kafka-stop kafka-status
kafka-start: kafka-fetch ## start only the local broker, in the background
	$(BIN)/rts-devstack kafka start
kafka-stop: venv ## stop the background broker
	$(BIN)/rts-devstack kafka stop
kafka-status: venv ## is the background broker running?
	$(BIN)/rts-devstack kafka status

# --- tests ------------------------------------------------------------------------------

.PHONY: test
test: unit integration static ## everything CI runs: unit, integration (real broker), static checks

.PHONY: unit
unit: venv ## fast tests, no broker
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

.PHONY: integration
integration: kafka-fetch ## tests against a real broker started on free ports (or KAFKA_BOOTSTRAP)
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

.PHONY: static
static: venv frontend-deps ## lint, format and type checks; the dashboard bundle is up to date
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	cd $(FRONTEND) && npm run --silent check

# --- the dashboard's front end ----------------------------------------------------------

FRONTEND := services/gateway/frontend

$(FRONTEND)/node_modules/.package-lock.json: $(FRONTEND)/package-lock.json
	cd $(FRONTEND) && npm ci --no-audit --no-fund --loglevel=error

.PHONY: frontend-deps
frontend-deps: $(FRONTEND)/node_modules/.package-lock.json

.PHONY: frontend
frontend: frontend-deps ## rebuild the dashboard bundle (committed) after changing frontend/src
	cd $(FRONTEND) && npm run --silent build

.PHONY: fmt
fmt: venv ## format the code and apply safe lint fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# --- observability ----------------------------------------------------------------------

.PHONY: dashboards
dashboards: venv ## regenerate the Grafana dashboards (committed) after changing observability/
	$(BIN)/rts-dashboards write

# --- housekeeping -----------------------------------------------------------------------

.PHONY: clean clean-data
clean: ## remove the environment and caches (keeps broker data)
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache
clean-data: ## remove the local broker's data (topics and their messages)
	$(BIN)/rts-devstack kafka stop || true
	rm -rf .data
