# The two quick-start commands: `make run` and `make test`. Both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup run test lint

$(BIN)/syncd: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $(BIN)/syncd

setup: $(BIN)/syncd

run: setup
	$(BIN)/syncd run

# Two workers (pytest-xdist): the suite waits on processes and PostgreSQL as much as it computes.
test: setup
	$(BIN)/python -m pytest -q -n 2

lint: setup
	$(BIN)/ruff check syncd tests benchmarks
	$(BIN)/ruff format --check syncd tests benchmarks
	$(BIN)/mypy syncd
