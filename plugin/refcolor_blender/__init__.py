"""refcolor for Blender: colorize line art and Grease Pencil drawings from a reference.

Blender imports this package when the add-on is enabled. Its bundled dependencies (``vendor/``:
refcolor_protocol, the plugins' shared ``refcolor_plugin``, pyzmq and blake3 for this Python) go on
the path first. Only ``ui`` and ``scene`` touch ``bpy``; the rest is plain Python.
"""

from __future__ import annotations

import sys
from pathlib import Path

bl_info = {
    "name": "refcolor",
    "author": "refcolor",
    "version": (0, 1, 0),
    "blender": (3, 4, 0),
    "location": "Image Editor ▸ Sidebar ▸ refcolor; 3D Viewport ▸ Sidebar ▸ refcolor",
    "description": "Colorize line art and Grease Pencil drawings in the colours of a reference",
    "category": "Paint",
}

_VENDOR = Path(__file__).resolve().parent / "vendor"
if (_VENDOR / "common").is_dir() and str(_VENDOR / "common") not in sys.path:
    sys.path.insert(0, str(_VENDOR / "common"))

from refcolor_plugin.vendor import activate  # noqa: E402  (bundled: needs vendor/common on the path)

activate(_VENDOR)


def register() -> None:
    from . import ui

    ui.register()


def unregister() -> None:
    from . import ui

    ui.unregister()
