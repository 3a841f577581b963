"""Fixtures for tests inside a real Blender: the add-on zip as users get it, an empty user
profile, a real backend serving ``tiny``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from support import ServerProcess  # noqa: E402

TAG = f"cp{sys.version_info.major}{sys.version_info.minor}-linux_x86_64"  # Debian's Blender runs the system Python
DRIVER = Path(__file__).with_name("blender_driver.py")


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


def run_blender(
    blender: str, addon_zip: Path, tmp_path: Path, scenario: str, connection_file: Path, **spec: Any
) -> dict[str, Any]:
    """Blender headless with an empty user profile, the driver playing ``scenario``; its facts."""
    profile = tmp_path / "blender-profile"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONNOUSERSITE"] = "1"
    for name in ("CONFIG", "SCRIPTS", "DATAFILES"):
        folder = profile / name.lower()
        folder.mkdir(parents=True, exist_ok=True)
        env[f"BLENDER_USER_{name}"] = str(folder)
    env["TMPDIR"] = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir(exist_ok=True)
    facts_file = tmp_path / f"{scenario}.json"
    spec_file = tmp_path / f"{scenario}-spec.json"
    spec_file.write_text(
        json.dumps(
            {
                "zip": str(addon_zip),
                "scenario": scenario,
                "connection_file": str(connection_file),
                "facts": str(facts_file),
                **spec,
            }
        )
    )
    command = [
        blender,
        "-b",
        "--factory-startup",
        "--python-exit-code",
        "1",
        "--python",
        str(DRIVER),
        "--",
        str(spec_file),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400)
    assert facts_file.exists(), (
        f"Blender wrote no facts (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    facts: dict[str, Any] = json.loads(facts_file.read_text())
    if "exception" in facts:
        pytest.fail(f"the scenario raised inside Blender:\n{facts['exception']}\n{done.stdout[-2000:]}")
    facts["stdout"] = done.stdout
    return facts
