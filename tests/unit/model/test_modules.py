"""The sketch encoder, the background recovery transformer, the threshold embedding and the UNet wiring.

Their equivalence with the authors' modules (through the converter) is tested in tests/unit/convert.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers import UNet2DConditionModel

from refcolor.diffusion.background import BackgroundEncoder
from refcolor.diffusion.config import TINY
from refcolor.diffusion.pipeline import ReferenceColorizationPipeline
from refcolor.diffusion.sketch_encoder import SketchEncoder

# ../shared/official beside the repository (CI checks it out there too)
OFFICIAL = Path(__file__).resolve().parents[3].parent / "shared" / "official"


def sketch_input(pipe: ReferenceColorizationPipeline, size: int = 64) -> torch.Tensor:
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_sketch_features_match_the_unet_main_path(pipe: ReferenceColorizationPipeline) -> None:
    unet = pipe.unet
    with torch.no_grad():
        features = pipe.sketch_encoder(sketch_input(pipe))  # 64 px -> 8x8 latent
        hidden = unet.conv_in(torch.zeros(1, 4, 8, 8))
        shapes = [hidden.shape]
        emb = unet.time_embedding(unet.get_time_embed(sample=hidden, timestep=1))
        for block in unet.down_blocks:
            kwargs = (
                {"encoder_hidden_states": torch.zeros(1, 1, 32)}
                if getattr(block, "has_cross_attention", False)
                else {}
            )
            hidden, _ = block(hidden_states=hidden, temb=emb, **kwargs)
            shapes.append(hidden.shape)
    assert [f.shape for f in features] == shapes


def test_fresh_sketch_encoder_and_threshold_embedding_add_nothing() -> None:
    encoder = SketchEncoder(block_out_channels=(16, 16, 32, 32), stem_channels=(8, 16, 16, 32))
    with torch.no_grad():
        assert all(not f.any() for f in encoder(torch.randn(1, 3, 64, 64)))
        assert (
            not BackgroundEncoder(dim=32, layers=1, learned_queries=4, head_dim=16)
            .threshold_embedding(0.4)
            .any()
        )


def test_sketch_features_reach_the_skip_connections(pipe: ReferenceColorizationPipeline) -> None:
    """Features are added before the state is stored as a skip: the last up block's skips carry them."""
    unet = pipe.unet
    sample, tokens = torch.randn(1, 4, 8, 8), torch.randn(1, 12, 32)
    zeros = [
        torch.zeros(s) for s in [(1, 16, 8, 8), (1, 16, 4, 4), (1, 16, 2, 2), (1, 32, 1, 1), (1, 32, 1, 1)]
    ]
    shifted = [z.clone() for z in zeros]
    shifted[0] += 0.5
    captured: list[tuple[torch.Tensor, ...]] = []
    handle = unet.up_blocks[-1].register_forward_pre_hook(
        lambda module, args, kwargs: captured.append(kwargs["res_hidden_states_tuple"]), with_kwargs=True
    )
    try:
        with torch.no_grad():
            unet(sample, 10, tokens, zeros)
            unet(sample, 10, tokens, shifted)
    finally:
        handle.remove()
    first_skip_plain, first_skip_shifted = captured[0][0], captured[1][0]  # conv_in's output
    torch.testing.assert_close(first_skip_shifted - first_skip_plain, torch.full_like(first_skip_plain, 0.5))


def test_without_sketch_the_forward_is_diffusers_own(pipe: ReferenceColorizationPipeline) -> None:
    sample, tokens = torch.randn(2, 4, 8, 8), torch.randn(2, 12, 32)
    with torch.no_grad():
        ours = pipe.unet(sample, 700, tokens).sample
        zero_features = pipe.unet(sample, 700, tokens, [torch.zeros(1)] * 5).sample
        theirs = UNet2DConditionModel.forward(pipe.unet, sample, 700, tokens).sample
        with_sketch = pipe.unet(sample, 700, tokens, pipe.sketch_encoder(sketch_input(pipe))).sample
    assert torch.equal(ours, theirs)
    assert torch.equal(zero_features, theirs)
    assert not torch.allclose(with_sketch, theirs)


def test_wrong_number_of_sketch_features_is_refused(pipe: ReferenceColorizationPipeline) -> None:
    with pytest.raises(ValueError, match=r"expected 5 sketch feature maps.*got 2"):
        pipe.unet(torch.randn(1, 4, 8, 8), 1, torch.randn(1, 4, 32), [torch.zeros(1)] * 2)


def test_recovery_transformer_is_a_set_function_of_its_tokens(pipe: ReferenceColorizationPipeline) -> None:
    tokens = torch.randn(2, 20, 32, generator=torch.Generator().manual_seed(3))
    shuffled = tokens[:, torch.randperm(20, generator=torch.Generator().manual_seed(4))]
    with torch.no_grad():
        out = pipe.background_encoder.recover(tokens, 0.5)
        again = pipe.background_encoder.recover(shuffled, 0.5)
        other_threshold = pipe.background_encoder.recover(tokens, 0.2)
    assert out.shape == (2, TINY.background.learned_queries, 32)
    torch.testing.assert_close(out, again, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(out, other_threshold)


@pytest.mark.skipif(not (OFFICIAL / "switch_manifest.json").is_file(), reason="official manifest not present")
def test_v1_5_has_the_official_parameter_counts() -> None:
    """Each v1.5 component holds as many weights as its official counterpart (a converter's target)."""
    import json

    from refcolor.diffusion.config import V1_5
    from refcolor.diffusion.factory import build_components

    manifest = json.loads((OFFICIAL / "switch_manifest.json").read_text())["keys"]

    def official(*prefixes: str, lora: bool | None = None) -> int:
        total = 0
        for key, shape in manifest.items():
            if key.startswith(prefixes) and (lora is None or ("lora_" in key) == lora):
                total += int(torch.tensor(shape).prod()) if shape else 1
        return total

    def ours(module: torch.nn.Module, lora: bool | None = None) -> int:
        return sum(p.numel() for n, p in module.named_parameters() if lora is None or ("lora_" in n) == lora)

    with torch.device("meta"):
        parts = build_components(V1_5, every_path_random=False)
    assert ours(parts["sketch_encoder"]) == official("control_encoder.")
    assert ours(parts["background_encoder"]) == official("thresh_embedder.", "transformer.")
    assert ours(parts["vae"]) == official("first_stage_model.")
    assert ours(parts["unet"], lora=False) == official("model.diffusion_model.", lora=False)
    assert ours(parts["unet"], lora=True) == official("model.diffusion_model.", lora=True)
    assert ours(parts["image_encoder"]) == 632_076_800  # OpenCLIP ViT-H/14 visual (not in the release)
