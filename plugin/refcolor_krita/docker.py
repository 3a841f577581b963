"""The "Reference Colorize" docker: wires the panel, the backend connection, the controller
and the document access together. With ``document.py``, the only module that uses ``krita``.

The pickers follow the documents live: a timer compares a cheap fingerprint of the open
documents (layers, names, the active document, its selection) and refreshes them when it
changes, so Colorize always uses what the docker shows. Every pick stays until the artist
changes it, and is saved at once (files by path, layers by document and layer); a picked layer
that has gone is shown as missing and refused, never replaced by another.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from typing import Any

from krita import DockWidget, DockWidgetFactory, DockWidgetFactoryBase, Krita
from PyQt5.QtCore import QTimer
from PyQt5.QtGui import QIcon
from PyQt5.QtWidgets import QApplication, QComboBox, QDialog

from refcolor_plugin.controller import Callbacks, ColorizeController, ComputedMasks, Inputs, State
from refcolor_plugin.frames import FrameRange, ShotCallbacks, ShotController, ShotState
from refcolor_plugin.masks import LABELS, MaskSource, reference_mask_choices, sketch_mask_choices
from refcolor_plugin.pixels import (
    Pixels,
    PluginError,
    coverage,
    faded_outside,
    has_transparency,
    sentence,
    thumbnail_rgba,
)
from refcolor_plugin.settings import load_settings, save_settings
from refcolor_plugin.sources import Entry, Kind, Missing, Source, find, line_art_entries, reference_entries
from refcolor_protocol import MaskName

from .connection import BackendConnection
from .document import (
    KritaDocuments,
    KritaSettingsStore,
    layer_structure,
    read_image,
    selection_box,
    selection_mask,
)
from .panel import FILE_ITEM, THUMB, BackendDialog, Panel, connect_clicked

logger = logging.getLogger(__name__)
DOCKER_ID = "refcolor_docker"
POLL_MS = 400  # how often the pickers look for a changed document
NONE_ITEM = Source()
# Krita's own icon for "draw a new seed" (Krita ships no dice); the first that exists is used.
DICE_ICONS = ("view-refresh", "reload-preset", "krita_tool_multihand")


def krita_icon(name: str) -> QIcon:
    if name == "dice":
        for candidate in DICE_ICONS:
            icon = Krita.instance().icon(candidate)
            if not icon.isNull():
                return icon
        return QIcon()
    return Krita.instance().icon(name)


@dataclass(frozen=True)
class ReferenceLook:
    """What the docker shows of the picked reference."""

    thumbnail: Pixels | None = None
    transparent: bool = False
    layer_mask: bool = False
    problem: str = ""  # why it cannot be read


class RefcolorDocker(DockWidget):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("Reference Colorize")
        self.store = KritaSettingsStore()
        self.settings = load_settings(self.store)
        self.documents = KritaDocuments()
        self.panel = Panel(self.settings, icon_for=krita_icon)
        self.setWidget(self.panel)
        self.picks = {
            "line_art": Source.from_text(self.settings.line_art),
            "reference": Source.from_text(self.settings.reference),
            "background": Source.from_text(self.settings.background),
        }
        self.line_art_memory: list[tuple[Any, Source]] = []  # (document, its line-art pick) this session
        for combo, saved in (
            (self.panel.sketch_mask, self.settings.sketch_mask),
            (self.panel.reference_mask, self.settings.reference_mask),
        ):
            if saved in {m.value for m in MaskSource}:
                combo.setProperty("user_pick", MaskSource(saved))
        self.input_problem = ""  # a problem with the picked inputs, shown until they change
        self.fingerprint: tuple[Any, ...] | None = None
        self.entries: list[Entry] = []  # the open documents' layers, as of the last refresh
        self.reference_seen: tuple[tuple[Any, ...], ReferenceLook] | None = None
        self.computed: ComputedMasks | None = None  # the last job's automatic masks, for "Use as selection"
        self.faded_thumbnail: tuple[Any, Pixels] | None = None  # (reference pick, its thumbnail with the mask)
        self.job_reference_pick: Any = None  # the reference pick of the job that is running
        self.connection = BackendConnection(self.settings, self)
        self.controller = ColorizeController(
            self.documents,
            self.connection.send,
            Callbacks(
                state=self._state,
                progress=self.panel.set_progress,
                stage=self._stage,
                preview=self.panel.set_preview,
                done=self._done,
                failed=lambda text: self.panel.set_status(sentence(text), ok=False),
                masks=self._masks_computed,
            ),
        )
        self.shots = ShotController(
            self.documents,
            self.connection.send,
            ShotCallbacks(
                state=self._shot_state,
                progress=self.panel.set_progress,
                stage=self._stage,
                preview=self.panel.set_preview,
                done=self._done,
                failed=lambda text: self.panel.set_status(sentence(text), ok=False),
            ),
        )
        self.connection.status.connect(self.panel.set_connection)
        self.connection.ready.connect(self._backend_ready)
        self.connection.message.connect(self.controller.handle)
        self.connection.message.connect(self.shots.handle)
        connect_clicked(self.panel.colorize, self.start)
        connect_clicked(self.panel.colorize_frames, self.start_frames)
        connect_clicked(self.panel.cancel, self.cancel)
        connect_clicked(self.panel.settings_button, self.edit_backend)
        connect_clicked(self.panel.use_masks, self.use_as_selection)
        self.panel.line_art.activated.connect(lambda *_: self._picked("line_art", self.panel.line_art))
        self.panel.reference.activated.connect(lambda *_: self._picked("reference", self.panel.reference))
        self.panel.background.activated.connect(lambda *_: self._picked("background", self.panel.background))
        for combo in (self.panel.sketch_mask, self.panel.reference_mask):
            combo.activated.connect(lambda *_: self._save())
        # Controls are saved as they change (debounced); Krita writes its settings file when it quits.
        self.save_soon = QTimer(self)
        self.save_soon.setSingleShot(True)
        self.save_soon.setInterval(300)
        self.save_soon.timeout.connect(self._save)
        self.panel.on_change(self.save_soon.start)
        self.poll = QTimer(self)
        self.poll.setInterval(POLL_MS)
        self.poll.timeout.connect(self.sync)
        self.poll.start()
        Krita.instance().notifier().applicationClosing.connect(self.shutdown)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)
        QTimer.singleShot(0, self.connection.connect_backend)
        QTimer.singleShot(0, self.sync)

    def _backend_ready(self, caps: Any) -> None:
        # Capabilities describe the default model: its own values ("auto") apply when no other is set.
        self.panel.apply_capabilities(caps, own_model=self.settings.model in ("", caps.model.name))
        self.fingerprint = None  # "Automatic" is offered where this backend can compute the mask
        self.sync()

    def _can_auto(self, name: MaskName) -> bool:
        """Whether the backend can compute mask ``name`` (True while that is not known yet)."""
        caps = self.connection.capabilities
        return caps is None or name.value in caps.auto_masks

    # --- DockWidget -----------------------------------------------------------------------

    def canvasChanged(self, canvas: Any) -> None:
        self.sync()

    def shutdown(self) -> None:
        """Krita is quitting: save, and stop the backend this plugin started (idempotent)."""
        self.poll.stop()
        self._save()
        self.connection.close()

    # --- pickers --------------------------------------------------------------------------

    def sync(self) -> None:
        """Refresh the pickers if the documents changed since the last look."""
        try:
            fingerprint = self.documents.structure()
        except RuntimeError:  # a document closing under us: look again next time
            return
        if fingerprint != self.fingerprint:
            self.fingerprint = fingerprint
            self.refresh()

    def refresh(self) -> None:
        self.entries = entries = self.documents.entries()
        active = self.documents.active_document()
        ours = [e for e in entries if active is not None and e.handle.document == active]
        line_items = line_art_entries(ours)
        line_art = self._line_art_pick(active, line_items)
        self._fill(self.panel.line_art, line_items, line_art)
        reference_items = reference_entries(entries)
        first_guess = self._default_reference(entries, active)
        reference = self._layer_or_file_pick("reference", reference_items, default=first_guess)
        self._fill(self.panel.reference, reference_items, reference, file_item=True)
        background = self._layer_or_file_pick("background", reference_items, default=NONE_ITEM)
        self._fill(self.panel.background, reference_items, background, file_item=True, none_item=True)
        self._check_picks(self.refresh_masks())

    def _line_art_pick(self, active: Any, items: list[Entry]) -> Source | Missing:
        """The line art: the artist's pick while it is in the active document; for a document the
        artist picked in before, that pick (or that it is missing); else the active layer."""
        pick = self.picks["line_art"]
        found = find(pick, items)
        if found is not None:
            self.picks["line_art"] = found.source
            return found.source
        remembered = next((source for doc, source in self.line_art_memory if doc == active), None)
        if remembered is None and pick.kind is Kind.LAYER and pick.path and active is not None:
            remembered = pick if pick.path == active.fileName() else None
        if remembered is not None:
            found = find(remembered, items)
            if found is None:
                return Missing(remembered)
            self.picks["line_art"] = found.source
            return found.source
        node = None if active is None else active.activeNode()
        default = next((e for e in items if node is not None and e.handle.node.uniqueId() == node.uniqueId()), None)
        if default is None and items:
            default = items[0]
        self.picks["line_art"] = default.source if default else Source()
        return self.picks["line_art"]

    def _layer_or_file_pick(self, which: str, items: list[Entry], default: Source) -> Source | Missing:
        pick = self.picks[which]
        if pick.kind is Kind.NONE:
            self.picks[which] = default
            return default
        if pick.kind is Kind.FILE:
            return pick
        found = find(pick, items)
        if found is None:
            return Missing(pick)
        self.picks[which] = found.source
        return found.source

    @staticmethod
    def _default_reference(entries: list[Entry], active: Any) -> Source:
        """A first guess for the reference: an artist's layer of another document than the line art's."""
        others = [e for e in entries if not e.result and not (active is not None and e.handle.document == active)]
        return others[0].source if others else Source()

    def _fill(
        self,
        combo: QComboBox,
        items: list[Entry],
        current: Source | Missing,
        file_item: bool = False,
        none_item: bool = False,
    ) -> None:
        rows: list[tuple[str, Any]] = [("None", NONE_ITEM)] if none_item else []
        rows += [(e.label, e.source) for e in items]
        if isinstance(current, Missing):
            rows.insert(0, (current.label, current))
        elif current.kind is Kind.FILE:
            rows.append((current.label, current))
        self.panel.fill(combo, rows, keep=current, file_item=file_item)
        combo.setToolTip(combo.currentText())

    def _picked(self, which: str, combo: QComboBox) -> None:
        """The artist chose an entry: it stays picked, and is saved, until they choose another."""
        data = combo.currentData()
        if data == FILE_ITEM:
            path = self.panel.pick_file("Reference image" if which == "reference" else "Background image")
            if path is None:  # cancelled: the previous pick stays
                self.refresh()
                return
            data = Source.file(path)
        if isinstance(data, Source):
            self.picks[which] = data
            if which == "line_art":
                active = self.documents.active_document()
                self.line_art_memory = [(d, s) for d, s in self.line_art_memory if d != active]
                self.line_art_memory.append((active, data))
        self._save()
        self.refresh()

    def refresh_masks(self) -> str:
        """Offer the masks the picked layers have; returns a problem reading the reference, or ""."""
        line_art = self._handle(self.panel.line_art.currentData())
        document = None if line_art is None or isinstance(line_art, Missing) else line_art.document
        animated = document is not None and line_art.node.animated()
        self.panel.show_frames((document.playBackStartTime(), document.playBackEndTime()) if animated else None)
        box = selection_box(document)
        has_layer_mask = document is not None and selection_mask(line_art.node) is not None
        choices = sketch_mask_choices(box is not None, has_layer_mask, self._can_auto(MaskName.SKETCH))
        self.panel.fill_masks(self.panel.sketch_mask, choices)
        if box is not None:  # say which selection: the artist sees it is the one they made
            index = self.panel.sketch_mask.findData(MaskSource.SELECTION)
            label = f"{LABELS[MaskSource.SELECTION]} ({box[2]}×{box[3]} at {box[0]},{box[1]})"
            self.panel.sketch_mask.setItemText(index, label)
        # The reference's thumbnail and mask choices (its transparency decides the default).
        handle = self._handle(self.panel.reference.currentData())
        looked = self._look_at_reference(handle)
        self.panel.fill_masks(
            self.panel.reference_mask,
            reference_mask_choices(looked.transparent, looked.layer_mask, self._can_auto(MaskName.REFERENCE)),
        )
        # The last job's automatic reference mask stays on the thumbnail while it is what would be used.
        faded = self.faded_thumbnail
        current = self.panel.reference.currentData()
        automatic = self.panel.reference_mask.currentData() is MaskSource.AUTO
        shown = faded[1] if faded is not None and faded[0] == current and automatic else None
        self.panel.show_thumbnail(shown or looked.thumbnail)
        return looked.problem

    def _look_at_reference(self, handle: Any) -> ReferenceLook:
        """Read the reference for its thumbnail and masks, again only when it or its document's
        layers changed (reading a big or 16-bit one costs)."""
        if handle is None or isinstance(handle, Missing):
            return ReferenceLook()
        if isinstance(handle, str):
            key: tuple[Any, ...] = (handle, os.path.getmtime(handle) if os.path.isfile(handle) else None)
        else:
            key = (handle.node.uniqueId().toString(), layer_structure(handle.document))
        if self.reference_seen is not None and self.reference_seen[0] == key:
            return self.reference_seen[1]
        try:
            pixels = read_image(handle, "reference")[0]
            layer_mask = not isinstance(handle, str) and selection_mask(handle.node) is not None
            looked = ReferenceLook(thumbnail_rgba(pixels, THUMB), has_transparency(pixels), layer_mask)
        except PluginError as exc:
            looked = ReferenceLook(problem=str(exc))
        self.reference_seen = (key, looked)
        return looked

    def _check_picks(self, problem: str) -> None:
        """Show what is wrong with the picks (a missing layer, an unreadable reference) until the
        artist fixes it; then the message goes."""
        for combo, what in (
            (self.panel.line_art, "line art"),
            (self.panel.reference, "reference"),
            (self.panel.background, "background"),
        ):
            data = combo.currentData()
            if isinstance(data, Missing) and not problem:
                problem = data.message(what)
        if problem:
            problem = sentence(problem)
            if self.controller.job is None:
                self.panel.set_status(problem, ok=False)
        elif self.input_problem and self.panel.status.text() == self.input_problem:
            self.panel.set_status("")
        self.input_problem = problem

    def _handle(self, data: Any) -> Any:
        """What the document access reads for a picker's entry: a LayerRef, a file path, a
        Missing (refused at Colorize), or None."""
        if isinstance(data, Missing) or data is None:
            return data
        if not isinstance(data, Source) or data.kind is Kind.NONE:
            return None
        if data.kind is Kind.FILE:
            return data.path
        entry = find(data, self.entries)  # as of the last refresh, which the panel shows
        return Missing(data) if entry is None else entry.handle

    # --- running --------------------------------------------------------------------------

    def inputs(self) -> Inputs:
        return Inputs(
            line_art=self._handle(self.panel.line_art.currentData()),
            reference=self._handle(self.panel.reference.currentData()),
            sketch_mask=self.panel.sketch_mask.currentData() or MaskSource.NONE,
            reference_mask=self.panel.reference_mask.currentData() or MaskSource.NONE,
            background=self._handle(self.panel.background.currentData()),
            replace_previous=self.panel.replace_previous.isChecked(),
        )

    def _ready_to_start(self) -> bool:
        """Connected and idle; the pickers refreshed to what the documents are now."""
        if not self.connection.connected:
            self.panel.set_status(f"Not connected to a backend: {self.panel.connection.text()}", ok=False)
            return False
        if self.controller.job is not None or self.shots.shot is not None:
            self.panel.set_status("A colorization is running: cancel it or wait for it", ok=False)
            return False
        # The pickers show the documents as they are now, and the job uses what they show. Painting
        # changes no layer structure, so the reference is looked at afresh: a look taken while it was
        # empty (Krita shows a new document's paint late) or before its transparency was painted
        # would offer stale mask choices and a stale problem.
        self._forget_masks()
        self._look_again()
        self._save()
        self.job_reference_pick = self.panel.reference.currentData()
        return True

    def start(self) -> None:
        if not self._ready_to_start():
            return
        caps = self.connection.capabilities
        self.controller.colorize(
            self.inputs(), self.panel.params(), self.settings.model, None if caps is None else caps.auto_masks
        )

    def start_frames(self) -> None:
        """Colorize every keyframe of the animated line art in the frames the panel shows."""
        if not self._ready_to_start():
            return
        caps = self.connection.capabilities
        try:
            frames = FrameRange(*self.panel.frame_range())
        except PluginError as exc:
            self.panel.set_status(sentence(str(exc)), ok=False)
            return
        carry = caps is None or caps.carry_colors
        self.shots.start(
            self.inputs(),
            self.panel.params(),
            frames,
            self.settings.model,
            None if caps is None else caps.auto_masks,
            carry=carry,
        )

    def cancel(self) -> None:
        if self.shots.shot is not None:
            self.shots.cancel()
        else:
            self.controller.cancel()

    def _state(self, state: State) -> None:
        self.panel.set_running(state is not State.IDLE)
        if state is State.CANCELLING:
            self.panel.set_status("Cancelling…")

    def _shot_state(self, state: ShotState) -> None:
        self.panel.set_running(state is not ShotState.IDLE)

    def _stage(self, text: str, busy: bool) -> None:
        self.panel.set_status(text)
        if busy:
            self.panel.set_busy()
        # Reading and placing run in this thread: paint the line now, before they block it.
        self.panel.status.repaint()
        self.panel.progress.repaint()

    def _look_again(self) -> None:
        """Refresh the pickers now, reading the reference again (painting changes no fingerprint)."""
        self.reference_seen = None
        self.fingerprint = None
        self.sync()

    def _done(self, names: list[str], where: str) -> None:
        note = ""
        if self.computed is not None:  # this job's (start() forgets the last one's)
            words = {MaskName.SKETCH: "line art", MaskName.REFERENCE: "reference"}
            shares = ", ".join(f"{words[name]} {coverage(mask):.0%}" for name, mask in self.computed.masks.items())
            note = f" Automatic masks: {shares} foreground; “Use as selection” to correct them."
        self.panel.set_status(f"Done: added {', '.join(names)} {where}.{note}")
        self.input_problem = ""
        self.sync()

    def _masks_computed(self, computed: ComputedMasks) -> None:
        """Show the masks the backend found: the reference's on its thumbnail (what it left out
        faded); offer to make them selections. The status says how much each covers when Done."""
        self.computed = computed
        self.panel.use_masks.show()
        reference = computed.masks.get(MaskName.REFERENCE)
        looked = self.reference_seen[1] if self.reference_seen is not None else None
        same_pick = self.panel.reference.currentData() == self.job_reference_pick  # not changed during the job
        if reference is not None and same_pick and looked is not None and looked.thumbnail is not None:
            small = thumbnail_rgba(reference, THUMB)
            if small.size == looked.thumbnail.size:
                self.faded_thumbnail = (self.job_reference_pick, faded_outside(looked.thumbnail, small))
                self.panel.show_thumbnail(self.faded_thumbnail[1])

    def _forget_masks(self) -> None:
        """A new job, or masks already used: "Use as selection" and the faded thumbnail go."""
        self.computed = None
        self.faded_thumbnail = None
        self.panel.use_masks.hide()

    def use_as_selection(self) -> None:
        """The last job's automatic masks become selections; the pickers then use them."""
        computed = self.computed
        if computed is None:
            return
        try:
            done = self.documents.use_as_selection(computed)
        except PluginError as exc:
            self.panel.set_status(sentence(str(exc)), ok=False)
            return
        if MaskName.SKETCH in done.made:
            self.panel.sketch_mask.setProperty("user_pick", MaskSource.SELECTION)
        if MaskName.REFERENCE in done.made:
            self.panel.reference_mask.setProperty("user_pick", MaskSource.LAYER_MASK)
        self._forget_masks()
        self._look_again()  # the reference layer has a selection mask now
        self._save()
        words = "; ".join(done.words)
        self.panel.set_status(sentence(f"{words}. Correct it with Krita's selection tools, then Colorize."))

    def edit_backend(self) -> None:
        dialog = BackendDialog(self.settings, self)
        if dialog.exec_() != QDialog.Accepted:
            return
        changed = dialog.settings(self.settings)
        if changed == self.settings:
            return
        self.settings = changed
        self._save()
        self.connection.reconfigure(changed)  # stops a backend it started, then connects afresh

    def _save(self) -> None:
        def mask(combo: QComboBox) -> str:
            picked = combo.property("user_pick")
            return picked.value if isinstance(picked, MaskSource) else ""

        self.settings = dataclasses.replace(
            self.settings,
            params=self.panel.params(),
            replace_previous=self.panel.replace_previous.isChecked(),
            line_art=self.picks["line_art"].to_text(),
            reference=self.picks["reference"].to_text(),
            background=self.picks["background"].to_text(),
            sketch_mask=mask(self.panel.sketch_mask),
            reference_mask=mask(self.panel.reference_mask),
            show_advanced=self.panel.advanced_toggle.isChecked(),
            frames_playback=self.panel.playback_range.isChecked(),
        )
        save_settings(self.store, self.settings)


def register() -> None:
    factory = DockWidgetFactory(DOCKER_ID, DockWidgetFactoryBase.DockRight, RefcolorDocker)
    Krita.instance().addDockWidgetFactory(factory)
