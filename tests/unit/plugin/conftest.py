"""A fake ``krita`` module and the plugin on sys.path, so the plugin's logic runs without Krita.

Only what the plugin touches at import and in the tested paths is faked; the real API is
exercised by the tests under tests/krita (kritarunner and the GUI smoke test).
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "plugin"))

from PyQt5.QtWidgets import QApplication, QDockWidget


class _Notifier:
    class _Signal:
        def connect(self, slot: object) -> None:
            pass

    applicationClosing = _Signal()


class FakeKrita:
    _instance: FakeKrita | None = None

    def __init__(self) -> None:
        self.settings: dict[tuple[str, str], str] = {}
        self.factories: list[object] = []

    @classmethod
    def instance(cls) -> FakeKrita:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def readSetting(self, group: str, key: str, default: str) -> str:
        return self.settings.get((group, key), default)

    def writeSetting(self, group: str, key: str, value: str) -> None:
        self.settings[(group, key)] = value

    def addDockWidgetFactory(self, factory: object) -> None:
        self.factories.append(factory)

    def activeDocument(self) -> None:
        return None

    def documents(self) -> list[object]:
        return []

    def notifier(self) -> _Notifier:
        return _Notifier()


class DockWidgetFactoryBase:
    DockRight = 2


class DockWidgetFactory:
    def __init__(self, identifier: str, area: int, cls: type) -> None:
        self.identifier, self.area, self.cls = identifier, area, cls


class Selection:
    """Only named here: what uses it runs in a real Krita (tests/krita)."""


fake = types.ModuleType("krita")
fake.Krita = FakeKrita  # type: ignore[attr-defined]
fake.Selection = Selection  # type: ignore[attr-defined]
fake.DockWidget = QDockWidget  # type: ignore[attr-defined]
fake.DockWidgetFactory = DockWidgetFactory  # type: ignore[attr-defined]
fake.DockWidgetFactoryBase = DockWidgetFactoryBase  # type: ignore[attr-defined]
sys.modules.setdefault("krita", fake)

APP = QApplication.instance() or QApplication([])
