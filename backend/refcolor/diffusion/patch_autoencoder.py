"""A lossless "autoencoder" that only rearranges pixels: ``p x p`` patches become channels.

Small models trained on little compute diffuse in pixel space better than through a small
learned VAE: such a VAE needs long training before its latents carry colour at all (a
normalised convolutional autoencoder learns luminance first), and whatever it gets wrong
the diffusion model cannot fix. Patching keeps the latent grid as small as a VAE's
(``H/p x W/p``) at ``3 p^2`` channels, costs nothing and loses nothing. It has the
encode/decode interface of diffusers' ``AutoencoderKL`` (a deterministic latent
distribution), so the pipeline uses either.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.modeling_utils import ModelMixin


class PatchAutoencoder(ModelMixin, ConfigMixin):
    """(B, C, H, W) in [-1, 1] <-> (B, C * p^2, H / p, W / p) latents (times ``scaling_factor``).

    Args:
        patch_size: ``p``, the downsampling factor.
        in_channels: image channels.
        scaling_factor: what latents are multiplied by for the diffusion model (1 / their std).
    """

    @register_to_config
    def __init__(self, patch_size: int = 4, in_channels: int = 3, scaling_factor: float = 1.0) -> None:
        super().__init__()
        # A parameterless module has no dtype/device of its own; this buffer gives it both.
        self.register_buffer("anchor", torch.zeros(()), persistent=False)
        self.anchor: torch.Tensor

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        """Only the config: there are no weights (diffusers' saver writes no file for an empty model)."""
        Path(save_directory).mkdir(parents=True, exist_ok=True)
        self.save_config(save_directory)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> PatchAutoencoder:
        """Build from the saved config; ``dtype`` (or ``torch_dtype``) is honoured, other loading options
        do not apply."""
        config = cls.load_config(pretrained_model_name_or_path, subfolder=kwargs.get("subfolder"))
        model = cls.from_config(config)
        dtype = kwargs.get("dtype") or kwargs.get("torch_dtype")  # diffusers passes either name
        return model.to(dtype) if dtype is not None and dtype != model.dtype else model

    @property
    def latent_channels(self) -> int:
        return int(self.config.in_channels) * int(self.config.patch_size) ** 2

    @property
    def downsample_factor(self) -> int:
        return int(self.config.patch_size)

    def encode(
        self, x: torch.Tensor, return_dict: bool = True
    ) -> AutoencoderKLOutput | tuple[DiagonalGaussianDistribution]:
        patch = int(self.config.patch_size)
        if x.shape[-1] % patch or x.shape[-2] % patch:
            raise ValueError(f"image size {tuple(x.shape[-2:])} is not a multiple of the patch size {patch}")
        mean = F.pixel_unshuffle(x, patch)
        distribution = DiagonalGaussianDistribution(torch.cat([mean, torch.zeros_like(mean)], 1), deterministic=True)
        return AutoencoderKLOutput(latent_dist=distribution) if return_dict else (distribution,)

    def decode(
        self, z: torch.Tensor, return_dict: bool = True, **kwargs: object
    ) -> DecoderOutput | tuple[torch.Tensor]:
        image = F.pixel_shuffle(z, int(self.config.patch_size))
        return DecoderOutput(sample=image) if return_dict else (image,)

    # diffusers' memory switches (pipelines call them on any VAE): patching needs no memory.
    def enable_tiling(self, use_tiling: bool = True) -> None:
        return None

    def disable_tiling(self) -> None:
        return None

    def enable_slicing(self) -> None:
        return None

    def disable_slicing(self) -> None:
        return None


def downsample_factor(vae: Any) -> int:
    """How much smaller than the image ``vae``'s latent grid is (a PatchAutoencoder or AutoencoderKL)."""
    if isinstance(vae, PatchAutoencoder):
        return vae.downsample_factor
    return 2 ** (len(vae.config.block_out_channels) - 1)
