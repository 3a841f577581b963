# One command each, on a fresh machine (set-up included):
#   make test   — install everything into .venv and run the whole test suite (what CI runs)
#   make serve  — start the backend service
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test lint serve bench clean

# torch==2.13.0 (the CPU build) goes in first: every torch range below it is then already
# satisfied, so nothing pulls a newer CUDA build.
$(STAMP): protocol/pyproject.toml backend/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e protocol -e 'backend[test]'
	touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(VENV)/bin/ruff check .

test: setup lint
	$(PY) -m pytest

serve: setup
	$(VENV)/bin/refcolor serve

bench: setup
	for script in benchmarks/*.py; do $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
