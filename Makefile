# esign.plone: developer and CI entry points. `make help` lists the targets.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
VENV_STAMP := $(VENV)/.esign-installed
PYTEST_ARGS ?=
BENCH_ARGS ?=
BENCH_OUT ?= var/bench
BENCH_JOURNEYS ?= 32
BENCH_CASES ?= 10000,100000

# Read by scripts/start.sh and scripts/create_site.py (defaults: admin / officer).
export ESIGN_ADMIN_PASSWORD ESIGN_OFFICER_PASSWORD

.PHONY: help venv system-deps start start-cluster demo test bench bench-engine lint locales clean clean-data

help:
	@echo "make venv         .venv with esign.plone and the test extras, pinned by constraints.txt"
	@echo "make system-deps  Debian packages the tests call: poppler-utils, qpdf, postgresql, ... (root/sudo)"
	@echo "make start        Plone site with esign.plone on http://localhost:8080/Plone (data in instance/, var/)"
	@echo "                  with the local BankID, eTjänstekort (SITHS) and mail servers (scripts/servers.sh)"
	@echo "make start-cluster  the same site on two Zope instances (8080, 8081) sharing RelStorage on a"
	@echo "                  PostgreSQL of its own (data in var/cluster/; scripts/cluster.py, docs/cluster.md)"
	@echo "make demo         one two-signer case in a throwaway site; writes var/demo/demo-signed.pdf"
	@echo "make test         the test suite (PYTEST_ARGS='-k ...' to narrow it)"
	@echo "make bench        every benchmark (≈ 45 min), numbers written into benchmarks/RESULTS.md:"
	@echo "                  engine vs raw pyHanko per level, signatures/s through the signer journey on"
	@echo "                  one instance and on two (RelStorage), case queries with BENCH_CASES cases"
	@echo "make bench-engine only the engine vs raw pyHanko ratios (≈ 1 min; BENCH_ARGS='--sizes 1page')"
	@echo "make lint         ruff check src tests bench scripts"
	@echo "make locales      extract message ids; update and compile the en and sv catalogs"
	@echo "make clean        remove build artefacts and caches (keeps .venv, instance/, var/)"
	@echo "make clean-data CONFIRM=1   remove instance/ and var/ (the site, its data and its CA keys)"

# Re-installs only when setup.py or constraints.txt changed since the last install.
venv: $(VENV_STAMP)

$(VENV_STAMP): setup.py constraints.txt
	@echo "venv: installing esign.plone[test,servers,cluster] into $(VENV) with $(PYTHON)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --no-input -U pip==26.3 wheel >&2
	$(BIN)/python -m pip install --no-input -c constraints.txt -e ".[test,servers,cluster]" >&2
	@touch $@

system-deps:
	@bash scripts/install-system-deps.sh

start: venv
	@bash scripts/start.sh

# PostgreSQL (Debian's binaries, a data directory of its own), the local servers and two
# instances; Ctrl-C stops them all. INSTANCES=3 for more (ports 8080, 8081, 8082, ...).
INSTANCES ?= 2
start-cluster: venv system-deps
	@$(BIN)/python scripts/cluster.py start --instances $(INSTANCES)

demo: venv
	@$(BIN)/python scripts/demo.py

test: venv system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench-engine: venv
	@mkdir -p $(BENCH_OUT)
	$(BIN)/python bench/bench_signing.py --json $(BENCH_OUT)/signing.json $(BENCH_ARGS)
	$(BIN)/python bench/bench_levels.py --json $(BENCH_OUT)/levels.json $(BENCH_ARGS)

# The JSON of each run goes to $(BENCH_OUT); bench/write_results.py puts the tables into
# benchmarks/RESULTS.md (the text around them stays).
bench: bench-engine system-deps
	$(BIN)/python bench/bench_throughput.py --skip-queries --concurrency 1,4,8 \
		--journeys $(BENCH_JOURNEYS) --json $(BENCH_OUT)/journeys.json
	$(BIN)/python bench/bench_cluster.py --instances 1 --concurrency 1,4,8 \
		--journeys $(BENCH_JOURNEYS) --json $(BENCH_OUT)/cluster1.json
	$(BIN)/python bench/bench_cluster.py --instances 2 --concurrency 1,4,8 \
		--journeys $(BENCH_JOURNEYS) --json $(BENCH_OUT)/cluster.json
	$(BIN)/python bench/bench_throughput.py --skip-journeys --cases $(BENCH_CASES) \
		--json $(BENCH_OUT)/queries.json
	$(BIN)/python bench/write_results.py $(BENCH_OUT)

locales: venv
	$(BIN)/python scripts/update_locales.py

lint: venv
	$(BIN)/ruff check src tests bench scripts

clean:
	rm -rf build dist test-output .pytest_cache .ruff_cache
	find . \( -path ./.venv -o -path ./.git -o -path ./instance -o -path ./var \) -prune -o \
		\( -name __pycache__ -o -name '*.egg-info' \) -type d -print0 | xargs -0 rm -rf
	find . \( -path ./.venv -o -path ./.git \) -prune -o -name '*.pyc' -type f -print0 | xargs -0 rm -f

clean-data:
	@if [ "$(CONFIRM)" != "1" ]; then \
		echo "clean-data removes instance/ and var/: the site, its documents and its CA keys."; \
		echo "Stop 'make start' first, then run: make clean-data CONFIRM=1"; \
		exit 1; \
	fi
	rm -rf instance var
