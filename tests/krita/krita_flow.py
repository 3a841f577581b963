"""Runs inside a real Krita (kritarunner): the plugin's colorize flow against a real backend.

Usage: kritarunner -s krita_flow -f main -- CONFIG.json
CONFIG: {"connection_file", "out", "scenario": "colorize"|"cancel"|"no_backend", "size": [w, h],
         "steps", "timeout_s"}. Writes what it observed to CONFIG["out"] as JSON; the pytest side
asserts on it. kritarunner always exits 0, so this calls os._exit with its own status.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import traceback
from typing import Any


def grid(width: int, height: int, cell: int) -> bytes:
    """BGRA: black grid lines on transparency (a typical line-art layer)."""
    row_line = b"\x00\x00\x00\xff" * width
    row = bytearray(b"\x00\x00\x00\x00" * width)
    for x in range(0, width, cell):
        row[x * 4 : x * 4 + 4] = b"\x00\x00\x00\xff"
    rows = [row_line if y % cell == 0 else bytes(row) for y in range(height)]
    return b"".join(rows)


def solid(width: int, height: int, bgra: bytes) -> bytes:
    return bgra * (width * height)


def digest(data: Any) -> str:
    return hashlib.sha256(bytes(data)).hexdigest()


def run(config: dict[str, Any]) -> dict[str, Any]:
    from krita import Krita, Selection
    from PyQt5.QtCore import QElapsedTimer, QEventLoop, QTimer
    from refcolor_krita.connection import BackendConnection
    from refcolor_krita.document import KritaDocuments, LayerRef

    from refcolor_plugin.controller import Callbacks, ColorizeController, Inputs
    from refcolor_plugin.masks import MaskSource
    from refcolor_plugin.settings import Settings
    from refcolor_protocol import ColorizeParams

    width, height = config["size"]
    app = Krita.instance()
    doc = app.createDocument(width, height, "lineart-doc", "RGBA", "U8", "", 72.0)
    root = doc.rootNode()
    for node in root.childNodes():  # the default background layer
        node.remove()
    paper = doc.createNode("paper", "paintlayer")
    root.addChildNode(paper, None)
    paper.setPixelData(solid(width, height, b"\xff\xff\xff\xff"), 0, 0, width, height)
    line_art = doc.createNode("line art", "paintlayer")
    root.addChildNode(line_art, paper)
    line_art.setPixelData(grid(width, height, 32), 0, 0, width, height)
    notes = doc.createNode("notes", "paintlayer")
    root.addChildNode(notes, line_art)
    notes.setPixelData(solid(8, 8, b"\x00\xff\x00\xff"), 0, 0, 8, 8)
    box = (width // 4, height // 4, width // 2, height // 2)
    selection = Selection()
    selection.select(*box, 255)
    doc.setSelection(selection)
    doc.waitForDone()

    # The reference: a red character (BGRA) on transparency, in a document of its own.
    # A big one makes each step of the classical model slow enough to cancel mid-job.
    rw, rh = config.get("reference_size", [100, 80])
    ref_doc = app.createDocument(rw + 100, rh + 80, "reference-doc", "RGBA", "U8", "", 72.0)
    ref_root = ref_doc.rootNode()
    character = ref_doc.createNode("character", "paintlayer")
    ref_root.addChildNode(character, None)
    character.setPixelData(solid(rw, rh, b"\x00\x00\xff\xff"), 50, 40, rw, rh)
    ref_doc.waitForDone()

    def layer_hashes() -> dict[str, str]:
        return {n.name(): digest(n.pixelData(0, 0, width, height)) for n in root.childNodes()}

    before = layer_hashes()
    selection_before = digest(doc.selection().pixelData(0, 0, width, height))

    observed: dict[str, Any] = {"events": [], "statuses": [], "stages": []}
    loop = QEventLoop()
    settings = Settings(
        connection_file=config["connection_file"],
        start_backend=bool(config.get("backend_python")),
        backend_python=config.get("backend_python", ""),
        model=config.get("model", ""),
    )
    connection = BackendConnection(settings)
    documents = KritaDocuments()

    def failed(text: str) -> None:
        observed["events"].append(["failed", text])
        loop.quit()

    def done(names: list[str], where: str) -> None:
        observed["events"].append(["done", names])
        observed["where"] = where
        observed["stages"].append([time.monotonic(), "Done"])
        loop.quit()

    def progress(step: int, total: int) -> None:
        observed["events"].append(["progress", step, total])
        if config["scenario"] == "cancel" and step >= 2 and not observed.get("cancel_sent"):
            observed["cancel_sent"] = True
            controller.cancel()

    def stage(text: str, busy: bool) -> None:
        observed["stages"].append([time.monotonic(), text])

    controller = ColorizeController(
        documents, connection.send, Callbacks(progress=progress, stage=stage, done=done, failed=failed)
    )
    connection.message.connect(controller.handle)

    def status(text: str, ok: bool) -> None:
        observed["statuses"].append([text, ok])
        if config["scenario"] == "no_backend" and len(observed["statuses"]) >= 2:
            loop.quit()

    connection.status.connect(status)
    inputs = Inputs(
        line_art=LayerRef(doc, line_art),
        reference=LayerRef(ref_doc, character),
        sketch_mask=MaskSource.SELECTION,
        reference_mask=MaskSource.ALPHA,
    )
    params = ColorizeParams(steps=config["steps"], seed=3)
    connection.ready.connect(lambda caps: controller.colorize(inputs, params))

    # A timer probe measures the longest stretch the event loop could not run.
    probe, clock = QTimer(), QElapsedTimer()
    stalls: list[int] = []
    clock.start()

    def tick() -> None:
        stalls.append(clock.restart())

    probe.timeout.connect(tick)
    probe.start(5)
    QTimer.singleShot(int(config["timeout_s"] * 1000), loop.quit)
    started = time.monotonic()
    connection.connect_backend()
    loop.exec_()
    probe.stop()
    observed["elapsed_s"] = time.monotonic() - started
    observed["max_stall_ms"] = max(stalls) if stalls else None
    connection.close()
    doc.waitForDone()

    observed["stack"] = [n.name() for n in root.childNodes()]  # bottom first
    groups = [n for n in root.childNodes() if n.type() == "grouplayer"]
    observed["groups"] = []
    for group in groups:
        layers = {}
        for child in group.childNodes():
            bounds = child.bounds()
            data = bytes(child.pixelData(0, 0, width, height))
            alpha = data[3::4]
            x0, y0, w, h = box
            inside = [alpha[y * width + x] for y in range(y0 + 4, y0 + h - 4, 7) for x in range(x0 + 4, x0 + w - 4, 7)]
            outside = [
                alpha[y * width + x]
                for y in range(2, height, 9)
                for x in range(2, width, 9)
                if not (x0 - 2 <= x < x0 + w + 2 and y0 - 2 <= y < y0 + h + 2)
            ]
            layers[child.name()] = {
                "type": child.type(),
                "bounds": [bounds.x(), bounds.y(), bounds.width(), bounds.height()],
                "inside_min_alpha": min(inside),
                "outside_max_alpha": max(outside),
                "inside_colours": len({data[i * 4 : i * 4 + 3] for i in range(0, width * height, 97) if alpha[i] > 0}),
            }
        observed["groups"].append({"name": group.name(), "visible": group.visible(), "layers": layers})
    after = layer_hashes()
    observed["originals_unchanged"] = all(after.get(name) == value for name, value in before.items())
    observed["selection_unchanged"] = (
        doc.selection() is not None and digest(doc.selection().pixelData(0, 0, width, height)) == selection_before
    )
    return observed


def main(*args: Any) -> None:
    rc = 1
    config_path = args[-1] if args else os.environ["REFCOLOR_FLOW_CONFIG"]
    if isinstance(config_path, (list, tuple)):
        config_path = config_path[-1]
    with open(config_path) as handle:
        config = json.load(handle)
    try:
        observed = run(config)
        rc = 0
    except Exception:
        observed = {"exception": traceback.format_exc()}
    with open(config["out"], "w") as out:
        json.dump(observed, out, indent=1)
    os._exit(rc)
