# taskloom developer commands. Needs only a Python >= 3.11 on PATH (as python3,
# or pass PYTHON=...); everything else is installed into $(VENV) on first use.
#
#   make demo        run the demo
#   make test        lint, type check, build the docs, run the test suite
#   make lint        ruff check + ruff format --check
#   make typecheck   mypy (strict for src/ and examples/, checked bodies for tests/)
#   make docs        mkdocs build --strict into $(SITE_DIR)/
#   make bench       run the benchmark suite (BENCH_ARGS="..." are passed on)
#   make clean       remove caches and build output (make distclean: venvs too)
#
# A second interpreter gets its own venv: make test PYTHON=python3.13 VENV=.venv-3.13

PYTHON ?= python3
VENV ?= .venv
SITE_DIR ?= site
BENCH_ARGS ?=
PYTEST_ARGS ?=

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
# Serial even under -j: `make test` runs its steps in order and stops at the first failure.
.NOTPARALLEL:
.DELETE_ON_ERROR:
.PHONY: help venv $(VENV) demo test lint typecheck docs pytest bench clean distclean

help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

# The venv is (re)installed when pyproject.toml changes; the stamp records that.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --progress-bar off -e '.[dev]'
	touch $@

venv $(VENV): $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m taskloom demo

test: lint typecheck docs pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# (no -q: mkdocs then stops counting warnings, and --strict passes anything)
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir $(SITE_DIR)

pytest: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m taskloom bench $(BENCH_ARGS)

clean:
	rm -rf $(SITE_DIR) build dist .mypy_cache .ruff_cache .pytest_cache .hypothesis
	find . -path './.venv*' -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf .venv .venv-* $(VENV)
