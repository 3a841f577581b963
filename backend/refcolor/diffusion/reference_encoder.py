"""Reference encoders: an image -> local tokens (patch tokens, no CLS) for the UNet's cross-attention.

Pluggable: any module with ``encode_reference(pixels) -> tokens`` and an
``input_size`` attribute works. The built-in one is a CLIP vision tower through
transformers (``CLIPVisionModelWithProjection``), as the official model's
OpenCLIP ViT-H/14: tokens = visual_projection(post_layernorm(last_hidden_state))
with the CLS token dropped (``shared/official/switch_manifest_summary.txt``).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from refcolor.diffusion.config import ReferenceEncoderSpec

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@runtime_checkable
class ReferenceEncoder(Protocol):
    input_size: int  # square side the reference is resized to before encoding

    def encode_reference(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) RGB in [-1, 1] -> (B, T, D) tokens."""
        ...


def clip_vision_config(spec: ReferenceEncoderSpec) -> CLIPVisionConfig:
    return CLIPVisionConfig(
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        image_size=spec.image_size,
        patch_size=spec.patch_size,
        projection_dim=spec.projection_dim,
        hidden_act=spec.hidden_act,
    )


def clip_tokens(model: CLIPVisionModelWithProjection, pixels: torch.Tensor) -> torch.Tensor:
    """Local tokens of a CLIP vision tower: (B, 3, H, W) in [-1, 1] -> (B, patches, projection_dim)."""
    size = model.config.image_size
    if pixels.shape[-2:] != (size, size):
        pixels = F.interpolate(pixels, size=(size, size), mode="bicubic", align_corners=True, antialias=True)
    mean = torch.tensor(CLIP_MEAN, device=pixels.device, dtype=pixels.dtype).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=pixels.device, dtype=pixels.dtype).view(1, 3, 1, 1)
    pixel_values = ((pixels + 1) / 2 - mean) / std
    hidden = model.vision_model(pixel_values=pixel_values.to(model.dtype)).last_hidden_state  # (B, 1 + P, H)
    tokens = model.visual_projection(model.vision_model.post_layernorm(hidden))  # (B, 1 + P, D)
    return tokens[:, 1:]


def encoder_input_size(encoder: torch.nn.Module) -> int:
    """The square side ``encoder`` wants its reference at."""
    if isinstance(encoder, CLIPVisionModelWithProjection):
        return int(encoder.config.image_size)
    if isinstance(encoder, ReferenceEncoder):
        return int(encoder.input_size)
    raise TypeError(
        f"{type(encoder).__name__} is not a reference encoder: expected a CLIP vision tower "
        "or a module with encode_reference() and input_size"
    )


def encode_reference(encoder: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """Tokens of ``pixels`` (B, 3, S, S) in [-1, 1] with whichever encoder the pipeline has."""
    if isinstance(encoder, CLIPVisionModelWithProjection):
        return clip_tokens(encoder, pixels)
    if isinstance(encoder, ReferenceEncoder):
        return encoder.encode_reference(pixels)
    raise TypeError(
        f"{type(encoder).__name__} is not a reference encoder: expected a CLIP vision tower "
        "or a module with encode_reference() and input_size"
    )


def build_clip_encoder(spec: ReferenceEncoderSpec) -> CLIPVisionModelWithProjection:
    """A randomly initialised CLIP vision tower of ``spec``'s shape (real weights come from a checkpoint)."""
    return CLIPVisionModelWithProjection(clip_vision_config(spec)).eval()
