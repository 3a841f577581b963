"""``refcolor install-plugin``: put the Krita plugin into a Krita profile and enable it.

Copies ``refcolor_krita.desktop`` and ``refcolor_krita/`` into ``<profile>/pykrita/``, bundles
``refcolor_protocol``, the plugins' shared ``refcolor_plugin`` and this environment's pyzmq into
``refcolor_krita/vendor/`` (as the plugin zip does, see ``packaging/build_plugin.py``), and sets
``enable_refcolor_krita=true`` in the ``[python]`` group of ``kritarc``.

The pyzmq copied is the one this Python runs; it only loads in Krita when Krita's embedded Python
has the same version and platform. For any other Krita, install the plugin zip instead.
"""

from __future__ import annotations

import argparse
import configparser
import io
import os
import platform
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

PLUGIN_NAME = "refcolor_krita"


class PluginSourceNotFoundError(FileNotFoundError):
    """The plugin's files are not next to the refcolor package (it was installed from a wheel)."""


@dataclass(frozen=True)
class Installed:
    """What install() wrote."""

    pykrita: Path  # the profile's pykrita folder
    kritarc: Path
    tag: str  # the vendor/<tag> folder filled with this interpreter's pyzmq


def default_profile() -> Path:
    """Krita's resource folder for this user on this platform."""
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming")) / "krita"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "krita"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "krita"


def default_kritarc() -> Path:
    """Krita's settings file for this user on this platform."""
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "kritarc"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Preferences" / "kritarc"
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "kritarc"


def find_plugin_source() -> Path:
    """The repository's ``plugin/`` folder (the plugin ships in no wheel yet)."""
    import refcolor

    source = Path(refcolor.__file__).resolve().parents[2] / "plugin"
    if not (source / f"{PLUGIN_NAME}.desktop").is_file() or not (source / PLUGIN_NAME).is_dir():
        raise PluginSourceNotFoundError(
            f"the Krita plugin is not at {source} (expected {PLUGIN_NAME}.desktop and {PLUGIN_NAME}/ there). "
            "install-plugin works from a repository checkout (pip install -e backend); otherwise install "
            f"the plugin zip ({PLUGIN_NAME}-<version>.zip, built by packaging/build_plugin.py) with Krita's "
            "Tools > Scripts > Import Python Plugin from File."
        )
    return source


def interpreter_tag() -> str:
    """The plugin's vendor folder name for this Python, spelt as the plugin's own
    ``vendor.interpreter_tag()`` spells it (``cp311-linux_x86_64``); a test keeps the two equal. The
    plugin needs it before anything can be imported, so it cannot share this function."""
    major, minor = sys.version_info[:2]
    machine = platform.machine().lower().replace("amd64", "x86_64").replace("aarch64", "arm64")
    system = {"win32": "win", "darwin": "macos"}.get(sys.platform, "linux")
    return f"cp{major}{minor}-{system}_{machine}"


def _copy_tree(source: Path, destination: Path) -> None:
    if destination.exists():
        shutil.rmtree(destination)
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns("__pycache__"))


def enable_in_kritarc(kritarc: Path, name: str = PLUGIN_NAME) -> None:
    """Set ``enable_<name>=true`` in kritarc's [python] group, keeping every other group and key."""
    config = configparser.ConfigParser(
        interpolation=None, delimiters=("=",), comment_prefixes=("#",), strict=False, allow_no_value=True
    )
    config.optionxform = str  # type: ignore[assignment,method-assign]  # kritarc keys are case-sensitive
    if kritarc.exists():
        try:
            config.read_string(kritarc.read_text(encoding="utf-8"), source=str(kritarc))
        except configparser.Error as exc:
            raise ValueError(
                f"cannot parse {kritarc} ({exc}); add `enable_{name}=true` under [python] by hand"
            ) from exc
    if not config.has_section("python"):
        config.add_section("python")
    config.set("python", f"enable_{name}", "true")
    text = io.StringIO()
    config.write(text, space_around_delimiters=False)
    kritarc.parent.mkdir(parents=True, exist_ok=True)
    partial = kritarc.with_name(kritarc.name + ".refcolor-partial")
    partial.write_text(text.getvalue(), encoding="utf-8")
    partial.replace(kritarc)


def install(profile: Path, kritarc: Path, plugin_source: Path | None = None) -> Installed:
    """Copy the plugin with its dependencies into profile/pykrita and enable it in kritarc.

    Args:
        profile: Krita's resource folder (``default_profile()`` for this user).
        kritarc: Krita's settings file (``default_kritarc()``).
        plugin_source: folder holding ``refcolor_krita.desktop`` and ``refcolor_krita/``
            (default: the repository's ``plugin/``).

    Returns:
        Where things went. Running it again replaces the previous copy.
    """
    import zmq

    import refcolor_protocol

    source = plugin_source or find_plugin_source()
    tag = interpreter_tag()
    pykrita = profile / "pykrita"
    pykrita.mkdir(parents=True, exist_ok=True)
    shutil.copy(source / f"{PLUGIN_NAME}.desktop", pykrita)
    package = pykrita / PLUGIN_NAME
    _copy_tree(source / PLUGIN_NAME, package)
    vendor = package / "vendor"
    _copy_tree(Path(refcolor_protocol.__file__).parent, vendor / "common" / "refcolor_protocol")
    _copy_tree(source / "refcolor_plugin", vendor / "common" / "refcolor_plugin")  # the plugins' shared logic
    zmq_dir = Path(zmq.__file__).parent
    _copy_tree(zmq_dir, vendor / tag / "zmq")
    libs = zmq_dir.parent / "pyzmq.libs"  # auditwheel/delvewheel put libzmq here
    if libs.is_dir():
        _copy_tree(libs, vendor / tag / "pyzmq.libs")
    try:  # fast message signing; the plugin signs with HMAC-SHA256 without it
        import blake3
    except ImportError:
        pass
    else:
        _copy_tree(Path(blake3.__file__).parent, vendor / tag / "blake3")
    enable_in_kritarc(kritarc)
    return Installed(pykrita=pykrita, kritarc=kritarc, tag=tag)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--profile", type=Path, default=None, help=f"Krita's resource folder (default {default_profile()})"
    )
    parser.add_argument(
        "--kritarc", type=Path, default=None, help=f"Krita's settings file (default {default_kritarc()})"
    )


def run(args: argparse.Namespace) -> int:
    try:
        installed = install(args.profile or default_profile(), args.kritarc or default_kritarc())
    except (PluginSourceNotFoundError, ValueError, OSError) as exc:
        print(f"refcolor install-plugin: {exc}", file=sys.stderr)
        return 2
    print(f"installed {PLUGIN_NAME} into {installed.pykrita} and enabled it in {installed.kritarc}")
    print(
        f"note: the bundled pyzmq is this Python's ({sys.version.split()[0]}, vendor/{installed.tag}); it loads "
        "only if Krita's embedded Python has the same version and platform. Otherwise install the plugin zip "
        "(packaging/build_plugin.py) with Tools > Scripts > Import Python Plugin from File. Restart Krita to load it."
    )
    return 0
