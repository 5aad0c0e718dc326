# One entry point for people, CI and the before-stop hook.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install lint types layering test check bench

install:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	scripts/install-system-tools.sh

lint:
	$(BIN)/ruff check fillstream tests benchmarks
	$(BIN)/ruff format --check fillstream tests benchmarks

types:
	$(BIN)/mypy

layering:
	$(BIN)/lint-imports

test:
	$(BIN)/pytest

# The README's test command: lint, types, layering, then the tests.
check: lint types layering test
