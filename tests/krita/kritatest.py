"""Helpers for the real-Krita tests (a module of its own: conftest modules of different
folders share one name and must not be imported from)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KRITA_SITE = ROOT / ".venv" / "krita-site"  # pyzmq for Krita's Python, installed by `make setup`


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed: run `make setup` (it installs krita, xvfb and xauth with apt-get)")
    return path


def run_flow(env: dict[str, str], tmp_path: Path, **config: object) -> dict[str, object]:
    """Run tests/krita/krita_flow.py inside kritarunner; returns what it observed."""
    kritarunner = require("kritarunner")
    out = tmp_path / f"observed-{config['scenario']}.json"
    config_path = tmp_path / f"config-{config['scenario']}.json"
    config_path.write_text(json.dumps({"out": str(out), "timeout_s": 90, "steps": 4, **config}))
    done = subprocess.run(
        [kritarunner, "-s", "krita_flow", "-f", "main", "--", str(config_path)],
        env={**env, "QT_QPA_PLATFORM": "offscreen"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if not out.exists():
        pytest.fail(
            f"kritarunner produced no result (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    observed = json.loads(out.read_text())
    if "exception" in observed:
        pytest.fail(f"the flow raised inside Krita:\n{observed['exception']}")
    assert done.returncode == 0, done.stderr[-3000:]
    return observed
