"""Validating and preparing a pipeline call's images (stages 1 and 2 of the pipeline). Pure functions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np
import torch

from refcolor.model import imaging
from refcolor.model.adapters import parse_mode
from refcolor.model.schedulers import SCHEDULERS


def check_inputs(
    sketch: imaging.ImageInput,
    reference: imaging.ImageInput,
    sketch_mask: imaging.ImageInput | None,
    reference_mask: imaging.ImageInput | None,
    background: imaging.ImageInput | None,
    mode: str | Enum,
    num_inference_steps: int,
    scheduler: str,
    reference_guidance_scale: float,
    sketch_guidance_scale: float,
    guidance_start: float,
    guidance_end: float,
    foreground_strength: float,
    background_strength: float,
    merge: float,
    mask_threshold: float,
    resolution: int | None,
    num_variations: int,
    generator: torch.Generator | Sequence[torch.Generator] | None,
    callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
    color_match: float | None = None,
    flatten: float | None = None,
) -> None:
    """Raise ``ValueError``/``TypeError`` naming the first bad argument and its value."""
    sketch_rgba = imaging.to_rgba(sketch, "sketch")
    reference_rgba = imaging.to_rgba(reference, "reference")
    if background is not None:
        imaging.to_rgba(background, "background")
    for name, mask, image in (
        ("sketch_mask", sketch_mask, sketch_rgba),
        ("reference_mask", reference_mask, reference_rgba),
    ):
        if mask is not None and imaging.to_mask(mask, name).shape != image.shape[:2]:
            raise ValueError(
                f"{name} is {imaging.to_mask(mask, name).shape} but its image is {image.shape[:2]}; "
                "give a mask of the image's size"
            )
    parse_mode(mode)
    if getattr(scheduler, "value", scheduler) not in SCHEDULERS:
        raise ValueError(f"scheduler={scheduler!r} is unknown: expected one of {', '.join(SCHEDULERS)}")
    if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
        raise ValueError(f"num_inference_steps={num_inference_steps!r} must be a positive integer")
    for name, value in (
        ("reference_guidance_scale", reference_guidance_scale),
        ("sketch_guidance_scale", sketch_guidance_scale),
        ("foreground_strength", foreground_strength),
        ("background_strength", background_strength),
    ):
        if not value >= 0:
            raise ValueError(f"{name}={value!r} must be >= 0")
    for name, value in (
        ("guidance_start", guidance_start),
        ("guidance_end", guidance_end),
        ("merge", merge),
        ("mask_threshold", mask_threshold),
    ):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name}={value!r} must be in [0, 1]")
    for name, value in (("color_match", color_match), ("flatten", flatten)):
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"{name}={value!r} must be in [0, 1] (0 = off), or None for the model's default")
    if guidance_start > guidance_end:
        raise ValueError(f"guidance_start={guidance_start} is after guidance_end={guidance_end}")
    if resolution is not None and resolution != 0 and (resolution < 64 or resolution % 64):
        raise ValueError(f"resolution={resolution!r} must be 0 (native) or a multiple of 64 >= 64")
    if not isinstance(num_variations, int) or num_variations < 1:
        raise ValueError(f"num_variations={num_variations!r} must be a positive integer")
    if isinstance(generator, Sequence) and len(generator) != num_variations:
        raise ValueError(
            f"got {len(generator)} generators for num_variations={num_variations}; give one each"
        )
    unknown = set(callback_on_step_end_tensor_inputs) - {"latents"}
    if unknown:
        raise ValueError(
            f"callback_on_step_end_tensor_inputs has {sorted(unknown)}; only 'latents' is available"
        )


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
    """What the colour prior (:mod:`refcolor.model.correspondence`) is computed from."""

    sketch_paper: np.ndarray  # (h, w) 1 = paper
    reference_rgb: np.ndarray  # (h', w', 3) over white, aspect ratio kept
    reference_mask: np.ndarray | None  # (h', w') bool
    background_rgb: np.ndarray | None  # (hb, wb, 3)


def prior_images(
    sketch_rgba: np.ndarray,
    reference_rgba: np.ndarray,
    reference_mask: np.ndarray | None,
    background_rgba: np.ndarray | None,
    side: int,
) -> PriorImages:
    """The colour prior's inputs at about ``side`` squared pixels each (aspect ratios kept, multiples of 16)."""

    def size_of(image: np.ndarray) -> tuple[int, int]:
        return imaging.native_size(image.shape[1], image.shape[0], side, multiple=16)

    reference_size = size_of(reference_rgba)
    return PriorImages(
        sketch_paper=np.clip(1.0 - imaging.resize_float(imaging.line_ink(sketch_rgba), size_of(sketch_rgba)), 0, 1),
        reference_rgb=np.clip(imaging.resize_float(imaging.flatten_on_white(reference_rgba), reference_size), 0, 1),
        reference_mask=None
        if reference_mask is None
        else imaging.resize_float(reference_mask, reference_size) >= 0.5,
        background_rgb=None
        if background_rgba is None
        else np.clip(imaging.resize_float(imaging.flatten_on_white(background_rgba), size_of(background_rgba)), 0, 1),
    )


def reference_mask_of(
    reference_rgba: np.ndarray, reference_mask: imaging.ImageInput | None
) -> np.ndarray | None:
    """The reference's foreground in [0, 1]: the given mask, else its alpha if not opaque, else None."""
    if reference_mask is not None:
        return imaging.to_mask(reference_mask, "reference_mask")
    alpha = reference_rgba[..., 3]
    return alpha.astype(np.float32) / 255.0 if (alpha < 255).any() else None


def prepare_images(
    sketch: imaging.ImageInput,
    reference: imaging.ImageInput,
    sketch_mask: imaging.ImageInput | None,
    reference_mask: imaging.ImageInput | None,
    background: imaging.ImageInput | None,
    side: int,
    encoder_size: int,
    prior_side: int = 0,
) -> PreparedImages:
    """Bring the images to the model's sizes: the sketch to about ``side * side`` pixels (aspect kept,
    multiples of 64), the references to the encoder's ``encoder_size`` square; with ``prior_side``,
    also the colour prior's inputs (:func:`prior_images`)."""
    sketch_rgba = imaging.to_rgba(sketch, "sketch")
    reference_rgba = imaging.to_rgba(reference, "reference")
    full_h, full_w = sketch_rgba.shape[:2]
    size = imaging.native_size(full_w, full_h, side)
    full_ink = imaging.line_ink(sketch_rgba)
    full_mask = None if sketch_mask is None else imaging.to_mask(sketch_mask, "sketch_mask")
    square = (encoder_size, encoder_size)
    ref_mask = reference_mask_of(reference_rgba, reference_mask)
    background_rgb: np.ndarray | None = None
    background_rgba = None if background is None else imaging.to_rgba(background, "background")
    if background_rgba is not None:
        background_rgb = imaging.resize_float(imaging.flatten_on_white(background_rgba), square)
    prior = None
    if prior_side:
        prior = prior_images(sketch_rgba, reference_rgba, ref_mask, background_rgba, prior_side)
    return PreparedImages(
        full_ink=full_ink,
        ink=imaging.resize_float(full_ink, size),
        full_mask=full_mask,
        native_mask=np.ones(size[::-1], np.float32)
        if full_mask is None
        else imaging.resize_float(full_mask, size),
        reference_rgb=imaging.resize_float(imaging.flatten_on_white(reference_rgba), square),
        reference_mask=None if ref_mask is None else imaging.resize_float(ref_mask, square),
        background_rgb=background_rgb,
        prior=prior,
    )
