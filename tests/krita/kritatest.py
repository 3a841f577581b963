"""Helpers for the real-Krita tests (a module of its own: conftest modules of different
folders share one name and must not be imported from)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KRITA_SITE = ROOT / ".venv" / "krita-site"  # pyzmq for Krita's Python, installed by `make setup`
ARTIFACTS = Path(os.environ.get("REFCOLOR_ARTIFACTS", ROOT / "artifacts"))


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


def install_plugin(pykrita: Path, source: Path, name: str) -> None:
    """Copy a pykrita plugin (``<name>.desktop`` + ``<name>/``) from source into pykrita."""
    pykrita.mkdir(parents=True, exist_ok=True)
    if source.resolve() == pykrita.resolve():
        return  # already there (unpacked into the profile)
    shutil.copy(source / f"{name}.desktop", pykrita)
    shutil.copytree(source / name, pykrita / name, ignore=shutil.ignore_patterns("__pycache__"))


def run_gui_smoke(
    env: dict[str, str],
    connection_file: Path,
    out: Path,
    plugin_source: Path,
    pythonpath: list[str],
    artifact: str | None = None,
) -> dict[str, object]:
    """Real Krita under Xvfb with refcolor_krita from plugin_source and the GUI driver: the driver
    clicks the docker's own Colorize button. Asserts the outcome; returns the driver's facts.

    Args:
        env: an isolated profile (the krita_profile fixture).
        connection_file: a running backend's.
        out: folder for the driver's facts.json and screenshot.
        plugin_source: folder holding refcolor_krita.desktop and refcolor_krita/ (may be the
            profile's own pykrita folder).
        pythonpath: Krita's PYTHONPATH (empty: only what the plugin bundles).
        artifact: file name under ARTIFACTS for the screenshot (kept even when the run fails).
    """
    require("xvfb-run")
    krita = require("krita")
    env = dict(env)
    pykrita = Path(env["XDG_DATA_HOME"]) / "krita" / "pykrita"
    install_plugin(pykrita, plugin_source, "refcolor_krita")
    install_plugin(pykrita, ROOT / "tests" / "krita" / "gui_driver", "refcolor_gui_driver")
    (Path(env["XDG_CONFIG_HOME"]) / "kritarc").write_text(
        "[python]\nenable_refcolor_krita=true\nenable_refcolor_gui_driver=true\n\n"
        f"[refcolor]\nconnection_file={connection_file}\nstart_backend=false\n"
    )
    env["REFCOLOR_GUI_OUT"] = str(out)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(pythonpath)
    else:
        env.pop("PYTHONPATH", None)
    env.pop("QT_QPA_PLATFORM", None)
    process = subprocess.Popen(
        ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", krita, "--nosplash"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 300
        while not (out / "facts.json").exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        if process.poll() is None:
            process.kill()
        log = process.communicate(timeout=30)[0].decode(errors="replace")
    if not (out / "facts.json").exists():
        pytest.fail(f"Krita ended without the driver's report (exit {process.returncode}):\n{log[-4000:]}")
    facts = json.loads((out / "facts.json").read_text())
    if artifact and (out / "krita-gui.png").exists():
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(out / "krita-gui.png", ARTIFACTS / artifact)
    assert facts.get("docker_found"), f"the Reference Colorize docker is missing: {facts}"
    assert facts["ok"], f"{facts}\nKrita's output (last 4000 characters):\n{log[-4000:]}"
    assert facts["status"].startswith("Done: added Colorized 1"), facts["status"]
    assert facts["pickers"]["sketch_mask"] == "Current selection"
    assert facts["pickers"]["reference_mask"] == "Layer transparency"
    stack = facts["stack"]
    assert stack.index("Colorized 1") == stack.index("line art") - 1
    assert facts["progress"] == [6, 6]
    assert (out / "krita-gui.png").stat().st_size > 10_000
    return facts
