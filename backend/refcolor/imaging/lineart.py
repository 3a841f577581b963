"""Classical line-art extractors: a colour image in, a sketch out (255 = paper, 0 = ink).

Training sketches come from several extractors with randomised parameters
(:func:`random_lineart`), so a model learns "lines" rather than one filter's look:

* XDoG (Winnemöller et al., "XDoG: An eXtended difference-of-Gaussians compendium",
  Computers & Graphics 2012, Sec. 2, eq. 3-5): soft thresholded difference of Gaussians.
* Sobel: thresholded gradient magnitude of a blurred luminance, thick and even.
* Canny (skimage): thin one-pixel contours, dilated to a random width.

Each can be combined with the foreground mask's outline, since artists draw a
character's silhouette even where it barely differs from the background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.feature import canny

LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """(H, W) float32 in 0..1 from (H, W, 3) uint8."""
    return rgb[..., :3].astype(np.float32) @ LUMA / 255.0


def to_uint8(paper: np.ndarray) -> np.ndarray:
    """0..1 float (1 = paper) to uint8 (255 = paper)."""
    return np.clip(paper * 255.0 + 0.5, 0, 255).astype(np.uint8)


def xdog(
    rgb: np.ndarray,
    sigma: float = 0.8,
    k: float = 1.6,
    tau: float = 0.98,
    epsilon: float = -0.015,
    phi: float = 100.0,
) -> np.ndarray:
    """XDoG line art (eq. 5: ``T(D) = 1 if D >= eps else 1 + tanh(phi (D - eps))``).

    Args:
        rgb: (H, W, 3) uint8 colour image.
        sigma: scale of the inner Gaussian in pixels; larger gives thicker, fewer lines.
        k: ratio of the outer Gaussian's scale to the inner one.
        tau: weight of the outer Gaussian; closer to 1 keeps only strong edges.
        epsilon: threshold on the difference, in luminance units (slightly negative).
        phi: steepness of the soft threshold.

    Returns:
        (H, W) uint8 sketch, 255 = paper.
    """
    gray = luminance(rgb)
    difference = ndimage.gaussian_filter(gray, sigma) - tau * ndimage.gaussian_filter(gray, sigma * k)
    paper = np.where(difference >= epsilon, 1.0, 1.0 + np.tanh(phi * (difference - epsilon)))
    return to_uint8(paper)


def sobel(rgb: np.ndarray, sigma: float = 1.0, threshold: float = 0.12, softness: float = 0.05) -> np.ndarray:
    """Lines where the blurred luminance's gradient magnitude passes ``threshold`` (soft ramp)."""
    gray = ndimage.gaussian_filter(luminance(rgb), sigma)
    magnitude = np.hypot(ndimage.sobel(gray, 0), ndimage.sobel(gray, 1)) / 4.0  # per-pixel luminance step
    paper = 1.0 - np.clip((magnitude - threshold) / softness + 0.5, 0.0, 1.0)
    return to_uint8(paper)


def canny_lines(rgb: np.ndarray, sigma: float = 1.5, width: int = 1) -> np.ndarray:
    """Canny contours (skimage, default hysteresis) dilated to ``width`` pixels."""
    edges = canny(luminance(rgb), sigma=sigma)
    if width > 1:
        edges = ndimage.binary_dilation(edges, iterations=width - 1)
    return np.where(edges, 0, 255).astype(np.uint8)


def mask_outline(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """(H, W) bool: the boundary band of a 0/255 mask, ``width`` pixels on the inside."""
    inside = mask >= 128
    return inside & ~ndimage.binary_erosion(inside, iterations=width, border_value=1)


@dataclass(frozen=True)
class LineStyle:
    """Which extractor made a sketch, with what parameters (recorded in sample metadata)."""

    extractor: str
    params: tuple[tuple[str, float], ...]
    outline: int  # width of the drawn mask outline, 0 = none

    def describe(self) -> str:
        args = ",".join(f"{k}={v:g}" for k, v in self.params)
        return f"{self.extractor}({args})" + (f"+outline{self.outline}" if self.outline else "")


def random_style(rng: np.random.Generator) -> LineStyle:
    """Draw an extractor and its parameters: XDoG half the time, Sobel and Canny a quarter each."""
    choice = rng.random()
    if choice < 0.5:
        params = {
            "sigma": rng.uniform(0.5, 1.4),
            "k": rng.uniform(1.4, 2.0),
            # On 0..1 luminance, flat areas give D = (1 - tau) L > 0: epsilon must sit just below
            # zero, or whole areas turn to ink (this range gives 3-15 % ink on wesnoth art).
            "tau": rng.uniform(0.95, 0.99),
            "epsilon": rng.uniform(-0.03, -0.008),
            "phi": rng.uniform(40.0, 200.0),
        }
        extractor = "xdog"
    elif choice < 0.75:
        params = {"sigma": rng.uniform(0.6, 1.6), "threshold": rng.uniform(0.05, 0.15), "softness": 0.05}
        extractor = "sobel"
    else:
        params = {"sigma": rng.uniform(1.0, 2.5), "width": float(rng.integers(1, 3))}
        extractor = "canny"
    outline = int(rng.integers(1, 3)) if rng.random() < 0.7 else 0
    return LineStyle(extractor, tuple(params.items()), outline)


def extract(rgb: np.ndarray, style: LineStyle, mask: np.ndarray | None = None) -> np.ndarray:
    """Apply ``style`` to ``rgb``; draws the outline of ``mask`` when the style asks for one."""
    params = dict(style.params)
    if style.extractor == "xdog":
        sketch = xdog(rgb, **params)
    elif style.extractor == "sobel":
        sketch = sobel(rgb, **params)
    elif style.extractor == "canny":
        sketch = canny_lines(rgb, sigma=params["sigma"], width=int(params["width"]))
    else:
        raise ValueError(f"unknown line extractor {style.extractor!r}: expected xdog, sobel or canny")
    if style.outline and mask is not None:
        sketch = np.where(mask_outline(mask, style.outline), 0, sketch).astype(np.uint8)
    return sketch


def random_lineart(
    rgb: np.ndarray, rng: np.random.Generator, mask: np.ndarray | None = None
) -> tuple[np.ndarray, LineStyle]:
    """Sketch ``rgb`` with a randomly drawn style; returns the (H, W) uint8 sketch and the style."""
    style = random_style(rng)
    return extract(rgb, style, mask), style
