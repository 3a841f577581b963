"""Build the Krita plugin zip: ``dist/refcolor_krita-<version>.zip``.

Krita's Tools ▸ Scripts ▸ Import Python Plugin from File reads it as it is: the zip's root holds
``refcolor_krita.desktop`` and ``refcolor_krita/``, with the plugin's dependencies inside
``refcolor_krita/vendor/`` (see ``plugin/refcolor_plugin/vendor.py``):

- ``vendor/common/refcolor_protocol/``: pure Python, from ``protocol/``;
- ``vendor/common/refcolor_plugin/``: the logic the paint-app plugins share, from ``plugin/``;
- ``vendor/<tag>/``: the contents of one pyzmq wheel and one blake3 wheel per interpreter and
  platform, ``<tag>`` spelt as ``vendor.interpreter_tag()`` spells it (``cp311-linux_x86_64``,
  ``cp310-win_x86_64``, ``cp311-macos_arm64``, ...). A macOS universal2 wheel fills both macOS tags.

Wheels come from PyPI through ``pip download``. A target pip cannot fetch a pyzmq wheel for is
logged and skipped; one without a blake3 wheel is bundled without it (the plugin then signs with
the legacy hmac-sha256, which servers of protocol 1.5 still verify) and named in a warning.

Usage: ``python packaging/build_plugin.py [--out DIR] [--wheels-dir DIR] [--only TAG ...]``;
prints the zip's path.
"""

from __future__ import annotations

import argparse
import logging
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "plugin"
PLUGIN_NAME = "refcolor_krita"
PROTOCOL_PACKAGE = ROOT / "protocol" / "refcolor_protocol"
SHARED_PACKAGE = PLUGIN / "refcolor_plugin"  # the plugins' shared logic
VERSION_SOURCE = ROOT / "backend" / "pyproject.toml"
# Zip entries get this timestamp, so the same inputs give the same bytes.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)

log = logging.getLogger("build_plugin")


@dataclass(frozen=True)
class Target:
    """One ``vendor/<tag>`` folder and what ``pip download`` is asked for to fill it."""

    tag: str  # as vendor.interpreter_tag() spells it
    python_version: str  # pip's --python-version
    platforms: tuple[str, ...]  # pip's --platform values, any one of which will do


_LINUX = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
# pip expands a macOS platform to every older macOS version and to universal2.
_MAC_X86 = ("macosx_14_0_x86_64",)
_MAC_ARM = ("macosx_14_0_arm64",)

TARGETS = tuple(
    target
    for minor in (10, 11)
    for target in (
        Target(f"cp3{minor}-linux_x86_64", f"3.{minor}", _LINUX),
        Target(f"cp3{minor}-win_x86_64", f"3.{minor}", ("win_amd64",)),
        Target(f"cp3{minor}-macos_x86_64", f"3.{minor}", _MAC_X86),
        Target(f"cp3{minor}-macos_arm64", f"3.{minor}", _MAC_ARM),
    )
)


def read_version(pyproject: Path = VERSION_SOURCE) -> str:
    match = re.search(r'^version\s*=\s*"([^"]+)"', pyproject.read_text(), re.MULTILINE)
    if match is None:
        raise SystemExit(f'no `version = "..."` line in {pyproject}; expected the [project] version there')
    return match.group(1)


def _platform_systems(platform_tag: str) -> list[str]:
    """A wheel platform tag as interpreter_tag()'s ``<system>_<machine>`` parts (none if unsupported)."""
    if platform_tag.startswith(("manylinux", "linux_")):
        if platform_tag.endswith("_x86_64"):
            return ["linux_x86_64"]
        if platform_tag.endswith("_aarch64"):
            return ["linux_arm64"]
        return []
    if platform_tag == "win_amd64":
        return ["win_x86_64"]
    if platform_tag == "win_arm64":
        return ["win_arm64"]
    if platform_tag.startswith("macosx_"):
        arch = platform_tag.split("_", 3)[-1]
        if arch == "universal2":
            return ["macos_x86_64", "macos_arm64"]
        if arch in ("x86_64", "arm64"):
            return [f"macos_{arch}"]
    return []  # musllinux, 32-bit, ...: no Krita build uses them


def wheel_tags(filename: str) -> set[str]:
    """The interpreter tags (``cp311-linux_x86_64``, ...) a wheel file can serve, from its name."""
    parts = filename.removesuffix(".whl").split("-")
    if len(parts) < 5:
        return set()
    python_tags, platform_tags = parts[-3].split("."), parts[-1].split(".")
    return {
        f"{python}-{system}"
        for python in python_tags
        if re.fullmatch(r"cp3\d+", python)
        for platform_tag in platform_tags
        for system in _platform_systems(platform_tag)
    }


def _version_key(filename: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", filename.split("-")[1]))


def project_name(requirement: str) -> str:
    """The distribution a requirement names, as wheel file names spell it (``pyzmq>=25`` -> ``pyzmq``)."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement.strip())
    if match is None:
        raise SystemExit(f"cannot read a project name from requirement {requirement!r}; expected e.g. 'pyzmq>=25'")
    return re.sub(r"[-_.]+", "_", match.group(0)).lower()


def find_wheel(wheels_dir: Path, tag: str, project: str = "pyzmq") -> Path | None:
    """The newest wheel of project in wheels_dir that serves tag."""
    candidates = [path for path in wheels_dir.glob(f"{project}-*.whl") if tag in wheel_tags(path.name)]
    return max(candidates, key=lambda path: _version_key(path.name), default=None)


def fetch_wheel(target: Target, wheels_dir: Path, requirement: str) -> Path | None:
    """A wheel of requirement's project for target: one already in wheels_dir, or one pip downloads there."""
    project = project_name(requirement)
    wheel = find_wheel(wheels_dir, target.tag, project)
    if wheel is not None:
        log.info("%s: using %s", target.tag, wheel.name)
        return wheel
    command = [sys.executable, "-m", "pip", "download", requirement, "--only-binary=:all:", "--no-deps"]
    command += ["--python-version", target.python_version, "--dest", str(wheels_dir), "--quiet"]
    for platform_tag in target.platforms:
        command += ["--platform", platform_tag]
    done = subprocess.run(command, capture_output=True, text=True)
    wheel = find_wheel(wheels_dir, target.tag, project)
    if wheel is None:
        reason = done.stderr.strip().splitlines()[-1:] or [f"pip exited {done.returncode}"]
        log.warning("%s: pip could not fetch a %s wheel (%s)", target.tag, project, reason[0])
        return None
    log.info("%s: downloaded %s", target.tag, wheel.name)
    return wheel


def stage_vendor(vendor: Path, wheels: dict[str, list[Path]]) -> None:
    """Fill a plugin's ``vendor/``: the pure-Python packages in ``common/``, each tag's wheels in ``<tag>/``."""
    no_cache = shutil.ignore_patterns("__pycache__")
    shutil.copytree(PROTOCOL_PACKAGE, vendor / "common" / "refcolor_protocol", ignore=no_cache)
    shutil.copytree(SHARED_PACKAGE, vendor / "common" / "refcolor_plugin", ignore=no_cache)
    for tag, tag_wheels in sorted(wheels.items()):
        for wheel in tag_wheels:
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(vendor / tag)


def stage(folder: Path, wheels: dict[str, list[Path]]) -> Path:
    """Lay the plugin out in folder as the zip will hold it; returns the package folder."""
    shutil.copy(PLUGIN / f"{PLUGIN_NAME}.desktop", folder)
    package = folder / PLUGIN_NAME
    shutil.copytree(PLUGIN / PLUGIN_NAME, package, ignore=shutil.ignore_patterns("__pycache__", "vendor"))
    stage_vendor(package / "vendor", wheels)
    return package


def write_zip(folder: Path, destination: Path) -> None:
    """Zip folder's contents with explicit directory entries: Krita's importer looks for them."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in sorted(folder.rglob("*")):
            name = path.relative_to(folder).as_posix()
            if path.is_dir():
                info = zipfile.ZipInfo(name + "/", ZIP_DATE)
                info.external_attr = (0o40755 << 16) | 0x10
                archive.writestr(info, b"")
            else:
                info = zipfile.ZipInfo(name, ZIP_DATE)
                info.external_attr = 0o100644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes())
    partial.replace(destination)


def collect_wheels(
    wheels_dir: Path,
    only: list[str] | None = None,
    requirement: str = "pyzmq>=25",
    blake3_requirement: str = "blake3>=1.0",
) -> dict[str, list[Path]]:
    """The pyzmq (and blake3) wheels of each target tag (``only``: these tags; default all); a tag
    pip cannot fetch a pyzmq wheel for is left out.

    Raises:
        SystemExit: an unknown tag, or no pyzmq wheel for any target.
    """
    known = {target.tag: target for target in TARGETS}
    unknown = sorted(set(only or []) - set(known))
    if unknown:
        raise SystemExit(f"unknown --only tag(s) {', '.join(unknown)}; expected some of: {', '.join(known)}")
    targets = [known[tag] for tag in only] if only else list(TARGETS)
    wheels_dir.mkdir(parents=True, exist_ok=True)
    wheels: dict[str, list[Path]] = {}
    no_blake3 = []
    for target in targets:
        pyzmq_wheel = fetch_wheel(target, wheels_dir, requirement)
        if pyzmq_wheel is None:
            continue  # no use for the plugin there: it cannot connect without pyzmq
        wheels[target.tag] = [pyzmq_wheel]
        blake3_wheel = fetch_wheel(target, wheels_dir, blake3_requirement)
        if blake3_wheel is None:
            no_blake3.append(target.tag)
        else:
            wheels[target.tag].append(blake3_wheel)
    if not wheels:
        raise SystemExit("no pyzmq wheel could be fetched for any target; is PyPI reachable?")
    skipped = [target.tag for target in targets if target.tag not in wheels]
    log.info("bundled: %s%s", ", ".join(sorted(wheels)), f"; skipped: {', '.join(skipped)}" if skipped else "")
    if no_blake3:
        log.warning("no blake3 wheel for %s: the plugin signs with hmac-sha256 there", ", ".join(no_blake3))
    return wheels


def build(
    out: Path,
    wheels_dir: Path,
    only: list[str] | None = None,
    requirement: str = "pyzmq>=25",
    blake3_requirement: str = "blake3>=1.0",
) -> Path:
    """Build the zip in out; returns its path.

    Args:
        out: folder for the zip (created if missing).
        wheels_dir: where wheels are looked for first and downloaded to.
        only: interpreter tags to bundle (default: every tag in TARGETS).
        requirement: the pyzmq pip downloads, e.g. ``pyzmq==27.1.0``; a tag without one is skipped.
        blake3_requirement: the blake3 pip downloads, e.g. ``blake3==1.0.11``; a tag without one
            is bundled without it (the plugin signs with hmac-sha256 there).
    """
    wheels = collect_wheels(wheels_dir, only, requirement, blake3_requirement)
    destination = out / f"{PLUGIN_NAME}-{read_version()}.zip"
    with tempfile.TemporaryDirectory(prefix="refcolor-plugin-") as staging:
        stage(Path(staging), wheels)
        write_zip(Path(staging), destination)
    log.info("wrote %s (%.1f MB)", destination, destination.stat().st_size / 1e6)
    return destination


def run_cli(what: str, build_zip: Callable[..., Path], argv: list[str] | None = None) -> int:
    """The command line of a zip builder (this one and build_blender_addon.py): ``build_zip`` takes
    ``build``'s arguments."""
    parser = argparse.ArgumentParser(description=f"Build the {what} zip with its bundled dependencies.")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="folder for the zip (default dist/)")
    parser.add_argument(
        "--wheels-dir",
        type=Path,
        default=None,
        help="pyzmq and blake3 wheels: used from here when present, downloaded here otherwise "
        "(default: a temporary folder)",
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
        print(build_zip(args.out, args.wheels_dir, args.only, args.pyzmq, args.blake3))
        return 0
    with tempfile.TemporaryDirectory(prefix="refcolor-wheels-") as wheels_dir:
        print(build_zip(args.out, Path(wheels_dir), args.only, args.pyzmq, args.blake3))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli("Krita plugin", build, argv)


if __name__ == "__main__":
    sys.exit(main())
