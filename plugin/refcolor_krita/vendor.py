"""Dependencies bundled with the plugin zip (refcolor_protocol and pyzmq for Krita's Python).

The zip carries ``vendor/common`` (pure Python) and one ``vendor/<tag>`` folder of compiled
wheels per interpreter and platform, e.g. ``cp311-linux_x86_64``; the running interpreter
picks its own. In a development checkout nothing is bundled and nothing happens.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

VENDOR = Path(__file__).resolve().parent / "vendor"


def interpreter_tag() -> str:
    machine = platform.machine().lower().replace("amd64", "x86_64").replace("aarch64", "arm64")
    system = {"win32": "win", "darwin": "macos"}.get(sys.platform, "linux")
    return f"cp{sys.version_info.major}{sys.version_info.minor}-{system}_{machine}"


def activate() -> list[str]:
    """Put the bundled folders for this interpreter on sys.path; returns what was added."""
    added = []
    for folder in (VENDOR / interpreter_tag(), VENDOR / "common"):
        if folder.is_dir() and str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
            added.append(str(folder))
    return added
