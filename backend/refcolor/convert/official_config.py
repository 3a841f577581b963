"""The official hyperparameters (``tiny_config.json``'s format) as a :class:`ModelConfig`.

``refcolor convert --config tiny_config.json`` reads the authors' variant description;
without it the released v1.5 shapes are used. A description that matches a known
configuration returns it (``official-tiny`` for the shared tiny checkpoint, ``v1.5``).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from refcolor.diffusion.config import (
    OFFICIAL_TINY,
    V1_5,
    AdapterSpec,
    BackgroundSpec,
    ModelConfig,
    ScheduleSpec,
    UNetSpec,
    VaeSpec,
)

FRACTION_RANK = re.compile(r"int\(\s*([0-9.]+)\s*\*\s*min\(.*\)\s*\)")


def _rank(value: Any) -> AdapterSpec:
    if isinstance(value, int):
        return AdapterSpec(rank=value)
    match = FRACTION_RANK.fullmatch(str(value).strip())
    if not match:
        raise ValueError(f"LoRA rank {value!r}: expected an int or 'int(F * min(in_features, out_features))'")
    return AdapterSpec(rank_fraction=float(match[1]))


def _same_shapes(a: ModelConfig, b: ModelConfig) -> bool:
    return replace(a, name=b.name) == b


def config_from_official(data: dict[str, Any]) -> ModelConfig:
    """A :class:`ModelConfig` from the official variant description (see ``tiny_config.json``).

    Raises:
        ValueError: a field is missing or inconsistent (the message names it).
    """
    try:
        unet, vae, sketch = data["unet"], data["vae"], data["sketch_encoder"]
        background, threshold, lora = data["background_transformer"], data["threshold_embedder"], data["lora"]
        channels = tuple(unet["model_channels"] * m for m in unet["channel_mult"])
        downsample_factors = [2**i for i in range(len(channels))]
        unet_spec = UNetSpec(
            block_out_channels=channels,
            layers_per_block=unet["num_res_blocks"],
            attention_head_dim=unet["num_head_channels"],
            cross_attention_dim=unet["context_dim"],
            attention_levels=tuple(ds in unet["attention_resolutions"] for ds in downsample_factors),
        )
        vae_spec = VaeSpec(
            block_out_channels=tuple(vae["ch"] * m for m in vae["ch_mult"]),
            layers_per_block=vae["num_res_blocks"],
            latent_channels=vae["z_channels"],
            scaling_factor=vae.get("scale_factor", 0.18215),
        )
        if sketch["model_channels"] != unet["model_channels"]:
            raise ValueError(
                f"sketch_encoder.model_channels={sketch['model_channels']} must equal "
                f"unet.model_channels={unet['model_channels']}"
            )
        background_spec = BackgroundSpec(
            dim=background["dim"],
            layers=background["layers"],
            learned_queries=background["learned_queries"],
            head_dim=background["head_dim"],
            threshold_sinusoidal_dim=threshold["sinusoidal_dim"],
        )
        schedule = data.get("schedule", {})
        schedule_spec = ScheduleSpec(
            num_train_timesteps=schedule.get("num_train_timesteps", 1000),
            beta_start=schedule.get("beta_start", 0.00085),
            beta_end=schedule.get("beta_end", 0.012),
            beta_schedule=schedule.get("beta_schedule", "scaled_linear"),
            prediction_type=schedule.get("prediction", "epsilon"),
        )
        foreground, background_rank = _rank(lora["foreground_rank"]), _rank(lora["background_rank"])
    except KeyError as missing:
        raise ValueError(f"official config: missing field {missing}") from None
    # The reference tokens come from CLIP ViT-H/14 for the real width; smaller variants get the
    # tiny stand-in CLIP tower (their oracle feeds tokens directly).
    base = V1_5 if unet_spec.cross_attention_dim == V1_5.unet.cross_attention_dim else OFFICIAL_TINY
    config = ModelConfig(
        name="official-custom",
        native_resolution=base.native_resolution,
        unet=unet_spec,
        vae=vae_spec,
        sketch_encoder=base.sketch_encoder,
        reference_encoder=replace(base.reference_encoder, projection_dim=unet_spec.cross_attention_dim),
        background=background_spec,
        schedule=schedule_spec,
        foreground_adapter=foreground,
        background_adapter=background_rank,
        both_mode_shares_tokens=True,  # the official "both" context
    )
    for known in (V1_5, OFFICIAL_TINY):
        if _same_shapes(config, known):
            return known
    return config


def load_official_config(path: str | Path) -> ModelConfig:
    """:func:`config_from_official` of a JSON file."""
    return config_from_official(json.loads(Path(path).read_text()))


def resolve_config(value: str | Path) -> ModelConfig:
    """``--config``: an official JSON description (``tiny_config.json``'s format) or a config name.

    Raises:
        ValueError: neither a readable JSON file nor a known name.
    """
    from refcolor.diffusion.config import get_config

    path = Path(value)
    if path.suffix == ".json" or path.is_file():
        if not path.is_file():
            raise ValueError(f"--config {value}: no such file")
        return load_official_config(path)
    try:
        return get_config(str(value))
    except KeyError as error:
        raise ValueError(f"--config {value}: {error.args[0]}; or give an official JSON description") from None
