"""The two peft adapters: ranks, always active in peft (each call's mode picks one), loud failures."""

from __future__ import annotations

import pytest
import torch
from peft.tuners.lora import LoraLayer
from peft.tuners.tuners_utils import BaseTunerLayer

from refcolor.diffusion.adapters import activate_adapters, add_split_adapters
from refcolor.diffusion.attention import SplitAttentionInputs
from refcolor.diffusion.config import TINY, AdapterSpec
from refcolor.diffusion.pipeline import ReferenceColorizationPipeline
from refcolor.diffusion.unet import build_unet
from refcolor_protocol import Mode


def lora_layers(pipe: ReferenceColorizationPipeline) -> dict[str, LoraLayer]:
    return {name: m for name, m in pipe.unet.named_modules() if isinstance(m, LoraLayer)}


def test_adapters_sit_on_every_cross_attention_projection_only(pipe: ReferenceColorizationPipeline) -> None:
    layers = lora_layers(pipe)
    attn2 = [n for n, _ in pipe.unet.named_modules() if n.endswith("attn2")]
    assert len(attn2) == 16  # as the official model: 16 transformer blocks
    assert sorted(layers) == sorted(f"{n}.{p}" for n in attn2 for p in ("to_q", "to_k", "to_v"))


def test_ranks_are_foreground_4_and_background_half_the_width(pipe: ReferenceColorizationPipeline) -> None:
    for name, layer in lora_layers(pipe).items():
        base = layer.get_base_layer()
        assert layer.lora_A["foreground"].weight.shape == (4, base.in_features), name
        half = int(0.5 * min(base.in_features, base.out_features))
        assert layer.lora_A["background"].weight.shape == (half, base.in_features), name
        assert layer.lora_B["background"].weight.shape == (base.out_features, half), name
        assert layer.scaling == {"foreground": 1.0, "background": 1.0}, name


def unet_in(
    pipe: ReferenceColorizationPipeline, mode: Mode, sample: torch.Tensor, tokens: torch.Tensor
) -> torch.Tensor:
    """The UNet's output for a call in ``mode`` (every position foreground)."""
    kwargs = {"split": SplitAttentionInputs(mode, tokens)}
    with torch.no_grad():
        return pipe.unet(sample, 300, tokens, cross_attention_kwargs=kwargs).sample


def test_both_adapters_stay_active_in_peft_whatever_mode_a_call_uses(pipe: ReferenceColorizationPipeline) -> None:
    g = torch.Generator().manual_seed(0)
    sample, tokens = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 12, 32, generator=g)
    for mode in (Mode.FOREGROUND, Mode.PLAIN, Mode.BACKGROUND, Mode.BOTH):
        unet_in(pipe, mode, sample, tokens)
        for name, layer in lora_layers(pipe).items():
            assert not layer.disable_adapters and set(layer.active_adapters) == {"foreground", "background"}, name


def test_a_mode_changes_the_output_only_through_its_adapters(pipe: ReferenceColorizationPipeline) -> None:
    """Zeroing the foreground up-projections changes foreground mode only (the official ablation check)."""
    g = torch.Generator().manual_seed(0)
    sample, tokens = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 12, 32, generator=g)

    def run(mode: str) -> torch.Tensor:
        return unet_in(pipe, Mode(mode), sample, tokens)

    before = {m: run(m) for m in ("plain", "foreground", "background")}
    saved = {n: layer.lora_B["foreground"].weight.clone() for n, layer in lora_layers(pipe).items()}
    try:
        for layer in lora_layers(pipe).values():
            torch.nn.init.zeros_(layer.lora_B["foreground"].weight)
        after = {m: run(m) for m in before}
    finally:
        for n, layer in lora_layers(pipe).items():
            layer.lora_B["foreground"].weight.data.copy_(saved[n])
    assert torch.equal(before["plain"], after["plain"])
    assert torch.equal(before["background"], after["background"])
    assert not torch.allclose(before["foreground"], after["foreground"])
    assert torch.equal(after["foreground"], before["plain"])  # a zero adapter is the base model


def test_models_without_the_named_adapters_are_refused() -> None:
    unet = build_unet(TINY.unet, 4, 8)
    with pytest.raises(
        ValueError, match=r"expected peft adapters \['background', 'foreground'\], found \[\]"
    ):
        activate_adapters(unet)
    from peft import LoraConfig

    unet.add_adapter(LoraConfig(r=2, target_modules=["to_q"]), adapter_name="style")
    with pytest.raises(ValueError, match=r"found \['style'\]"):
        activate_adapters(unet)


def test_adapter_spec_needs_exactly_one_rank() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        AdapterSpec(rank=4, rank_fraction=0.5)
    with pytest.raises(ValueError, match="exactly one"):
        AdapterSpec()


def test_fresh_adapters_start_as_no_ops() -> None:
    unet = build_unet(TINY.unet, 4, 8).eval()
    g = torch.Generator().manual_seed(0)
    sample, tokens = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 12, 32, generator=g)
    with torch.no_grad():
        base = unet(sample, 10, tokens).sample
        add_split_adapters(unet, TINY.foreground_adapter, TINY.background_adapter)
        assert all(not m.disable_adapters for m in unet.modules() if isinstance(m, BaseTunerLayer))
        for mode in Mode:
            split = SplitAttentionInputs(mode, tokens)
            assert torch.equal(unet(sample, 10, tokens, cross_attention_kwargs={"split": split}).sample, base)
