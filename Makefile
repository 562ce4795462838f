# Quick start: `make up` (build the example repository and serve it) and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
TDEPLOY := $(VENV)/bin/tdeploy
EXTRAS ?= build,serve,loadtest,k8s,monitor,otel,bench,docs,test
GRPC_PORT ?= 8001
HTTP_PORT ?= 8000
METRICS_PORT ?= 8002
STAMP := $(VENV)/.installed
# checkov (the chart's security scan, tests/charts) pins packaging<24, networkx<2.7 and
# importlib-metadata<8, which the project's own environment cannot take: it gets its own venv.
CHECKOV_VENV := $(VENV)/tools/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

.PHONY: install up build serve verify test lint docs format bench bench-goals bench-readme bench-envs tune loadtest loadtest-staging clean

# Idempotent: re-installs only when pyproject.toml (or .ci/checkov-requirements.txt) changed.
install: $(STAMP) $(CHECKOV_STAMP)
$(STAMP): pyproject.toml
	@bash .ci/system-deps
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	@touch $(STAMP)

$(CHECKOV_STAMP): .ci/checkov-requirements.txt $(STAMP)
	@test -x $(CHECKOV_VENV)/bin/python || python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q -r .ci/checkov-requirements.txt
	@touch $(CHECKOV_STAMP)

build: install
	$(TDEPLOY) build

up: build
	$(TDEPLOY) serve --grpc-port $(GRPC_PORT) --http-port $(HTTP_PORT) --metrics-port $(METRICS_PORT)

verify: install
	$(TDEPLOY) verify

# Test files run on parallel workers, two more than the cores this process may use (the suite
# waits on servers, rollouts and load as much as it computes: on 2 cores, 3 workers kept them
# 79 % busy, 4 kept them 90 %), 4 to 8, longest files first (tests/file_order.py); the example
# repository is built once and copied per worker (docs/development.md). PYTEST_ARGS= runs serially.
PYTEST_WORKERS ?= $(shell python3 -c "import os; print(min(8, max(4, len(os.sched_getaffinity(0)) + 2)))")
PYTEST_ARGS ?= -n $(PYTEST_WORKERS) --dist loadfile
# More pytest options on top of those, e.g. PYTEST_EXTRA="-p cpu_profile" (tests/ on PYTHONPATH).
PYTEST_EXTRA ?=
# Bytecode is cached even where the environment says not to (PYTHONDONTWRITEBYTECODE): the
# suite starts hundreds of Python processes (tdeploy, Python-backend stubs, test workers) that
# would otherwise compile the same sources again each time. __pycache__ is ignored by git and
# by the repository's signature.
test: install
	PYTHONDONTWRITEBYTECODE= $(PY) -m pytest $(PYTEST_ARGS) $(PYTEST_EXTRA)
	$(MAKE) --no-print-directory loadtest

lint: install
	$(VENV)/bin/ruff format --check src build clients loadtests tests .ci docs/scripts
	$(VENV)/bin/ruff check src build clients loadtests tests .ci docs/scripts
	$(PY) .ci/typecheck.py

# The documentation site in .site/ (CLI, chart values and client API references generated from
# the code); strict: a broken link, a missing page or an unresolved API reference fails.
docs: install
	NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true $(VENV)/bin/mkdocs build --strict

format: install
	$(VENV)/bin/ruff format src build clients loadtests tests .ci docs/scripts
	$(VENV)/bin/ruff check --fix src build clients loadtests tests .ci docs/scripts

# Performance (reports/bench/): every model next to the in-process ceiling, the naive service,
# MLServer and BentoML, with our load generator and perf_analyzer. bench-envs creates the
# tools' own environments in .venv-bench/ (once; re-created when a pin changes).
bench: build bench-envs
	$(TDEPLOY) bench $(ARGS)

# The "Done when" goals of the performance work, measured vs target, pass/miss, in one run.
bench-goals: build bench-envs
	$(TDEPLOY) bench --goals $(ARGS)

# The README's performance figures measured anew (quiet machine only; about an hour), raw data in
# docs/performance/*.json, then the README block and PNGs regenerated from that data.
# `tdeploy bench readme` alone regenerates them from the committed data (seconds).
bench-readme: build bench-envs
	$(TDEPLOY) bench readme --measure $(ARGS)

bench-envs: install
	$(PY) -m triton_deploy.bench.envs

# make tune MODEL=name P99_MS=10 [ARGS=...]: sweep batching/instances, write the winner into the spec.
tune: build
	@test -n "$(MODEL)" -a -n "$(P99_MS)" || { echo "usage: make tune MODEL=name P99_MS=10" >&2; exit 2; }
	$(TDEPLOY) tune $(MODEL) --p99-ms $(P99_MS) --spec build/models.yaml $(ARGS)

# Local load test (CI): a tritonserver on the built repository, 16 users for 30 s, checked
# against loadtests/slo/local.yaml. Reports in reports/loadtest/. Exit code 3: an SLO violated.
loadtest: build
	$(TDEPLOY) loadtest --no-build --env local --shape constant -u 16 -r 8 -t 30s

# Staging, on demand: make loadtest-staging HOST=host:port [TLS=1] [SHAPE=step|spike|constant]
# [USERS=64] [RUN_TIME=5m]; a bearer token goes in TDEPLOY_TOKEN, not on the command line.
loadtest-staging: install
	@test -n "$(HOST)" || { echo "usage: make loadtest-staging HOST=host:port [TLS=1] [SHAPE=step] [USERS=64] [RUN_TIME=5m]" >&2; exit 2; }
	$(TDEPLOY) loadtest --host $(HOST) --env staging --shape $(or $(SHAPE),step) \
		-u $(or $(USERS),64) -r 8 -t $(or $(RUN_TIME),5m) $(if $(TLS),--tls)

clean:
	rm -rf $(VENV) .venv-bench .pytest_cache .typecheck .setuptools-build .site
