# Two set-up commands for a fresh machine:
#   make run   - the app on the embedded default (SQLite + the database provider)
#   make test  - every test, against real PostgreSQL, Artemis and RabbitMQ, on both
#                ends of the support matrix: Python 3.11 + Django 5.2 LTS (.venv)
#                and Python 3.13 + Django 6.1 (.venv-py313), the long process tests
#                on one of them each; fails, naming what to install, when a service
#                or Python 3.13 is missing
#   make test-partial - the same, but what is missing skips (KEW_TEST_PARTIAL=1)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# Each pass ends with its slowest tests, so that CI time is watched where it goes.
DURATIONS := --durations=20
# The newest pair of the matrix. PY313 is found as a developer would (PATH, uv,
# pyenv); set it to point elsewhere: make test PY313=/opt/python3.13/bin/python3.13
PY313 ?= $(shell bin/find-python 3.13)
NEW_DJANGO := Django>=6.1,<6.2
VENV313 := .venv-py313

.PHONY: install install-py313 run test test-partial test-py311 test-sqlite test-postgres test-py313 no-py313 lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

$(VENV313)/.installed: pyproject.toml
	$(PY313) -m venv $(VENV313)
	$(VENV313)/bin/pip install --quiet --upgrade pip
	$(VENV313)/bin/pip install --quiet -e '.[dev]' '$(NEW_DJANGO)'
	touch $@

install-py313:
	@if [ -z "$(PY313)" ]; then $(MAKE) --no-print-directory no-py313; else $(MAKE) --no-print-directory $(VENV313)/.installed; fi

run: install
	$(BIN)/python bin/run-dev

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The whole suite on SQLite (core, contract on every provider, Artemis, RabbitMQ,
# services, Django app, reference app, browser), then the tests that use the Django
# database again on PostgreSQL (tests/conftest.py deselects the others: they would run
# as they did on SQLite); with Python 3.11 + Django 5.2 and, side by side, with
# Python 3.13 + Django 6.1. The two legs share nothing but the source tree: each
# pytest starts its own PostgreSQL, Artemis and RabbitMQ on free ports, and the tests
# mostly wait on real processes, so two legs at once take little more than one.
# --output-sync prints each leg's output whole, when it ends. The long process tests
# (kills, restarts, clocks, clusters, broker faults: the one_leg marker) run in one leg
# each, split so that both legs take about as long; each pass says how many it left to
# the other leg. They are split only when both legs run (LEGS=split): one leg alone, or
# the 3.11 leg of a partial run without Python 3.13, runs them all.
test: lint
	$(MAKE) --no-print-directory -j2 --output-sync=recurse test-py311 test-py313 \
	  $(if $(PY313),LEGS=split)

# A partial run, chosen explicitly: tests whose service is missing skip (counted at
# the end of each pass) and a missing Python 3.13 skips its leg, without failing.
test-partial:
	KEW_TEST_PARTIAL=1 $(MAKE) --no-print-directory test

test-py311: install
	$(MAKE) --no-print-directory test-sqlite
	$(MAKE) --no-print-directory test-postgres

DATABASE_TESTS := tests/contract tests/kew_django tests/project
# What runs once, in the first leg: lint, and the harness's own smoke tests (they
# check the launchers of PostgreSQL, Artemis, RabbitMQ and Prometheus, not Kew; the py313 leg
# uses the same harness for all its tests). Everything that runs Kew's or the
# project's code, the packaging and the browser included, runs on both ends, but for
# the long process tests that `make test` splits between the legs (one_leg, above).
ONCE := tests/harness
# Under `make test`, KEW_TEST_LEG=1 or 2 tells tests/conftest.py which one_leg tests to run.
LEGS ?=
leg = $(if $(LEGS),KEW_TEST_LEG=$(1))

test-sqlite: install
	$(call leg,1) $(BIN)/pytest $(DURATIONS) $(PYTEST_ARGS)

test-postgres: install
	$(call leg,1) KEW_TEST_DATABASE=postgres $(BIN)/pytest $(DURATIONS) $(PYTEST_ARGS) $(DATABASE_TESTS)

# The same two passes in .venv-py313, less what runs once; no pytest cache, which the
# 3.11 leg writes at the same time. Without Python 3.13 this says what to install
# and fails, unless the partial run was chosen (KEW_TEST_PARTIAL=1, outside CI).
PY313_ARGS = $(DURATIONS) -p no:cacheprovider $(PYTEST_ARGS)
test-py313:
	@if [ -z "$(PY313)" ]; then $(MAKE) --no-print-directory no-py313; else \
	  $(MAKE) --no-print-directory $(VENV313)/.installed && \
	  $(VENV313)/bin/python -c 'import django, sys; print("Python", sys.version.split()[0], "Django", django.get_version())' && \
	  $(call leg,2) $(VENV313)/bin/pytest $(PY313_ARGS) $(addprefix --ignore=,$(ONCE)) && \
	  $(call leg,2) KEW_TEST_DATABASE=postgres $(VENV313)/bin/pytest $(PY313_ARGS) \
	    $(DATABASE_TESTS); fi

no-py313:
	@echo "Python 3.13 not found (looked for python3.13 on PATH, uv python find 3.13, pyenv versions)."
	@echo "The test matrix needs it for its Python 3.13 + Django 6.1 run. Install it with one of:"
	@echo "  pyenv install 3.13    uv python install 3.13    apt-get install python3.13"
	@echo "or point make at it: make test PY313=/path/to/python3.13"
	@if [ "$${CI:-}" != "true" ] && [ "$${KEW_TEST_PARTIAL:-}" = "1" ]; then \
	  echo "skipping the Python 3.13 + Django 6.1 run (a partial run: KEW_TEST_PARTIAL=1)"; \
	else echo "failing, the matrix is incomplete (a partial run: make test-partial)"; exit 1; fi

bench: install
	$(BIN)/python bench/artemis_send.py
	$(BIN)/python bench/relay.py
	$(BIN)/python bench/tasks.py

clean:
	rm -rf $(VENV) $(VENV313) var .pytest_cache
