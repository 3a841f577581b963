"""The "Reference Colorize" docker: wires the panel, the backend connection, the controller
and the document access together. With ``document.py``, the only module that uses ``krita``."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from krita import DockWidget, DockWidgetFactory, DockWidgetFactoryBase, Krita
from PyQt5.QtCore import QTimer

from .connection import BackendConnection
from .controller import Callbacks, ColorizeController, Inputs, State
from .document import KritaDocuments, KritaSettingsStore, LayerRef, read_image, selection_mask
from .masks import MaskSource, reference_mask_choices, sketch_mask_choices
from .panel import FILE_ITEM, Panel, connect_clicked
from .pixels import PluginError, has_transparency
from .settings import load_settings, save_settings

logger = logging.getLogger(__name__)
DOCKER_ID = "refcolor_docker"


class RefcolorDocker(DockWidget):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("Reference Colorize")
        self.store = KritaSettingsStore()
        self.settings = load_settings(self.store)
        self.documents = KritaDocuments()
        self.panel = Panel(self.settings)
        self.setWidget(self.panel)
        self.connection = BackendConnection(self.settings, self)
        self.controller = ColorizeController(
            self.documents,
            self.connection.send,
            Callbacks(
                state=self._state,
                progress=self.panel.set_progress,
                preview=self.panel.set_preview,
                done=self._done,
                failed=lambda text: self.panel.set_status(text, ok=False),
            ),
        )
        self.connection.status.connect(self.panel.set_status)
        self.connection.ready.connect(self._backend_ready)
        self.connection.message.connect(self.controller.handle)
        connect_clicked(self.panel.colorize, self.start)
        connect_clicked(self.panel.cancel, self.controller.cancel)
        connect_clicked(self.panel.refresh, self.refresh)
        self.panel.reference.activated.connect(lambda *_: self._reference_picked())
        self.panel.background.activated.connect(lambda *_: self._background_picked())
        self.panel.line_art.activated.connect(lambda *_: self.refresh_masks())
        Krita.instance().notifier().applicationClosing.connect(self.shutdown)
        QTimer.singleShot(0, self.connection.connect_backend)
        QTimer.singleShot(0, self.refresh)

    def _backend_ready(self, caps: Any) -> None:
        # Capabilities describe the default model: its own values ("auto") apply when no other is set.
        self.panel.apply_capabilities(caps, own_model=self.settings.model in ("", caps.model.name))

    # --- DockWidget -----------------------------------------------------------------------

    def canvasChanged(self, canvas: Any) -> None:
        self.refresh()

    def shutdown(self) -> None:
        self._save_controls()
        self.connection.close()

    # --- pickers --------------------------------------------------------------------------

    def refresh(self) -> None:
        document = self.documents.active_document()
        active = None if document is None else document.activeNode()
        line_arts = self.documents.line_art_choices()
        keep = self.panel.line_art.currentData()
        if keep is None and active is not None:
            keep = next((ref for ref in line_arts if ref.node.uniqueId() == active.uniqueId()), None)
        self.panel.fill(self.panel.line_art, [(r.node.name(), r) for r in line_arts], keep=keep)
        references = [(r.label, r) for r in self.documents.reference_choices()]
        self.panel.fill(self.panel.reference, references, file_item=True)
        self.panel.fill(self.panel.background, [("None", None), *references], file_item=True)
        self.refresh_masks()

    def refresh_masks(self) -> None:
        line_art: LayerRef | None = self.panel.line_art.currentData()
        document = None if line_art is None else line_art.document
        has_layer_mask = line_art is not None and selection_mask(line_art.node) is not None
        self.panel.fill_masks(
            self.panel.sketch_mask, sketch_mask_choices(self.documents.has_selection(document), has_layer_mask)
        )
        self._reference_picked(ask=False)

    def _reference_picked(self, ask: bool = True) -> None:
        source = self.panel.reference.currentData()
        if source == FILE_ITEM:
            source = self.panel.pick_file(self.panel.reference, "Reference image") if ask else None
        transparent, layer_mask = False, False
        pixels = None
        if source is not None and source != FILE_ITEM:
            try:
                pixels = read_image(source, "reference")[0]
                transparent = has_transparency(pixels)
                layer_mask = isinstance(source, LayerRef) and selection_mask(source.node) is not None
            except PluginError as exc:
                self.panel.set_status(str(exc), ok=False)
        self.panel.show_thumbnail(pixels)
        self.panel.fill_masks(self.panel.reference_mask, reference_mask_choices(transparent, layer_mask))

    def _background_picked(self) -> None:
        if self.panel.background.currentData() == FILE_ITEM:
            self.panel.pick_file(self.panel.background, "Background image")

    # --- running --------------------------------------------------------------------------

    def inputs(self) -> Inputs:
        background = self.panel.background.currentData()
        reference = self.panel.reference.currentData()
        return Inputs(
            line_art=self.panel.line_art.currentData(),
            reference=None if reference == FILE_ITEM else reference,
            sketch_mask=self.panel.sketch_mask.currentData() or MaskSource.NONE,
            reference_mask=self.panel.reference_mask.currentData() or MaskSource.NONE,
            background=None if background == FILE_ITEM else background,
            replace_previous=self.panel.replace_previous.isChecked(),
        )

    def start(self) -> None:
        if not self.connection.connected:
            self.panel.set_status("Not connected to a backend yet; see the message above, then try again.", ok=False)
            return
        self._save_controls()
        self.panel.set_status("Reading the document…")
        self.controller.colorize(self.inputs(), self.panel.params(), self.settings.model)

    def _state(self, state: State) -> None:
        self.panel.set_running(state is not State.IDLE)
        if state is State.RUNNING:
            self.panel.set_status("Colorizing…")
        elif state is State.CANCELLING:
            self.panel.set_status("Cancelling…")

    def _done(self, names: list[str]) -> None:
        self.panel.set_status(f"Done: added {', '.join(names)} below the line art.")
        self.refresh()

    def _save_controls(self) -> None:
        self.settings = dataclasses.replace(
            self.settings, params=self.panel.params(), replace_previous=self.panel.replace_previous.isChecked()
        )
        save_settings(self.store, self.settings)


def register() -> None:
    factory = DockWidgetFactory(DOCKER_ID, DockWidgetFactoryBase.DockRight, RefcolorDocker)
    Krita.instance().addDockWidgetFactory(factory)
