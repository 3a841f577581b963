"""The ``foreground`` and ``background`` LoRA adapters (peft) and the inference modes that switch them.

Both adapters sit on ``attn2.to_q/to_k/to_v`` of every transformer block (paper Sec. 3.2,
official ``LoraModules``): no bias, scale 1 (``lora_alpha == r`` on every layer).
Both stay active in peft; the inference mode (paper Sec. 3.3), an argument of every
cross-attention call, picks the adapter of each side (:data:`refcolor.diffusion.attention.MODE_ADAPTERS`):

========== ============================ =============================================
mode       active adapters              token sets
========== ============================ =============================================
plain      none (adapters disabled)     the reference's tokens everywhere
foreground foreground                   the reference's tokens on both sides
background background                   reference tokens / recovered background tokens
both       foreground, background       foreground tokens / background tokens
========== ============================ =============================================
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, get_peft_model_state_dict, set_peft_model_state_dict
from peft.tuners.tuners_utils import BaseTunerLayer
from safetensors.torch import load_file, save_file

from refcolor.diffusion.attention import BACKGROUND, FOREGROUND
from refcolor.diffusion.config import AdapterSpec

logger = logging.getLogger(__name__)

ADAPTER_NAMES = (FOREGROUND, BACKGROUND)
AdaptableModel = Any
"""A diffusers model with peft support (``PeftAdapterMixin``: add_adapter, set_adapters, peft_config)."""
TARGET_PATTERN = r".*attn2\.to_[qkv]$"  # every cross-attention q/k/v projection


def _target_layers(model: torch.nn.Module) -> dict[str, torch.nn.Linear]:
    layers = {name: module for name, module in model.named_modules() if re.fullmatch(TARGET_PATTERN, name)}
    if not layers:
        raise ValueError(
            f"{type(model).__name__} has no cross-attention projections matching {TARGET_PATTERN}"
        )
    return layers


def lora_config(model: torch.nn.Module, spec: AdapterSpec, random_init: bool = False) -> LoraConfig:
    """A peft ``LoraConfig`` for ``spec`` on ``model``'s cross-attention projections.

    Per-layer ranks (``rank_fraction``) become peft's ``rank_pattern``; ``alpha_pattern`` keeps the
    scale at 1 everywhere. ``random_init`` makes the up-projections random too (peft's default is
    zero, a no-op adapter), for random-weight test models where every path must matter.
    """
    ranks: dict[str, int] = {}
    for name, layer in _target_layers(model).items():
        base = layer.get_base_layer() if isinstance(layer, BaseTunerLayer) else layer
        ranks[name] = spec.rank_for(base.in_features, base.out_features)
    default_rank = max(set(ranks.values()), key=list(ranks.values()).count)
    pattern = {re.escape(name): rank for name, rank in ranks.items() if rank != default_rank}
    return LoraConfig(
        r=default_rank,
        lora_alpha=default_rank,
        rank_pattern=pattern,
        alpha_pattern=dict(pattern),
        target_modules=TARGET_PATTERN,
        lora_dropout=0.0,
        bias="none",
        init_lora_weights=not random_init,
    )


def add_split_adapters(
    model: AdaptableModel,
    foreground: AdapterSpec,
    background: AdapterSpec,
    random_init: bool = False,
) -> None:
    """Add the ``foreground`` and ``background`` adapters to ``model`` (a diffusers UNet), both active."""
    for name, spec in ((FOREGROUND, foreground), (BACKGROUND, background)):
        with (
            warnings.catch_warnings()
        ):  # peft warns that a model with two adapters is unusual; it is the point
            warnings.simplefilter("ignore", UserWarning)
            model.add_adapter(lora_config(model, spec, random_init), adapter_name=name)
    activate_adapters(model)


def _tuner_layers(model: torch.nn.Module) -> list[BaseTunerLayer]:
    return [m for m in model.modules() if isinstance(m, BaseTunerLayer)]


def check_adapters(model: torch.nn.Module) -> None:
    """Raise ``ValueError`` unless ``model`` has exactly the adapters ``foreground`` and ``background``."""
    found = set(getattr(model, "peft_config", {}) or {})
    if found != set(ADAPTER_NAMES):
        raise ValueError(
            f"expected peft adapters {sorted(ADAPTER_NAMES)}, found {sorted(found)}: "
            "build the model with add_split_adapters() or load one saved with save_adapters()"
        )


def activate_adapters(model: AdaptableModel) -> None:
    """Keep both adapters active on ``model``: which one a side uses is the mode's business, per call
    (:class:`refcolor.diffusion.attention.SplitAttentionInputs`), and a call without a mode takes the base
    weights (:class:`refcolor.diffusion.attention.SplitCrossAttnProcessor`).

    Raises:
        ValueError: ``model`` lacks the two adapters.
    """
    check_adapters(model)
    model.enable_adapters()
    model.set_adapters(list(ADAPTER_NAMES))


def save_adapters(model: AdaptableModel, directory: str | Path) -> None:
    """Write each adapter as a peft adapter folder.

    Layout: ``directory/<name>/adapter_config.json`` and ``adapter_model.safetensors``.
    """
    check_adapters(model)
    for name in ADAPTER_NAMES:
        folder = Path(directory) / name
        folder.mkdir(parents=True, exist_ok=True)
        model.peft_config[name].save_pretrained(str(folder))
        state = get_peft_model_state_dict(model, adapter_name=name)
        save_file(
            {k: v.detach().contiguous() for k, v in state.items()}, str(folder / "adapter_model.safetensors")
        )


def load_adapters(model: AdaptableModel, directory: str | Path) -> None:
    """Add the adapters written by :func:`save_adapters` to ``model``, both active.

    Raises:
        FileNotFoundError: an adapter folder is missing.
        ValueError: the saved weights do not fit ``model``.
    """
    for name in ADAPTER_NAMES:
        folder = Path(directory) / name
        if not (folder / "adapter_config.json").is_file():
            raise FileNotFoundError(f"adapter {name!r} not found: expected {folder}/adapter_config.json")
        config = LoraConfig.from_pretrained(str(folder))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            model.add_adapter(config, adapter_name=name)
        state = load_file(str(folder / "adapter_model.safetensors"))
        result = set_peft_model_state_dict(model, state, adapter_name=name)
        unexpected = list(getattr(result, "unexpected_keys", []) or [])
        if unexpected:
            raise ValueError(f"adapter {name!r} in {folder} has keys this model lacks, e.g. {unexpected[:3]}")
    activate_adapters(model)
    logger.debug("loaded adapters %s from %s", ADAPTER_NAMES, directory)
