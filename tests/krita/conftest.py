"""Fixtures for tests inside a real Krita: an isolated profile, pyzmq for Krita's Python,
and a real backend process."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kritatest import KRITA_SITE, ROOT

sys.path.insert(0, str(ROOT / "tests" / "integration"))

from support import ServerProcess


@pytest.fixture(scope="session")
def krita_site() -> Path:
    if not (KRITA_SITE / "zmq").is_dir():
        pytest.fail(f"pyzmq for Krita's Python is missing at {KRITA_SITE}: run `make setup`")
    return KRITA_SITE


@pytest.fixture
def krita_profile(tmp_path: Path) -> dict[str, str]:
    """Environment for Krita with an isolated profile (config, data, cache, runtime) and no PYTHONPATH."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR"):
        folder = tmp_path / "profile" / name.lower()
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        env[name] = str(folder)
    return env


@pytest.fixture
def krita_env(krita_profile: dict[str, str], krita_site: Path) -> dict[str, str]:
    """krita_profile with the repository's protocol, plugin and pyzmq on PYTHONPATH."""
    env = dict(krita_profile)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "protocol"), str(ROOT / "plugin"), str(krita_site), str(ROOT / "tests" / "krita")]
    )
    return env


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess.start(tmp_path / "backend", "--model", "tiny")
    yield server
    server.kill()
