"""From what was read out of the document to a colorize request, and from a result back to
layer pixels (pure: no Krita, no sockets)."""

from __future__ import annotations

from dataclasses import dataclass

from refcolor_protocol import (
    Attachments,
    ColorizeParams,
    ColorizeRequest,
    Layout,
    MaskName,
    Message,
    Result,
)

from .pixels import Pixels, PluginError, swap_red_blue


@dataclass(frozen=True)
class Snapshot:
    """Everything a job needs, read from the document at the moment Colorize was pressed."""

    sketch: Pixels  # the line-art layer over the whole document (BGRA8 from Krita)
    reference: Pixels
    sketch_mask: Pixels | None = None  # L8, document size
    reference_mask: Pixels | None = None  # L8, reference size
    background: Pixels | None = None
    auto_masks: tuple[MaskName, ...] = ()  # the masks the backend is to find ("Automatic")


@dataclass(frozen=True)
class Previous:
    """A shot's previous frame, whose colours the next frame carries (PROTOCOL.md, "Frames of a
    shot"): its line art as sent, its result's foreground layer as received, the sketch mask it
    was colorized with (None: all foreground) and its result's age."""

    sketch: Pixels
    fills: Pixels
    mask: Pixels | None
    age: int


MASK_WORDS = {MaskName.SKETCH: "line-art", MaskName.REFERENCE: "reference"}


def build_request(
    snapshot: Snapshot,
    params: ColorizeParams,
    model: str = "",
    can_compute: tuple[str, ...] | None = None,
    previous: Previous | None = None,
) -> tuple[ColorizeRequest, list[object]]:
    """The request and its buffers (``model`` "": the backend's default). ``can_compute``: the
    masks the backend can find (its capabilities' ``auto_masks``; None: not known). ``previous``:
    the shot's previous frame, for a backend that carries colours (capabilities.carry_colors).

    Raises:
        PluginError: a mask does not match its image (a bug in reading the document, or a
            document resized between reads), a layout is not what the protocol accepts, or an
            automatic mask the backend cannot compute.
    """
    for name in snapshot.auto_masks:
        if can_compute is not None and name.value not in can_compute:
            if can_compute:
                fix = "install onnxruntime in the backend's Python (pip install onnxruntime)"
                why = "its mask model cannot run there"
            else:
                fix, why = "update the backend (pip install -U refcolor)", "it is older than protocol 1.6"
            raise PluginError(
                f"this backend cannot find the {MASK_WORDS[name]} mask automatically ({why}): pick another "
                f"mask, or {fix} and restart it"
            )
    for mask, image, what in (
        (snapshot.sketch_mask, snapshot.sketch, "line-art"),
        (snapshot.reference_mask, snapshot.reference, "reference"),
    ):
        if mask is None:
            continue
        if mask.layout is not Layout.L8:
            raise PluginError(f"the {what} mask must be 8-bit grey, got {mask.layout.value}")
        if mask.size != image.size:
            raise PluginError(
                f"the {what} mask is {mask.width}x{mask.height} but the {what} is {image.width}x{image.height}"
            )
    if previous is not None:
        for image, what in ((previous.sketch, "line art"), (previous.fills, "colours"), (previous.mask, "mask")):
            if image is not None and image.size != snapshot.sketch.size:
                raise PluginError(
                    f"the previous frame's {what} is {image.width}x{image.height} but this frame is "
                    f"{snapshot.sketch.width}x{snapshot.sketch.height}"
                )
    att = Attachments()

    def add(pixels: Pixels | None) -> object:
        return None if pixels is None else att.add(pixels.data, pixels.width, pixels.height, pixels.layout)

    request = ColorizeRequest(
        sketch=add(snapshot.sketch),  # type: ignore[arg-type]
        reference=add(snapshot.reference),  # type: ignore[arg-type]
        sketch_mask=add(snapshot.sketch_mask),  # type: ignore[arg-type]
        reference_mask=add(snapshot.reference_mask),  # type: ignore[arg-type]
        background=add(snapshot.background),  # type: ignore[arg-type]
        params=params,
        model=model,
        auto_masks=snapshot.auto_masks,
        previous_sketch=None if previous is None else add(previous.sketch),  # type: ignore[arg-type]
        previous_fills=None if previous is None else add(previous.fills),  # type: ignore[arg-type]
        previous_mask=None if previous is None else add(previous.mask),  # type: ignore[arg-type]
        previous_age=0 if previous is None else previous.age,
    )
    return request, att.buffers


def result_masks(msg: Message, document_size: tuple[int, int]) -> dict[MaskName, Pixels]:
    """The masks the backend computed for a job (L8, each at its image's size: the line art's is the
    document's).

    Raises:
        PluginError: a mask that is not 8-bit grey, or a line-art mask not at the document's size.
    """
    result: Result = msg.content
    found: dict[MaskName, Pixels] = {}
    for mask in result.masks:
        ref = mask.image
        if ref.layout is not Layout.L8:
            raise PluginError(f"the backend returned the {MASK_WORDS[mask.name]} mask as {ref.layout.value}, not L8")
        if mask.name is MaskName.SKETCH and (ref.width, ref.height) != document_size:
            raise PluginError(
                f"the backend returned a {ref.width}x{ref.height} line-art mask for a "
                f"{document_size[0]}x{document_size[1]} document"
            )
        found[mask.name] = Pixels(bytes(memoryview(msg.buffers[ref.buffer])), ref.width, ref.height, Layout.L8)
    return found


@dataclass(frozen=True)
class VariationLayers:
    """One variation's layers at document size, BGRA8 (ready for Krita's setPixelData) or RGBA8."""

    variation: int
    seed: int
    foreground: Pixels
    background: Pixels
    combined: Pixels | None = None  # the finished picture (opaque, lines multiplied over the fills)


def result_layers(msg: Message, document_size: tuple[int, int], layout: Layout = Layout.BGRA8) -> list[VariationLayers]:
    """Decode a ``result`` message into per-variation layers in ``layout`` (BGRA8 or RGBA8).

    Raises:
        PluginError: the result is not what was asked for (wrong size, missing layer).
    """
    result: Result = msg.content
    found: dict[tuple[int, str], Pixels] = {}
    for layer in result.layers:
        ref = layer.image
        if (ref.width, ref.height) != document_size or ref.layout is not Layout.RGBA8:
            raise PluginError(
                f"the backend returned a {ref.width}x{ref.height} {ref.layout.value} {layer.name.value} layer; "
                f"expected RGBA8 at the document's {document_size[0]}x{document_size[1]}"
            )
        data = bytes(memoryview(msg.buffers[ref.buffer]))
        if layout is Layout.BGRA8:
            data = swap_red_blue(data)
        found[(layer.variation, layer.name.value)] = Pixels(data, ref.width, ref.height, layout)
    out = []
    for variation, seed in enumerate(result.seeds):
        try:
            fg, bg = found[(variation, "foreground")], found[(variation, "background")]
        except KeyError as missing:
            raise PluginError(
                f"the backend's result lacks the {missing.args[0][1]} layer of variation {variation}"
            ) from None
        out.append(VariationLayers(variation, seed, fg, bg, found.get((variation, "combined"))))
    return out
