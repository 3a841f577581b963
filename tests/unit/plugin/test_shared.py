"""The logic both paint-app plugins share (refcolor_plugin) needs neither Krita nor Qt: Blender's
Python has neither, and its add-on uses the same modules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_the_shared_modules_import_without_krita_or_qt() -> None:
    modules = sorted(p.stem for p in (ROOT / "plugin" / "refcolor_plugin").glob("*.py") if p.stem != "__init__")
    assert {"controller", "frames", "jobs", "pixels", "settings"} <= set(modules)
    code = (
        "import sys\n"
        "for blocked in ('krita', 'PyQt5', 'PyQt6', 'bpy', 'numpy'):\n"
        "    sys.modules[blocked] = None  # importing it raises ImportError\n"
        f"for name in {modules!r}:\n"
        "    __import__('refcolor_plugin.' + name)\n"
        "print('ok')\n"
    )
    env_path = f"{ROOT / 'plugin'}:{ROOT / 'protocol'}"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": env_path}, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_the_blender_add_ons_plain_modules_import_without_bpy_or_numpy() -> None:
    """Only ``ui`` and ``scene`` touch bpy; Debian's Blender has no numpy (pixels_io's slow path)."""
    code = (
        "import sys\n"
        "for blocked in ('bpy', 'mathutils', 'numpy', 'krita', 'PyQt5'):\n"
        "    sys.modules[blocked] = None  # importing it raises ImportError\n"
        "for name in ('session', 'controls', 'pixels_io'):\n"
        "    __import__('refcolor_blender.' + name)\n"
        "print('ok')\n"
    )
    env_path = f"{ROOT / 'plugin'}:{ROOT / 'protocol'}"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": env_path}, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
