"""The logical messages: a header, a parent header, a content dataclass and buffers.

Each content class names its ``msg_type``; :data:`MESSAGE_TYPES` is the table the
wire layer dispatches on and that ``PROTOCOL.md`` documents. Images never travel
inside JSON: an :class:`ImageRef` in the content points at a buffer frame by index
and says how to read it.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any, ClassVar

from .errors import ProtocolError
from .fields import bounds, from_dict, param
from .spec import PROTOCOL_VERSION, ErrorCode, Layout

Buffer = bytes | bytearray | memoryview
"""A buffer frame: anything exposing the buffer protocol (zmq.Frame too, via memoryview)."""


class Mode(str, Enum):
    """Inference modes of the split cross-attention model (paper, Sec. 3.3)."""

    PLAIN = "plain"  # no adapters, one token set for every position (like v1)
    FOREGROUND = "foreground"  # foreground adapter + foreground tokens on foreground positions
    BACKGROUND = "background"  # background adapter + background tokens on background positions
    BOTH = "both"  # both adapters, each side attends only to its own tokens


class Scheduler(str, Enum):
    DPMPP_2M = "dpmpp_2m"
    EULER_A = "euler_a"
    DDIM = "ddim"
    UNIPC = "unipc"


class LayerName(str, Enum):
    FOREGROUND = "foreground"
    BACKGROUND = "background"
    COMBINED = "combined"


class MaskName(str, Enum):
    """The masks of a colorize request, as ``auto_masks`` and a result's ``masks`` name them."""

    SKETCH = "sketch"  # sketch_mask
    REFERENCE = "reference"  # reference_mask


class Stage(str, Enum):
    """What a running job is doing (``progress.stage``), in the order a job goes through them."""

    ENCODING = "encoding"  # reading the sketch and the reference into the model
    DENOISING = "denoising"  # the model's steps: the only stage with per-step progress
    UPSAMPLING = "upsampling"  # bringing the colours to full resolution along the line art
    FINISHING = "finishing"  # colour matching and flattening at full resolution
    LAYERS = "layers"  # building and encoding the result layers


class JobPhase(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"


class CancelOutcome(str, Enum):
    DROPPED = "dropped"  # was queued; removed, and the job ends with error "cancelled"
    STOPPING = "stopping"  # is running; stops within one step, then ends with error "cancelled"
    UNKNOWN = "unknown"  # no such job of this client, or it has already ended


@dataclass(frozen=True)
class Header:
    msg_id: str
    msg_type: str
    session: str
    date: str
    version: str  # required: a header without one is bad_header, not silently the current version

    @classmethod
    def new(cls, msg_type: str, session: str) -> Header:
        return cls(
            msg_id=uuid.uuid4().hex,
            msg_type=msg_type,
            session=session,
            date=datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            version=PROTOCOL_VERSION,
        )


@dataclass(frozen=True)
class ImageRef:
    """Where an image is and how to read it: buffer ``buffer`` holds ``height`` rows of
    ``width`` pixels in ``layout``, tightly packed, ``nbytes`` bytes in all."""

    width: int = field(metadata=bounds(1, 1 << 20))
    height: int = field(metadata=bounds(1, 1 << 20))
    layout: Layout
    nbytes: int = field(metadata=bounds(0))
    buffer: int = field(metadata=bounds(0, 63))

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def expected_nbytes(self) -> int:
        return self.width * self.height * self.layout.bytes_per_pixel

    def check(self, path: str) -> None:
        if self.nbytes != self.expected_nbytes:
            raise ProtocolError(
                ErrorCode.BUFFER_MISMATCH,
                f"{path}: declares nbytes={self.nbytes} but {self.width}x{self.height} {self.layout.value} "
                f"needs {self.expected_nbytes}",
            )


# --- content classes -------------------------------------------------------------------------


@dataclass(frozen=True)
class Hello:
    msg_type: ClassVar[str] = "hello"
    client_name: str = ""
    client_version: str = ""
    protocol_version: str = PROTOCOL_VERSION


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str
    device: str
    modes: tuple[str, ...] = ()
    native_resolution: int = 0
    description: str = ""
    # The model's finishing defaults (what ColorizeParams' null color_match / flatten mean); null:
    # the model has no finishing pass.
    color_match: float | None = None
    flatten: float | None = None


@dataclass(frozen=True)
class Limits:
    max_pixels: int  # per image; masks and references too
    max_queue: int  # jobs waiting (not counting the running one)
    max_message_bytes: int  # a larger message is dropped by the transport
    max_steps: int
    max_variations: int
    preview_every: int  # a progress event carries a preview every this many steps
    preview_size: int  # longest side of a preview, in pixels
    max_resolution: int = 4096  # the largest params.resolution accepted (a server of 1.3: the protocol's)
    max_job_seconds: float = 0.0  # a running job longer than this ends with job_timed_out; 0 = no limit


@dataclass(frozen=True)
class Capabilities:
    msg_type: ClassVar[str] = "capabilities"
    server_version: str
    protocol_version: str
    server_id: str  # new for every server start: a change means the backend restarted
    model: ModelEntry  # the default model, used when a request names none
    models: tuple[str, ...]
    modes: tuple[str, ...]
    schedulers: tuple[str, ...]
    layouts: tuple[str, ...]
    limits: Limits
    # The masks this server can compute (ColorizeRequest.auto_masks): "sketch", "reference"; a server
    # of 1.5 sends none. Strings, not MaskName, so a client keeps working when a newer server adds one.
    auto_masks: tuple[str, ...] = ()
    # The server carries colours from a shot's previous frame (ColorizeRequest.previous_*); a server
    # of 1.6 ignores those fields.
    carry_colors: bool = False


@dataclass(frozen=True)
class Ping:
    msg_type: ClassVar[str] = "ping"
    nonce: str = ""


@dataclass(frozen=True)
class Pong:
    msg_type: ClassVar[str] = "pong"
    nonce: str = ""
    server_id: str = ""
    uptime_s: float = 0.0


@dataclass(frozen=True)
class ColorizeParams:
    """Generation parameters; every one has a default, so ``{}`` is a valid set.

    Declared once, here: :mod:`refcolor_protocol.schema` derives PROTOCOL.md's table, the CLI flags
    and the plugins' controls and settings from these fields. None is "auto" (the model's or the
    server's choice) wherever a field allows it.
    """

    mode: Mode = param(
        Mode.BOTH, label="Mode", help="inference mode: which reference colours each side of the sketch may take",
        panel=True,
    )
    seed: int | None = param(
        None, low=0, high=2**32 - 1, label="Seed", panel=True,
        help="variation i uses seed + i; auto: the server draws one and reports it in the result",
    )
    steps: int = param(20, low=1, high=1000, limit="max_steps", label="Steps", help="denoising steps", panel=True)
    variations: int = param(
        1, low=1, high=64, limit="max_variations", label="Variations", panel=True,
        help="how many results, each from its own seed",
    )
    scheduler: Scheduler = param(Scheduler.DPMPP_2M, label="Sampler", help="sampler")
    reference_scale: float = param(
        5.0, low=0.0, high=30.0, label="Colour guidance", panel=True, slider_high=15.0,
        help="classifier-free guidance on the reference: higher keeps closer to the reference's colours; 1 = none",
    )
    sketch_scale: float = param(
        1.0, low=0.0, high=30.0, label="Line guidance", panel=True, slider_high=5.0,
        help="classifier-free guidance on the sketch: higher keeps closer to the line art; 1 = none",
    )
    guidance_start: float = param(
        0.0, low=0.0, high=1.0, label="Guidance start", help="fraction of the schedule where guidance starts"
    )
    guidance_end: float = param(
        1.0, low=0.0, high=1.0, label="Guidance end",
        help="fraction of the schedule where guidance ends, ≥ guidance_start",
    )
    fg_strength: float = param(
        1.0, low=0.0, high=2.0, label="FG colour weight", panel=True,
        help="strength of the foreground branch: how strongly the sketch's foreground takes the colours of the "
        "reference's foreground",
    )
    bg_strength: float = param(
        1.0, low=0.0, high=2.0, label="BG colour weight", panel=True,
        help="strength of the background branch: how strongly the sketch's background takes the colours of the "
        "reference's background",
    )
    merge: float = param(
        0.0, low=0.0, high=1.0, label="Merge", help="foreground = (1 − merge)·fg + merge·bg"
    )
    mask_threshold: float = param(
        0.5, low=0.0, high=1.0, label="Mask threshold", help="where a resized mask counts as foreground"
    )
    resolution: int = param(
        0, low=0, high=4096, limit="max_resolution", unit="pixels", label="Resolution",
        help="model working side length; 0 = the model's native one",
    )
    color_match: float | None = param(
        None, low=0.0, high=1.0, label="Colour match", panel=True,
        help="how far each side of the sketch takes the colours of its side of the reference; 0 = off, "
        "auto = the model's default",
    )
    flatten: float | None = param(
        None, low=0.0, high=1.0, label="Flatten", panel=True,
        help="how far each closed region of the line art is evened out to its local colour: 1 = flat cel "
        "fills, 0 = off, auto = the model's default",
    )
    prior_strength: float | None = param(
        None, low=0.0, high=1.0, label="Redraw", panel=True,
        help="how far the model redraws the colours it matched from the reference: 0 = keeps them, 1 = draws "
        "from noise; auto = the model's default; models without a colour prior ignore it",
    )
    previews: bool = param(True, label="Previews", help="whether progress events carry previews")

    def check(self, path: str) -> None:
        if self.guidance_start > self.guidance_end:
            raise ProtocolError(
                ErrorCode.INVALID_FIELD,
                f"{path}: guidance_start={self.guidance_start} is after guidance_end={self.guidance_end}",
            )


@dataclass(frozen=True)
class ColorizeRequest:
    msg_type: ClassVar[str] = "colorize_request"
    sketch: ImageRef  # the line-art layer, full document resolution
    reference: ImageRef
    sketch_mask: ImageRef | None = None  # L8, sketch size, 255 = foreground
    reference_mask: ImageRef | None = None  # L8, reference size
    background: ImageRef | None = None  # optional separate background reference
    params: ColorizeParams = field(default_factory=ColorizeParams)
    model: str = ""  # "" = the server's default model
    auto_masks: tuple[MaskName, ...] = ()  # masks the server computes; the result carries them
    # A shot's previous frame, whose colours this frame carries (PROTOCOL.md, "Frames of a shot"):
    # its line art, its result's foreground layer as received, its sketch mask, and its result's age.
    previous_sketch: ImageRef | None = None
    previous_fills: ImageRef | None = None
    previous_mask: ImageRef | None = None
    previous_age: int = field(default=0, metadata=bounds(0, 1_000_000))

    IMAGE_NAMES: ClassVar[tuple[str, ...]] = (
        "sketch", "reference", "sketch_mask", "reference_mask", "background",
        "previous_sketch", "previous_fills", "previous_mask",
    )

    def images(self) -> dict[str, ImageRef]:
        return {n: getattr(self, n) for n in self.IMAGE_NAMES if getattr(self, n) is not None}

    def check(self, path: str) -> None:
        self._check_previous(path)
        for i, auto in enumerate(self.auto_masks):
            if auto in self.auto_masks[:i]:
                raise ProtocolError(ErrorCode.INVALID_FIELD, f"{path}.auto_masks: {auto.value!r} is listed twice")
            if getattr(self, f"{auto.value}_mask") is not None:
                raise ProtocolError(
                    ErrorCode.INVALID_FIELD,
                    f"{path}.auto_masks: {auto.value!r} is to be computed but {auto.value}_mask is given too; "
                    "send one or the other",
                )
        for name, ref in self.images().items():
            is_mask = name.endswith("_mask")
            if is_mask != (ref.layout is Layout.L8):
                want = "L8" if is_mask else "RGBA8 or BGRA8"
                raise ProtocolError(
                    ErrorCode.UNSUPPORTED_LAYOUT, f"{path}.{name}: layout {ref.layout.value}, expected {want}"
                )
        for mask, image in (("sketch_mask", self.sketch), ("reference_mask", self.reference)):
            ref = getattr(self, mask)
            if ref is not None and (ref.width, ref.height) != (image.width, image.height):
                owner = mask.removesuffix("_mask")
                raise ProtocolError(
                    ErrorCode.SIZE_MISMATCH,
                    f"{path}.{mask}: {ref.width}x{ref.height} but the {owner} is {image.width}x{image.height}",
                )

    def _check_previous(self, path: str) -> None:
        given = [n for n in ("previous_sketch", "previous_fills") if getattr(self, n) is not None]
        if len(given) == 1 or (self.previous_mask is not None and not given):
            raise ProtocolError(
                ErrorCode.INVALID_FIELD,
                f"{path}: a previous frame needs previous_sketch and previous_fills (previous_mask optional); "
                f"got {', '.join(given + (['previous_mask'] if self.previous_mask is not None else []))}",
            )
        if not given:
            return
        if self.params.variations != 1:
            raise ProtocolError(
                ErrorCode.INVALID_FIELD,
                f"{path}.params.variations: {self.params.variations} with a previous frame; a frame of a shot "
                "has one colouring",
            )
        for name in ("previous_sketch", "previous_fills", "previous_mask"):
            ref = getattr(self, name)
            if ref is not None and (ref.width, ref.height) != (self.sketch.width, self.sketch.height):
                raise ProtocolError(
                    ErrorCode.SIZE_MISMATCH,
                    f"{path}.{name}: {ref.width}x{ref.height} but the sketch is "
                    f"{self.sketch.width}x{self.sketch.height}; frames of a shot have one size",
                )


@dataclass(frozen=True)
class JobAccepted:
    msg_type: ClassVar[str] = "job_accepted"
    job_id: str
    position: int  # jobs ahead of this one, the running one included


@dataclass(frozen=True)
class Progress:
    msg_type: ClassVar[str] = "progress"
    job_id: str
    step: int  # 0 = started
    total: int
    variation: int = 0
    preview: ImageRef | None = None  # small RGBA8 image of the current state
    stage: Stage = Stage.DENOISING  # sent at the start of every stage; step/total are the denoising's
    fraction: float | None = None  # share of a full-resolution stage done, in [0, 1]; None: not reported


@dataclass(frozen=True)
class ResultLayer:
    name: LayerName
    variation: int
    image: ImageRef  # RGBA8 at the sketch's size; alpha = the layer's mask


@dataclass(frozen=True)
class ResultMask:
    name: MaskName
    image: ImageRef  # L8 at its image's size (the sketch's or the reference's), 255 = foreground


@dataclass(frozen=True)
class Result:
    msg_type: ClassVar[str] = "result"
    job_id: str
    model: str
    layers: tuple[ResultLayer, ...]
    seeds: tuple[int, ...]  # one per variation
    elapsed_s: float = 0.0
    masks: tuple[ResultMask, ...] = ()  # the masks the server computed (the request's auto_masks)
    age: int = 0  # frames this result's colours were carried through (0: not carried); the next frame's previous_age


@dataclass(frozen=True)
class Error:
    msg_type: ClassVar[str] = "error"
    code: str  # an ErrorCode value; unknown codes from newer servers are kept as text
    message: str
    hint: str = ""
    job_id: str = ""


@dataclass(frozen=True)
class Cancel:
    msg_type: ClassVar[str] = "cancel"
    job_id: str


@dataclass(frozen=True)
class CancelReply:
    msg_type: ClassVar[str] = "cancel_reply"
    job_id: str
    outcome: CancelOutcome


@dataclass(frozen=True)
class StatusRequest:
    msg_type: ClassVar[str] = "status_request"


@dataclass(frozen=True)
class JobState:
    job_id: str
    phase: JobPhase
    position: int  # jobs ahead of it; 0 when running
    step: int = 0
    total: int = 0


@dataclass(frozen=True)
class Status:
    msg_type: ClassVar[str] = "status"
    server_id: str
    queue_length: int  # waiting jobs of every client
    running: JobState | None = None  # the running job if it is the asker's, else None
    jobs: tuple[JobState, ...] = ()  # the asker's jobs (for an unsolicited status: that one job)
    busy: bool = False  # a job (anyone's) is running


MESSAGE_TYPES: dict[str, type[Any]] = {
    cls.msg_type: cls
    for cls in (
        Hello,
        Capabilities,
        Ping,
        Pong,
        ColorizeRequest,
        JobAccepted,
        Progress,
        Result,
        Error,
        Cancel,
        CancelReply,
        StatusRequest,
        Status,
    )
}


@dataclass(frozen=True)
class Message:
    """One logical message. ``identities`` are the ROUTER routing frames (server side only)."""

    header: Header
    content: Any  # one of the content classes
    parent_header: Header | None = None
    buffers: tuple[Buffer, ...] = ()
    identities: tuple[bytes, ...] = ()
    # The signature scheme a received message was signed with ("" when unsigned, or made here):
    # how it travelled, not what it says, so two messages that differ only in it are equal.
    scheme: str = field(default="", compare=False)

    @property
    def msg_type(self) -> str:
        return self.header.msg_type

    @property
    def parent_id(self) -> str:
        return self.parent_header.msg_id if self.parent_header is not None else ""


def content_from_dict(msg_type: str, data: dict[str, Any]) -> Any:
    """Decode the content of a message of ``msg_type`` (which must be in :data:`MESSAGE_TYPES`)."""
    return from_dict(MESSAGE_TYPES[msg_type], data, msg_type)


def check_buffers(refs: Sequence[tuple[str, ImageRef]], buffers: Sequence[Buffer], max_pixels: int) -> None:
    """Check image references against the buffers that came with them, before any pixel is read.
    Every buffer must be an image's: a message that carries others would have them held for nothing
    (a queued job keeps its buffers).

    Raises:
        ProtocolError: ``image_too_large``, ``buffer_mismatch``.
    """
    for path, ref in refs:
        if ref.pixels > max_pixels:
            raise ProtocolError(
                ErrorCode.IMAGE_TOO_LARGE,
                f"{path}: {ref.width}x{ref.height} = {ref.pixels} pixels exceeds the limit of {max_pixels}",
            )
        if ref.buffer >= len(buffers):
            raise ProtocolError(
                ErrorCode.BUFFER_MISMATCH,
                f"{path}: refers to buffer {ref.buffer} but the message has {len(buffers)} buffer(s)",
            )
        actual = memoryview(buffers[ref.buffer]).nbytes
        if actual != ref.nbytes:
            raise ProtocolError(
                ErrorCode.BUFFER_MISMATCH,
                f"{path}: buffer {ref.buffer} holds {actual} bytes but the image declares {ref.nbytes}",
            )
    unused = sorted(set(range(len(buffers))) - {ref.buffer for _, ref in refs})
    if unused:
        raise ProtocolError(
            ErrorCode.BUFFER_MISMATCH,
            f"buffer(s) {', '.join(map(str, unused))} of {len(buffers)} belong to no image of the message; "
            "send only the images' buffers",
        )


def image_refs(content: object, path: str = "") -> list[tuple[str, ImageRef]]:
    """Every :class:`ImageRef` inside ``content``, with its field path."""
    found: list[tuple[str, ImageRef]] = []
    if isinstance(content, ImageRef):
        return [(path, content)]
    if isinstance(content, tuple):
        for i, item in enumerate(content):
            found += image_refs(item, f"{path}[{i}]")
    elif dataclasses.is_dataclass(content) and not isinstance(content, type):
        prefix = f"{path}." if path else ""
        for f in dataclasses.fields(content):
            found += image_refs(getattr(content, f.name), prefix + f.name)
    return found


@dataclass
class Attachments:
    """Collects buffers for one message and makes the :class:`ImageRef` pointing at each."""

    buffers: list[Buffer] = field(default_factory=list)

    def add(self, data: Buffer, width: int, height: int, layout: Layout) -> ImageRef:
        ref = ImageRef(
            width=width,
            height=height,
            layout=layout,
            nbytes=memoryview(data).nbytes,
            buffer=len(self.buffers),
        )
        self.buffers.append(data)
        return ref
