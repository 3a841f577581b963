"""The UNet inputs of each guidance branch, per inference mode.

Paper Sec. 3.3; the official ``prepare_conditions`` in ``refnet/models/switch.py``.

Three branches feed classifier-free guidance: ``cond`` (reference and sketch),
``no_reference`` (zero tokens, as the official unconditional context) and
``no_sketch`` (features of a blank sketch). They are stacked into one batch of
``branches x variations`` rows per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from refcolor.diffusion.attention import SplitAttentionInputs
from refcolor_protocol import Mode

COND, NO_REFERENCE, NO_SKETCH = "cond", "no_reference", "no_sketch"


@dataclass(frozen=True)
class TokenSets:
    """The reference side of one branch: one token set (plain) or a foreground/background pair."""

    foreground: torch.Tensor  # (1, Tf, D); the whole context in plain mode
    background: torch.Tensor | None = None  # (1, Tb, D); None in plain mode

    def zeros(self, tokens: int | None = None) -> TokenSets:
        """The "no reference" version: zeros of the same shapes, or ``tokens`` zero tokens each side."""

        def zero(t: torch.Tensor) -> torch.Tensor:
            return t.new_zeros(t.shape[0], tokens or t.shape[1], t.shape[2])

        return TokenSets(zero(self.foreground), None if self.background is None else zero(self.background))


def token_sets_for_mode(
    mode: Mode,
    reference_tokens: torch.Tensor,
    background_tokens: torch.Tensor | None,
    threshold_embedding: torch.Tensor | None,
    share_tokens_in_both: bool = False,
) -> TokenSets:
    """The conditional token sets of ``mode``.

    Args:
        reference_tokens: (1, T, D) tokens of the whole reference.
        background_tokens: (1, Tb, D) recovered background (or separate background) tokens;
            needed by ``background`` and ``both``.
        threshold_embedding: (1, 1, D) embedding of the sketch mask threshold, added to the
            foreground tokens when a background set is used (as the official model).
        share_tokens_in_both: reproduce the official ``both`` context, where each side attends
            to the foreground and background tokens together.
    """
    if mode is Mode.PLAIN:
        return TokenSets(reference_tokens)
    if mode is Mode.FOREGROUND:
        return TokenSets(reference_tokens, reference_tokens)
    if background_tokens is None or threshold_embedding is None:
        raise ValueError(f"mode {mode.value!r} needs background tokens and the threshold embedding")
    foreground = reference_tokens + threshold_embedding.to(reference_tokens.dtype)
    if mode is Mode.BOTH and share_tokens_in_both:
        both = torch.cat([foreground, background_tokens], dim=1)
        return TokenSets(both, both)
    return TokenSets(foreground, background_tokens)


@dataclass(frozen=True)
class GuidanceBatch:
    """Everything the UNet needs for one step, for all branches and variations at once."""

    branches: tuple[str, ...]
    context: torch.Tensor  # (branches * V, T, D)
    sketch_features: list[torch.Tensor]  # each (branches * V, C_i, h_i, w_i)
    cross_attention_kwargs: dict[str, Any]


def build_batch(
    mode: Mode,
    branches: tuple[str, ...],
    tokens: TokenSets,
    sketch_features: list[torch.Tensor],
    blank_features: list[torch.Tensor],
    variations: int,
    masks: dict[int, torch.Tensor] | None,
    foreground_scale: float = 1.0,
    background_scale: float = 1.0,
    merge: float = 0.0,
) -> GuidanceBatch:
    """Stack ``branches`` (``cond`` first) for ``variations`` latents each, for ``mode``.

    ``masks`` (from :func:`~refcolor.diffusion.attention.masks_per_level`) are needed whenever
    ``tokens`` has a background set.
    """
    per_branch = {
        COND: (tokens, sketch_features),
        NO_REFERENCE: (tokens.zeros(), sketch_features),
        NO_SKETCH: (tokens, blank_features),
    }
    chosen = [per_branch[b] for b in branches]

    def stack(parts: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([p.expand(variations, *p.shape[1:]) for p in parts])

    context = stack([t.foreground for t, _ in chosen])
    features = [stack([f[level] for _, f in chosen]) for level in range(len(sketch_features))]
    split = SplitAttentionInputs(mode, context)
    if tokens.background is not None:
        if masks is None:
            raise ValueError("split token sets need the sketch masks per level")
        split = SplitAttentionInputs(
            mode=mode,
            foreground_tokens=context,
            background_tokens=stack([t.background for t, _ in chosen if t.background is not None]),
            masks=masks,
            foreground_scale=foreground_scale,
            background_scale=background_scale,
            merge=merge,
        )
    return GuidanceBatch(tuple(branches), context, features, {"split": split})


def combine_guidance(
    predictions: dict[str, torch.Tensor], reference_scale: float, sketch_scale: float
) -> torch.Tensor:
    """Dual classifier-free guidance as the official ``CFGDenoiser``: the mean of the two guided estimates.

    A missing ``no_reference`` branch (reference outside its guidance window) counts as equal to
    ``cond``, so that term contributes ``cond`` unchanged.
    """
    cond = predictions[COND]
    terms: list[torch.Tensor] = []
    if reference_scale != 1.0:
        uncond = predictions.get(NO_REFERENCE, cond)
        terms.append(uncond + reference_scale * (cond - uncond))
    if sketch_scale != 1.0:
        uncond = predictions[NO_SKETCH]
        terms.append(uncond + sketch_scale * (cond - uncond))
    if not terms:
        return cond
    return terms[0] if len(terms) == 1 else (terms[0] + terms[1]) * 0.5
