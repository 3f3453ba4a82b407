# Qalqan: `make demo` serves a demo node on http://127.0.0.1:8000; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= .qalqan-demo
PYTEST_ARGS ?=

.PHONY: install demo test lint format bench migration clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	QALQAN_DATA_DIR=$(DEMO_DIR) $(BIN)/qalqan demo --host 127.0.0.1 --port 8000

test: $(STAMP)
	$(BIN)/python -m pytest -n auto $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# A new Alembic migration from the changes in src/qalqan/store/tables.py: make migration MSG="..."
migration: $(STAMP)
	$(BIN)/python -c 'import sys; from qalqan.store.migrate import new_revision; print(new_revision(sys.argv[1]))' "$(MSG)"

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
