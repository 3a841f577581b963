"""Split correspondence: carry the reference's colours to the sketch by matching line-art features.

No training. Both sides of the match are *line drawings*: the sketch as it is, and line art
extracted from the reference with the project's own XDoG extractor (with the reference mask's
outline inked, as artists draw a character's silhouette), so a frozen ImageNet network sees the
same kind of picture on both sides. Features are EfficientNet-Lite0's (:mod:`refcolor.model.pretrained`)
at strides 8 and 16, each L2-normalised, the coarser one brought to the stride-8 grid.

Every stride-8 cell of the sketch attends (softmax of cosine similarity over a temperature) to
the reference's cells; the values are the reference's CIELAB colours averaged over each cell.
The attention is *split* like the diffusion model's cross-attention (:mod:`refcolor.model.adapters`):

========== =============================== ===============================
mode       sketch foreground attends to    sketch background attends to
========== =============================== ===============================
plain      the whole reference             the whole reference
foreground the whole reference             the whole reference
background the whole reference             the reference's background
both       the reference's foreground      the reference's background
========== =============================== ===============================

A separate background image replaces the reference's background. A reference cell belongs to a
side when at least ``min_share`` of its pixels do, and its colour is the mean of *that side's*
pixels only (less a one-pixel rim, where resizing blends the sides), so a cell on the character's outline gives the foreground its foreground colour
and the background its background colour.

:func:`correspondence_fields` returns one colour field per side on the sketch's stride-8 grid;
the ``correspondence`` model (:mod:`refcolor.models.correspondence`) composites them with the
sketch mask and flattens them inside the line art's closed regions. The same fields are the
colour prior a learned model can start from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from skimage.color import rgb2lab

from refcolor.data.lineart import mask_outline, xdog
from refcolor.model.adapters import Mode, parse_mode
from refcolor.model.imaging import native_size, resize_float

STRIDE = 8  # cells of the colour fields, in working-size pixels
FEATURE_BLOCKS = (4, 10)  # EfficientNet-Lite0 blocks that end at strides 8 and 16
WORK_SIDE = 256  # working size: about this many pixels squared, aspect ratio kept
TEMPERATURE = 0.02  # softmax temperature over cosine similarities (chosen on training triplets)
MIN_SHARE = 0.25  # a reference cell is a token of a side if this much of it lies on that side
RIM = 1  # pixels along a side's edge left out of its colours


class LineFeatures(torch.nn.Module):
    """Multi-scale, L2-normalised features of line art on the stride-8 grid.

    ``network``: an EfficientNet-Lite0 (:func:`refcolor.model.pretrained.efficientnet_lite0`, or
    any module with its ``_conv_stem``, ``_bn0``, ``_swish`` and ``_blocks``); the blocks after
    the last one in ``blocks`` are dropped.
    """

    def __init__(self, network: torch.nn.Module, blocks: tuple[int, ...] = FEATURE_BLOCKS) -> None:
        super().__init__()
        self.stem = torch.nn.Sequential(network._conv_stem, network._bn0, network._swish)
        self.blocks = torch.nn.ModuleList(list(network._blocks)[: max(blocks) + 1])
        self.taps = frozenset(blocks)

    @torch.no_grad()
    def forward(self, paper: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) paper brightness in [0, 1] (1 = paper) to (B, C, H/8, W/8) features.

        H and W must be multiples of 16.
        """
        if paper.shape[-2] % 16 or paper.shape[-1] % 16:
            raise ValueError(f"line art of {tuple(paper.shape[-2:])} px: sides must be multiples of 16")
        x = self.stem(paper.expand(-1, 3, -1, -1) * 2.0 - 1.0)
        grid = (paper.shape[-2] // STRIDE, paper.shape[-1] // STRIDE)
        levels = []
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in self.taps:
                level = F.normalize(x, dim=1)
                if level.shape[-2:] != grid:
                    level = F.interpolate(level, size=grid, mode="bilinear", align_corners=False)
                levels.append(level)
        return F.normalize(torch.cat(levels, 1), dim=1)


def load_line_features(device: str = "cpu") -> LineFeatures:
    """:class:`LineFeatures` on the ImageNet EfficientNet-Lite0 shipped in its PyPI package."""
    from refcolor.model.pretrained import efficientnet_lite0

    return LineFeatures(efficientnet_lite0(device)).eval()


@dataclass(frozen=True)
class Tokens:
    """Reference cells one side of the sketch may take colours from."""

    keys: torch.Tensor  # (N, C) unit features
    values: torch.Tensor  # (N, 3) CIELAB colours

    def __len__(self) -> int:
        return len(self.keys)


def cell_tokens(features: torch.Tensor, lab: np.ndarray, keep: np.ndarray | None, min_share: float) -> Tokens:
    """The cells of one picture as tokens.

    Args:
        features: (C, h, w) from :class:`LineFeatures`.
        lab: (8h, 8w, 3) CIELAB colours of the picture.
        keep: (8h, 8w) bool, the pixels of the side wanted; None = all.
        min_share: a cell counts if at least this share of its pixels is kept.
    """
    channels = features.shape[0]
    if keep is None:
        mask = np.ones(lab.shape[:2], np.float32)
    else:  # the side's rim (a blend of both sides' colours after resizing) gives no colour
        mask = ndimage.binary_erosion(keep, iterations=RIM, border_value=1).astype(np.float32)
    weight = torch.from_numpy(mask)[None, None]
    colour = torch.from_numpy(lab.astype(np.float32)).permute(2, 0, 1)[None]
    share = F.avg_pool2d(weight, STRIDE)[0, 0]  # (h, w)
    values = F.avg_pool2d(colour * weight, STRIDE)[0] / share.clamp(min=1e-6)  # (3, h, w)
    chosen = (share >= min_share).reshape(-1)
    keys = features.reshape(channels, -1).T[chosen]
    return Tokens(keys, values.reshape(3, -1).T[chosen].to(keys.dtype))


def attend(queries: torch.Tensor, tokens: Tokens, temperature: float) -> torch.Tensor:
    """(M, 3) colours: softmax(queries · keys / temperature) · values."""
    weights = torch.softmax(queries @ tokens.keys.T / temperature, dim=-1)
    return weights @ tokens.values


def side_tokens(
    mode: Mode, whole: Tokens, foreground: Tokens | None, background: Tokens | None
) -> tuple[Tokens, Tokens]:
    """(foreground side's tokens, background side's tokens) of ``mode`` (see the module doc);
    a side with no tokens of its own falls back to the whole reference."""
    fg = foreground if mode is Mode.BOTH and foreground is not None and len(foreground) else whole
    split_bg = mode in (Mode.BACKGROUND, Mode.BOTH) and background is not None and len(background)
    return fg, background if split_bg else whole  # type: ignore[return-value]


def reference_lines(rgb: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """(H, W) paper brightness in [0, 1] of line art extracted from an (H, W, 3) float [0, 1] picture,
    with the outline of its (H, W) bool foreground ``mask`` inked."""
    lines = xdog((np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)).astype(np.float32) / 255.0
    if mask is not None and mask.any() and not mask.all():
        lines[mask_outline(mask.astype(np.uint8) * 255, 1)] = 0.0
    return lines


def working_size(width: int, height: int, side: int = WORK_SIDE) -> tuple[int, int]:
    """(w, h) of about ``side``² pixels, aspect ratio kept, multiples of 16."""
    return native_size(width, height, side, multiple=16)


@dataclass(frozen=True)
class Fields:
    """The colours each side of the sketch takes, on the sketch's stride-8 grid (CIELAB)."""

    foreground: np.ndarray  # (h, w, 3)
    background: np.ndarray  # (h, w, 3)


class Correspondence:
    """Split feature matching from a sketch to a reference (the module doc)."""

    def __init__(
        self,
        features: LineFeatures,
        temperature: float = TEMPERATURE,
        work_side: int = WORK_SIDE,
        min_share: float = MIN_SHARE,
    ) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature={temperature}: expected > 0")
        self.features = features
        self.temperature = temperature
        self.work_side = work_side
        self.min_share = min_share

    def _encode(self, paper: np.ndarray) -> torch.Tensor:
        device = next(self.features.parameters()).device
        tensor = torch.from_numpy(np.ascontiguousarray(paper, np.float32))[None, None].to(device)
        return self.features(tensor)[0].float().cpu()

    def _picture(self, rgb: np.ndarray, mask: np.ndarray | None) -> tuple[torch.Tensor, np.ndarray, np.ndarray | None]:
        """Features, Lab colours and bool mask of a reference-like picture at its working size."""
        size = working_size(rgb.shape[1], rgb.shape[0], self.work_side)
        small = np.clip(resize_float(rgb, size), 0.0, 1.0)
        small_mask = None if mask is None else resize_float(mask.astype(np.float32), size) >= 0.5
        return self._encode(reference_lines(small, small_mask)), rgb2lab(small), small_mask

    def fields(
        self,
        sketch_paper: np.ndarray,
        reference_rgb: np.ndarray,
        reference_mask: np.ndarray | None = None,
        background_rgb: np.ndarray | None = None,
        mode: str | Mode = Mode.BOTH,
    ) -> Fields:
        """The colour fields of a sketch.

        Args:
            sketch_paper: (H, W) float in [0, 1], 1 = paper (any size; matched at the working size).
            reference_rgb: (h, w, 3) float [0, 1] reference over white.
            reference_mask: (h, w) bool foreground of the reference; None = unknown.
            background_rgb: (hb, wb, 3) float [0, 1] separate background reference, or None.
            mode: which tokens each side attends to (the module doc).
        """
        parsed = parse_mode(mode)
        size = working_size(sketch_paper.shape[1], sketch_paper.shape[0], self.work_side)
        queries = self._encode(np.clip(resize_float(sketch_paper, size), 0.0, 1.0))
        grid = queries.shape[1:]
        features, lab, inside = self._picture(reference_rgb, reference_mask)
        whole = cell_tokens(features, lab, None, self.min_share)
        foreground = background = None
        if inside is not None:
            foreground = cell_tokens(features, lab, inside, self.min_share)
            background = cell_tokens(features, lab, ~inside, self.min_share)
        if background_rgb is not None:
            bg_features, bg_lab, _ = self._picture(background_rgb, None)
            background = cell_tokens(bg_features, bg_lab, None, self.min_share)
        fg_tokens, bg_tokens = side_tokens(parsed, whole, foreground, background)
        flat = queries.reshape(queries.shape[0], -1).T
        fg = attend(flat, fg_tokens, self.temperature)
        bg = fg if bg_tokens is fg_tokens else attend(flat, bg_tokens, self.temperature)
        return Fields(
            fg.reshape(*grid, 3).numpy().astype(np.float32), bg.reshape(*grid, 3).numpy().astype(np.float32)
        )
