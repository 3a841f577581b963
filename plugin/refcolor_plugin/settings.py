"""Plugin settings: what persists between Krita sessions, and how it is stored.

The connection settings are a plain dataclass; the colorization parameters are a
``ColorizeParams``, saved under their own names in their schema's text form (``auto`` for the
model's choice), so a parameter added to the schema is saved without a change here. Reading and
writing go through a tiny key/value store interface, which inside Krita is its settings API
(``document.KritaSettingsStore``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from typing import Protocol

from refcolor_protocol import ColorizeParams, ProtocolError
from refcolor_protocol.schema import PARAMS, params_from

GROUP = "refcolor"
PANEL_PARAMS = tuple(spec for spec in PARAMS if spec.panel)  # the ones the panels show, and save


class SettingsStore(Protocol):
    def read(self, key: str, default: str) -> str: ...

    def write(self, key: str, value: str) -> None: ...


@dataclass(frozen=True)
class Settings:
    # Where the backend is: a connection file (empty = the default location), or an address.
    connection_file: str = ""
    address: str = ""  # e.g. tcp://127.0.0.1:5557; overrides the connection file when set
    key: str = ""  # HMAC key to use with `address`
    # How to start a local backend when none answers: a full command line, or empty to run
    # `<python> -m refcolor.cli serve` with the interpreter below.
    backend_command: str = ""
    backend_python: str = ""
    start_backend: bool = True
    model: str = ""  # "" = the backend's default
    replace_previous: bool = False  # replace the last "Colorized" group instead of adding one
    # The docker's picks, as sources.Source text (files by path, layers by document + layer), and
    # the mask the artist picked ("" = the default for what is available).
    line_art: str = "none"
    reference: str = "none"
    background: str = "none"
    sketch_mask: str = ""
    reference_mask: str = ""
    show_advanced: bool = False
    frames_playback: bool = True  # "Colorize frames" follows the document's playback range
    params: ColorizeParams = field(default_factory=ColorizeParams)  # the panel's controls


def _parse(field: dataclasses.Field[object], text: str) -> object:
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "str")
    if kind == "bool":
        return text.strip().lower() in ("1", "true", "yes", "on")
    return text


def _format(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _own_fields() -> list[dataclasses.Field[object]]:
    return [f for f in dataclasses.fields(Settings) if f.name != "params"]


def load_settings(store: SettingsStore) -> Settings:
    """Read every setting; a value that cannot be parsed, or is out of its range, falls back to its
    default (so settings saved by an older plugin, such as -1 for "auto", still load)."""
    defaults = Settings()
    values: dict[str, object] = {
        f.name: _parse(f, store.read(f.name, _format(getattr(defaults, f.name)))) for f in _own_fields()
    }
    params: dict[str, object] = {}
    for spec in PANEL_PARAMS:
        with contextlib.suppress(ValueError):  # unreadable or out of range: the default
            params[spec.name] = spec.parse(store.read(spec.name, spec.format(spec.default)))
    try:
        values["params"] = params_from(params)
    except ProtocolError:  # a saved combination the protocol refuses: start from the defaults
        values["params"] = ColorizeParams()
    return Settings(**values)  # type: ignore[arg-type]


def save_settings(store: SettingsStore, settings: Settings) -> None:
    for f in _own_fields():
        store.write(f.name, _format(getattr(settings, f.name)))
    for spec in PANEL_PARAMS:
        store.write(spec.name, spec.format(getattr(settings.params, spec.name)))
