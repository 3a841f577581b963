"""Building a pipeline from a :class:`~refcolor.diffusion.config.ModelConfig` (random weights)."""

from __future__ import annotations

import logging
from typing import Any

import torch
from diffusers import AutoencoderKL

from refcolor.diffusion.adapters import add_split_adapters
from refcolor.diffusion.background import BackgroundEncoder
from refcolor.diffusion.config import ModelConfig
from refcolor.diffusion.patch_autoencoder import PatchAutoencoder
from refcolor.diffusion.pipeline import ReferenceColorizationPipeline
from refcolor.diffusion.reference_encoder import build_clip_encoder
from refcolor.diffusion.schedulers import default_scheduler
from refcolor.diffusion.sketch_encoder import SketchEncoder
from refcolor.diffusion.unet import build_unet

logger = logging.getLogger(__name__)


def _randomize_zero_inits(module: torch.nn.Module, std: float) -> None:
    """Give zero-initialised weights small random values, so every path of a random model matters."""
    for parameter in module.parameters():
        if not parameter.detach().any():
            parameter.data.normal_(0.0, std)


Components = dict[str, Any]
"""A pipeline's modules by name: diffusers and transformers models (their config, save and load
methods), typed Any as those libraries are to the type checker."""


def build_components(
    config: ModelConfig, seed: int = 0, every_path_random: bool = True
) -> Components:
    """The pipeline's modules for ``config`` with random weights, the same for the same ``seed``.

    Works under ``with torch.device("meta")`` too (shapes only, e.g. to check a converter's targets).

    Args:
        every_path_random: also randomise what is normally zero-initialised (sketch zero
            convolutions, the threshold embedding's last layer, the LoRA up-projections, the
            UNet's prior input channels), as
            test models need; False gives a freshly initialised trainable model.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        latent_factor = config.vae.downsample_factor
        vae: torch.nn.Module
        if config.vae.patch_size:
            vae = PatchAutoencoder(config.vae.patch_size, 3, config.vae.scaling_factor)
        else:
            vae = AutoencoderKL(
                in_channels=3,
                out_channels=3,
                down_block_types=("DownEncoderBlock2D",) * len(config.vae.block_out_channels),
                up_block_types=("UpDecoderBlock2D",) * len(config.vae.block_out_channels),
                block_out_channels=config.vae.block_out_channels,
                layers_per_block=config.vae.layers_per_block,
                latent_channels=config.vae.latent_channels,
                norm_num_groups=config.vae.norm_num_groups,
                sample_size=config.native_resolution,
                scaling_factor=config.vae.scaling_factor,
            )
        unet = build_unet(config.unet, config.vae.channels, config.native_resolution // latent_factor)
        add_split_adapters(
            unet, config.foreground_adapter, config.background_adapter, random_init=every_path_random
        )
        sketch_encoder = SketchEncoder(
            in_channels=config.sketch_encoder.in_channels,
            block_out_channels=config.unet.block_out_channels,
            stem_channels=config.sketch_encoder.stem_channels,
        )
        if sketch_encoder.downsample_factor != latent_factor:
            raise ValueError(
                f"{config.name}: the sketch stem downsamples by {sketch_encoder.downsample_factor} "
                "but the VAE "
                f"by {latent_factor}; give stem_channels log2({latent_factor}) + 1 entries"
            )
        spec = config.background
        background_encoder = BackgroundEncoder(
            dim=spec.dim,
            layers=spec.layers,
            learned_queries=spec.learned_queries,
            head_dim=spec.head_dim,
            mlp_ratio=spec.mlp_ratio,
            threshold_sinusoidal_dim=spec.threshold_sinusoidal_dim,
        )
        image_encoder = build_clip_encoder(config.reference_encoder)
        if every_path_random:
            _randomize_zero_inits(sketch_encoder, std=0.05)
            _randomize_zero_inits(background_encoder, std=0.05)
            if config.unet.prior_channels:  # the prior's zero-initialised input channels
                unet.conv_in.weight.data[:, config.vae.channels :].normal_(0.0, 0.05)
    return {
        "vae": vae.eval(),
        "unet": unet.eval(),
        "sketch_encoder": sketch_encoder.eval(),
        "background_encoder": background_encoder.eval(),
        "image_encoder": image_encoder,
    }


def build_pipeline(
    config: ModelConfig, seed: int = 0, every_path_random: bool = True
) -> ReferenceColorizationPipeline:
    """A pipeline of ``config``'s shapes with random weights (see :func:`build_components`)."""
    pipe = assemble_pipeline(config, build_components(config, seed, every_path_random))
    logger.debug("built %s pipeline (seed %d)", config.name, seed)
    return pipe


def assemble_pipeline(config: ModelConfig, parts: Components) -> ReferenceColorizationPipeline:
    """A pipeline around ``parts`` (the modules of :func:`build_components`) with ``config``'s settings."""
    return ReferenceColorizationPipeline(
        **parts,
        scheduler=default_scheduler(config.schedule),
        native_resolution=config.native_resolution,
        both_mode_shares_tokens=config.both_mode_shares_tokens,
        chroma_radius=config.chroma_radius,
        color_match=config.color_match,
        flatten=config.flatten,
        prior_strength=config.prior_strength,
    )
