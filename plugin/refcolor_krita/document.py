"""Everything that reads or writes Krita documents, layers, selections and settings.

This module and ``docker.py`` are the only ones that touch the ``krita`` API. The user's
layers and selection are only ever read here; results go into new group layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from krita import Krita
from PyQt5.QtGui import QImage

from refcolor_protocol import Layout

from .controller import Inputs
from .jobs import Snapshot, VariationLayers
from .masks import MaskSource
from .pixels import Pixels, PluginError, alpha_channel, full_mask, is_blank
from .placement import group_number, latest_group, next_group_names
from .settings import GROUP


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

    @property
    def label(self) -> str:
        doc_name = self.document.name() or "Untitled"
        return f"{self.node.name()} — {doc_name}"


@dataclass(frozen=True)
class ResultPlace:
    document: Any
    line_art: Any


def walk(node: Any) -> list[Any]:
    """Every node under ``node``, top of the stack first."""
    found = []
    for child in reversed(node.childNodes()):
        found.append(child)
        found += walk(child)
    return found


def paint_layers(document: Any) -> list[Any]:
    return [n for n in walk(document.rootNode()) if n.type() == "paintlayer"]


def selection_mask(node: Any) -> Any | None:
    for child in node.childNodes():
        if child.type() == "selectionmask":
            return child
    return None


def check_rgba8(document: Any, what: str) -> None:
    if document.colorModel() != "RGBA" or document.colorDepth() != "U8":
        raise PluginError(
            f"the {what} is in a {document.colorModel()}/{document.colorDepth()} document; refcolor reads 8-bit "
            "RGBA documents. Convert a copy with Image ▸ Convert Image Color Space (RGB/Alpha, 8-bit integer)."
        )


def read_layer(layer: LayerRef, what: str, whole_document: bool) -> tuple[Pixels, tuple[int, int, int, int]]:
    """A layer's BGRA8 pixels over the whole document, or over the layer's own bounds."""
    check_rgba8(layer.document, what)
    if whole_document:
        rect = (0, 0, layer.document.width(), layer.document.height())
    else:
        bounds = layer.node.bounds()
        rect = (bounds.x(), bounds.y(), bounds.width(), bounds.height())
        if rect[2] <= 0 or rect[3] <= 0:
            raise PluginError(f"the {what} layer “{layer.node.name()}” is empty: paint or paste something on it")
    data = bytes(layer.node.pixelData(*rect))
    return Pixels(data, rect[2], rect[3], Layout.BGRA8), rect


def read_file(path: str, what: str) -> Pixels:
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


def read_mask(node: Any, rect: tuple[int, int, int, int], what: str) -> Pixels:
    data = bytes(node.pixelData(*rect))
    if len(data) != rect[2] * rect[3]:
        raise PluginError(f"the {what} selection mask gave {len(data)} bytes for a {rect[2]}x{rect[3]} area")
    return Pixels(data, rect[2], rect[3], Layout.L8)


class KritaDocuments:
    """The plugin's view of the open documents (implements ``controller.DocumentAccess``)."""

    def __init__(self) -> None:
        self.app = Krita.instance()

    def active_document(self) -> Any | None:
        return self.app.activeDocument()

    def line_art_choices(self) -> list[LayerRef]:
        document = self.active_document()
        return [] if document is None else [LayerRef(document, n) for n in paint_layers(document)]

    def reference_choices(self) -> list[LayerRef]:
        return [LayerRef(doc, node) for doc in self.app.documents() for node in paint_layers(doc)]

    def has_selection(self, document: Any) -> bool:
        return document is not None and document.selection() is not None

    def snapshot(self, inputs: Inputs) -> tuple[Snapshot, ResultPlace]:
        line_art: LayerRef = inputs.line_art
        if line_art is None:
            raise PluginError("pick a line-art layer (a paint layer of the active document)")
        document = line_art.document
        sketch, rect = read_layer(line_art, "line art", whole_document=True)
        if is_blank(sketch):
            raise PluginError(f"the line-art layer “{line_art.node.name()}” is empty")
        sketch_mask = None
        if inputs.sketch_mask is MaskSource.SELECTION:
            selection = document.selection()
            if selection is None:
                raise PluginError("there is no selection any more: select the foreground, or pick another mask")
            sketch_mask = read_mask(selection, rect, "document")
        elif inputs.sketch_mask is MaskSource.LAYER_MASK:
            node = selection_mask(line_art.node)
            if node is None:
                raise PluginError(f"“{line_art.node.name()}” has no selection mask: add one, or pick another mask")
            sketch_mask = read_mask(node, rect, "line-art")
        if inputs.reference is None:
            raise PluginError("pick a reference: a layer of an open document, or an image file")
        reference, ref_rect = read_image(inputs.reference, "reference")
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
        background = None if inputs.background is None else read_image(inputs.background, "background")[0]
        snapshot = Snapshot(sketch, reference, sketch_mask, reference_mask, background)
        return snapshot, ResultPlace(document, line_art.node)

    def document_size(self, target: ResultPlace) -> tuple[int, int]:
        return target.document.width(), target.document.height()

    def add_results(self, target: ResultPlace, layers: list[VariationLayers], replace_previous: bool) -> list[str]:
        """One group per variation directly below the line art; the first visible, the rest hidden."""
        document, line_art = target.document, target.line_art
        parent = line_art.parentNode()
        if parent is None:
            raise PluginError("the line-art layer was removed while colorizing; the result was discarded")
        width, height = document.width(), document.height()
        if replace_previous:
            previous = latest_group([n.name() for n in parent.childNodes() if n.type() == "grouplayer"])
            for node in parent.childNodes():
                if node.type() == "grouplayer" and node.name() == previous and group_number(node.name()):
                    node.remove()
        existing = [n.name() for n in walk(document.rootNode())]
        names = next_group_names(existing, len(layers))
        for name, variation in reversed(list(zip(names, layers, strict=True))):
            siblings = parent.childNodes()  # bottom of the stack first
            index = next(i for i, n in enumerate(siblings) if n.uniqueId() == line_art.uniqueId())
            below = siblings[index - 1] if index > 0 else None
            group = document.createGroupLayer(name)
            parent.addChildNode(group, below)
            background = document.createNode("background", "paintlayer")
            foreground = document.createNode("foreground", "paintlayer")
            group.addChildNode(background, None)
            group.addChildNode(foreground, background)
            background.setPixelData(variation.background.data, 0, 0, width, height)
            foreground.setPixelData(variation.foreground.data, 0, 0, width, height)
            group.setVisible(variation.variation == 0)
        document.refreshProjection()
        return names
