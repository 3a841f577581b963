from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from refcolor.data import debian

needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb (Debian)")


def build_deb(folder: Path, name: str = "refcolor-test-art", version: str = "1.2-3") -> Path:
    """A real, tiny .deb with one image file, built with dpkg-deb."""
    tree = folder / "tree"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN/control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: t <t@example.org>\nDescription: test\n"
    )
    (tree / "usr/share/art").mkdir(parents=True)
    (tree / "usr/share/art/a.txt").write_text("hello")
    deb = folder / "cache" / f"{name}_{version}_all.deb"
    deb.parent.mkdir()
    subprocess.run(
        ["dpkg-deb", "--build", "--root-owner-group", str(tree), str(deb)], check=True, capture_output=True
    )
    return deb


@needs_dpkg
def test_fetch_reuses_a_cached_deb_and_unpacks_it_once(tmp_path, monkeypatch):
    deb = build_deb(tmp_path)
    work = tmp_path / "work"
    (work / "debs").mkdir(parents=True)
    shutil.copy(deb, work / "debs" / deb.name)
    commands: list[list[str]] = []
    real_run = debian._run

    def recording_run(command: list[str], cwd: Path | None = None) -> str:
        commands.append(command)
        return real_run(command, cwd)

    monkeypatch.setattr(debian, "_run", recording_run)
    package = debian.fetch("refcolor-test-art", work)
    assert package.version == "1.2-3"
    assert (package.root / "usr/share/art/a.txt").read_text() == "hello"
    assert not any(c[0] == "apt-get" for c in commands)  # the cache made apt unnecessary
    unpacks = sum(c[:2] == ["dpkg-deb", "-x"] for c in commands)
    debian.fetch("refcolor-test-art", work)
    assert unpacks == 1 and sum(c[:2] == ["dpkg-deb", "-x"] for c in commands) == 1  # not unpacked again


@needs_dpkg
def test_failing_apt_get_says_how_to_fix_it(tmp_path, monkeypatch):
    def failing_run(command: list[str], cwd: Path | None = None) -> str:
        raise debian.DebianError(f"{' '.join(command)} exited with 100: E: Unable to locate package")

    monkeypatch.setattr(debian, "_run", failing_run)
    with pytest.raises(debian.DebianError, match="apt-get update"):
        debian.download("no-such-package", tmp_path)


def test_missing_tool_is_named(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(debian.DebianError, match="dpkg-deb not found"):
        debian.deb_field(Path("x.deb"), "Version")


@pytest.mark.skipif(
    os.environ.get("REFCOLOR_NETWORK_TESTS") != "1", reason="set REFCOLOR_NETWORK_TESTS=1 (downloads)"
)
def test_real_apt_get_download(tmp_path):
    """Opt-in: the real apt path on a small package (the data packages are 280 MB)."""
    package = debian.fetch("hello", tmp_path)
    assert package.deb.exists() and package.version
    assert any(package.root.rglob("hello"))
