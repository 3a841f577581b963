"""Helpers for the real-Krita tests (a module of its own: conftest modules of different
folders share one name and must not be imported from)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
KRITA_SITE = ROOT / ".venv" / "krita-site"  # pyzmq for Krita's Python, installed by `make setup`
# The plugin under test; another checkout's plugin/ to see how a scenario fared there.
PLUGIN_SOURCE = Path(os.environ.get("REFCOLOR_KRITA_PLUGIN", ROOT / "plugin"))
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
    shared = source / "refcolor_plugin"  # the plugins' shared logic, bundled as the zip bundles it
    if (pykrita / name / "vendor.py").is_file() and shared.is_dir():
        common = pykrita / name / "vendor" / "common" / "refcolor_plugin"
        shutil.rmtree(common, ignore_errors=True)
        shutil.copytree(shared, common, ignore=shutil.ignore_patterns("__pycache__"))


class KritaGui:
    """Real Krita under Xvfb, with refcolor_krita from ``plugin_source`` and the GUI driver running
    ``scenario`` (tests/krita/gui_driver/refcolor_gui_driver/scenarios.py).

    Args:
        env: an isolated profile (the krita_profile fixture); a second run on the same profile is
            a Krita restart.
        out: folder for the driver's facts.json and screenshots.
        plugin_source: folder holding refcolor_krita.desktop and refcolor_krita/ (may be the
            profile's own pykrita folder).
        pythonpath: Krita's PYTHONPATH (empty: only what the plugin bundles).
        settings: the plugin's settings in kritarc's [refcolor] group (written when the profile
            has none yet, as a first start would find them).
        config: for the scenario (REFCOLOR_GUI_CONFIG).
        screen: the virtual screen's size.
    """

    def __init__(
        self,
        env: dict[str, str],
        scenario: str,
        out: Path,
        plugin_source: Path = PLUGIN_SOURCE,
        pythonpath: list[str] | None = None,
        settings: dict[str, str] | None = None,
        config: dict[str, object] | None = None,
        screen: tuple[int, int] = (1600, 1000),
    ) -> None:
        require("xvfb-run")
        krita = require("krita")
        env = dict(env)
        pykrita = Path(env["XDG_DATA_HOME"]) / "krita" / "pykrita"
        if not (pykrita / "refcolor_krita").exists() or plugin_source.resolve() != pykrita.resolve():
            shutil.rmtree(pykrita / "refcolor_krita", ignore_errors=True)
            install_plugin(pykrita, plugin_source, "refcolor_krita")
        shutil.rmtree(pykrita / "refcolor_gui_driver", ignore_errors=True)
        install_plugin(pykrita, ROOT / "tests" / "krita" / "gui_driver", "refcolor_gui_driver")
        kritarc = Path(env["XDG_CONFIG_HOME"]) / "kritarc"
        if not kritarc.exists():
            lines = "".join(f"{key}={value}\n" for key, value in (settings or {}).items())
            kritarc.write_text(
                "[python]\nenable_refcolor_krita=true\nenable_refcolor_gui_driver=true\n\n"
                f"[refcolor]\n{lines}"
            )
        out.mkdir(parents=True, exist_ok=True)
        (out / "facts.json").unlink(missing_ok=True)
        self.out = out
        env["REFCOLOR_GUI_OUT"] = str(out)
        env["REFCOLOR_GUI_SCENARIO"] = scenario
        env["REFCOLOR_GUI_CONFIG"] = json.dumps({"window": list(screen), **(config or {})})
        if pythonpath:
            env["PYTHONPATH"] = os.pathsep.join(pythonpath)
        else:
            env.pop("PYTHONPATH", None)
        env.pop("QT_QPA_PLATFORM", None)
        # Krita's output goes to a file, not a pipe: a backend Krita started inherits it, and a
        # pipe would stay open (and a read block) for as long as that backend lives.
        self.log_path = out / "krita.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                ["xvfb-run", "-a", "-s", f"-screen 0 {screen[0]}x{screen[1]}x24", krita, "--nosplash"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # one process group: xvfb-run, Xvfb and Krita, killed together
            )

    def facts(self, timeout_s: float = 300) -> dict[str, Any]:
        """Wait for the driver's report; fails the test with Krita's output if there is none."""
        deadline = time.monotonic() + timeout_s
        while not (self.out / "facts.json").exists() and self.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.3)
        time.sleep(0.2)  # written in one call; let it land
        if not (self.out / "facts.json").exists():
            self.kill()
            code = self.process.returncode
            crash = self.out / "crash.txt"
            where = crash.read_text() if crash.exists() else ""
            pytest.fail(f"Krita ended without the driver's report (exit {code}):\n{self.output()[-4000:]}\n{where}")
        facts = json.loads((self.out / "facts.json").read_text())
        assert "error" not in facts and "timeout_in" not in facts, (
            f"the scenario failed inside Krita: {facts}\nKrita's output:\n{self.output()[-4000:]}"
        )
        return facts

    def wait_exit(self, timeout_s: float) -> int | None:
        """Krita's exit status once it has ended by itself within ``timeout_s``, else None."""
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """End Krita at once (SIGKILL to its whole process group), as a crash does."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def output(self) -> str:
        """What Krita printed so far."""
        return self.log_path.read_bytes().decode(errors="replace") if self.log_path.exists() else ""

    def keep(self, name: str, artifact: str) -> Path:
        """Copy screenshot ``name``.png to ARTIFACTS as ``artifact``; returns the copy."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.out / f"{name}.png", ARTIFACTS / artifact)
        return ARTIFACTS / artifact


def run_gui(env: dict[str, str], scenario: str, out: Path, **kwargs: Any) -> dict[str, Any]:
    """Run ``scenario`` in a real Krita to its end; returns its facts."""
    gui = KritaGui(env, scenario, out, **kwargs)
    try:
        return gui.facts()
    finally:
        gui.kill()


def run_gui_smoke(
    env: dict[str, str],
    connection_file: Path,
    out: Path,
    plugin_source: Path,
    pythonpath: list[str],
    artifact: str | None = None,
) -> dict[str, Any]:
    """The smoke scenario: the driver clicks the docker's own Colorize button. Asserts the outcome;
    returns the driver's facts (``artifact``: the screenshot's name under ARTIFACTS)."""
    gui = KritaGui(
        env,
        "smoke",
        out,
        plugin_source,
        pythonpath,
        settings={"connection_file": str(connection_file), "start_backend": "false"},
    )
    try:
        facts = gui.facts()
    finally:
        gui.kill()
    if artifact:
        gui.keep("krita-gui", artifact)
    assert facts["status"].startswith("Done: added Colorized 1"), facts["status"]
    assert facts["pickers"]["sketch_mask"].startswith("Current selection")
    assert facts["pickers"]["reference_mask"] == "Layer transparency"
    stack = facts["stack"]
    assert stack.index("Colorized 1") == stack.index("line art") - 1
    assert facts["progress_visible"] is False
    assert (out / "krita-gui.png").stat().st_size > 10_000
    return facts
