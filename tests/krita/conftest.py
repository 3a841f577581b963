"""Fixtures for tests inside a real Krita: an isolated profile, pyzmq for Krita's Python,
and a real backend process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from support import ServerProcess  # noqa: E402

KRITA_SITE = ROOT / ".venv" / "krita-site"  # pyzmq for Krita's Python, installed by `make setup`


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed: run `make setup` (it installs krita, xvfb and xauth with apt-get)")
    return path


@pytest.fixture(scope="session")
def krita_site() -> Path:
    if not (KRITA_SITE / "zmq").is_dir():
        pytest.fail(f"pyzmq for Krita's Python is missing at {KRITA_SITE}: run `make setup`")
    return KRITA_SITE


@pytest.fixture
def krita_env(tmp_path: Path, krita_site: Path) -> dict[str, str]:
    """Environment for Krita with an isolated profile (config, data, cache, runtime)."""
    env = dict(os.environ)
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR"):
        folder = tmp_path / "profile" / name.lower()
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        env[name] = str(folder)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "protocol"), str(ROOT / "plugin"), str(krita_site), str(ROOT / "tests" / "krita")]
    )
    return env


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess.start(tmp_path / "backend", "--model", "classical")
    yield server
    server.kill()


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
