"""The denoiser: a diffusers ``UNet2DConditionModel`` with sketch features on its main path.

Sketch-encoder features are added to the hidden state after ``conv_in`` and after
every down block (official input blocks 0, 3, 6, 9 and 11 for an SD2.1-shaped UNet),
*before* the state is stored as a skip connection, so the skips carry them too, as
the official ``DualCondUNet`` does. diffusers' ControlNet/T2I-adapter residual
arguments add elsewhere (only to the skips, or before the downsampler), hence
this forward.

The cross-attention context is reference tokens; the two LoRA adapters live on it
through peft and are saved as peft adapter folders next to the base weights.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401  (pipeline loading looks it up here)
from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput
from safetensors.torch import save_file

from refcolor.diffusion.adapters import load_adapters, save_adapters
from refcolor.diffusion.config import UNetSpec

logger = logging.getLogger(__name__)

ADAPTER_FOLDER = "adapters"
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"


class SketchUNet(UNet2DConditionModel):
    """``UNet2DConditionModel`` + sketch-feature injection + saving its peft adapters."""

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        sketch_features: list[torch.Tensor] | None = None,
        cross_attention_kwargs: dict[str, Any] | None = None,
        return_dict: bool = True,
        prior: torch.Tensor | None = None,
    ) -> UNet2DConditionOutput | tuple[torch.Tensor]:
        """Predict the noise.

        Args:
            sample: (B, C, h, w) noisy latents.
            timestep: the diffusion timestep (scalar or (B,)).
            encoder_hidden_states: (B, T, D) reference tokens (ignored by split attention layers).
            sketch_features: ``len(down_blocks) + 1`` maps from :class:`SketchEncoder`, or None.
            cross_attention_kwargs: passed to every attention processor (``split=...``).
            prior: (B, P, h, w) colour prior for a UNet with ``in_channels = C + P``; None = zeros
                (no reference).
        """
        extra = self.config.in_channels - sample.shape[1]
        if extra < 0 or (prior is not None and prior.shape[1] != extra):
            raise ValueError(
                f"UNet takes {self.config.in_channels} input channels; got {sample.shape[1]} latent and "
                f"{0 if prior is None else prior.shape[1]} prior channels"
            )
        if extra:
            if prior is None:
                prior = sample.new_zeros(sample.shape[0], extra, *sample.shape[2:])
            sample = torch.cat([sample, prior.to(sample.dtype)], 1)
        if self.config.class_embed_type is not None or self.config.addition_embed_type is not None:
            raise ValueError("SketchUNet supports neither class nor addition embeddings")
        if sketch_features is not None and len(sketch_features) != len(self.down_blocks) + 1:
            raise ValueError(
                f"expected {len(self.down_blocks) + 1} sketch feature maps (conv_in + one per down block), "
                f"got {len(sketch_features)}"
            )
        upsample_factor = 2**self.num_upsamplers
        forward_upsample_size = any(dim % upsample_factor for dim in sample.shape[-2:])
        features = iter(sketch_features or ())

        emb = self.time_embedding(self.get_time_embed(sample=sample, timestep=timestep))  # (B, 4 * c0)
        hidden = self.conv_in(sample)  # (B, c0, h, w)
        if sketch_features is not None:
            hidden = hidden + next(features)
        skips: tuple[torch.Tensor, ...] = (hidden,)
        for block in self.down_blocks:
            if getattr(block, "has_cross_attention", False):
                hidden, residuals = block(
                    hidden_states=hidden,
                    temb=emb,
                    encoder_hidden_states=encoder_hidden_states,
                    cross_attention_kwargs=cross_attention_kwargs,
                )
            else:
                hidden, residuals = block(hidden_states=hidden, temb=emb)
            if sketch_features is not None:
                # The block's last skip *is* its output; it must carry the features too.
                hidden = hidden + next(features)
                residuals = (*residuals[:-1], hidden)
            skips += residuals

        if self.mid_block is not None:
            if getattr(self.mid_block, "has_cross_attention", False):
                hidden = self.mid_block(
                    hidden,
                    emb,
                    encoder_hidden_states=encoder_hidden_states,
                    cross_attention_kwargs=cross_attention_kwargs,
                )
            else:
                hidden = self.mid_block(hidden, emb)

        for i, block in enumerate(self.up_blocks):
            residuals = skips[-len(block.resnets) :]
            skips = skips[: -len(block.resnets)]
            upsample_size = (
                skips[-1].shape[2:] if forward_upsample_size and i < len(self.up_blocks) - 1 else None
            )
            if getattr(block, "has_cross_attention", False):
                hidden = block(
                    hidden_states=hidden,
                    temb=emb,
                    res_hidden_states_tuple=residuals,
                    encoder_hidden_states=encoder_hidden_states,
                    cross_attention_kwargs=cross_attention_kwargs,
                    upsample_size=upsample_size,
                )
            else:
                hidden = block(
                    hidden_states=hidden,
                    temb=emb,
                    res_hidden_states_tuple=residuals,
                    upsample_size=upsample_size,
                )

        if self.conv_norm_out is not None:
            hidden = self.conv_act(self.conv_norm_out(hidden))
        out = self.conv_out(hidden)
        return UNet2DConditionOutput(sample=out) if return_dict else (out,)

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        """Base weights as a plain diffusers UNet folder, adapters in ``adapters/<name>/`` (peft format).

        Sharding/variant options of diffusers are not supported here (the weights are written whole).
        """
        if not getattr(self, "peft_config", None):
            super().save_pretrained(save_directory, **kwargs)
            return
        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.save_config(str(directory))
        base = {
            key.replace(".base_layer.", "."): value.detach().contiguous()
            for key, value in self.state_dict().items()
            if ".lora_" not in key
        }
        save_file(base, str(directory / WEIGHTS_NAME), metadata={"format": "pt"})
        save_adapters(self, directory / ADAPTER_FOLDER)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> SketchUNet:
        """Load the base UNet, then its adapters when the folder has ``adapters/``."""
        model = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        folder = Path(pretrained_model_name_or_path) / (kwargs.get("subfolder") or "") / ADAPTER_FOLDER
        if folder.is_dir():
            load_adapters(model, folder)
            dtype = kwargs.get("dtype") or kwargs.get("torch_dtype")  # diffusers passes either name
            if dtype is not None and any(p.dtype != dtype for p in model.parameters()):  # peft made them fp32
                model.to(dtype)
        return model


def build_unet(spec: UNetSpec, latent_channels: int, sample_size: int) -> SketchUNet:
    """A randomly initialised SketchUNet of ``spec``'s shape; ``conv_in``'s prior channels start at zero,
    so a prior does nothing until training teaches the model to use it."""
    levels = len(spec.block_out_channels)
    if len(spec.attention_levels) != levels:
        raise ValueError(f"attention_levels has {len(spec.attention_levels)} entries for {levels} levels")
    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in spec.attention_levels)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(spec.attention_levels))
    unet = SketchUNet(
        sample_size=sample_size,
        in_channels=latent_channels + spec.prior_channels,
        out_channels=latent_channels,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=spec.block_out_channels,
        layers_per_block=spec.layers_per_block,
        # diffusers' historical misnomer: for this class "attention_head_dim" is the number of heads.
        attention_head_dim=tuple(c // spec.attention_head_dim for c in spec.block_out_channels),
        cross_attention_dim=spec.cross_attention_dim,
        norm_num_groups=spec.norm_num_groups,
        use_linear_projection=spec.use_linear_projection,
    )
    with torch.no_grad():
        unet.conv_in.weight[:, latent_channels:] = 0.0
    return unet
