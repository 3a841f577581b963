"""The plugin zip as users get it: built by packaging/build_plugin.py (Linux cp311 only, to keep
it quick), imported with Krita's own Import Python Plugin code into a fresh profile, and driven
through the GUI with nothing on PYTHONPATH, so refcolor_protocol and pyzmq must come from the zip.
A second build with every target checks that each platform with pyzmq also gets blake3."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from kritatest import KRITA_SITE, ROOT, run_gui_smoke

pytestmark = pytest.mark.timeout(400)
TAG = "cp311-linux_x86_64"  # the Krita of the test machine embeds CPython 3.11
KRITA_IMPORTER = Path("/usr/share/krita/pykrita/plugin_importer/plugin_importer.py")


@pytest.fixture(scope="module")
def wheels_dir(tmp_path_factory) -> Path:
    """Downloaded once for both builds."""
    return tmp_path_factory.mktemp("plugin-wheels")


def build_zip(out: Path, wheels_dir: Path, *options: str) -> tuple[Path, str]:
    """The zip built into out, and what the build logged."""
    command = [sys.executable, str(ROOT / "packaging" / "build_plugin.py"), "--out", str(out)]
    done = subprocess.run(
        [*command, "--wheels-dir", str(wheels_dir), *options], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"build_plugin.py failed:\n{done.stderr[-3000:]}"
    path = Path(done.stdout.strip().splitlines()[-1])
    assert path.parent == out and path.name.startswith("refcolor_krita-") and path.suffix == ".zip"
    return path, done.stderr


@pytest.fixture(scope="module")
def plugin_zip(tmp_path_factory, wheels_dir) -> Path:
    return build_zip(tmp_path_factory.mktemp("plugin-zip"), wheels_dir, "--only", TAG)[0]


def vendored(names: list[str], module: str) -> set[str]:
    """The vendor/<tag> folders holding a compiled ``module`` package (its extension included)."""
    found: dict[str, set[str]] = {}
    for name in names:
        parts = name.split("/")
        if len(parts) > 4 and parts[:2] == ["refcolor_krita", "vendor"] and parts[3] == module:
            found.setdefault(parts[2], set()).add(parts[-1])
    compiled = (".so", ".pyd")
    return {
        tag
        for tag, files in found.items()
        if "__init__.py" in files and any(file.endswith(compiled) for file in files)
    }


def krita_importer() -> type:
    """Krita's PluginImporter (what Tools > Scripts > Import Python Plugin from File runs)."""
    if not KRITA_IMPORTER.is_file():
        pytest.fail(f"Krita's plugin importer is missing at {KRITA_IMPORTER}: run `make setup` (it installs krita)")
    spec = importlib.util.spec_from_file_location("krita_plugin_importer", KRITA_IMPORTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PluginImporter


def test_zip_layout(plugin_zip) -> None:
    names = zipfile.ZipFile(plugin_zip).namelist()
    assert "refcolor_krita.desktop" in names
    assert "refcolor_krita/" in names and "refcolor_krita/__init__.py" in names
    assert "refcolor_krita/vendor/common/refcolor_protocol/client.py" in names
    assert "refcolor_krita/vendor/common/refcolor_plugin/controller.py" in names
    assert f"refcolor_krita/vendor/{TAG}/zmq/__init__.py" in names
    assert any(name.startswith(f"refcolor_krita/vendor/{TAG}/zmq/backend/cython/_zmq") for name in names)
    assert vendored(names, "blake3") == vendored(names, "zmq") == {TAG}
    assert not [name for name in names if "__pycache__" in name]
    assert {name.split("/")[0] for name in names} == {"refcolor_krita.desktop", "refcolor_krita"}


def test_every_platform_with_pyzmq_gets_blake3(tmp_path, wheels_dir) -> None:
    path, log = build_zip(tmp_path, wheels_dir)
    names = zipfile.ZipFile(path).namelist()
    with_pyzmq = vendored(names, "zmq")
    assert TAG in with_pyzmq and len(with_pyzmq) >= 2, f"pyzmq bundled for {sorted(with_pyzmq)} only"
    missing = sorted(with_pyzmq - vendored(names, "blake3"))
    assert not missing, f"no blake3 wheel for {missing} (there the plugin signs with hmac-sha256):\n{log[-2000:]}"
    assert "no blake3 wheel" not in log


def test_unpacked_zip_colorizes_in_krita(plugin_zip, krita_profile, backend, tmp_path) -> None:
    resources = Path(krita_profile["XDG_DATA_HOME"]) / "krita"
    resources.mkdir(parents=True)
    imported = krita_importer()(str(plugin_zip), str(resources), lambda plugin: False).import_all()
    assert [plugin["name"] for plugin in imported] == ["refcolor_krita"]
    pykrita = resources / "pykrita"
    assert (pykrita / "refcolor_krita" / "vendor" / TAG / "zmq").is_dir()
    assert "PYTHONPATH" not in krita_profile
    assert str(ROOT / "protocol") not in os.environ.get("PYTHONPATH", "")

    facts = run_gui_smoke(krita_profile, backend.connection_file, tmp_path / "gui", pykrita, [], "krita-gui-zip.png")
    vendor = pykrita / "refcolor_krita" / "vendor"
    assert Path(facts["modules"]["zmq"]).is_relative_to(vendor / TAG), facts["modules"]
    assert Path(facts["modules"]["blake3"]).is_relative_to(vendor / TAG), facts["modules"]  # signing loaded it
    assert Path(facts["modules"]["refcolor_protocol"]).is_relative_to(vendor / "common"), facts["modules"]
    assert not Path(facts["modules"]["zmq"]).is_relative_to(KRITA_SITE)
