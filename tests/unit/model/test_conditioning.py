"""Token sets per mode and the dual classifier-free guidance, against the official definitions."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from refcolor.diffusion.conditioning import (
    COND,
    NO_REFERENCE,
    NO_SKETCH,
    TokenSets,
    build_batch,
    combine_guidance,
    token_sets_for_mode,
)
from refcolor_protocol import Mode

ORACLE = Path(__file__).resolve().parents[3].parent / "shared" / "official" / "tiny_switch_io.safetensors"


@pytest.mark.skipif(not ORACLE.is_file(), reason="official tiny oracle not present")
@pytest.mark.parametrize(
    ("mode", "shared", "case"),
    [
        (Mode.PLAIN, False, "mode_none"),
        (Mode.FOREGROUND, False, "mode_fg"),
        (Mode.BACKGROUND, False, "mode_bg"),
        (Mode.BOTH, True, "mode_both"),
        (Mode.BOTH, False, "mode_both_nodup"),
    ],
)
def test_token_sets_are_the_halves_of_the_official_context(mode: Mode, shared: bool, case: str) -> None:
    """The official context is [foreground half, background half]; ours passes the halves separately."""
    io = load_file(str(ORACLE))
    tokens = token_sets_for_mode(mode, io["in.fg_tokens"], io["bg_emb"], io["thresh_emb.sketch"], shared)
    context = io[f"{case}.context"]
    if tokens.background is None:
        torch.testing.assert_close(tokens.foreground, context)
    else:
        fg_half, bg_half = context.chunk(2, dim=1)
        torch.testing.assert_close(tokens.foreground, fg_half)
        torch.testing.assert_close(tokens.background, bg_half)


def test_modes_with_a_background_side_need_background_tokens() -> None:
    with pytest.raises(ValueError, match="mode 'both' needs background tokens"):
        token_sets_for_mode(Mode.BOTH, torch.zeros(1, 4, 8), None, None)


def test_dual_guidance_is_the_mean_of_the_two_guided_estimates() -> None:
    g = torch.Generator().manual_seed(0)
    c, ur, us = (torch.randn(2, 4, 3, 3, generator=g) for _ in range(3))
    both = combine_guidance({COND: c, NO_REFERENCE: ur, NO_SKETCH: us}, 5.0, 2.0)
    torch.testing.assert_close(both, ((ur + 5.0 * (c - ur)) + (us + 2.0 * (c - us))) * 0.5)
    torch.testing.assert_close(combine_guidance({COND: c, NO_REFERENCE: ur}, 5.0, 1.0), ur + 5.0 * (c - ur))
    assert torch.equal(combine_guidance({COND: c}, 1.0, 1.0), c)
    # Outside the reference window there is no NO_REFERENCE branch: its term is cond itself.
    torch.testing.assert_close(
        combine_guidance({COND: c, NO_SKETCH: us}, 5.0, 2.0), (c + us + 2.0 * (c - us)) * 0.5
    )


def test_guidance_batch_stacks_branches_then_variations() -> None:
    fg, bg = torch.randn(1, 3, 8), torch.randn(1, 5, 8)
    features, blank = [torch.ones(1, 2, 4, 4)], [torch.zeros(1, 2, 4, 4)]
    masks = {16: torch.ones(1, 16, dtype=torch.bool)}
    batch = build_batch(Mode.BOTH, (COND, NO_REFERENCE, NO_SKETCH), TokenSets(fg, bg), features, blank, 2, masks)
    assert batch.context.shape == (6, 3, 8)
    assert torch.equal(batch.context[:2], fg.expand(2, -1, -1)) and not batch.context[2:4].any()
    assert (
        torch.equal(batch.sketch_features[0][:4], torch.ones(4, 2, 4, 4))
        and not batch.sketch_features[0][4:].any()
    )
    split = batch.cross_attention_kwargs["split"]
    assert split.mode is Mode.BOTH
    assert split.background_tokens.shape == (6, 5, 8) and not split.background_tokens[2:4].any()
    one_side = build_batch(Mode.FOREGROUND, (COND,), TokenSets(fg), features, blank, 1, None)
    assert one_side.cross_attention_kwargs["split"].mode is Mode.FOREGROUND  # the mode travels even unsplit
    assert one_side.cross_attention_kwargs["split"].background_tokens is None
