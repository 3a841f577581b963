"""Validating and preparing a pipeline call's images (stages 1 and 2 of the pipeline). Pure functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from refcolor.imaging import pixels
from refcolor_protocol import ColorizeParams, ProtocolError
from refcolor_protocol.fields import from_dict, to_dict
from refcolor_protocol.spec import MAX_ASPECT


def check_params(params: ColorizeParams) -> ColorizeParams:
    """``params`` checked as the wire checks them (the schema's types and ranges, guidance order), with
    enums for their strings.

    Raises:
        ValueError: the first bad parameter, named with its value and what it accepts.
    """
    try:
        return from_dict(ColorizeParams, to_dict(params), "params")
    except ProtocolError as error:
        raise ValueError(error.message) from None


def model_side(resolution: int) -> int:
    """The model's working side for a requested ``resolution``: a multiple of 64 (0 = native)."""
    return max(64, round(resolution / 64) * 64) if resolution else 0


def check_inputs(
    sketch: pixels.ImageInput,
    reference: pixels.ImageInput,
    sketch_mask: pixels.ImageInput | None,
    reference_mask: pixels.ImageInput | None,
    background: pixels.ImageInput | None,
    params: ColorizeParams,
    generator: torch.Generator | Sequence[torch.Generator] | None,
    callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
) -> ColorizeParams:
    """The checked parameters (:func:`check_params`); ``ValueError``/``TypeError`` naming the first bad
    argument and its value."""
    sketch_rgba = pixels.to_rgba(sketch, "sketch")
    height, width = sketch_rgba.shape[:2]
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise ValueError(
            f"the sketch is {width}x{height}, more than {MAX_ASPECT} times longer than wide; crop it or split it "
            "into panels (the model's working image would be many times larger than its resolution)"
        )
    reference_rgba = pixels.to_rgba(reference, "reference")
    if background is not None:
        pixels.to_rgba(background, "background")
    for name, mask, image in (
        ("sketch_mask", sketch_mask, sketch_rgba),
        ("reference_mask", reference_mask, reference_rgba),
    ):
        shape = None if mask is None else pixels.to_mask(mask, name).shape
        if shape is not None and shape != image.shape[:2]:
            raise ValueError(f"{name} is {shape} but its image is {image.shape[:2]}; give a mask of the image's size")
    params = check_params(params)
    if isinstance(generator, Sequence) and len(generator) != params.variations:
        raise ValueError(
            f"got {len(generator)} generators for variations={params.variations}; give one each"
        )
    unknown = set(callback_on_step_end_tensor_inputs) - {"latents"}
    if unknown:
        raise ValueError(
            f"callback_on_step_end_tensor_inputs has {sorted(unknown)}; only 'latents' is available"
        )
    return params


@dataclass(frozen=True)
class PreparedImages:
    """The call's images as the encoders want them."""

    full_ink: np.ndarray  # (H, W) line darkness at the sketch's resolution, guides the upsampling
    ink: np.ndarray  # (h, w) the same at the model's native size
    full_mask: np.ndarray | None  # (H, W) sketch foreground in [0, 1], None = all foreground
    native_mask: np.ndarray  # (h, w) the same at native size (ones when none was given)
    reference_rgb: np.ndarray  # (S, S, 3) over white, at the reference encoder's input size
    reference_mask: np.ndarray | None  # (S, S) reference foreground, None = unknown
    background_rgb: np.ndarray | None  # (S, S, 3) the separate background reference
    # For a model with a colour prior (prepare_images' prior_side > 0): the sketch's paper brightness,
    # the reference over white, its foreground and the background image, at about prior_side squared.
    prior: PriorImages | None = None

    @property
    def native_size(self) -> tuple[int, int]:
        return self.ink.shape[1], self.ink.shape[0]


@dataclass(frozen=True)
class PriorImages:
    """What the colour prior (:mod:`refcolor.imaging.matching`) is computed from."""

    sketch_paper: np.ndarray  # (h, w) 1 = paper
    reference_rgb: np.ndarray  # (h', w', 3) over white, aspect ratio kept
    reference_mask: np.ndarray | None  # (h', w') bool
    background_rgb: np.ndarray | None  # (hb, wb, 3)


def prior_images(
    sketch_ink: np.ndarray,
    reference_rgba: np.ndarray,
    reference_mask: np.ndarray | None,
    background_rgba: np.ndarray | None,
    side: int,
) -> PriorImages:
    """The colour prior's inputs at about ``side`` squared pixels each (aspect ratios kept, multiples of 16);
    ``sketch_ink`` is the sketch's (H, W) line darkness (:func:`refcolor.imaging.pixels.line_ink`)."""

    def size_of(image: np.ndarray) -> tuple[int, int]:
        return pixels.native_size(image.shape[1], image.shape[0], side, multiple=16)

    reference_size = size_of(reference_rgba)
    return PriorImages(
        sketch_paper=np.clip(1.0 - pixels.resize_float(sketch_ink, size_of(sketch_ink)), 0, 1),
        reference_rgb=np.clip(pixels.resize_float(pixels.flatten_on_white(reference_rgba), reference_size), 0, 1),
        reference_mask=None
        if reference_mask is None
        else pixels.resize_float(reference_mask, reference_size) >= 0.5,
        background_rgb=None
        if background_rgba is None
        else np.clip(pixels.resize_float(pixels.flatten_on_white(background_rgba), size_of(background_rgba)), 0, 1),
    )


def reference_mask_of(
    reference_rgba: np.ndarray, reference_mask: pixels.ImageInput | None
) -> np.ndarray | None:
    """The reference's foreground in [0, 1]: the given mask, else its alpha if not opaque, else None."""
    if reference_mask is not None:
        return pixels.to_mask(reference_mask, "reference_mask")
    alpha = reference_rgba[..., 3]
    return alpha.astype(np.float32) / 255.0 if (alpha < 255).any() else None


def prepare_images(
    sketch: pixels.ImageInput,
    reference: pixels.ImageInput,
    sketch_mask: pixels.ImageInput | None,
    reference_mask: pixels.ImageInput | None,
    background: pixels.ImageInput | None,
    side: int,
    encoder_size: int,
    prior_side: int = 0,
) -> PreparedImages:
    """Bring the images to the model's sizes: the sketch to about ``side * side`` pixels (aspect kept,
    multiples of 64), the references to the encoder's ``encoder_size`` square; with ``prior_side``,
    also the colour prior's inputs (:func:`prior_images`)."""
    sketch_rgba = pixels.to_rgba(sketch, "sketch")
    reference_rgba = pixels.to_rgba(reference, "reference")
    full_h, full_w = sketch_rgba.shape[:2]
    size = pixels.native_size(full_w, full_h, side)
    full_ink = pixels.line_ink(sketch_rgba)
    full_mask = None if sketch_mask is None else pixels.to_mask(sketch_mask, "sketch_mask")
    square = (encoder_size, encoder_size)
    ref_mask = reference_mask_of(reference_rgba, reference_mask)
    background_rgb: np.ndarray | None = None
    background_rgba = None if background is None else pixels.to_rgba(background, "background")
    if background_rgba is not None:
        background_rgb = pixels.resize_float(pixels.flatten_on_white(background_rgba), square)
    prior = None
    if prior_side:
        prior = prior_images(full_ink, reference_rgba, ref_mask, background_rgba, prior_side)
    return PreparedImages(
        full_ink=full_ink,
        ink=pixels.resize_float(full_ink, size),
        full_mask=full_mask,
        native_mask=np.ones(size[::-1], np.float32)
        if full_mask is None
        else pixels.resize_float(full_mask, size),
        reference_rgb=pixels.resize_float(pixels.flatten_on_white(reference_rgba), square),
        reference_mask=None if ref_mask is None else pixels.resize_float(ref_mask, square),
        background_rgb=background_rgb,
        prior=prior,
    )
