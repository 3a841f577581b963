"""Dependencies bundled with a plugin (refcolor_protocol, this package, pyzmq and blake3 for the
paint app's own Python).

A plugin's zip carries ``vendor/common`` (pure Python: this package among them) and one
``vendor/<tag>`` folder of compiled wheels per interpreter and platform, e.g.
``cp311-linux_x86_64``; the running interpreter picks its own. The plugin puts ``vendor/common``
on ``sys.path`` itself (this module lives there), then calls :func:`activate`. This module
imports nothing outside the standard library: it runs before anything else is importable.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path


def interpreter_tag() -> str:
    machine = platform.machine().lower().replace("amd64", "x86_64").replace("aarch64", "arm64")
    system = {"win32": "win", "darwin": "macos"}.get(sys.platform, "linux")
    return f"cp{sys.version_info.major}{sys.version_info.minor}-{system}_{machine}"


def activate(vendor: Path) -> list[str]:
    """Put ``vendor``'s folders for this interpreter on sys.path; returns what was added (nothing in
    a development checkout, which bundles nothing)."""
    added = []
    for folder in (vendor / interpreter_tag(), vendor / "common"):
        if folder.is_dir() and str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
            added.append(str(folder))
    return added
