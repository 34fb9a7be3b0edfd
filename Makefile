# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ledger demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy events projections replay services
	$(BIN)/python -m pytest

# Lint and the unit tests only, no nats-server: the loop to run while editing (under 60 s).
test-fast: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy events projections replay services
	$(BIN)/python -m pytest tests/unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy events projections replay services

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m bench.append $(BENCH_ARGS)
	$(BIN)/python -m bench.rebuild $(BENCH_ARGS)
	$(BIN)/python -m bench.import $(BENCH_ARGS)
	$(BIN)/python -m bench.query $(BENCH_ARGS)
	$(BIN)/python -m bench.dashboard $(BENCH_ARGS)
	$(BIN)/python -m bench.transport

clean:
	rm -rf $(VENV) .ledger .pytest_cache .ruff_cache
