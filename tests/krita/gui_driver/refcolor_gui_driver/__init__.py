"""Test-only Krita plugin: drives the refcolor docker like a user would, in the real GUI.

It opens a document with line art, a reference with transparency and a selection, waits for
the docker to connect, presses its Colorize button, waits for the result, saves a screenshot
of the window and the facts it saw to $REFCOLOR_GUI_OUT, then ends Krita.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

from krita import Extension, Krita, Selection
from PyQt5.QtCore import QTimer
from PyQt5.QtWidgets import QApplication

OUT = Path(os.environ.get("REFCOLOR_GUI_OUT", "/tmp/refcolor-gui"))
W, H = 480, 360


def grid(width: int, height: int, cell: int) -> bytes:
    line = b"\x00\x00\x00\xff"
    row = bytearray(b"\x00\x00\x00\x00" * width)
    for x in range(0, width, cell):
        row[x * 4 : x * 4 + 4] = line
    return b"".join(line * width if y % cell == 0 else bytes(row) for y in range(height))


class Driver(Extension):
    def __init__(self, parent: object) -> None:
        super().__init__(parent)
        self.facts: dict[str, object] = {"steps": []}
        self.deadline = time.monotonic() + 240

    def setup(self) -> None:
        OUT.mkdir(parents=True, exist_ok=True)
        QTimer.singleShot(1000, self.wait_for_window)

    def createActions(self, window: object) -> None:
        pass

    def finish(self, ok: bool) -> None:
        self.facts["ok"] = ok
        # where the plugin's dependencies came from (the zip test checks they are the bundled ones)
        self.facts["modules"] = {
            name: getattr(sys.modules.get(name), "__file__", None) for name in ("zmq", "refcolor_protocol")
        }
        try:
            screen = QApplication.primaryScreen()
            screen.grabWindow(0).save(str(OUT / "krita-gui.png"))
        except Exception:
            self.facts["screenshot_error"] = traceback.format_exc()
        (OUT / "facts.json").write_text(json.dumps(self.facts, indent=1))
        os._exit(0)

    def later(self, step: object, ms: int = 250) -> None:
        if time.monotonic() > self.deadline:
            self.facts["timeout_in"] = getattr(step, "__name__", str(step))
            self.finish(False)
            return
        QTimer.singleShot(ms, step)

    def wait_for_window(self) -> None:
        if Krita.instance().activeWindow() is None:
            self.later(self.wait_for_window)
            return
        try:
            self.open_documents()
        except Exception:
            self.facts["error"] = traceback.format_exc()
            self.finish(False)
            return
        self.later(self.wait_for_docker, 1000)

    def open_documents(self) -> None:
        app = Krita.instance()
        ref = app.createDocument(300, 240, "reference", "RGBA", "U8", "", 72.0)
        character = ref.createNode("character", "paintlayer")
        ref.rootNode().addChildNode(character, None)
        character.setPixelData(b"\x30\x30\xe0\xff" * (150 * 120), 60, 50, 150, 120)
        doc = app.createDocument(W, H, "sketch", "RGBA", "U8", "", 72.0)
        root = doc.rootNode()
        line_art = doc.createNode("line art", "paintlayer")
        root.addChildNode(line_art, root.childNodes()[-1])
        line_art.setPixelData(grid(W, H, 40), 0, 0, W, H)
        selection = Selection()
        selection.select(W // 4, H // 4, W // 2, H // 2, 255)
        doc.setSelection(selection)
        window = app.activeWindow()
        window.addView(ref)
        window.addView(doc)
        doc.setActiveNode(line_art)
        app.setActiveDocument(doc)
        doc.refreshProjection()
        self.doc, self.line_art = doc, line_art

    def find_docker(self) -> object | None:
        for docker in Krita.instance().dockers():
            if docker.objectName() == "refcolor_docker":
                return docker
        return None

    def wait_for_docker(self) -> None:
        docker = self.find_docker()
        self.facts["docker_found"] = docker is not None
        if docker is None:
            self.facts["dockers"] = [d.objectName() for d in Krita.instance().dockers()]
            self.finish(False)
            return
        docker.show()
        docker.raise_()
        self.docker = docker
        self.later(self.wait_for_connection)

    def wait_for_connection(self) -> None:
        panel = self.docker.panel
        self.facts["status"] = panel.status.text()
        if not self.docker.connection.connected:
            self.later(self.wait_for_connection)
            return
        self.docker.refresh()
        for i in range(panel.line_art.count()):
            if panel.line_art.itemText(i) == "line art":
                panel.line_art.setCurrentIndex(i)
        for i in range(panel.reference.count()):
            if panel.reference.itemText(i).startswith("character"):
                panel.reference.setCurrentIndex(i)
                panel.reference.activated.emit(i)
        self.docker.refresh_masks()
        self.facts["pickers"] = {
            "line_art": panel.line_art.currentText(),
            "reference": panel.reference.currentText(),
            "sketch_mask": panel.sketch_mask.currentText(),
            "reference_mask": panel.reference_mask.currentText(),
        }
        panel.control("steps").set_value(6)
        panel.colorize.click()  # the UI's own button
        self.later(self.wait_for_result)

    def wait_for_result(self) -> None:
        text = self.docker.panel.status.text()
        self.facts["status"] = text
        if text.startswith("Done"):
            self.facts["stack"] = [n.name() for n in self.doc.rootNode().childNodes()]
            self.facts["progress"] = [self.docker.panel.progress.value(), self.docker.panel.progress.maximum()]
            self.later(lambda: self.finish(True), 1500)  # let the canvas repaint before the screenshot
        elif self.docker.controller.job is None and not text.startswith("Colorizing"):
            self.finish(False)  # the job failed; the status says why
        # job None with "Colorizing…" still shown: the result arrived and its layers are being added
        # (Krita's API may run the event loop meanwhile, so this check can land in between).
        else:
            self.later(self.wait_for_result)


Krita.instance().addExtension(Driver(Krita.instance()))
