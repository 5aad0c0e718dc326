# One entry point for people, CI and the before-stop hook.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install lock lint types layering test check bench

# Exactly the lock: every package pinned with its hashes, pip and setuptools included; the
# project itself goes in editable, built with the locked setuptools.
install:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/dev.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	scripts/install-system-tools.sh

# The runtime lock is constrained by the dev lock: the image ships the versions CI tested.
# Re-resolve every dependency to the newest release pyproject.toml allows (then `make install`).
# Pin one package: make lock UPGRADE='--upgrade-package msgspec'.
UPGRADE ?= --upgrade
LOCK := $(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes $(UPGRADE)
lock:
	$(LOCK) pyproject.toml requirements/tools.in --extra dev -o requirements/dev.lock
	$(LOCK) pyproject.toml -c requirements/dev.lock -o requirements/runtime.lock

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
