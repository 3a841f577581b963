"""What the server says, built from the service's state and the worker's numpy results:
capabilities, admission checks of a colorize request, and progress and result messages with
their image buffers."""

from __future__ import annotations

import numpy as np

from refcolor import __version__
from refcolor.models.job import LayerSet, ModelInfo
from refcolor.service.config import LIMITED_PARAMS, ServerConfig
from refcolor.service.images import encode_mask, encode_rgba
from refcolor_protocol.errors import ProtocolError
from refcolor_protocol.messages import (
    Buffer,
    Capabilities,
    ColorizeRequest,
    ImageRef,
    LayerName,
    Limits,
    MaskName,
    Mode,
    ModelEntry,
    Progress,
    Result,
    ResultLayer,
    ResultMask,
    Scheduler,
    Stage,
    check_buffers,
    image_refs,
)
from refcolor_protocol.spec import MAX_ASPECT, PROTOCOL_VERSION, ErrorCode, Layout


def capabilities(
    config: ServerConfig, info: ModelInfo, server_id: str, models: list[str], auto_masks: tuple[MaskName, ...]
) -> Capabilities:
    """The server's capabilities; ``info``: its default model's; ``auto_masks``: the masks it can compute."""
    return Capabilities(
        server_version=__version__,
        protocol_version=PROTOCOL_VERSION,
        server_id=server_id,
        model=ModelEntry(
            name=config.model,
            kind=info.kind,
            device=info.device,
            modes=info.modes,
            native_resolution=info.native_resolution,
            description=info.description,
            color_match=info.color_match,
            flatten=info.flatten,
        ),
        models=tuple(models),
        modes=tuple(m.value for m in Mode),
        schedulers=tuple(s.value for s in Scheduler),
        layouts=tuple(layout.value for layout in Layout),
        limits=Limits(
            max_pixels=config.max_pixels,
            max_queue=config.max_queue,
            max_message_bytes=config.max_frame_bytes,
            max_steps=config.max_steps,
            max_variations=config.max_variations,
            preview_every=config.preview_every,
            preview_size=config.preview_size,
            max_resolution=config.max_resolution,
            max_job_seconds=config.max_job_seconds,
        ),
        auto_masks=tuple(name.value for name in auto_masks),
        carry_colors=True,
    )


def admit(
    request: ColorizeRequest,
    buffers: tuple[Buffer, ...],
    config: ServerConfig,
    models: list[str],
    auto_masks: tuple[MaskName, ...],
) -> str:
    """The model that will run ``request``, after checking it against this server's limits and
    the masks it can compute (``auto_masks``).

    Raises:
        ProtocolError: an image over the pixel limit or not matching its buffer, a parameter over
            this server's limit, a mask it cannot compute, or a model not served here.
    """
    check_buffers(image_refs(request, "colorize_request"), buffers, config.max_pixels)
    for name in request.auto_masks:
        if name not in auto_masks:
            raise ProtocolError(
                ErrorCode.INVALID_FIELD,
                f"colorize_request.auto_masks: this server cannot compute {name.value} masks (it can: "
                f"{', '.join(n.value for n in auto_masks) or 'none'})",
                hint=f"send a {name.value}_mask, or install onnxruntime in the backend's Python "
                "(pip install onnxruntime; the mask network ships with refcolor) and restart it",
            )
    width, height = request.sketch.width, request.sketch.height
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise ProtocolError(
            ErrorCode.BAD_ASPECT_RATIO,
            f"colorize_request.sketch is {width}x{height}, more than {MAX_ASPECT} times longer than wide: the "
            "model's working image would be many times larger than its resolution",
        )
    for spec in LIMITED_PARAMS:
        value, limit = getattr(request.params, spec.name), getattr(config, spec.limit)
        if value > limit:
            raise ProtocolError(
                ErrorCode.INVALID_FIELD,
                f"colorize_request.params.{spec.name}: {value} exceeds this server's {spec.limit}={limit}",
            )
    model = request.model or config.model
    if model not in models:
        raise ProtocolError(
            ErrorCode.UNKNOWN_MODEL,
            f"colorize_request.model: {model!r} is not served here; available: {', '.join(models)}",
        )
    return model


def progress(
    job_id: str,
    step: int,
    total: int,
    variation: int,
    preview: np.ndarray | None,
    stage: Stage = Stage.DENOISING,
    fraction: float | None = None,
) -> tuple[Progress, tuple[Buffer, ...]]:
    """A progress message, with its (H, W, 4) preview as buffer 0 if there is one."""
    if preview is None:
        return Progress(job_id, step, total, variation, stage=stage, fraction=fraction), ()
    buffer = encode_rgba(preview)
    height, width = preview.shape[:2]
    ref = ImageRef(width, height, Layout.RGBA8, buffer.nbytes, 0)
    return Progress(job_id, step, total, variation, ref, stage, fraction), (buffer,)


def result(
    job_id: str,
    model: str,
    layer_sets: list[LayerSet],
    elapsed_s: float,
    masks: dict[MaskName, np.ndarray] | None = None,
    age: int = 0,
) -> tuple[Result, tuple[Buffer, ...]]:
    """A result message: every variation's layers as RGBA8 buffers, in variation order, then the
    computed ``masks`` as L8 buffers. ``age``: frames its colours were carried through."""
    layers: list[ResultLayer] = []
    buffers: list[Buffer] = []
    for variation, layer_set in enumerate(layer_sets):
        for name, image in layer_set.named().items():
            buffer = encode_rgba(image)
            height, width = image.shape[:2]
            ref = ImageRef(width, height, Layout.RGBA8, buffer.nbytes, len(buffers))
            layers.append(ResultLayer(LayerName(name), variation, ref))
            buffers.append(buffer)
    computed: list[ResultMask] = []
    for name, mask in (masks or {}).items():
        buffer = encode_mask(mask)
        height, width = mask.shape
        computed.append(ResultMask(name, ImageRef(width, height, Layout.L8, buffer.nbytes, len(buffers))))
        buffers.append(buffer)
    seeds = tuple(s.seed for s in layer_sets)
    return Result(job_id, model, tuple(layers), seeds, round(elapsed_s, 4), tuple(computed), age), tuple(buffers)
