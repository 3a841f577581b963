"""The pixel-space autoencoder: lossless, VAE-shaped, and saved/loaded like any pipeline component."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from refcolor.diffusion.config import TINY, VaeSpec
from refcolor.diffusion.factory import build_pipeline
from refcolor.diffusion.patch_autoencoder import PatchAutoencoder, downsample_factor
from refcolor.diffusion.pipeline import ReferenceColorizationPipeline
from refcolor_protocol import ColorizeParams, Mode


def test_round_trip_is_exact_and_latents_are_patches() -> None:
    vae = PatchAutoencoder(patch_size=4)
    image = torch.rand(2, 3, 32, 48) * 2 - 1
    posterior = vae.encode(image).latent_dist
    latents = posterior.sample(generator=torch.Generator().manual_seed(0))
    assert latents.shape == (2, 48, 8, 12) and torch.equal(latents, posterior.mode())
    assert torch.equal(latents[0, ::16, 0, 0], image[0, :, 0, 0])  # channel c * 16 + 0 = pixel (0, 0)
    assert torch.equal(vae.decode(latents).sample, image)
    assert float(posterior.kl().abs().sum()) == 0
    assert downsample_factor(vae) == 4 and vae.latent_channels == 48
    with pytest.raises(ValueError, match="multiple of the patch size 4"):
        vae.encode(torch.zeros(1, 3, 30, 32))


def test_a_pixel_space_pipeline_runs_saves_and_reloads(tmp_path: Path, sketch, reference, sketch_mask) -> None:
    config = replace(TINY, name="tiny-pixels", vae=VaeSpec(patch_size=8, scaling_factor=2.0))
    pipe = build_pipeline(config)
    assert isinstance(pipe.vae, PatchAutoencoder) and pipe.unet.config.in_channels == 3 * 64
    params = ColorizeParams(mode=Mode.BOTH, steps=2, resolution=64)
    out = pipe(sketch, reference, sketch_mask, params=params, generator=torch.Generator().manual_seed(0))
    preview = pipe.preview_image(torch.zeros(1, 192, 8, 8))
    assert preview.shape == (64, 64, 4) and (preview[..., :3] == 128).all()  # zero latents = mid grey
    pipe.save_pretrained(tmp_path / "model")
    again = ReferenceColorizationPipeline.from_pretrained(tmp_path / "model")
    assert isinstance(again.vae, PatchAutoencoder) and again.vae.config.scaling_factor == 2.0
    repeat = again(sketch, reference, sketch_mask, params=params, generator=torch.Generator().manual_seed(0))
    assert np.array_equal(repeat.native, out.native)
