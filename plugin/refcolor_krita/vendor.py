"""The plugin's bundled dependencies (``vendor/``, see ``refcolor_plugin.vendor``) on sys.path."""

from __future__ import annotations

import sys
from pathlib import Path

VENDOR = Path(__file__).resolve().parent / "vendor"


def activate() -> list[str]:
    """Put ``vendor/common`` (the shared package lives there) and this interpreter's folder on
    sys.path; returns what was added."""
    common = str(VENDOR / "common")
    added = [common] if (VENDOR / "common").is_dir() and common not in sys.path else []
    if added:
        sys.path.insert(0, common)
    from refcolor_plugin.vendor import activate as activate_vendor

    return added + [folder for folder in activate_vendor(VENDOR) if folder != common]
