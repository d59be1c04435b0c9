# The two quick-start commands: `make run` and `make test`. Each creates the
# virtualenv it needs, so both work on a fresh machine with Python 3.11+.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint format bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/hakon serve $(ARGS)

test: $(VENV)/.installed
	$(BIN)/ruff check hakon tests benchmarks
	$(BIN)/ruff format --check hakon tests benchmarks
	$(BIN)/mypy hakon
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check hakon tests benchmarks

format: $(VENV)/.installed
	$(BIN)/ruff format hakon tests benchmarks
	$(BIN)/ruff check --fix hakon tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
