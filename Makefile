# Two set-up commands for a fresh machine:
#   make run   - the app on the embedded default (SQLite + the database provider)
#   make test  - every test, against real PostgreSQL and real Artemis
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install run test test-sqlite test-postgres lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/python bin/run-dev

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The whole suite on SQLite (core, contract on every provider, Artemis, services,
# Django app, reference app, browser), then the database-backed tests again on
# PostgreSQL.
test: lint test-sqlite test-postgres

test-sqlite: install
	$(BIN)/pytest $(PYTEST_ARGS)

test-postgres: install
	KEW_TEST_DATABASE=postgres $(BIN)/pytest $(PYTEST_ARGS) \
		tests/contract tests/kew_django tests/project

bench: install
	$(BIN)/python bench/artemis_send.py
	$(BIN)/python bench/relay.py

clean:
	rm -rf $(VENV) var .pytest_cache
