"""Running the in-Blender driver (tests/blender/blender_driver.py) from a test."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

DRIVER = Path(__file__).with_name("blender_driver.py")


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
