# One command each, on a fresh machine (set-up included):
#   make test   — install everything into .venv and run the whole test suite (what CI runs)
#   make colorize — colorize SKETCH with REFERENCE (default: the bundled example) into out/
#   make serve  — start the backend service
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup system-deps test lint serve colorize bench clean

# Krita (for the real-Krita tests), Xvfb and xauth (GUI test), imagemagick (screenshots).
SYSTEM_PACKAGES := krita xvfb xauth imagemagick
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# torch==2.13.0 (the CPU build) goes in first: every torch range below it is then already
# satisfied, so nothing pulls a newer CUDA build.
$(STAMP): protocol/pyproject.toml backend/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e protocol -e 'backend[test]'
	# pyzmq for Krita's embedded Python (3.11, the same ABI as this venv's) for the Krita tests
	$(PY) -m pip install --quiet --target $(VENV)/krita-site pyzmq
	touch $(STAMP)

system-deps:
	@if ! command -v kritarunner >/dev/null || ! command -v xvfb-run >/dev/null || ! command -v import >/dev/null; then \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	fi

setup: system-deps $(STAMP)

lint: setup
	$(VENV)/bin/ruff check .

test: setup lint
	$(PY) -m pytest

serve: setup
	$(VENV)/bin/refcolor serve

SKETCH ?= docs/examples/sketch.png
REFERENCE ?= docs/examples/reference.png
MASK ?= docs/examples/sketch-mask.png
REFERENCE_MASK ?= docs/examples/reference-mask.png
MODEL ?= nano
colorize: setup
	$(VENV)/bin/refcolor colorize $(SKETCH) $(REFERENCE) $(if $(MASK),--mask $(MASK)) \
		$(if $(REFERENCE_MASK),--reference-mask $(REFERENCE_MASK)) --model $(MODEL) -o out/

bench: setup
	for script in benchmarks/*.py; do $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
