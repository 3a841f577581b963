"""The plugin's bundled dependencies (``vendor/``, see ``refcolor_plugin.vendor``) on sys.path."""

from __future__ import annotations

import sys
from pathlib import Path

VENDOR = Path(__file__).resolve().parent / "vendor"


def activate() -> list[str]:
    """Put ``vendor/common`` (the shared package lives there) and this interpreter's folder on
    sys.path; returns what was added."""
    common, added = str(VENDOR / "common"), []
    if (VENDOR / "common").is_dir() and common not in sys.path:
        sys.path.insert(0, common)
        added.append(common)
    from refcolor_plugin.vendor import activate as activate_vendor

    return added + activate_vendor(VENDOR)  # common is on the path already: only this interpreter's folder
