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

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from build_plugin import PLUGIN, ROOT, TARGETS, collect_wheels, read_version, stage_vendor, write_zip

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
    parser = argparse.ArgumentParser(description="Build the Blender add-on zip with its bundled dependencies.")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="folder for the zip (default dist/)")
    parser.add_argument(
        "--wheels-dir", type=Path, default=None, help="pyzmq and blake3 wheels: used from here, else downloaded here"
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="TAG",
        help=f"bundle only this interpreter tag (repeatable; default all: {', '.join(t.tag for t in TARGETS)})",
    )
    parser.add_argument("--pyzmq", default="pyzmq>=25", help="requirement pip downloads (default pyzmq>=25)")
    parser.add_argument("--blake3", default="blake3>=1.0", help="requirement pip downloads (default blake3>=1.0)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if args.wheels_dir is not None:
        print(build(args.out, args.wheels_dir, args.only, args.pyzmq, args.blake3))
        return 0
    with tempfile.TemporaryDirectory(prefix="refcolor-wheels-") as wheels_dir:
        print(build(args.out, Path(wheels_dir), args.only, args.pyzmq, args.blake3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
