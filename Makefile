# The two commands a newcomer needs:  `make run`  and  `make test`.
# Both set up everything themselves (uv, the locked virtualenv, and for tests the services).
SHELL := /bin/bash
# uv from PATH, else as a module of python3 (installed by `setup` when missing).
UV := $(or $(shell command -v uv 2>/dev/null),python3 -m uv)
export RAY_USAGE_STATS_ENABLED ?= 0
# Ray's `uv run` hook would start every worker through uv with this folder as its working_dir;
# the locked .venv is already what the workers need.
export RAY_ENABLE_UV_RUN_RUNTIME_ENV ?= 0

.PHONY: uv setup notebooks run test test-unit lint bench cluster-check rehearse help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

uv:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv \
		|| python3 -m pip install --quiet --break-system-packages uv

setup: uv  ## create .venv from uv.lock (with the dev tools)
	$(UV) sync --frozen --extra dev

notebooks: uv  ## set up with JupyterLab too (the `notebooks` extra), then open notebooks/ in it
	$(UV) sync --frozen --extra dev --extra notebooks
	$(UV) run --frozen jupyter lab notebooks/

run: setup  ## set up, then run the marketplace (local Ray, SQLite in .marketplace/)
	$(UV) run --frozen marketplace up

test: setup  ## set up, start PostgreSQL/RabbitMQ if missing, check the import layers, run the whole test suite
	bash tests/ensure_services.sh
	$(UV) run --frozen lint-imports
	$(UV) run --frozen pytest

test-unit: setup  ## only the fast unit tests (no Ray, no services; promtool installed if missing)
	bash tests/ensure_promtool.sh
	$(UV) run --frozen pytest -m unit

lint: setup  ## ruff, mypy and the import layers (lint-imports, pyproject.toml)
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy
	$(UV) run --frozen lint-imports

bench: setup  ## the benchmarks: writer, checkouts (sync vs none), product writes under leases, consistency modes and replicas, HTTP endpoints vs health, event relay, the simulator (null target, client, HTTP)
	$(UV) run --frozen python -m marketplace.bench.writer
	$(UV) run --frozen python -m marketplace.bench.checkout
	$(UV) run --frozen python -m marketplace.bench.product_writes
	$(UV) run --frozen python -m marketplace.bench.consistency
	$(UV) run --frozen python -m marketplace.bench.gateway --rounds 3 --duration 6
	$(UV) run --frozen python -m marketplace.bench.relay
	$(UV) run --frozen python -m marketplace.bench.simulator
	$(UV) run --frozen python -m marketplace.bench.sim_http

cluster-check: setup  ## render the KubeRay overlays and validate them offline; dashboard and alerts current
	$(UV) run --frozen python -m cluster.render --check
	$(UV) run --frozen python -m cluster.observability.generate --check
	$(UV) run --frozen python -m cluster.validate

rehearse: setup  ## head + 2 worker Ray nodes here: serve deploy, smoke load, teardown (needs PostgreSQL)
	bash tests/ensure_services.sh
	$(UV) run --frozen python -m cluster.local.rehearsal rehearse
