"""The logic both paint-app plugins share (refcolor_plugin) needs neither Krita nor Qt: Blender's
Python has neither, and its add-on uses the same modules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def imports_with(modules: list[str], blocked: tuple[str, ...]) -> None:
    """Import ``modules`` in a fresh Python where importing any of ``blocked`` fails."""
    code = (
        "import sys\n"
        f"for blocked in {blocked!r}:\n"
        "    sys.modules[blocked] = None  # importing it raises ImportError\n"
        f"for name in {modules!r}:\n"
        "    __import__(name)\n"
        "print('ok')\n"
    )
    env_path = f"{ROOT / 'plugin'}:{ROOT / 'protocol'}"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": env_path}, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_the_shared_modules_import_without_krita_or_qt() -> None:
    modules = sorted(p.stem for p in (ROOT / "plugin" / "refcolor_plugin").glob("*.py") if p.stem != "__init__")
    assert {"controller", "frames", "jobs", "pixels", "settings", "vendor"} <= set(modules)
    imports_with([f"refcolor_plugin.{name}" for name in modules], ("krita", "PyQt5", "PyQt6", "bpy", "numpy"))


def test_the_blender_add_ons_plain_modules_import_without_bpy_or_numpy() -> None:
    """Only ``ui`` and ``scene`` touch bpy; Debian's Blender has no numpy (pixels_io's slow path)."""
    modules = ["refcolor_blender.session", "refcolor_blender.controls", "refcolor_blender.pixels_io"]
    imports_with(modules, ("bpy", "mathutils", "numpy", "krita", "PyQt5"))
