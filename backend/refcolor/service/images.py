"""Pixels between wire buffers and numpy arrays (RGBA8 straight alpha, L8 masks)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from refcolor_protocol.messages import Buffer, ImageRef
from refcolor_protocol.spec import Layout


def decode_image(ref: ImageRef, buffer: Buffer) -> np.ndarray:
    """(H, W, 4) uint8 RGBA from an RGBA8/BGRA8 buffer (sizes already checked). Always a copy,
    so the result outlives the message it came in."""
    pixels = np.frombuffer(buffer, np.uint8).reshape(ref.height, ref.width, ref.layout.bytes_per_pixel)
    if ref.layout is Layout.BGRA8:
        return np.ascontiguousarray(pixels[..., [2, 1, 0, 3]])
    if ref.layout is Layout.L8:
        gray = pixels[..., 0]
        return np.dstack([gray, gray, gray, np.full_like(gray, 255)])
    return pixels.copy()


def decode_mask(ref: ImageRef, buffer: Buffer) -> np.ndarray:
    """(H, W) uint8 mask from an L8 buffer (255 = foreground)."""
    return np.frombuffer(buffer, np.uint8).reshape(ref.height, ref.width).copy()


def encode_rgba(image: np.ndarray) -> memoryview:
    """A zero-copy RGBA8 buffer for an (H, W, 4) uint8 array."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 4:
        raise ValueError(f"expected an (H, W, 4) uint8 array, got {image.shape} {image.dtype}")
    return np.ascontiguousarray(image).data.cast("B")


def encode_mask(mask: np.ndarray) -> memoryview:
    """A zero-copy L8 buffer for an (H, W) uint8 mask."""
    if mask.dtype != np.uint8 or mask.ndim != 2:
        raise ValueError(f"expected an (H, W) uint8 mask, got {mask.shape} {mask.dtype}")
    return np.ascontiguousarray(mask).data.cast("B")


def thumbnail(image: np.ndarray, max_side: int) -> np.ndarray:
    """(h, w, 4) uint8, longest side at most ``max_side``, aspect ratio kept."""
    height, width = image.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale == 1.0:
        return np.ascontiguousarray(image)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image, "RGBA").resize(size, Image.Resampling.BILINEAR))
