#!/usr/bin/env bash
# Build the backend distribution: wheels of refcolor-protocol and refcolor into dist/.
# Install on another machine with: pip install torch==2.13.0 && pip install dist/*.whl
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
rm -rf dist
"$PY" -m pip wheel --quiet --no-deps --wheel-dir dist ./protocol ./backend
ls -l dist
