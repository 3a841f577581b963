"""Full GUI smoke test: real Krita under Xvfb, the plugin enabled in an isolated profile, a run
through the docker's own Colorize button, and a screenshot saved as an artifact."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from kritatest import ROOT, require

pytestmark = pytest.mark.timeout(400)
ARTIFACTS = Path(os.environ.get("REFCOLOR_ARTIFACTS", ROOT / "artifacts"))


def install_plugin(pykrita: Path, source: Path, name: str) -> None:
    pykrita.mkdir(parents=True, exist_ok=True)
    shutil.copy(source / f"{name}.desktop", pykrita)
    shutil.copytree(source / name, pykrita / name, ignore=shutil.ignore_patterns("__pycache__"))


def test_docker_colorizes_through_its_own_button(krita_env, backend, tmp_path) -> None:
    require("xvfb-run")
    krita = require("krita")
    env = dict(krita_env)
    pykrita = Path(env["XDG_DATA_HOME"]) / "krita" / "pykrita"
    install_plugin(pykrita, ROOT / "plugin", "refcolor_krita")
    install_plugin(pykrita, ROOT / "tests" / "krita" / "gui_driver", "refcolor_gui_driver")
    (Path(env["XDG_CONFIG_HOME"]) / "kritarc").write_text(
        "[python]\nenable_refcolor_krita=true\nenable_refcolor_gui_driver=true\n\n"
        f"[refcolor]\nconnection_file={backend.connection_file}\nstart_backend=false\n"
    )
    out = tmp_path / "gui"
    env["REFCOLOR_GUI_OUT"] = str(out)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "protocol"), env["PYTHONPATH"].split(os.pathsep)[2]])
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
    if (out / "krita-gui.png").exists():
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(out / "krita-gui.png", ARTIFACTS / "krita-gui.png")
    assert facts.get("docker_found"), f"the Reference Colorize docker is missing: {facts}"
    assert facts["ok"], facts
    assert facts["status"].startswith("Done: added Colorized 1"), facts["status"]
    assert facts["pickers"]["sketch_mask"] == "Current selection"
    assert facts["pickers"]["reference_mask"] == "Layer transparency"
    stack = facts["stack"]
    assert stack.index("Colorized 1") == stack.index("line art") - 1
    assert facts["progress"] == [6, 6]
    assert (out / "krita-gui.png").stat().st_size > 10_000
