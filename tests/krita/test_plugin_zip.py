"""The plugin zip as users get it: built by packaging/build_plugin.py (Linux cp311 only, to keep
it quick), imported with Krita's own Import Python Plugin code into a fresh profile, and driven
through the GUI with nothing on PYTHONPATH, so refcolor_protocol and pyzmq must come from the zip."""

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
def plugin_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plugin-zip")
    done = subprocess.run(
        [sys.executable, str(ROOT / "packaging" / "build_plugin.py"), "--out", str(out), "--only", TAG],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"build_plugin.py failed:\n{done.stderr[-3000:]}"
    path = Path(done.stdout.strip().splitlines()[-1])
    assert path.parent == out and path.name.startswith("refcolor_krita-") and path.suffix == ".zip"
    return path


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
    assert f"refcolor_krita/vendor/{TAG}/zmq/__init__.py" in names
    assert any(name.startswith(f"refcolor_krita/vendor/{TAG}/zmq/backend/cython/_zmq") for name in names)
    assert not [name for name in names if "__pycache__" in name]
    assert {name.split("/")[0] for name in names} == {"refcolor_krita.desktop", "refcolor_krita"}


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
    assert Path(facts["modules"]["refcolor_protocol"]).is_relative_to(vendor / "common"), facts["modules"]
    assert not Path(facts["modules"]["zmq"]).is_relative_to(KRITA_SITE)
