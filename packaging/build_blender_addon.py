"""Build the Blender add-on zip: ``dist/refcolor_blender-<version>.zip``.

Blender's Edit ▸ Preferences ▸ Add-ons ▸ Install reads it as it is: the zip holds one folder,
``refcolor_blender/``, with the add-on's dependencies inside ``refcolor_blender/vendor/`` laid out as
the Krita zip's (``packaging/build_plugin.py``): ``vendor/common/`` = refcolor_protocol and the
plugins' shared refcolor_plugin, ``vendor/<tag>/`` = pyzmq and blake3 for one Python and platform
(Blender 3.4–4.x ship CPython 3.10 or 3.11, on Linux, Windows and macOS), picked at import by
``refcolor_plugin.vendor``.

Usage: ``python packaging/build_blender_addon.py [--out DIR] [--wheels-dir DIR] [--only TAG ...]``;
prints the zip's path.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from build_plugin import PLUGIN, collect_wheels, read_version, run_cli, stage_vendor, write_zip

ADDON_NAME = "refcolor_blender"

log = logging.getLogger("build_blender_addon")


def build(
    out: Path,
    wheels_dir: Path,
    only: list[str] | None = None,
    requirement: str = "pyzmq>=25",
    blake3_requirement: str = "blake3>=1.0",
) -> Path:
    """Build the zip in out (arguments as ``build_plugin.build``'s); returns its path."""
    wheels = collect_wheels(wheels_dir, only, requirement, blake3_requirement)
    destination = out / f"{ADDON_NAME}-{read_version()}.zip"
    with tempfile.TemporaryDirectory(prefix="refcolor-blender-") as staging:
        package = Path(staging) / ADDON_NAME
        shutil.copytree(PLUGIN / ADDON_NAME, package, ignore=shutil.ignore_patterns("__pycache__", "vendor"))
        stage_vendor(package / "vendor", wheels)
        write_zip(Path(staging), destination)
    log.info("wrote %s (%.1f MB)", destination, destination.stat().st_size / 1e6)
    return destination


def main(argv: list[str] | None = None) -> int:
    return run_cli("Blender add-on", build, argv)


if __name__ == "__main__":
    sys.exit(main())
