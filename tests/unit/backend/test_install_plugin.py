"""`refcolor install-plugin`: files in the profile, kritarc enabled with nothing else lost, idempotent."""

from __future__ import annotations

import argparse
import configparser
import subprocess
import sys
from pathlib import Path

import pytest

from refcolor.cli import install_plugin
from refcolor.cli.install_plugin import PLUGIN_NAME, enable_in_kritarc, install, interpreter_tag

KRITARC = """[General]
ShowRulers=true
DockerTitleBars=false

[python]
enable_OtherPlugin=false
enable_scripter=true

[MainWindow][Toolbar mainToolBar]
ToolButtonStyle=TextBesideIcon
Path[$e]=$HOME/50% done
"""


def read_kritarc(path: Path) -> configparser.ConfigParser:
    config = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    config.optionxform = str
    config.read_string(path.read_text())
    return config


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    install_plugin.add_arguments(parser)
    return parser.parse_args(argv)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_installs_files_and_enables_the_plugin(tmp_path, capsys) -> None:
    kritarc = tmp_path / "config" / "kritarc"
    kritarc.parent.mkdir()
    kritarc.write_text(KRITARC)
    assert install_plugin.run(parse(["--profile", str(tmp_path / "krita"), "--kritarc", str(kritarc)])) == 0

    pykrita = tmp_path / "krita" / "pykrita"
    package = pykrita / PLUGIN_NAME
    assert (pykrita / f"{PLUGIN_NAME}.desktop").is_file()
    assert (package / "__init__.py").is_file() and (package / "vendor.py").is_file()
    assert (package / "vendor" / "common" / "refcolor_protocol" / "client.py").is_file()
    assert (package / "vendor" / "common" / "refcolor_plugin" / "controller.py").is_file()  # shared logic
    assert (package / "vendor" / interpreter_tag() / "zmq" / "__init__.py").is_file()
    assert not list(package.rglob("__pycache__"))
    assert "same version and platform" in capsys.readouterr().out

    config = read_kritarc(kritarc)
    assert config["python"]["enable_refcolor_krita"] == "true"
    assert config["python"]["enable_OtherPlugin"] == "false"  # case kept
    assert config["python"]["enable_scripter"] == "true"
    assert config["General"]["ShowRulers"] == "true"
    assert config["General"]["DockerTitleBars"] == "false"
    assert config["MainWindow][Toolbar mainToolBar"]["Path[$e]"] == "$HOME/50% done"
    assert "ShowRulers=true\n" in kritarc.read_text()  # no spaces around '=' for KConfig


def test_installing_twice_gives_the_same_result(tmp_path) -> None:
    kritarc, profile = tmp_path / "kritarc", tmp_path / "krita"
    kritarc.write_text(KRITARC)
    install(profile, kritarc)
    first, first_rc = snapshot(profile), kritarc.read_text()
    stale = profile / "pykrita" / PLUGIN_NAME / "stale.py"
    stale.write_text("left over from an older version\n")
    install(profile, kritarc)
    assert snapshot(profile) == first
    assert kritarc.read_text() == first_rc


def test_creates_kritarc_and_uses_xdg_folders_by_default(tmp_path, monkeypatch) -> None:
    if sys.platform in ("win32", "darwin"):
        pytest.skip("XDG folders are the Linux defaults")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    assert install_plugin.run(parse([])) == 0
    assert (tmp_path / "data" / "krita" / "pykrita" / f"{PLUGIN_NAME}.desktop").is_file()
    assert read_kritarc(tmp_path / "config" / "kritarc")["python"]["enable_refcolor_krita"] == "true"


def test_unparsable_kritarc_is_left_alone(tmp_path) -> None:
    kritarc = tmp_path / "kritarc"
    kritarc.write_text("orphan=1\n[python]\n")
    with pytest.raises(ValueError, match="by hand"):
        enable_in_kritarc(kritarc)
    assert kritarc.read_text() == "orphan=1\n[python]\n"


def test_missing_plugin_source_is_a_clear_error(tmp_path, monkeypatch, capsys) -> None:
    import refcolor

    monkeypatch.setattr(refcolor, "__file__", str(tmp_path / "site-packages" / "refcolor" / "__init__.py"))
    assert install_plugin.run(parse(["--profile", str(tmp_path / "krita"), "--kritarc", str(tmp_path / "rc")])) == 2
    err = capsys.readouterr().err
    assert "not at" in err and "Import Python Plugin from File" in err
    assert not (tmp_path / "rc").exists()


def test_bundled_packages_import_without_the_environment(tmp_path) -> None:
    """The copied vendor folders alone give zmq and refcolor_protocol (python -S: no site-packages)."""
    install(tmp_path / "krita", tmp_path / "kritarc")
    package = tmp_path / "krita" / "pykrita" / PLUGIN_NAME
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('vendor', {str(package / 'vendor.py')!r})\n"
        "vendor = importlib.util.module_from_spec(spec); spec.loader.exec_module(vendor)\n"
        "vendor.activate()\n"
        "import zmq, refcolor_protocol\n"
        "print(zmq.__file__); print(refcolor_protocol.__file__); print(zmq.zmq_version())\n"
    )
    done = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    zmq_file, protocol_file, _ = done.stdout.splitlines()
    assert Path(zmq_file).is_relative_to(package / "vendor" / interpreter_tag())
    assert Path(protocol_file).is_relative_to(package / "vendor" / "common")


def test_the_vendor_folder_name_is_the_plugins_own() -> None:
    # The backend spells the tag itself (it used to exec the plugin's vendor.py by path); the plugin
    # computes it before it can import anything. The two must agree.
    source = Path(__file__).resolve().parents[3] / "plugin" / "refcolor_plugin" / "vendor.py"
    namespace: dict[str, object] = {"__name__": "vendor_under_test", "__file__": str(source)}
    exec(compile(source.read_text(), str(source), "exec"), namespace)  # the plugin module, as Krita runs it
    assert interpreter_tag() == namespace["interpreter_tag"]()  # type: ignore[operator]
