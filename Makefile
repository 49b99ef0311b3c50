# The two commands a newcomer needs: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?= --model gim --depth 6
# The suite on every core (pytest-xdist), a test file to a worker so that a file's shared fixtures are built once.
PARALLEL ?= -n auto --dist loadfile

$(BIN)/gimbench: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/gimbench

.PHONY: run test test-fast lint docs
run: $(BIN)/gimbench
	$(BIN)/gimbench run $(ARGS)

test: $(BIN)/gimbench
	$(BIN)/python -m pytest -q $(PARALLEL)

test-fast: $(BIN)/gimbench  # the inner loop: every test not marked slow (docs/design.md#tests)
	$(BIN)/python -m pytest -q -m "not slow" $(PARALLEL)

lint: $(BIN)/gimbench
	$(BIN)/ruff check gimbench tests benchmarks

docs: $(BIN)/gimbench  # docs/cli.md from the argparse definitions (tests/test_cli_reference.py checks it is current)
	$(BIN)/python -m gimbench.report.cli_reference docs/cli.md
