# The two commands of the README's quickstart:
#   make run    set up, migrate and serve the authority on its embedded default
#   make test   set up and run the whole test suite (lint, types, tests on both backends)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck pytest services browser wrk demo bench bench-gateway bench-tool fuzz clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/authority serve

test: $(STAMP) services browser lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

services:
	bash scripts/services.sh

# Debian's Chromium for the console's browser tests (installed when missing, as root).
browser:
	bash scripts/browser.sh

# Debian's wrk, the benchmarks' load generator (installed when missing, as root).
wrk:
	bash scripts/wrk.sh

# Every fuzz target (tests/fuzz) for FUZZ_SECONDS each, coverage-guided (atheris).
FUZZ_SECONDS ?= 600
FUZZ_TARGETS = $(shell $(BIN)/python -c "from tests.fuzz.targets import TARGETS; print(*TARGETS)")

fuzz: $(STAMP)
	@for target in $(FUZZ_TARGETS); do \
		echo "== $$target ($(FUZZ_SECONDS) s)"; \
		$(BIN)/python -m tests.fuzz.run $$target -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
			-print_final_stats=1 || exit 1; \
	done

demo: $(STAMP)
	$(BIN)/authority demo

bench: $(STAMP) services wrk
	$(BIN)/python -m bench.load

bench-gateway: $(STAMP) wrk
	$(BIN)/python -m bench.gateway

# A tool server's check of per-call tokens (middleware, authlib, PyJWT), one worker.
bench-tool: $(STAMP) wrk
	$(BIN)/python -m bench.tool_check

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
