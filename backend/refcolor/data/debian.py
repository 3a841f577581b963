"""Fetch and unpack the Debian packages the training data comes from.

Only two packages are used, both through Debian's own tools so that a fresh machine
with apt reproduces the data exactly: ``apt-get download`` fetches the ``.deb`` into a
cache folder (nothing is installed), ``dpkg-deb -x`` unpacks it into a folder of its own.
A ``.deb`` already in the cache is reused, so a rebuild works offline.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

WESNOTH = "wesnoth-1.16-data"
OPENCLIPART = "openclipart-png"
PACKAGES = (WESNOTH, OPENCLIPART)
LICENSES = {
    WESNOTH: "GPL-2+ (Battle for Wesnoth art; see usr/share/doc/wesnoth-1.16-data/copyright)",
    OPENCLIPART: "public domain (Open Clip Art Library; see usr/share/doc/openclipart-png/copyright)",
}


class DebianError(RuntimeError):
    """apt-get or dpkg-deb failed or is missing."""


@dataclass(frozen=True)
class UnpackedPackage:
    name: str
    version: str
    deb: Path
    root: Path  # the folder dpkg-deb -x unpacked into (holds usr/share/...)


def _run(command: list[str], cwd: Path | None = None) -> str:
    if shutil.which(command[0]) is None:
        raise DebianError(f"{command[0]} not found: building the data needs a Debian system (apt, dpkg)")
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise DebianError(
            f"{' '.join(command)} exited with {result.returncode}: {result.stderr.strip()[-2000:]}"
        )
    return result.stdout


def cached_deb(package: str, cache: Path) -> Path | None:
    """The newest ``PACKAGE_*.deb`` in ``cache``, if any."""
    found = sorted(cache.glob(f"{package}_*.deb"))
    return found[-1] if found else None


def download(package: str, cache: Path, apt_update: bool = False) -> Path:
    """Return the package's ``.deb`` in ``cache``, running ``apt-get download`` if it is not there.

    Args:
        package: Debian package name.
        cache: folder for ``.deb`` files (created).
        apt_update: run ``apt-get update`` first (needed once on a fresh machine).

    Raises:
        DebianError: apt-get failed; the message says how (e.g. run with apt_update).
    """
    cache.mkdir(parents=True, exist_ok=True)
    existing = cached_deb(package, cache)
    if existing is not None:
        logger.info("using cached %s", existing)
        return existing
    if apt_update:
        logger.info("apt-get update")
        _run(["apt-get", "update"])
    logger.info("apt-get download %s into %s", package, cache)
    try:
        _run(["apt-get", "download", package], cwd=cache)
    except DebianError as error:
        raise DebianError(
            f"{error}\nIf apt does not know the package yet, run `apt-get update` (or pass --apt-update)."
        ) from error
    deb = cached_deb(package, cache)
    if deb is None:
        raise DebianError(f"apt-get download {package} succeeded but left no {package}_*.deb in {cache}")
    return deb


def deb_field(deb: Path, name: str) -> str:
    """One control field of a ``.deb`` (``dpkg-deb -f``), e.g. Version."""
    return _run(["dpkg-deb", "-f", str(deb), name]).strip()


def unpack(deb: Path, target: Path) -> Path:
    """``dpkg-deb -x`` into ``target`` unless a completed unpack of the same file is there."""
    marker = target / ".unpacked-from"
    if marker.exists() and marker.read_text() == deb.name:
        return target
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    logger.info("dpkg-deb -x %s %s", deb.name, target)
    _run(["dpkg-deb", "-x", str(deb), str(target)])
    marker.write_text(deb.name)
    return target


def fetch(package: str, work: Path, apt_update: bool = False) -> UnpackedPackage:
    """Download (or reuse) and unpack ``package`` under ``work`` (``work/debs``, ``work/PACKAGE``)."""
    deb = download(package, work / "debs", apt_update=apt_update)
    root = unpack(deb, work / package)
    return UnpackedPackage(package, deb_field(deb, "Version"), deb, root)
