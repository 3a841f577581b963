"""The equivalence oracle: our modules against the authors' recorded outputs.

An oracle file (format of ``shared/official/tiny_switch_io.safetensors``, described in
``tiny_switch_io.txt``) holds inputs ``in.*`` and the authors' model outputs. From the
inputs alone, :func:`reproduce` computes every output we can: sketch features
(``control.i``), threshold embeddings, the recovered background tokens (``bg_emb``),
the time embedding (``dbg.time_emb``), each inference mode's UNet context and noise
prediction (``mode_*.context``/``.eps``, contexts built by the pipeline's own
:func:`~refcolor.diffusion.conditioning.token_sets_for_mode`, split attention through our
processor) and the VAE's decode/encode. Any batch size, latent size and thresholds work.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from refcolor.diffusion.attention import SplitAttentionInputs, masks_per_level
from refcolor.diffusion.conditioning import TokenSets, token_sets_for_mode
from refcolor.diffusion.pipeline import ReferenceColorizationPipeline
from refcolor_protocol import Mode

logger = logging.getLogger(__name__)

TOLERANCE = 1e-4  # max abs error allowed per tensor (fp32, other kernels: the oracle's suggestion)
INPUTS = ("in.x", "in.t", "in.sketch", "in.fg_tokens", "in.bg_tokens_raw", "in.smask", "in.thresholds")


@dataclass(frozen=True)
class ModeCase:
    """How the authors produced one ``mode_*`` entry (``tiny_switch_io.txt``)."""

    mode: Mode
    shares_tokens: bool = False  # the official "both" context: [fg, bg] repeated
    scales: tuple[float, float, float] = (1.0, 1.0, 0.0)  # fg_scale, bg_scale, merge
    zero_context: bool = False  # the CFG unconditional context


MODE_CASES: dict[str, ModeCase] = {
    "mode_none": ModeCase(Mode.PLAIN),
    "mode_none_uncond": ModeCase(Mode.PLAIN, zero_context=True),
    "mode_fg": ModeCase(Mode.FOREGROUND),
    "mode_bg": ModeCase(Mode.BACKGROUND),
    "mode_bg_scaled": ModeCase(Mode.BACKGROUND, scales=(0.8, 1.2, 0.3)),
    "mode_both": ModeCase(Mode.BOTH, shares_tokens=True),  # the authors' quirk
    "mode_both_nodup": ModeCase(Mode.BOTH, shares_tokens=False),  # the clean split (--both-clean)
}


def unet_context(tokens: TokenSets) -> torch.Tensor:
    """The single context tensor the official UNet receives: ``cat([first half, second half])``."""
    if tokens.background is None:
        return tokens.foreground
    return torch.cat([tokens.foreground, tokens.background], dim=1)  # (B, Tf + Tb, D)


@torch.no_grad()
def reproduce(pipe: ReferenceColorizationPipeline, io: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our outputs for the oracle inputs ``io["in.*"]``, under the oracle's names.

    Raises:
        KeyError: an input is missing (the message names it).
    """
    missing = [name for name in INPUTS if name not in io]
    if missing:
        raise KeyError(f"oracle file lacks inputs {missing}; expected {list(INPUTS)}")
    x, t, sketch = io["in.x"].float(), io["in.t"], io["in.sketch"].float()
    fg_tokens, bg_raw = io["in.fg_tokens"].float(), io["in.bg_tokens_raw"].float()
    threshold_ref, threshold_sketch = (float(v) for v in io["in.thresholds"])
    unet, background, vae = pipe.unet, pipe.background_encoder, pipe.vae
    out: dict[str, torch.Tensor] = {}

    features = pipe.sketch_encoder(sketch)
    out.update({f"control.{i}": f for i, f in enumerate(features)})
    out["thresh_emb.ref"] = background.threshold_embedding(threshold_ref)  # (1, 1, D)
    out["thresh_emb.sketch"] = th_sketch = background.threshold_embedding(threshold_sketch)
    out["bg_emb"] = bg_tokens = background.recover(bg_raw, threshold_ref)  # (B, Q, D)
    out["dbg.time_emb"] = unet.time_embedding(unet.get_time_embed(sample=x, timestep=t))

    masks = masks_per_level(io["in.smask"].float(), len(unet.config.block_out_channels), threshold_sketch)
    for name, case in MODE_CASES.items():
        tokens = token_sets_for_mode(case.mode, fg_tokens, bg_tokens, th_sketch, case.shares_tokens)
        if case.zero_context:
            tokens = tokens.zeros()
        split = SplitAttentionInputs(case.mode, tokens.foreground)
        if tokens.background is not None:
            split = SplitAttentionInputs(case.mode, tokens.foreground, tokens.background, masks, *case.scales)
        kwargs = {"split": split}
        out[f"{name}.context"] = unet_context(tokens)
        out[f"{name}.eps"] = unet(x, t, tokens.foreground, features, cross_attention_kwargs=kwargs).sample
    out["vae.decode"] = vae.decode(x / vae.config.scaling_factor).sample
    latent = vae.encode(sketch).latent_dist
    out["vae.encode_mean"], out["vae.encode_logvar"] = latent.mean, latent.logvar
    return out


@dataclass(frozen=True)
class OracleReport:
    errors: dict[str, float]  # name -> max abs error (inf: shape mismatch)
    not_reproduced: list[str]  # outputs in the file this oracle does not compute
    tolerance: float = TOLERANCE

    @property
    def failed(self) -> list[str]:
        return [name for name, error in self.errors.items() if not error <= self.tolerance]

    @property
    def ok(self) -> bool:
        return bool(self.errors) and not self.failed

    def lines(self) -> list[str]:
        width = max((len(n) for n in [*self.errors, *self.not_reproduced, "tensor"]), default=10)
        rows = [f"{'tensor':<{width}}  max abs error"]
        rows += [
            f"{name:<{width}}  {error:.3e}  {'ok' if error <= self.tolerance else 'FAIL'}"
            for name, error in self.errors.items()
        ]
        rows += [f"{name:<{width}}  (not reproduced)" for name in self.not_reproduced]
        return rows


def compare(
    ours: Mapping[str, torch.Tensor], io: Mapping[str, torch.Tensor], tolerance: float = TOLERANCE
) -> OracleReport:
    """Max abs error of every output of ``io`` that ``ours`` has (file order)."""
    errors: dict[str, float] = {}
    not_reproduced: list[str] = []
    for name, expected in io.items():
        if name.startswith("in."):
            continue
        if name not in ours:
            not_reproduced.append(name)
            continue
        got = ours[name].detach().float().cpu()
        if got.shape != expected.shape:
            logger.error("%s: shape %s, oracle %s", name, tuple(got.shape), tuple(expected.shape))
            errors[name] = math.inf
            continue
        errors[name] = float((got - expected.float()).abs().max()) if got.numel() else 0.0
    return OracleReport(errors, not_reproduced, tolerance)
