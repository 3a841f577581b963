# One command each, on a fresh machine (set-up included):
#   make test   — install everything into .venv and run the whole test suite (what CI runs)
#   make colorize — colorize SKETCH with REFERENCE (default: the bundled example) into out/
#   make serve  — start the backend service
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup system-deps test lint serve colorize bench clean gpu-pack gpu-train

# Krita and Blender (for the real-app tests), Xvfb and xauth (GUI tests), imagemagick (screenshots).
SYSTEM_PACKAGES := krita blender xvfb xauth imagemagick
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# torch==2.13.0 (the CPU build) goes in first: every torch range below it is then already
# satisfied, so nothing pulls a newer CUDA build.
$(STAMP): protocol/pyproject.toml backend/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e protocol -e 'backend[test]'
	# onnx2torch converts the mask network's graph for fine-tuning; its requirements would pull torchvision
	$(PY) -m pip install --quiet --no-deps onnx2torch==1.5.15
	# pyzmq and blake3 for Krita's embedded Python (3.11, the same ABI as this venv's) for the Krita tests
	$(PY) -m pip install --quiet --target $(VENV)/krita-site pyzmq blake3
	touch $(STAMP)

system-deps:
	@if ! command -v kritarunner >/dev/null || ! command -v blender >/dev/null || ! command -v xvfb-run >/dev/null || ! command -v import >/dev/null; then \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	fi

setup: system-deps $(STAMP)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

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

# Training on a borrowed GPU machine (no network, Python 3.12 with torch, transformers, peft, scipy,
# scikit-image, onnx, onnxruntime, OpenCV; inputs at most 64 MiB with the repository): `make gpu-pack`
# here writes .gpu/ (the training split as WebP shards, the colour prior's feature weights, the wheels
# it lacks), then `make gpu-train` runs THERE (the device tool's run, carry [".gpu"], within its
# 10-minute limit): first the mask network (issue 19, MASK_MINUTES: masks.tar.NNN parts in $OUT), then
# nano v2 (GPU_MINUTES: result.tar.NNN). Here, `refcolor gpu join PARTS DEST [--name masks.tar]` puts
# each back together (docs/automask.md and docs/training.md say how each is judged).
GPU_DIR := .gpu
DATA ?= /work/data/build
MASK_MINUTES ?= 2.5
# seconds: a stuck mask run is stopped (SIGTERM: it still writes what it has) and the colour run starts
MASK_TIMEOUT ?= 230
GPU_MINUTES ?= 4.5
# cpu: a dry run of the recipe (where python3 is a Python with torch and the wheels suit it)
GPU_DEVICE ?= cuda
GPU_WHEELS := diffusers==0.42.1 efficientnet-lite-pytorch==0.1.0 onnx2torch==1.5.15
GPU_PLATFORM := --only-binary=:all: --python-version 3.12 --implementation cp \
	--platform manylinux_2_28_x86_64 --platform manylinux_2_26_x86_64 --platform manylinux_2_17_x86_64 \
	--platform manylinux2014_x86_64
gpu-pack: setup
	@test -d $(DATA)/train/characters || $(VENV)/bin/refcolor data build $(DATA)
	$(VENV)/bin/refcolor gpu pack --data $(DATA) --out $(GPU_DIR)
	rm -rf $(GPU_DIR)/whl
	$(PY) -m pip download --quiet --no-deps -d $(GPU_DIR)/whl $(GPU_WHEELS)
	$(PY) -m pip download --quiet --no-deps $(GPU_PLATFORM) -d $(GPU_DIR)/whl pyzmq==27.3.0
	du -sh $(GPU_DIR)
	$(VENV)/bin/refcolor gpu travel --packed $(GPU_DIR)

gpu-train:
	python3 -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --target /tmp/refcolor-site $(GPU_DIR)/whl/*.whl
	# the mask run failing must not cost the colour run its turn (hence the leading -)
	-PYTHONPATH=/tmp/refcolor-site:backend:protocol PYTHONUNBUFFERED=1 timeout -k 15 $(MASK_TIMEOUT) python3 -m refcolor.cli gpu masks \
		--packed $(GPU_DIR) --out $${OUT:-out/gpu} --minutes $(MASK_MINUTES) --device $(GPU_DEVICE)
	PYTHONPATH=/tmp/refcolor-site:backend:protocol PYTHONUNBUFFERED=1 python3 -m refcolor.cli gpu run \
		--packed $(GPU_DIR) --out $${OUT:-out/gpu} --init-from backend/refcolor/weights/nano --minutes $(GPU_MINUTES) \
		--device $(GPU_DEVICE)

bench: setup
	for script in benchmarks/*.py; do $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
