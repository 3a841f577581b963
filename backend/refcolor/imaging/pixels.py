"""Pixel plumbing between user images (PIL / numpy) and model tensors. Pure functions."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch
from PIL import Image

ImageInput = Image.Image | np.ndarray
"""RGB/RGBA/L images: a PIL image or a (H, W), (H, W, 3) or (H, W, 4) uint8 array."""

BAND_PIXELS = 1 << 19  # pixels per band of rows (about 0.5 MP) in per-pixel passes: bounds the temporaries


def bands(height: int, width: int, band_pixels: int = BAND_PIXELS) -> Iterator[slice]:
    """Row bands of about ``band_pixels`` pixels for per-pixel passes over an (H, W) image."""
    step = max(1, band_pixels // max(1, width))
    for top in range(0, height, step):
        yield slice(top, min(height, top + step))


def to_rgba(image: ImageInput, name: str) -> np.ndarray:
    """(H, W, 4) uint8 RGBA of ``image``.

    Raises:
        TypeError / ValueError: naming ``name``, for anything that is not an 8-bit image.
    """
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGBA"))
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a PIL image or a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8, got dtype {image.dtype}")
    if image.ndim == 2:
        return np.dstack([image, image, image, np.full_like(image, 255)])
    if image.ndim == 3 and image.shape[2] == 3:
        return np.dstack([image, np.full(image.shape[:2], 255, np.uint8)])
    if image.ndim == 3 and image.shape[2] == 4:
        return image
    raise ValueError(f"{name} must be (H, W), (H, W, 3) or (H, W, 4), got shape {image.shape}")


def to_mask(mask: ImageInput, name: str) -> np.ndarray:
    """(H, W) float32 in [0, 1] (1 = foreground) from an L8 array/PIL mask or a float array in [0, 1]."""
    if isinstance(mask, Image.Image):
        return np.asarray(mask.convert("L"), np.float32) / 255.0
    if not isinstance(mask, np.ndarray):
        raise TypeError(f"{name} must be a PIL image or a numpy array, got {type(mask).__name__}")
    if mask.ndim == 3 and mask.shape[2] in (1, 3, 4):
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise ValueError(f"{name} must be (H, W), got shape {mask.shape}")
    if mask.dtype == np.uint8:
        return np.multiply(mask, np.float32(1 / 255), dtype=np.float32)  # one pass, no float64
    if np.issubdtype(mask.dtype, np.floating):
        if mask.size and (mask.min() < 0 or mask.max() > 1):
            raise ValueError(f"{name} is float but outside [0, 1]: [{mask.min()}, {mask.max()}]")
        return mask.astype(np.float32)
    raise ValueError(f"{name} must be uint8 or float in [0, 1], got dtype {mask.dtype}")


def flatten_on_white(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1]: ``rgba`` composited over white (transparent = paper)."""
    rgb = rgba[..., :3].astype(np.float32) / 255.0
    alpha = rgba[..., 3:].astype(np.float32) / 255.0
    return rgb * alpha + (1.0 - alpha)


def line_ink(sketch: np.ndarray) -> np.ndarray:
    """(H, W) float32 in [0, 1], 1 = fully inked: the darkness of the line art over white paper
    (Rec. 601 luma; computed in bands, so a large sketch needs no float copy of its colours)."""
    ink = np.empty(sketch.shape[:2], np.float32)
    weights = np.array([0.299, 0.587, 0.114], np.float32) / 255.0
    for rows in bands(*sketch.shape[:2]):
        band = sketch[rows]
        darkness = 1.0 - band[..., :3] @ weights  # over black; times alpha: over white paper
        ink[rows] = np.clip(darkness * (band[..., 3] * np.float32(1 / 255)), 0.0, 1.0)
    return ink


def native_size(width: int, height: int, side: int, multiple: int = 64) -> tuple[int, int]:
    """(w, h): about ``side * side`` pixels, aspect ratio kept, both multiples of ``multiple``."""
    scale = side / math.sqrt(width * height)
    return (
        max(multiple, round(width * scale / multiple) * multiple),
        max(multiple, round(height * scale / multiple) * multiple),
    )


def resize_float(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an (H, W) or (H, W, C) float32 array to ``size`` = (w, h) with antialiased bicubic."""
    if (image.shape[1], image.shape[0]) == size:
        return image.astype(np.float32)
    channels = [image] if image.ndim == 2 else [image[..., c] for c in range(image.shape[2])]
    resized = [
        np.asarray(Image.fromarray(c.astype(np.float32), "F").resize(size, Image.Resampling.BICUBIC))
        for c in channels
    ]
    return resized[0] if image.ndim == 2 else np.stack(resized, axis=-1)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W) or (H, W, C) float array -> (1, C, H, W) float32 tensor."""
    if image.ndim == 2:
        image = image[..., None]
    return torch.from_numpy(np.array(image.transpose(2, 0, 1), dtype=np.float32)).unsqueeze(0)


def to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def empty_layers(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three (H, W, 4) uint8 arrays for :func:`write_layers`: combined, foreground, background."""
    return tuple(np.empty((*shape, 4), np.uint8) for _ in range(3))  # type: ignore[return-value]


def write_layers(fills: np.ndarray, ink: np.ndarray, alpha: np.ndarray, out: list[np.ndarray]) -> None:
    """:func:`layer_arrays` of a band of rows, written into ``out`` (its three layers' rows)."""
    import cv2  # on first use: training (its GPU image has no OpenCV) never comes here

    combined, foreground, background = out
    # Rounded and saturated to uint8 by OpenCV, several times faster than numpy (values are >= 0).
    fills = np.clip(fills, 0.0, 1.0)
    rgb = cv2.convertScaleAbs(fills, alpha=255.0)
    combined[..., :3] = cv2.convertScaleAbs(fills * (1.0 - ink)[..., None], alpha=255.0)
    combined[..., 3] = 255
    foreground[..., :3] = rgb
    foreground[..., 3] = alpha
    background[..., :3] = rgb
    np.subtract(255, alpha, out=background[..., 3])


def layer_arrays(
    fills: np.ndarray, ink: np.ndarray, alpha: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(combined, foreground, background) RGBA8 layers of one (H, W, 3) float [0, 1] fill.

    ``combined`` is opaque with the line art (``ink``, (H, W) in [0, 1]) multiplied over the
    fills; ``foreground`` has the (H, W) uint8 mask ``alpha`` as alpha, ``background`` its complement.
    """
    layers = empty_layers(ink.shape)
    write_layers(fills, ink, alpha, list(layers))
    return layers
