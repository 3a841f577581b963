"""Cost of one split cross-attention layer vs. a plain one vs. the official two-full-pass approach.

One SD2.1 first-level cross-attention layer (320 channels, 5 heads of 64, 1024-d context) at a
64x64 latent (4096 query positions), batch 2, 256 foreground + 256 background tokens, with the
v1.5 adapters (foreground rank 4, background rank half the width) through peft. Half of the
positions are foreground.

- plain: diffusers' AttnProcessor2_0, adapters disabled (a v1 layer).
- plain_one_adapter: the same with the background adapter active on every position (one LoRA
  per position, the work the split layer also does).
- split: refcolor's processor in ``both`` mode (each position through its own side only).
- two_pass: the official approach, both sides over every position, then a per-position choice.

Prints ``name: value`` lines (milliseconds, medians) and the ratios.

Run: .venv/bin/python benchmarks/bench_split_attention.py [--repeats 15] [--size 64] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from diffusers.loaders import PeftAdapterMixin
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from diffusers.models.modeling_utils import ModelMixin

from refcolor.diffusion.adapters import add_split_adapters
from refcolor.diffusion.attention import BACKGROUND, FOREGROUND, SplitAttentionInputs, install_split_processors
from refcolor.diffusion.config import V1_5
from refcolor_protocol import Mode


class OneLayer(ModelMixin, PeftAdapterMixin):
    """A single cross-attention layer named like the UNet's, so the adapters target it."""

    def __init__(self, channels: int, heads: int, context: int) -> None:
        super().__init__()
        self.attn2 = Attention(query_dim=channels, cross_attention_dim=context, heads=heads, dim_head=channels // heads)


def timed(fn: Callable[[], torch.Tensor], repeats: int, device: str) -> float:
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def two_pass(
    attn: Attention, hidden: torch.Tensor, fg: torch.Tensor, bg: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """The official masked attention: both branches on every position (each through its adapter)."""

    def branch(tokens: torch.Tensor, adapter: str) -> torch.Tensor:
        names = [adapter] * hidden.shape[0]
        q = attn.to_q(hidden, adapter_names=names)
        k, v = attn.to_k(tokens, adapter_names=names), attn.to_v(tokens, adapter_names=names)
        b, heads = hidden.shape[0], attn.heads
        q, k, v = (t.view(b, -1, heads, t.shape[-1] // heads).transpose(1, 2) for t in (q, k, v))
        return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, -1, attn.inner_dim)

    out_fg, out_bg = branch(fg, FOREGROUND), branch(bg, BACKGROUND)
    return attn.to_out[0](torch.where(mask[..., None], out_fg, out_bg))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--size", type=int, default=64, help="latent side")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    torch.manual_seed(0)
    spec = V1_5.unet
    channels, heads = spec.block_out_channels[0], spec.block_out_channels[0] // spec.attention_head_dim
    layer = OneLayer(channels, heads, spec.cross_attention_dim).eval()
    add_split_adapters(layer, V1_5.foreground_adapter, V1_5.background_adapter, random_init=True)
    install_split_processors(layer)
    layer.to(args.device)
    attn = layer.attn2

    positions = args.size * args.size
    hidden = torch.randn(2, positions, channels, device=args.device)
    fg = torch.randn(2, 256, spec.cross_attention_dim, device=args.device)
    bg = torch.randn(2, 256, spec.cross_attention_dim, device=args.device)
    mask = torch.zeros(1, positions, dtype=torch.bool, device=args.device)
    mask[0, : positions // 2] = True
    mask = mask[:, torch.randperm(positions, device=args.device)]
    split = SplitAttentionInputs(Mode.BOTH, fg, bg, {positions: mask})
    plain_processor = AttnProcessor2_0()

    with torch.no_grad():
        layer.disable_adapters()  # diffusers' processor on the base weights
        plain = timed(lambda: plain_processor(attn, hidden, fg), args.repeats, args.device)
        layer.enable_adapters()
        layer.set_adapters([BACKGROUND])  # diffusers' processor through one adapter (peft's normal forward)
        one_adapter = timed(lambda: plain_processor(attn, hidden, fg), args.repeats, args.device)
        layer.set_adapters([FOREGROUND, BACKGROUND])  # as the pipeline keeps them: the mode picks per call
        split_ms = timed(lambda: attn(hidden, encoder_hidden_states=fg, split=split), args.repeats, args.device)
        two_pass_ms = timed(lambda: two_pass(attn, hidden, fg, bg, mask), args.repeats, args.device)
        reference = two_pass(attn, hidden, fg, bg, mask)
        error = (attn(hidden, encoder_hidden_states=fg, split=split) - reference).abs().max().item()

    print(f"device: {args.device} threads: {torch.get_num_threads()}")
    print(f"latent: {args.size}x{args.size} positions: {positions} channels: {channels} tokens: 256+256")
    print(f"plain_ms: {plain:.2f}")
    print(f"plain_one_adapter_ms: {one_adapter:.2f}")
    print(f"split_ms: {split_ms:.2f}")
    print(f"two_pass_ms: {two_pass_ms:.2f}")
    print(f"split_vs_plain: {split_ms / plain:.3f}")
    print(f"split_vs_plain_one_adapter: {split_ms / one_adapter:.3f}")
    print(f"two_pass_vs_plain: {two_pass_ms / plain:.3f}")
    print(f"two_pass_vs_split: {two_pass_ms / split_ms:.3f}")
    print(f"split_max_abs_diff_vs_two_pass: {error:.2e}")


if __name__ == "__main__":
    main()
