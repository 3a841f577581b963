"""The shipped default model: small, loaded by default everywhere, and it colours after the reference."""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pytest
import torch

from refcolor.cli import colorize as colorize_cli
from refcolor.diffusion.config import NANO_V2 as SHIPPED  # the shipped nano is nano v2
from refcolor.diffusion.pipeline import ReferenceColorizationPipeline
from refcolor.models import load_colorizer
from refcolor.models.diffusion import NANO_FOLDER
from refcolor.models.job import ColorizeJob, NullContext
from refcolor.service.config import ServerConfig
from refcolor_protocol.messages import ColorizeParams, Mode

MAX_BYTES = 40 * 1024 * 1024


@pytest.fixture(scope="module")
def nano():
    return load_colorizer("nano")


def test_shipped_weights_are_small_safetensors() -> None:
    files = sorted(NANO_FOLDER.rglob("*.safetensors"))
    assert files, f"no weights in {NANO_FOLDER}"
    assert sum(f.stat().st_size for f in files) <= MAX_BYTES
    assert not list(NANO_FOLDER.rglob("*.bin")) and not list(NANO_FOLDER.rglob("*.pt"))
    assert (NANO_FOLDER / "README.md").is_file()  # the model card


def test_loading_nano_warns_about_nothing() -> None:
    # e.g. diffusers' "torch_dtype is deprecated" on every load: a user reads it as something wrong
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_colorizer("nano")


def test_nano_is_the_default_of_the_cli_and_the_server(nano) -> None:
    parser = argparse.ArgumentParser()
    colorize_cli.add_arguments(parser)
    assert parser.parse_args(["s.png", "r.png", "-o", "out"]).model == "nano"
    assert ServerConfig().model == "nano"
    assert nano.info.name == "nano" and nano.info.native_resolution == SHIPPED.native_resolution
    assert (nano.info.color_match, nano.info.flatten) == (SHIPPED.color_match, SHIPPED.flatten)  # advertised
    assert tuple(nano.pipe.unet.config.block_out_channels) == SHIPPED.unet.block_out_channels
    assert nano.pipe.prior_channels == SHIPPED.unet.prior_channels == 3  # v2: the colour prior
    assert nano.pipe.config.prior_strength == SHIPPED.prior_strength
    assert set(nano.info.modes) == {m.value for m in Mode}


def disc_scene(side: int, inside: tuple[int, int, int], outside: tuple[int, int, int]) -> np.ndarray:
    """(side, side, 4): a dark-outlined disc of colour ``inside`` on ``outside``."""
    yy, xx = np.mgrid[:side, :side]
    r = np.hypot(yy - side / 2, xx - side / 2) / side
    rgb = np.where((r < 0.3)[..., None], inside, outside).astype(np.uint8)
    rgb[(r >= 0.28) & (r < 0.3)] = 20
    return np.dstack([rgb, np.full((side, side), 255, np.uint8)])


def foreground_color(nano, reference: np.ndarray) -> np.ndarray:
    side = 256
    scene = disc_scene(side, (255, 255, 255), (255, 255, 255))  # the outline only: a sketch
    yy, xx = np.mgrid[:side, :side]
    mask = np.where(np.hypot(yy - side / 2, xx - side / 2) / side < 0.29, 255, 0).astype(np.uint8)
    job = ColorizeJob(
        sketch=scene,
        reference=reference,
        # finishing off: the colours are the model's own, not the reference's statistics put back
        params=ColorizeParams(mode=Mode.BOTH, steps=12, seed=1, previews=False, color_match=0.0, flatten=0.0),
        seed=1,
        sketch_mask=mask,
        reference_mask=mask,
    )
    (layers,) = nano.colorize(job, NullContext())
    inner = np.hypot(yy - side / 2, xx - side / 2) / side < 0.2
    return layers.foreground[inner][:, :3].astype(float).mean(0)


def test_nano_takes_the_foreground_colour_from_the_reference(nano) -> None:
    red = foreground_color(nano, disc_scene(256, (220, 40, 40), (60, 160, 60)))
    blue = foreground_color(nano, disc_scene(256, (40, 60, 220), (60, 160, 60)))
    # Redness (R - B) of the character follows the reference's character.
    assert red[0] - red[2] > blue[0] - blue[2] + 20, (red, blue)


def test_nano_takes_each_part_its_colour_from_the_matching_part_of_the_reference(nano) -> None:
    """Not only each side's average: a disc whose upper half is red and lower half blue in the
    reference colours the sketch's upper half red and its lower half blue (the same pose here)."""
    side = 256
    yy, xx = np.mgrid[:side, :side]
    r = np.hypot(yy - side / 2, xx - side / 2) / side
    disc, lines = r < 0.3, ((r >= 0.28) & (r < 0.3)) | ((r < 0.3) & (np.abs(yy - side / 2) < 2))
    reference = np.full((side, side, 4), 255, np.uint8)
    reference[disc & (yy < side / 2), :3] = (220, 40, 40)
    reference[disc & (yy >= side / 2), :3] = (40, 60, 220)
    reference[lines, :3] = 20
    sketch = np.full((side, side, 4), 255, np.uint8)
    sketch[lines, :3] = 0
    mask = (disc * 255).astype(np.uint8)
    job = ColorizeJob(sketch=sketch, reference=reference, params=ColorizeParams(mode=Mode.BOTH, seed=3, previews=False),
                      seed=3, sketch_mask=mask, reference_mask=mask)  # fmt: skip
    (layers,) = nano.colorize(job, NullContext())
    rgb = layers.combined[..., :3].astype(float)
    upper = rgb[(r < 0.25) & (yy < side / 2 - 10)].mean(0)
    lower = rgb[(r < 0.25) & (yy > side / 2 + 10)].mean(0)
    assert upper[0] - upper[2] > 40 and lower[2] - lower[0] > 40, (upper, lower)


@pytest.mark.parametrize("dtype", [None, torch.float32])
def test_the_shipped_folder_loads_with_plain_from_pretrained(dtype: torch.dtype | None) -> None:
    # The weights are stored in fp16: loaded as stored (no dtype) or as fp32, the pipeline runs.
    pipe = ReferenceColorizationPipeline.from_pretrained(NANO_FOLDER, dtype=dtype)
    assert pipe.config.chroma_radius == SHIPPED.chroma_radius
    assert (pipe.config.color_match, pipe.config.flatten) == (SHIPPED.color_match, SHIPPED.flatten)
    scene = disc_scene(96, (220, 40, 40), (60, 160, 60))
    params = ColorizeParams(mode=Mode.BOTH, steps=2)
    out = pipe(scene, scene, params=params, generator=torch.Generator().manual_seed(0))
    assert out.combined[0].shape == (96, 96, 4) and np.isfinite(out.native).all()
