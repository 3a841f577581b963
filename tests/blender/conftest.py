"""Fixtures for tests inside a real Blender: the add-on zip as users get it, an empty user
profile, a real backend serving ``tiny``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from support import ServerProcess  # noqa: E402

TAG = f"cp{sys.version_info.major}{sys.version_info.minor}-linux_x86_64"  # Debian's Blender runs the system Python


@pytest.fixture(scope="session")
def blender() -> str:
    found = shutil.which("blender")
    if found is None:
        pytest.fail("Blender is missing: `make setup` installs it (apt-get install blender)")
    return found


@pytest.fixture(scope="session")
def addon_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once by packaging/build_blender_addon.py, for this machine's Python only (quick)."""
    out = tmp_path_factory.mktemp("addon")
    command = [sys.executable, str(ROOT / "packaging" / "build_blender_addon.py"), "--out", str(out)]
    command += ["--wheels-dir", str(out / "wheels"), "--only", TAG]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"build_blender_addon.py failed:\n{done.stderr[-3000:]}"
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess.start(tmp_path / "backend", "--model", "tiny")
    yield server
    server.kill()
