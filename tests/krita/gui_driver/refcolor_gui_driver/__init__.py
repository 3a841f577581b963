"""Test-only Krita plugin: drives the refcolor docker like an artist would, in the real GUI.

``$REFCOLOR_GUI_SCENARIO`` names a scenario in ``scenarios.py`` (default ``smoke``): a generator
that acts on Krita and the docker and yields what to wait for. The driver runs it inside Krita's
event loop, then writes the facts it gathered to ``$REFCOLOR_GUI_OUT/facts.json`` with a
screenshot, and ends Krita (unless the scenario quits Krita itself, as an artist does).
"""

from __future__ import annotations

import faulthandler
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from krita import Extension, Krita
from PyQt5.QtCore import QTimer
from PyQt5.QtWidgets import QApplication

OUT = Path(os.environ.get("REFCOLOR_GUI_OUT", "/tmp/refcolor-gui"))
SCENARIO = os.environ.get("REFCOLOR_GUI_SCENARIO", "smoke")
CONFIG = json.loads(os.environ.get("REFCOLOR_GUI_CONFIG", "{}"))


class Until:
    """Wait until ``condition()`` is true (checked every 100 ms), at most ``timeout_s``."""

    def __init__(self, condition: Callable[[], bool], what: str, timeout_s: float = 120) -> None:
        self.condition, self.what, self.deadline = condition, what, time.monotonic() + timeout_s


class Driver(Extension):
    def __init__(self, parent: object) -> None:
        super().__init__(parent)
        self.facts: dict[str, Any] = {"scenario": SCENARIO, "config": CONFIG}
        self.steps: Iterator[Any] | None = None
        self.docker: Any = None
        self.statuses: list[str] = []
        self.finished = False

    def setup(self) -> None:
        OUT.mkdir(parents=True, exist_ok=True)
        # Should Krita crash, where in Python it was (read by the test on failure).
        self.crash_log = open(OUT / "crash.txt", "w")  # noqa: SIM115  (open for Krita's whole life)
        faulthandler.enable(self.crash_log)
        QTimer.singleShot(500, self.wait_for_window)
        QTimer.singleShot(int(CONFIG.get("deadline_s", 240) * 1000), lambda: self.fail("the scenario's deadline"))

    def createActions(self, window: object) -> None:
        pass

    # --- running a scenario -------------------------------------------------------------------

    def wait_for_window(self) -> None:
        window = Krita.instance().activeWindow()
        if window is None or self.find_docker() is None:
            QTimer.singleShot(250, self.wait_for_window)
            return
        qwindow = window.qwindow()
        size = CONFIG.get("window")
        if size:  # the window as an artist's maximised one on a screen of this size
            qwindow.setGeometry(0, 0, size[0], size[1])
        self.docker = self.find_docker()
        self.docker.show()
        self.docker.raise_()
        # Every status line the docker shows, in order (the panel's own setter, wrapped).
        panel = self.docker.panel
        original = panel.set_status

        def recording(text: str, ok: bool = True) -> None:
            self.statuses.append(text)
            original(text, ok)

        panel.set_status = recording
        from . import scenarios

        self.steps = getattr(scenarios, SCENARIO)(self)
        self.advance()

    def advance(self, *_: object) -> None:
        if self.finished or self.steps is None:
            return
        try:
            wait = next(self.steps)
        except StopIteration:
            self.finish(True)
            return
        except Exception:
            self.facts["error"] = traceback.format_exc()
            self.finish(False)
            return
        if isinstance(wait, Until):
            self.poll(wait)
        elif wait == "quit":  # the scenario ended Krita itself; the test watches it go
            self.write_facts(True)
        else:
            QTimer.singleShot(int(float(wait or 0) * 1000), self.advance)

    def poll(self, until: Until) -> None:
        if self.finished:
            return
        try:
            done = until.condition()
        except Exception:
            self.facts["error"] = traceback.format_exc()
            self.finish(False)
            return
        if done:
            self.advance()
        elif time.monotonic() > until.deadline:
            self.fail(until.what)
        else:
            QTimer.singleShot(100, lambda: self.poll(until))

    def fail(self, what: str) -> None:
        if not self.finished:
            self.facts["timeout_in"] = what
            self.finish(False)

    # --- helpers for scenarios ----------------------------------------------------------------

    def find_docker(self) -> Any:
        return next((d for d in Krita.instance().dockers() if d.objectName() == "refcolor_docker"), None)

    def shot(self, name: str) -> None:
        """A screenshot of the whole screen, as ``name``.png next to the facts."""
        QApplication.processEvents()
        QApplication.primaryScreen().grabWindow(0).save(str(OUT / f"{name}.png"))

    def write_facts(self, ok: bool) -> None:
        self.facts["ok"] = ok
        self.facts["statuses"] = self.statuses
        self.facts["modules"] = {
            name: getattr(sys.modules.get(name), "__file__", None) for name in ("zmq", "blake3", "refcolor_protocol")
        }
        (OUT / "facts.json").write_text(json.dumps(self.facts, indent=1, default=str))

    def finish(self, ok: bool) -> None:
        self.finished = True
        try:
            self.shot("krita-gui")
        except Exception:
            self.facts["screenshot_error"] = traceback.format_exc()
        self.write_facts(ok)
        os._exit(0)


Krita.instance().addExtension(Driver(Krita.instance()))
