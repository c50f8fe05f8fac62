# Two commands: `make run` sets everything up and serves; `make test` sets everything up and passes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench clean services

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# constraints.txt is the tested set of exact versions; pyproject.toml holds only lower bounds.
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

services:
	@bash scripts/ensure-services.sh

run: install services
	$(BIN)/qruntime migrate
	$(BIN)/qruntime admin bootstrap
	@if [ -f .qruntime-dev.env ]; then $(BIN)/qruntime client-env --output .qruntime-client.env; fi
	$(BIN)/qruntime up

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Parallel workers for the suite: each takes whole test modules, the longest first (tests/conftest.py).
TEST_WORKERS ?= 2

test: install services lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

bench: install
	$(BIN)/python bench/pipeline.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
