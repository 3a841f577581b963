"""Pixel plumbing and configs: native sizes, image/mask conversion errors, config lookup."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from refcolor.diffusion.config import CONFIGS, get_config
from refcolor.imaging import pixels


@pytest.mark.parametrize(
    ("size", "side"), [((4000, 1000), 256), ((1000, 4000), 512), ((333, 333), 256), ((50, 40), 256)]
)
def test_native_size_keeps_area_and_aspect_in_multiples_of_64(size: tuple[int, int], side: int) -> None:
    width, height = pixels.native_size(*size, side)
    assert width % 64 == 0 and height % 64 == 0
    assert abs(width * height - side * side) <= 0.5 * side * side
    assert abs(np.log((width / height) / (size[0] / size[1]))) < 0.5  # aspect kept up to rounding


def test_line_ink_treats_transparency_as_paper() -> None:
    rgba = np.zeros((2, 2, 4), np.uint8)  # black but transparent: paper
    rgba[0, 0] = (0, 0, 0, 255)  # an opaque black line pixel
    ink = pixels.line_ink(rgba)
    assert ink[0, 0] == pytest.approx(1.0) and ink[1, 1] == pytest.approx(0.0)


def test_images_and_masks_convert_or_fail_naming_the_argument() -> None:
    assert pixels.to_rgba(Image.new("RGB", (3, 2)), "x").shape == (2, 3, 4)
    assert pixels.to_rgba(np.zeros((2, 3), np.uint8), "x").shape == (2, 3, 4)
    assert pixels.to_mask(np.full((2, 2), 255, np.uint8), "m").max() == 1.0
    with pytest.raises(
        ValueError, match=r"sketch must be \(H, W\), \(H, W, 3\) or \(H, W, 4\), got shape \(2, 2, 2\)"
    ):
        pixels.to_rgba(np.zeros((2, 2, 2), np.uint8), "sketch")
    with pytest.raises(ValueError, match="sketch_mask must be uint8 or float in \\[0, 1\\], got dtype int64"):
        pixels.to_mask(np.zeros((2, 2), np.int64), "sketch_mask")


def test_configs_are_found_by_name() -> None:
    assert get_config("tiny") is CONFIGS["tiny"]
    assert get_config("v1.5").unet.cross_attention_dim == 1024
    assert get_config("nano").native_resolution == 128
    with pytest.raises(KeyError, match="unknown model config 'huge'"):
        get_config("huge")
