"""Everything that reads or writes Krita documents, layers, selections and settings.

This module and ``docker.py`` are the only ones that touch the ``krita`` API. The user's
layers and selection are only ever read here; results go into new group layers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from krita import Krita, Selection
from PyQt5.QtCore import QTimer
from PyQt5.QtGui import QImage

from refcolor_plugin.controller import ComputedMasks, Inputs, MadeSelections, Placement
from refcolor_plugin.frames import FrameInput, FrameRange, ShotOutcome, ShotSnapshot, shot_times
from refcolor_plugin.jobs import Snapshot, VariationLayers
from refcolor_plugin.masks import MaskSource
from refcolor_plugin.pixels import Pixels, PluginError, alpha_channel, full_mask, is_blank
from refcolor_plugin.placement import group_number, latest_group, next_group_names, with_note
from refcolor_plugin.settings import GROUP
from refcolor_plugin.sources import Entry, Kind, Missing, Source, document_titles, is_result_layer, layer_label
from refcolor_protocol import Layout, MaskName


class KritaSettingsStore:
    """Settings in Krita's own configuration (kritarc), group ``refcolor``."""

    def read(self, key: str, default: str) -> str:
        return str(Krita.instance().readSetting(GROUP, key, default))

    def write(self, key: str, value: str) -> None:
        Krita.instance().writeSetting(GROUP, key, value)


@dataclass(frozen=True)
class LayerRef:
    """A layer of an open document, as the docker lists it."""

    document: Any
    node: Any


@dataclass
class ResultPlace:
    """Where a job's result goes: the line art's document, or for a document that cannot show
    colours (greyscale, or not 8-bit) an RGB 8-bit copy of it that is opened when the result comes."""

    document: Any
    line_art: Any  # the line-art node in ``document``
    copy_of: str = ""  # the original document's title when ``document`` is a copy
    lines: bytes = b""  # the line art as read (BGRA8), for the result group's own "lines" layer
    reference_rect: tuple[int, int, int, int] | None = None  # a reference layer's area as read (None: a file)

    @property
    def opaque(self) -> bool:
        """The line art covers the canvas (a scan on white paper): the result goes above it."""
        return self.lines[3::4].count(255) >= OPAQUE_SHARE * len(self.lines) // 4


def walk(node: Any) -> list[Any]:
    """Every node under ``node``, top of the stack first."""
    found = []
    for child in reversed(node.childNodes()):
        found.append(child)
        found += walk(child)
    return found


def node_path(node: Any) -> list[str]:
    """The names from the document's top level down to ``node``."""
    names = [node.name()]
    parent = node.parentNode()
    while parent is not None and parent.parentNode() is not None:
        names.append(parent.name())
        parent = parent.parentNode()
    return names[::-1]


def paint_layers(document: Any) -> list[Any]:
    return [n for n in walk(document.rootNode()) if n.type() == "paintlayer"]


def selection_mask(node: Any) -> Any | None:
    """The topmost selection mask on ``node`` (the newest, e.g. the one "Use as selection" adds)."""
    for child in reversed(node.childNodes()):
        if child.type() == "selectionmask":
            return child
    return None


def find_node(document: Any, unique_id: Any) -> Any | None:
    return next((n for n in walk(document.rootNode()) if n.uniqueId() == unique_id), None)


READABLE_MODELS = ("RGBA", "GRAYA")  # what the plugin converts to 8-bit RGBA itself
RGB8_PROFILE = "sRGB-elle-V2-srgbtrc.icc"  # Krita's default 8-bit sRGB profile
OPAQUE_SHARE = 0.95  # line art that covers this much of the canvas is a scan on paper
AUTO_MASK_NAME = "refcolor automatic mask"  # the selection mask "Use as selection" puts on a reference layer


def is_rgba8(document: Any) -> bool:
    return bool(document.colorModel() == "RGBA" and document.colorDepth() == "U8")


def check_readable(document: Any, what: str) -> None:
    if document.colorModel() not in READABLE_MODELS:
        raise PluginError(
            f"the {what} is in a {document.colorModel()}/{document.colorDepth()} document; refcolor reads RGB and "
            "greyscale documents of any depth. Convert a copy with Image ▸ Convert Image Color Space to RGB/Alpha."
        )


def rgba8_copy(document: Any) -> Any:
    """An RGB 8-bit copy of ``document`` (the same layers and ids); the document is not touched."""
    copy = document.clone()
    if not copy.setColorSpace("RGBA", "U8", RGB8_PROFILE):
        copy.close()
        raise PluginError(f"Krita could not convert a copy of the {document.colorModel()} document to 8-bit RGB")
    copy.waitForDone()
    return copy


def read_layer(layer: LayerRef, what: str, whole_document: bool) -> tuple[Pixels, tuple[int, int, int, int]]:
    """A layer's BGRA8 pixels over the whole document, or over the layer's own bounds. Greyscale
    and 16-bit or float documents are read through an 8-bit RGB copy."""
    check_readable(layer.document, what)
    if whole_document:
        rect = (0, 0, layer.document.width(), layer.document.height())
    else:
        bounds = layer.node.bounds()
        rect = (bounds.x(), bounds.y(), bounds.width(), bounds.height())
        if rect[2] <= 0 or rect[3] <= 0:
            raise PluginError(f"the {what} layer “{layer.node.name()}” is empty: paint or paste something on it")
    if is_rgba8(layer.document):
        data = bytes(layer.node.pixelData(*rect))
    else:
        copy = rgba8_copy(layer.document)
        try:
            twin = find_node(copy, layer.node.uniqueId())
            if twin is None:
                raise PluginError(f"the {what} layer “{layer.node.name()}” was not in Krita's 8-bit copy")
            data = bytes(twin.pixelData(*rect))
        finally:
            copy.close()
    return Pixels(data, rect[2], rect[3], Layout.BGRA8), rect


def read_file(path: str, what: str) -> Pixels:
    if not os.path.isfile(path):
        raise PluginError(f"the {what} image file {path} does not exist any more: pick it again, or another")
    image = QImage(path)
    if image.isNull():
        raise PluginError(f"cannot read the {what} image file {path}: not an image Qt can open")
    image = image.convertToFormat(QImage.Format_RGBA8888)
    width, height = image.width(), image.height()
    bits = image.constBits()
    bits.setsize(image.sizeInBytes())
    return Pixels(bytes(bits), width, height, Layout.RGBA8)


def read_image(source: Any, what: str) -> tuple[Pixels, tuple[int, int, int, int] | None]:
    """A reference or background: an image file, or a layer over its whole document, so a
    character painted on transparency keeps the transparency around it (its mask)."""
    if isinstance(source, str):
        return read_file(source, what), None
    pixels, rect = read_layer(source, what, whole_document=True)
    if pixels.data[3::4].count(0) == pixels.width * pixels.height:
        raise PluginError(f"the {what} layer “{source.node.name()}” is empty: paint or paste something on it")
    return pixels, rect


def as_selection(mask: Pixels, x: int, y: int) -> Any:
    """A Krita selection holding an L8 mask with its top-left corner at (x, y)."""
    selection = Selection()
    selection.setPixelData(mask.data, x, y, mask.width, mask.height)
    return selection


def read_mask(node: Any, rect: tuple[int, int, int, int], what: str) -> Pixels:
    data = bytes(node.pixelData(*rect))
    if len(data) != rect[2] * rect[3]:
        raise PluginError(f"the {what} selection mask gave {len(data)} bytes for a {rect[2]}x{rect[3]} area")
    return Pixels(data, rect[2], rect[3], Layout.L8)


def read_selection(document: Any) -> Pixels:
    """The document's selection over the whole document (L8)."""
    selection = document.selection()
    if selection is None:
        raise PluginError("there is no selection any more: select the foreground, or pick another mask")
    return read_mask(selection, (0, 0, document.width(), document.height()), "document")


def line_mask(node: Any) -> Any:
    """The line-art layer's selection mask (the topmost)."""
    mask = selection_mask(node)
    if mask is None:
        raise PluginError(f"“{node.name()}” has no selection mask: add one, or pick another mask")
    return mask


def keyframes(node: Any, document: Any) -> list[int]:
    """The times of ``node``'s keyframes (none when it is not animated)."""
    if not node.animated():
        return []
    return [t for t in range(document.animationLength() + 1) if node.hasKeyframeAtTime(t)]


def read_at(node: Any, document: Any, time: int, what: str) -> bytes:
    """``node``'s pixels over the whole document as they show at ``time``: an animated layer's
    keyframe at or before it, a still layer's only picture."""
    width, height = document.width(), document.height()
    if not node.animated():
        return bytes(node.pixelData(0, 0, width, height))
    if node.hasKeyframeAtTime(time):  # a shot's frames are keyframe times: no search
        shown: int | None = time
    else:
        shown = max((t for t in keyframes(node, document) if t <= time), default=None)
    data = b"" if shown is None else bytes(node.pixelDataAtTime(0, 0, width, height, shown))
    if not data:
        raise PluginError(f"the {what} “{node.name()}” has no keyframe at frame {time} any more")
    return data


@dataclass(frozen=True)
class References:
    """What every frame of a job shares: the reference, its mask (None: automatic or from the
    backend's rules), and the background."""

    reference: Pixels
    mask: Pixels | None
    auto: bool
    background: Pixels | None


@dataclass
class ShotPlace(ResultPlace):
    """A shot's target: where its frames go, and how each frame's line-art mask is read."""

    size: tuple[int, int] = (0, 0)  # the document's, when the shot started
    mask_source: MaskSource = MaskSource.NONE
    selection: Pixels | None = None  # the selection as read at the start: the same for every frame


class KritaDocuments:
    """The plugin's view of the open documents (implements ``controller.DocumentAccess``)."""

    def __init__(self) -> None:
        self.app = Krita.instance()

    def active_document(self) -> Any | None:
        return self.app.activeDocument()

    def entries(self) -> list[Entry]:
        """Every paint layer of the open documents, top of each stack first, labelled with its
        place and its document's title."""
        documents = self.app.documents()
        titles = document_titles([(d.fileName(), d.name()) for d in documents])
        found = []
        for doc, title in zip(documents, titles, strict=True):
            for node in paint_layers(doc):
                path = node_path(node)
                source = Source(Kind.LAYER, doc.fileName(), title, node.uniqueId().toString(), node.name())
                found.append(Entry(layer_label(path, title), source, is_result_layer(path), LayerRef(doc, node)))
        return found

    def structure(self) -> tuple[Any, ...]:
        """A cheap fingerprint of what the pickers show: the documents, their layers (id, name,
        selection mask), the active document and whether it has a selection, and where."""
        active = self.active_document()
        documents = tuple((*layer_structure(doc), doc == active) for doc in self.app.documents())
        return (documents, selection_box(active))

    def snapshot(self, inputs: Inputs) -> tuple[Snapshot, ResultPlace]:
        line_art = present(inputs.line_art, "line art")
        if line_art is None:
            raise PluginError("pick a line-art layer (a paint layer of the active document)")
        document = line_art.document
        check_readable(document, "line art")
        place = self._place(line_art)
        try:
            return self._read(inputs, line_art, place), place
        except BaseException:
            self.discard(place)
            raise

    def _place(self, line_art: LayerRef) -> ResultPlace:
        document = line_art.document
        if is_rgba8(document):
            return ResultPlace(document, line_art.node)
        copy = rgba8_copy(document)  # results go to a copy that can show colours
        twin = find_node(copy, line_art.node.uniqueId())
        if twin is None:
            copy.close()
            raise PluginError(f"the line-art layer “{line_art.node.name()}” was not in Krita's 8-bit copy")
        title = document_titles([(document.fileName(), document.name())])[0]
        copy.setName(f"{title} (RGB copy)")
        return ResultPlace(copy, twin, copy_of=f"{title} ({document.colorModel()} {document.colorDepth()})")

    def _read(self, inputs: Inputs, line_art: LayerRef, place: ResultPlace) -> Snapshot:
        document = line_art.document
        width, height = document.width(), document.height()
        rect = (0, 0, width, height)
        sketch = Pixels(bytes(place.line_art.pixelData(*rect)), width, height, Layout.BGRA8)
        if is_blank(sketch):
            raise PluginError(f"the line-art layer “{line_art.node.name()}” is empty")
        place.lines = sketch.data
        sketch_mask = None
        auto: list[MaskName] = []
        if inputs.sketch_mask is MaskSource.AUTO:
            auto.append(MaskName.SKETCH)
        elif inputs.sketch_mask is MaskSource.SELECTION:
            sketch_mask = read_selection(document)
        elif inputs.sketch_mask is MaskSource.LAYER_MASK:
            sketch_mask = read_mask(line_mask(line_art.node), rect, "line-art")
        references = self._read_references(inputs, place)
        if references.auto:
            auto.append(MaskName.REFERENCE)
        return Snapshot(sketch, references.reference, sketch_mask, references.mask, references.background, tuple(auto))

    def _read_references(self, inputs: Inputs, place: ResultPlace) -> References:
        """The reference, its mask and the background: what a still and every frame of a shot share."""
        if present(inputs.reference, "reference") is None:
            raise PluginError("pick a reference: a layer of an open document, or an image file")
        reference, ref_rect = read_image(inputs.reference, "reference")
        place.reference_rect = ref_rect
        reference_mask = None
        if inputs.reference_mask is MaskSource.ALPHA:
            reference_mask = alpha_channel(reference)
        elif inputs.reference_mask is MaskSource.LAYER_MASK:
            node = None if ref_rect is None else selection_mask(inputs.reference.node)
            if node is None or ref_rect is None:
                raise PluginError("the reference has no selection mask: add one, or pick another mask")
            reference_mask = read_mask(node, ref_rect, "reference")
        elif inputs.reference_mask is MaskSource.NONE:
            reference_mask = full_mask(reference.width, reference.height)
        background_source = present(inputs.background, "background")
        background = None if background_source is None else read_image(background_source, "background")[0]
        return References(reference, reference_mask, inputs.reference_mask is MaskSource.AUTO, background)

    def document_size(self, target: ResultPlace) -> tuple[int, int]:
        return target.document.width(), target.document.height()

    def discard(self, target: ResultPlace) -> None:
        """Forget a target whose job will not place anything (a copy made for it is closed)."""
        if target.copy_of:
            target.document.close()

    def use_as_selection(self, computed: ComputedMasks) -> MadeSelections:
        """The line-art mask becomes the selection of the document the result went to (the line
        art's, or the RGB copy that was opened for it), replacing the one there as a selection tool
        does; the reference mask becomes a selection mask on the reference layer, named
        AUTO_MASK_NAME, topmost (one made before is replaced; the layer's pixels are not touched). A
        file reference's mask cannot become a selection: the words say so. Everything is checked
        before anything changes.

        Raises:
            PluginError: a document or layer has gone, or was resized, since the job read it.
        """
        target: ResultPlace = computed.target
        sketch = computed.masks.get(MaskName.SKETCH)
        if sketch is not None:
            self._check_open(target.document, target.line_art, "line art")
            if (target.document.width(), target.document.height()) != sketch.size:
                raise PluginError("the line art's document was resized since it was colorized: colorize it again")
        reference = computed.masks.get(MaskName.REFERENCE)
        layer = computed.inputs.reference  # a LayerRef, or a file path (then reference_rect is None)
        rect = target.reference_rect
        on_layer: tuple[LayerRef, Pixels, tuple[int, int]] | None = None  # where the reference mask goes
        if reference is not None and isinstance(layer, LayerRef) and rect is not None:
            self._check_open(layer.document, layer.node, "reference")
            if (rect[2], rect[3]) != reference.size:
                raise PluginError("the reference's document was resized since it was colorized: colorize again")
            on_layer = (layer, reference, (rect[0], rect[1]))
        made: set[MaskName] = set()
        words = []
        if sketch is not None:
            target.document.setSelection(as_selection(sketch, 0, 0))
            made.add(MaskName.SKETCH)
            where = f" of {target.document.name()}" if target.copy_of else ""  # the RGB copy the result went to
            words.append(f"the line-art mask is now the selection{where}")
        if on_layer is not None:
            layer, reference, (x, y) = on_layer
            for child in layer.node.childNodes():
                if child.type() == "selectionmask" and child.name() == AUTO_MASK_NAME:
                    child.remove()
            mask = layer.document.createSelectionMask(AUTO_MASK_NAME)
            mask.setSelection(as_selection(reference, x, y))
            layer.node.addChildNode(mask, None)  # on top: the one the picker's "selection mask" reads
            layer.document.refreshProjection()
            made.add(MaskName.REFERENCE)
            words.append(f"the reference mask is now a selection mask on “{layer.node.name()}”")
        elif reference is not None:
            words.append("the reference is a file, so its mask stays on the thumbnail: open it in Krita to correct it")
        target.document.refreshProjection()
        return MadeSelections(frozenset(made), words)

    def _check_open(self, document: Any, node: Any, what: str) -> None:
        """``node`` of ``document`` is still open (a document, or a copy shown in a window)."""
        shown = [view.document() for window in self.app.windows() for view in window.views()]
        is_open = document in self.app.documents() or document in shown
        if not is_open or find_node(document, node.uniqueId()) is None:
            raise PluginError(f"the {what} layer or its document has been closed since it was colorized")

    def add_results(self, target: ResultPlace, layers: list[VariationLayers], replace_previous: bool) -> Placement:
        """One group per variation next to the line art, the first visible, the rest hidden; each
        group is built whole before it goes into the stack, so adding it is one undo step.

        Line art on transparency keeps the groups directly below it. Line art that covers the
        canvas (a scan on white paper) would hide them there, and line art at the bottom of its
        stack (a PNG opened as one layer) has no place below it: the groups go directly above it,
        each with a copy of the lines on top in Multiply, so the lines show over the colours. The
        user's layers and the active layer are never changed.
        """
        document, line_art = target.document, target.line_art
        parent = result_parent(line_art)
        active = document.activeNode()
        width, height = document.width(), document.height()
        if replace_previous:
            remove_latest_group(parent)
        names = next_group_names([n.name() for n in walk(document.rootNode())], len(layers))
        on_top = lines_on_top(target, parent)

        def layer(name: str, data: bytes, blending: str = "normal") -> Any:
            node = document.createNode(name, "paintlayer")
            node.setPixelData(data, 0, 0, width, height)
            if blending != node.blendingMode():  # an undo step of its own: only where needed
                node.setBlendingMode(blending)
            return node

        groups = []
        for name, variation in zip(names, layers, strict=True):
            group = document.createGroupLayer(name)
            children = [layer("background", variation.background.data), layer("foreground", variation.foreground.data)]
            if on_top:
                children.append(layer("lines", target.lines, "multiply"))
            group.setChildNodes(children)  # bottom first
            group.setVisible(variation.variation == 0)
            groups.append(group)
        # Each group goes right next to the line art, the last first: the first variation ends up nearest.
        for group in reversed(groups):
            insert_next_to(parent, line_art, group, on_top)
        if active is not None:
            keep_active(document, active)
        document.refreshProjection()
        return Placement(names, self._where(target, on_top))

    def _where(self, target: ResultPlace, on_top: bool) -> str:
        """Where results went, in words; a copy made for them is shown."""
        where = f"{'above' if on_top else 'below'} “{target.line_art.name()}”"
        if on_top:
            where += ", with its lines multiplied on top"
        if target.copy_of:
            where += f", in an 8-bit RGB copy of {target.copy_of}, which is unchanged"
            window = self.app.activeWindow()
            if window is not None:
                window.addView(target.document)
        return where

    # --- frames of an animation -------------------------------------------------------------

    def shot_snapshot(self, inputs: Inputs, frames: FrameRange) -> tuple[ShotSnapshot, ShotPlace]:
        """What every frame of a shot shares, and its keyframes in ``frames``. The frames themselves
        are read one by one (:meth:`read_frame`)."""
        line_art = present(inputs.line_art, "line art")
        if line_art is None:
            raise PluginError("pick a line-art layer (a paint layer of the active document)")
        document, node = line_art.document, line_art.node
        check_readable(document, "line art")
        if not node.animated():
            raise PluginError(
                f"the line-art layer “{node.name()}” is not animated: “Colorize frames” colours the keyframes of "
                "an animated layer (add frames to it in the Timeline), “Colorize” colours this picture"
            )
        times = shot_times(keyframes(node, document), frames)
        if not times:
            raise PluginError(
                f"“{node.name()}” has no keyframe in frames {frames.words}: set the range to where its drawings are"
            )
        base = self._place(line_art)
        place = ShotPlace(base.document, base.line_art, base.copy_of, size=(document.width(), document.height()))
        try:
            place.lines = read_at(place.line_art, place.document, times[0], "line-art layer")
            place.mask_source = inputs.sketch_mask
            if inputs.sketch_mask is MaskSource.SELECTION:
                place.selection = read_selection(document)  # one selection: the same place in every frame
            elif inputs.sketch_mask is MaskSource.LAYER_MASK:
                line_mask(node)
            references = self._read_references(inputs, place)
        except BaseException:
            self.discard(place)
            raise
        words = layer_or_file_words(inputs.reference)
        snapshot = ShotSnapshot(
            tuple(times),
            references.reference,
            references.mask,
            references.background,
            auto_sketch=inputs.sketch_mask is MaskSource.AUTO,
            auto_reference=references.auto,
            reference_words=words,
        )
        return snapshot, place

    def read_frame(self, target: ShotPlace, time: int) -> FrameInput:
        document, node = target.document, target.line_art
        self._check_open(document, node, "line art")
        width, height = document.width(), document.height()
        if (width, height) != target.size:
            raise PluginError(f"the document was resized to {width}x{height} during the shot")
        sketch = Pixels(read_at(node, document, time, "line-art layer"), width, height, Layout.BGRA8)
        mask = None
        if target.mask_source is MaskSource.SELECTION:
            mask = target.selection
        elif target.mask_source is MaskSource.LAYER_MASK:
            mask = Pixels(read_at(line_mask(node), document, time, "selection mask"), width, height, Layout.L8)
        return FrameInput(time, sketch, mask)

    def add_frames(self, target: ShotPlace, outcome: ShotOutcome, replace_previous: bool) -> Placement:
        """One animated group next to the line art, placed as a still's: its layers are copies of
        the line-art layer (so they have its keyframes, at the same times), each keyframe painted
        with that frame's colours, or left empty (a frame not colorized, keyframes outside the shot).

        Krita's API paints an animated layer at its document's current time, and moving the time
        is an undo step: the layers are painted in a hidden scratch document, then copied (with
        all their keyframes) into a group that enters the stack whole, so adding the shot is one
        undo step, and the playhead, the active layer and the user's layers stay as they were.
        """
        document, line_art = target.document, target.line_art
        self._check_open(document, line_art, "line art")
        parent = result_parent(line_art)
        width, height = document.width(), document.height()
        if (width, height) != target.size:
            raise PluginError(f"the document was resized to {width}x{height} during the shot")
        active = document.activeNode()
        on_top = lines_on_top(target, parent)
        layers = paint_keyframes(document, line_art, outcome, lines=on_top)
        if replace_previous:
            remove_latest_group(parent)
        (name,) = next_group_names([n.name() for n in walk(document.rootNode())], 1)
        group = document.createGroupLayer(with_note(name, outcome.label))
        group.setChildNodes(layers)  # bottom first
        insert_next_to(parent, line_art, group, on_top)
        if active is not None:
            keep_active(document, active)
        document.refreshProjection()
        return Placement([group.name()], self._where(target, on_top))


def paint_keyframes(document: Any, line_art: Any, outcome: ShotOutcome, lines: bool) -> list[Any]:
    """The shot's ``background`` and ``foreground`` layers (and with ``lines``, a ``lines`` layer in
    Multiply: the line art's own keyframes), with the line art's keyframes, made and painted in a
    scratch document that is closed again, so none of it is an undo step of ``document``; returns
    copies that belong to no document, bottom first."""
    width, height = document.width(), document.height()
    scratch = Krita.instance().createDocument(
        width, height, "refcolor frames", "RGBA", "U8", document.colorProfile(), document.resolution()
    )
    try:
        names = ["background", "foreground", "lines"][: 3 if lines else 2]
        scratch.rootNode().setChildNodes([line_art.duplicate() for _ in names])
        # The scratch document's own handles: their setters are its undo steps, not the user's.
        layers = [plain_layer(node, name) for node, name in zip(scratch.rootNode().childNodes(), names, strict=True)]
        if lines:
            layers[2].setBlendingMode("multiply")
        empty = bytes(width * height * 4)
        done = {frame.time: frame for frame in outcome.frames}
        for time in keyframes(layers[0], scratch):
            scratch.setCurrentTime(time)
            scratch.waitForDone()
            frame = done.get(time)
            packed = (None, None) if frame is None else (frame.background, frame.foreground)
            for layer, pixels in zip(layers, packed, strict=False):  # the lines keep the line art's
                layer.setPixelData(empty if pixels is None else pixels.unpack().data, 0, 0, width, height)
        scratch.waitForDone()
        return [layer.duplicate() for layer in layers]
    finally:
        scratch.close()


def result_parent(line_art: Any) -> Any:
    parent = line_art.parentNode()
    if parent is None:
        raise PluginError("the line-art layer was removed while colorizing; the result was discarded")
    return parent


def remove_latest_group(parent: Any) -> None:
    """ "Replace the previous result": the newest result group beside the line art goes."""
    previous = latest_group([n.name() for n in parent.childNodes() if n.type() == "grouplayer"])
    for node in parent.childNodes():
        if node.type() == "grouplayer" and node.name() == previous and group_number(node.name()):
            node.remove()


def lines_on_top(target: ResultPlace, parent: Any) -> bool:
    """Whether results go above the line art, with its lines multiplied on top: line art that
    covers the canvas would hide them below it, and nothing can go below a layer at the bottom of
    its stack (Krita's addChildNode puts a node without a neighbour on top)."""
    bottom = parent.childNodes()[0].uniqueId() == target.line_art.uniqueId()
    return target.opaque or bottom


def insert_next_to(parent: Any, line_art: Any, group: Any, on_top: bool) -> None:
    """``group`` directly above the line art (``on_top``) or directly below it."""
    if on_top:
        parent.addChildNode(group, line_art)
        return
    siblings = parent.childNodes()  # bottom of the stack first
    index = next(i for i, n in enumerate(siblings) if n.uniqueId() == line_art.uniqueId())
    parent.addChildNode(group, siblings[index - 1])  # index > 0: not the bottom


def plain_layer(copy: Any, name: str) -> Any:
    """A copy of a layer, keyframes kept, made a plain result layer: none of its masks, opacity,
    blending, locks or label. A property is set only where it differs: Krita makes some setters
    undo steps of the layer's document."""
    for child in copy.childNodes():
        child.remove()
    copy.setName(name)
    for getter, setter, plain in (
        ("opacity", "setOpacity", 255),
        ("blendingMode", "setBlendingMode", "normal"),
        ("visible", "setVisible", True),
        ("locked", "setLocked", False),
        ("alphaLocked", "setAlphaLocked", False),
        ("inheritAlpha", "setInheritAlpha", False),
        ("colorLabel", "setColorLabel", 0),
    ):
        if getattr(copy, getter)() != plain:
            getattr(copy, setter)(plain)
    return copy


def layer_or_file_words(source: Any) -> str:
    """A reference as a message names it."""
    if isinstance(source, str):
        return f"the file {os.path.basename(source)}"
    node = source.node
    at = f" at frame {source.document.currentTime()}" if node.animated() else ""
    return f"“{node.name()}”{at}"


def layer_structure(document: Any) -> tuple[Any, ...]:
    """A document's file, name, layers (id, name, type, has a selection mask, is animated) and
    playback range."""
    layers = tuple(
        (n.uniqueId().toString(), n.name(), n.type(), selection_mask(n) is not None, n.animated())
        for n in walk(document.rootNode())
    )
    playback = (document.playBackStartTime(), document.playBackEndTime())
    return document.fileName(), document.name(), layers, playback


def present(source: Any, what: str) -> Any:
    """``source`` (a layer, a file path or None) as picked; a pick that has gone is refused."""
    if isinstance(source, Missing):
        raise PluginError(source.message(what))
    return source


def keep_active(document: Any, node: Any) -> None:
    """Make ``node`` the active layer again. Krita activates a layer added to a view's image
    from its own event handlers, after the adding returns: set it now and once those have run."""
    document.setActiveNode(node)
    for delay_ms in (0, 200):
        QTimer.singleShot(delay_ms, lambda: document.setActiveNode(node))


def selection_box(document: Any | None) -> tuple[int, int, int, int] | None:
    """The bounds of ``document``'s selection, or None when nothing is selected."""
    selection = None if document is None else document.selection()
    if selection is None:
        return None
    return selection.x(), selection.y(), selection.width(), selection.height()
