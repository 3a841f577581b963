"""Split cross-attention: each side sees only its own tokens through the adapter its mode names, and
plain mode is diffusers' processor on the base weights."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from refcolor.diffusion.adapters import activate_adapters
from refcolor.diffusion.attention import SplitAttentionInputs, SplitCrossAttnProcessor, masks_per_level
from refcolor.diffusion.pipeline import ReferenceColorizationPipeline
from refcolor_protocol import Mode

TOKENS, WIDTH = 12, 32


def first_attn2(pipe: ReferenceColorizationPipeline) -> Attention:
    return pipe.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn2


def inputs(
    batch: int = 2, positions: int = 64, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    channels = 16
    hidden = torch.randn(batch, positions, channels, generator=g)
    return (
        hidden,
        torch.randn(batch, TOKENS, WIDTH, generator=g),
        torch.randn(batch, TOKENS, WIDTH, generator=g),
    )


def half_mask(positions: int = 64) -> torch.Tensor:
    mask = torch.zeros(1, positions, dtype=torch.bool)
    mask[0, ::3] = True
    return mask


@contextmanager
def peft_state(pipe: ReferenceColorizationPipeline, *adapters: str) -> Iterator[None]:
    """peft's own switch (``adapters`` active, none: disabled), for reference computations through
    peft's normal forward; both adapters active again afterwards, as the pipeline keeps them."""
    if adapters:
        pipe.unet.set_adapters(list(adapters))
    else:
        pipe.unet.disable_adapters()
    try:
        yield
    finally:
        activate_adapters(pipe.unet)


def run_split(
    attn: Attention,
    hidden: torch.Tensor,
    fg: torch.Tensor,
    bg: torch.Tensor,
    mask: torch.Tensor,
    mode: Mode = Mode.BOTH,
    **scales: float,
) -> torch.Tensor:
    split = SplitAttentionInputs(mode, fg, bg, {hidden.shape[1]: mask}, **scales)
    with torch.no_grad():
        return attn(hidden, encoder_hidden_states=fg, split=split)


def two_pass_reference(
    pipe: ReferenceColorizationPipeline,
    attn: Attention,
    hidden: torch.Tensor,
    fg: torch.Tensor,
    bg: torch.Tensor,
    mask: torch.Tensor,
    fg_scale: float = 1.0,
    bg_scale: float = 1.0,
    merge: float = 0.0,
) -> torch.Tensor:
    """The official formula: two full attentions (each through its own adapter via peft's normal forward)."""

    def branch(adapter: str, tokens: torch.Tensor) -> torch.Tensor:
        with peft_state(pipe, adapter):
            q, k, v = attn.to_q(hidden), attn.to_k(tokens), attn.to_v(tokens)
        b, heads = hidden.shape[0], attn.heads
        q, k, v = (t.view(b, -1, heads, t.shape[-1] // heads).transpose(1, 2) for t in (q, k, v))
        return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, -1, attn.inner_dim)

    with torch.no_grad():
        out_fg = branch("foreground", fg) * fg_scale
        out_bg = branch("background", bg) * bg_scale
        out_fg = out_fg * (1 - merge) + out_bg * merge
        return attn.to_out[0](torch.where(mask[..., None], out_fg, out_bg))


def test_background_tokens_do_not_reach_foreground_positions(pipe: ReferenceColorizationPipeline) -> None:
    attn, mask = first_attn2(pipe), half_mask()
    hidden, fg, bg = inputs()
    before = run_split(attn, hidden, fg, bg, mask)
    after_bg = run_split(attn, hidden, fg, bg + 3.0, mask)
    after_fg = run_split(attn, hidden, fg * -2.0, bg, mask)
    fg_pos, bg_pos = mask[0], ~mask[0]
    assert torch.equal(before[:, fg_pos], after_bg[:, fg_pos])
    assert not torch.allclose(before[:, bg_pos], after_bg[:, bg_pos])
    assert torch.equal(before[:, bg_pos], after_fg[:, bg_pos])
    assert not torch.allclose(before[:, fg_pos], after_fg[:, fg_pos])


def test_all_foreground_mask_reduces_both_to_foreground_only(pipe: ReferenceColorizationPipeline) -> None:
    attn = first_attn2(pipe)
    hidden, fg, bg = inputs()
    both = run_split(attn, hidden, fg, bg, torch.ones(1, 64, dtype=torch.bool))
    with torch.no_grad(), peft_state(pipe, "foreground"):
        processor = attn.processor
        attn.set_processor(AttnProcessor2_0())  # diffusers' attention through peft's foreground adapter
        try:
            foreground_only = attn(hidden, encoder_hidden_states=fg)
        finally:
            attn.set_processor(processor)
    torch.testing.assert_close(both, foreground_only, rtol=1e-5, atol=1e-6)


def test_the_mode_is_an_argument_of_each_call_not_a_switch(pipe: ReferenceColorizationPipeline) -> None:
    # The scenario (issue 15): the mode reached the processors as hidden peft state, so a call made
    # after another job switched modes used the other job's adapters. Now each call names its mode,
    # peft keeps both adapters active, and calls in any order give the same results.
    attn, mask = first_attn2(pipe), half_mask()
    hidden, fg, bg = inputs(seed=2)
    results = {mode: run_split(attn, hidden, fg, bg, mask, mode) for mode in Mode}
    for mode in reversed(list(Mode)):
        torch.testing.assert_close(run_split(attn, hidden, fg, bg, mask, mode), results[mode], rtol=0, atol=0)
    assert not torch.allclose(results[Mode.PLAIN], results[Mode.BOTH])
    assert not torch.allclose(results[Mode.FOREGROUND], results[Mode.BACKGROUND])
    layer = attn.to_q
    assert not layer.disable_adapters and set(layer.active_adapters) == {"foreground", "background"}
    # plain takes the base weights on both sides: as the official formula with no adapter at all
    with torch.no_grad(), peft_state(pipe):
        base = AttnProcessor2_0()
        fg_out, bg_out = base(attn, hidden, fg), base(attn, hidden, bg)
    torch.testing.assert_close(results[Mode.PLAIN], torch.where(mask[..., None], fg_out, bg_out), rtol=1e-5, atol=1e-5)


def test_a_mode_needing_an_adapter_refuses_a_model_with_adapters_disabled(pipe: ReferenceColorizationPipeline) -> None:
    attn, mask = first_attn2(pipe), half_mask()
    hidden, fg, bg = inputs()
    with peft_state(pipe), pytest.raises(ValueError, match="'foreground' requested but peft has the adapters disabled"):
        run_split(attn, hidden, fg, bg, mask, Mode.FOREGROUND)


@pytest.mark.parametrize("scales", [{}, {"foreground_scale": 0.7, "background_scale": 1.3}, {"merge": 0.4}])
def test_split_equals_the_two_full_pass_formula(
    pipe: ReferenceColorizationPipeline, scales: dict[str, float]
) -> None:
    attn, mask = first_attn2(pipe), half_mask()
    hidden, fg, bg = inputs(seed=1)
    split = run_split(attn, hidden, fg, bg, mask, **scales)
    expected = two_pass_reference(
        pipe,
        attn,
        hidden,
        fg,
        bg,
        mask,
        scales.get("foreground_scale", 1.0),
        scales.get("background_scale", 1.0),
        scales.get("merge", 0.0),
    )
    torch.testing.assert_close(split, expected, rtol=1e-5, atol=1e-5)


def test_per_sample_masks_match_separate_calls(pipe: ReferenceColorizationPipeline) -> None:
    attn = first_attn2(pipe)
    hidden, fg, bg = inputs()
    masks = torch.stack([half_mask()[0], ~half_mask()[0]])  # (2, N), different per sample
    together = run_split(attn, hidden, fg, bg, masks)
    for i in range(2):
        alone = run_split(attn, hidden[i : i + 1], fg[i : i + 1], bg[i : i + 1], masks[i : i + 1])
        torch.testing.assert_close(together[i : i + 1], alone, rtol=1e-5, atol=1e-6)


def test_plain_mode_matches_diffusers_processor_exactly(pipe: ReferenceColorizationPipeline) -> None:
    # A call without a mode (no ``split``) takes the base weights although peft keeps both adapters
    # active: exactly diffusers' processor on a model with the adapters disabled.
    g = torch.Generator().manual_seed(0)
    sample, tokens = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, TOKENS, WIDTH, generator=g)
    with torch.no_grad():
        ours = pipe.unet(sample, 500, tokens).sample
        processors = pipe.unet.attn_processors
        pipe.unet.set_attn_processor(AttnProcessor2_0())
        try:
            with peft_state(pipe):
                theirs = pipe.unet(sample, 500, tokens).sample
        finally:
            pipe.unet.set_attn_processor(processors)
    assert isinstance(first_attn2(pipe).processor, SplitCrossAttnProcessor)
    assert torch.equal(ours, theirs)


def test_missing_level_mask_names_what_was_given(pipe: ReferenceColorizationPipeline) -> None:
    hidden, fg, bg = inputs()
    split = SplitAttentionInputs(Mode.BOTH, fg, bg, {16: torch.ones(1, 16, dtype=torch.bool)})
    with pytest.raises(ValueError, match=r"64 query positions.*\[16\]"):
        first_attn2(pipe)(hidden, encoder_hidden_states=fg, split=split)


def test_masks_per_level_follow_the_unet_sizes() -> None:
    mask = torch.zeros(1, 1, 10, 6)
    mask[..., :, :3] = 1.0
    masks = masks_per_level(mask, levels=3, threshold=0.5)
    assert sorted(masks) == [3 * 2, 5 * 3, 10 * 6]  # sizes round up, as the UNet's downsamplers
    assert masks[60].view(10, 6)[:, :3].all() and not masks[60].view(10, 6)[:, 3:].any()
