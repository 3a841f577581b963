"""Split cross-attention (Yan et al., CVPR 2025, Sec. 3.2) as a diffusers attention processor.

Every query position of a cross-attention layer is either *foreground* (inside the
sketch's character mask) or *background*. Foreground positions attend only to the
foreground token set, through the ``foreground`` LoRA adapter; background positions
attend only to the background token set, through the ``background`` adapter. Which
adapter a side uses follows the inference mode, an argument of every call
(:class:`SplitAttentionInputs`, :data:`MODE_ADAPTERS`); a side whose adapter the mode leaves
out takes the base weights. Both adapters stay active in peft all the time: each projection
names its adapter per call (peft's mixed-adapter forward), so no hidden switch decides.

Unlike the official implementation, which runs two full attentions over every position
and then picks one per position, the positions are gathered into two groups first, so
the cost is about one plain cross-attention. With ``merge > 0`` the background branch is
needed at foreground positions too and runs over every position.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from peft.tuners.tuners_utils import BaseTunerLayer

from refcolor_protocol import Mode

BASE = "__base__"  # peft's name for "no adapter" in a mixed-adapter forward
FOREGROUND = "foreground"
BACKGROUND = "background"

# The adapters each inference mode uses (paper Sec. 3.3); a side whose adapter is not listed takes
# the base weights.
MODE_ADAPTERS: dict[Mode, tuple[str, ...]] = {
    Mode.PLAIN: (),
    Mode.FOREGROUND: (FOREGROUND,),
    Mode.BACKGROUND: (BACKGROUND,),
    Mode.BOTH: (FOREGROUND, BACKGROUND),
}


@dataclass(frozen=True)
class SplitAttentionInputs:
    """Per-request inputs of every cross-attention layer (through ``cross_attention_kwargs``).

    ``mode`` picks each side's adapter (:data:`MODE_ADAPTERS`). ``masks`` maps the number of
    query positions of a UNet level (h * w) to that level's foreground mask, already resized and
    thresholded (see :func:`masks_per_level`); a mask with one row serves the whole batch. Without
    a background token set (and masks) every position is foreground and attends to the
    foreground tokens, unscaled.
    """

    mode: Mode
    foreground_tokens: torch.Tensor  # (B, Tf, D)
    background_tokens: torch.Tensor | None = None  # (B, Tb, D)
    masks: Mapping[int, torch.Tensor] | None = None  # h * w -> (B or 1, h * w) bool, True = foreground
    foreground_scale: float = 1.0
    background_scale: float = 1.0
    merge: float = 0.0  # foreground output = (1 - merge) * fg + merge * bg (official merge_scale)

    def mask_for(self, positions: int) -> torch.Tensor:
        mask = None if self.masks is None else self.masks.get(positions)
        if mask is None:
            raise ValueError(
                f"no split-attention mask for a layer with {positions} query positions; masks were given for "
                f"{sorted(self.masks or {})}: build them with masks_per_level() for the latent size in use"
            )
        return mask


def masks_per_level(mask: torch.Tensor, levels: int, threshold: float) -> dict[int, torch.Tensor]:
    """Foreground masks for each UNet level, as the official model builds them.

    Args:
        mask: (B, 1, h, w) soft mask in [0, 1] at latent resolution (1 = foreground).
        levels: number of UNet resolutions (each halves the previous one, rounding up).
        threshold: a position is foreground where the bicubically resized mask exceeds it.

    Returns:
        h_i * w_i -> (B, h_i * w_i) bool, for every level i.
    """
    height, width = mask.shape[-2:]
    masks: dict[int, torch.Tensor] = {}
    for level in range(levels):
        size = (math.ceil(height / 2**level), math.ceil(width / 2**level))
        resized = mask if level == 0 else F.interpolate(mask, size=size, mode="bicubic", align_corners=False)
        masks[size[0] * size[1]] = (resized > threshold).flatten(1)  # (B, h_i * w_i)
    return masks


def side_adapter(side: str, mode: Mode) -> str:
    """The adapter ``side`` uses in ``mode``: its own if the mode uses it, else the base weights."""
    return side if side in MODE_ADAPTERS[mode] else BASE


def _project(layer: torch.nn.Module, x: torch.Tensor, adapter: str) -> torch.Tensor:
    """``layer(x)`` through one named adapter (peft's mixed-adapter forward) or the base weights."""
    if isinstance(layer, BaseTunerLayer):
        if adapter != BASE and layer.disable_adapters:
            raise ValueError(f"adapter {adapter!r} requested but peft has the adapters disabled on {layer}")
        return layer(x, adapter_names=[adapter] * x.shape[0])
    if adapter != BASE:
        raise ValueError(
            f"the {adapter!r} adapter requested on a layer without peft adapters ({layer}): this mode needs "
            "a model with the split adapters (add_split_adapters or load_adapters)"
        )
    return layer(x)


def _attend(attn: Attention, queries: torch.Tensor, tokens: torch.Tensor, adapter: str) -> torch.Tensor:
    """Multi-head attention of ``queries`` (B, n, C) over ``tokens`` (B, T, D) -> (B, n, inner)."""
    batch = queries.shape[0]
    query = _project(attn.to_q, queries, adapter)  # (B, n, inner)
    key = _project(attn.to_k, tokens, adapter)  # (B, T, inner)
    value = _project(attn.to_v, tokens, adapter)
    head_dim = key.shape[-1] // attn.heads
    query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)  # (B, heads, n, d)
    key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)  # (B, heads, T, d)
    value = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
    if attn.norm_q is not None:
        query = attn.norm_q(query)
    if attn.norm_k is not None:
        key = attn.norm_k(key)
    out = F.scaled_dot_product_attention(query, key, value, dropout_p=0.0, is_causal=False)
    return out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)  # (B, n, inner)


def _split_one_mask(
    attn: Attention,
    hidden_states: torch.Tensor,
    mask: torch.Tensor,
    split: SplitAttentionInputs,
    foreground_tokens: torch.Tensor,
    background_tokens: torch.Tensor,
) -> torch.Tensor:
    """Split attention for a batch that shares one (N,) mask -> (B, N, inner), before ``to_out``."""
    fg_adapter, bg_adapter = side_adapter(FOREGROUND, split.mode), side_adapter(BACKGROUND, split.mode)
    if split.merge > 0:
        out = _attend(attn, hidden_states, background_tokens, bg_adapter) * split.background_scale
        if mask.any():
            fg_idx = mask.nonzero().squeeze(1)
            fg = _attend(attn, hidden_states.index_select(1, fg_idx), foreground_tokens, fg_adapter)
            mixed = (1 - split.merge) * fg * split.foreground_scale + split.merge * out.index_select(
                1, fg_idx
            )
            out.index_copy_(1, fg_idx, mixed)
        return out
    if mask.all():
        return _attend(attn, hidden_states, foreground_tokens, fg_adapter) * split.foreground_scale
    if not mask.any():
        return _attend(attn, hidden_states, background_tokens, bg_adapter) * split.background_scale
    fg_idx, bg_idx = mask.nonzero().squeeze(1), (~mask).nonzero().squeeze(1)
    fg = _attend(attn, hidden_states.index_select(1, fg_idx), foreground_tokens, fg_adapter)  # (B, Nf, inner)
    bg = _attend(attn, hidden_states.index_select(1, bg_idx), background_tokens, bg_adapter)  # (B, Nb, inner)
    out = fg.new_empty(hidden_states.shape[0], hidden_states.shape[1], fg.shape[-1])  # (B, N, inner)
    out.index_copy_(1, fg_idx, fg * split.foreground_scale)
    out.index_copy_(1, bg_idx, bg * split.background_scale)
    return out


class SplitCrossAttnProcessor:
    """The processor of every ``attn2``: attention per side and mode given ``split``. Without it, a
    layer with adapters takes its base weights (mode ``plain``), one without is diffusers' SDPA."""

    def __init__(self) -> None:
        self._plain = AttnProcessor2_0()

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        split: SplitAttentionInputs | None = None,
    ) -> torch.Tensor:
        """Args as diffusers' processors; ``encoder_hidden_states`` is ignored when ``split`` is given."""
        if split is None:
            if not isinstance(attn.to_q, BaseTunerLayer) or encoder_hidden_states is None:
                return self._plain(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
            # peft keeps both adapters active (see the module docstring): never apply them unasked
            split = SplitAttentionInputs(Mode.PLAIN, encoder_hidden_states)
        if hidden_states.ndim != 3 or attention_mask is not None or attn.spatial_norm is not None:
            raise ValueError(
                "split cross-attention expects (B, N, C) hidden states, no attention_mask, no spatial norm; "
                f"got ndim={hidden_states.ndim}, attention_mask={attention_mask is not None}"
            )
        residual = hidden_states
        batch, positions, _ = hidden_states.shape
        fg_tokens, bg_tokens = split.foreground_tokens, split.background_tokens
        for name, tokens in (("foreground_tokens", fg_tokens), ("background_tokens", bg_tokens)):
            if tokens is not None and (tokens.ndim != 3 or tokens.shape[0] != batch):
                raise ValueError(f"{name} has shape {tuple(tokens.shape)}; expected ({batch}, tokens, width)")
        if attn.norm_cross:
            fg_tokens = attn.norm_encoder_hidden_states(fg_tokens)
            bg_tokens = None if bg_tokens is None else attn.norm_encoder_hidden_states(bg_tokens)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        if bg_tokens is None:  # one side: every position attends to the foreground tokens
            out = _attend(attn, hidden_states, fg_tokens, side_adapter(FOREGROUND, split.mode))
        else:
            mask = split.mask_for(positions).to(hidden_states.device)  # (B or 1, N)
            if mask.shape[0] == 1 or bool((mask == mask[:1]).all()):
                out = _split_one_mask(attn, hidden_states, mask[0], split, fg_tokens, bg_tokens)
            else:
                rows = [
                    _split_one_mask(
                        attn, hidden_states[i : i + 1], mask[i], split, fg_tokens[i : i + 1], bg_tokens[i : i + 1]
                    )
                    for i in range(batch)
                ]
                out = torch.cat(rows)

        out = attn.to_out[0](out)
        out = attn.to_out[1](out)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


class SelfAttnProcessor(AttnProcessor2_0):
    """diffusers' SDPA processor that accepts (and ignores) ``split``, which reaches ``attn1`` too."""

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        split: SplitAttentionInputs | None = None,
    ) -> torch.Tensor:
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


def install_split_processors(model: torch.nn.Module) -> int:
    """Install :class:`SplitCrossAttnProcessor` on every ``attn2`` and :class:`SelfAttnProcessor` elsewhere.

    Returns:
        The number of cross-attention layers given the split processor.
    """
    count = 0
    for name, module in model.named_modules():
        if isinstance(module, Attention):
            if name.endswith("attn2"):
                module.set_processor(SplitCrossAttnProcessor())
                count += 1
            else:
                module.set_processor(SelfAttnProcessor())
    return count
