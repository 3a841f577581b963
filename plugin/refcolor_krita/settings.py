"""Plugin settings: what persists between Krita sessions, and how it is stored.

The values are a plain dataclass; reading and writing go through a tiny key/value store
interface, which inside Krita is its settings API (``document.KritaSettingsStore``) and in
tests a dict.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Protocol

GROUP = "refcolor"


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
    # Control defaults
    mode: str = "both"
    steps: int = 20
    reference_scale: float = 5.0
    sketch_scale: float = 1.0
    fg_strength: float = 1.0
    bg_strength: float = 1.0
    color_match: float = -1.0  # finishing strengths; negative = "auto", the model's default
    flatten: float = -1.0
    variations: int = 1
    seed: int = 0
    replace_previous: bool = False  # replace the last "Colorized" group instead of adding one


def _parse(field: dataclasses.Field[object], text: str) -> object:
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "str")
    if kind == "bool":
        return text.strip().lower() in ("1", "true", "yes", "on")
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    return text


def _format(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def load_settings(store: SettingsStore) -> Settings:
    """Read every setting; a value that cannot be parsed falls back to its default."""
    defaults = Settings()
    values: dict[str, object] = {}
    for field in dataclasses.fields(Settings):
        default = getattr(defaults, field.name)
        text = store.read(field.name, _format(default))
        try:
            values[field.name] = _parse(field, text)
        except ValueError:
            values[field.name] = default
    return Settings(**values)  # type: ignore[arg-type]


def save_settings(store: SettingsStore, settings: Settings) -> None:
    for field in dataclasses.fields(Settings):
        store.write(field.name, _format(getattr(settings, field.name)))


class DictStore:
    """An in-memory store (tests, and a fallback outside Krita)."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def read(self, key: str, default: str) -> str:
        return self.values.get(key, default)

    def write(self, key: str, value: str) -> None:
        self.values[key] = value
