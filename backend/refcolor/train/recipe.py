"""Training recipes: how long, how big and with what settings each stage runs.

A recipe is data, so a run's checkpoint records the one it was started with and a
resumed run continues with exactly that recipe.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

STAGES = ("vae", "base", "adapters")
PRECISIONS = ("fp32", "bf16")  # Trainer(precision=): fp32, or bfloat16 autocast


@dataclass(frozen=True)
class StageRecipe:
    steps: int
    batch: int
    learning_rate: float
    warmup: int = 100  # linear learning-rate warm-up steps
    weight_decay: float = 0.0


@dataclass(frozen=True)
class Recipe:
    """The whole recipe of one model config.

    Stages (paper Sec. 3, two-stage training, plus the small autoencoder this size needs):

    * ``vae``: the latent autoencoder (L1 reconstruction + a tiny KL term) on crops of the
      targets; its latent scale is then set to ``1 / std`` of the latents.
    * ``base``: the reference-conditioned model with plain cross-attention (UNet, sketch
      encoder and reference encoder, trained from scratch), reference dropout for guidance.
    * ``adapters``: foreground/background adapters, background recovery transformer and
      threshold embedding, base frozen, foreground and background split by the masks.
    """

    config: str
    samples: int  # size of the prepared sample cache (drawn once from the training split)
    sample_size: int  # samples are drawn at this side, then prepared at the model's like a user's input
    vae: StageRecipe
    base: StageRecipe
    adapters: StageRecipe
    vae_crop: int = 64
    vae_kl_weight: float = 1e-6
    # Extra L1 weight on chroma (RGB minus its mean): with plain RGB L1 a small autoencoder learns
    # luminance long before colour, and colour is what this model's latents are for.
    vae_chroma_weight: float = 0.0
    reference_dropout: float = 0.1  # share of samples trained with the "no reference" (zero) tokens
    sketch_dropout: float = 0.0  # share trained with a blank sketch (needed only for sketch guidance)
    ink_fade: tuple[float, float] = (0.55, 1.0)  # random ink strength: thin lines fade when downscaled
    adapter_modes: dict[str, float] = field(
        default_factory=lambda: {"both": 0.5, "foreground": 0.25, "background": 0.25}
    )
    thresholds: tuple[float, float] = (0.3, 0.7)  # mask thresholds drawn in the adapter stage
    # Share of samples trained with the masks "Automatic" computes instead of the true ones (issue 19).
    auto_mask_share: float = 0.0
    ema_decay: float = 0.999
    log_every: int = 25
    sample_every: int = 500
    checkpoint_every: int = 250

    def stage(self, name: str) -> StageRecipe:
        if name not in STAGES:
            raise ValueError(f"unknown stage {name!r}: expected one of {', '.join(STAGES)}")
        return getattr(self, name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        values = dict(data)
        for name in STAGES:
            values[name] = StageRecipe(**values[name])
        for name in ("ink_fade", "thresholds"):
            values[name] = tuple(values[name])
        return cls(**values)


NANO = Recipe(
    config="nano",
    samples=12_000,
    sample_size=256,
    vae=StageRecipe(steps=0, batch=16, learning_rate=0.0),  # a PatchAutoencoder: only its scale is set
    base=StageRecipe(steps=1500, batch=16, learning_rate=3e-4, warmup=200, weight_decay=0.01),
    adapters=StageRecipe(steps=400, batch=16, learning_rate=3e-4, warmup=50),
)

# Training on from an exported NANO run (`--init-from`): a warm restart of every stage. A finished
# stage cannot be lengthened, so this is how more compute goes into nano; the shipped weights are
# NANO followed by this (see the model card).
NANO_CONTINUE = replace(
    NANO,
    base=StageRecipe(steps=5000, batch=16, learning_rate=2e-4, warmup=100, weight_decay=0.01),
    adapters=StageRecipe(steps=600, batch=16, learning_rate=2e-4, warmup=50),
)

# Fine-tuning an exported NANO model (`--init-from`) after its schedule moved to zero terminal SNR.
NANO_ZTSNR = replace(
    NANO,
    base=StageRecipe(steps=2500, batch=16, learning_rate=1.5e-4, warmup=50, weight_decay=0.01),
    adapters=StageRecipe(steps=400, batch=16, learning_rate=1.5e-4, warmup=20),
)

# nano v2 (config nano-v2: nano + the colour prior), trained on from nano's shipped weights
# (`--init-from`): the prior's new input channels start at zero, so training starts from nano itself.
NANO_V2 = replace(
    NANO,
    config="nano-v2",
    samples=8_000,
    base=StageRecipe(steps=1500, batch=16, learning_rate=1.5e-4, warmup=50, weight_decay=0.01),
    adapters=StageRecipe(steps=300, batch=16, learning_rate=1.5e-4, warmup=20),
)

# nano v2 on a borrowed GPU (`make gpu-train`: one H200, about 8.5 minutes with the data preparation):
# larger batches, more samples. Step counts are a first guess at H200 throughput for a model this small;
# `refcolor gpu run` stops at its time budget whatever they say (log.jsonl has seconds_per_step).
NANO_V2_GPU = replace(
    NANO_V2,
    samples=24_000,
    base=StageRecipe(steps=3000, batch=64, learning_rate=2e-4, warmup=100, weight_decay=0.01),
    adapters=StageRecipe(steps=600, batch=64, learning_rate=2e-4, warmup=30),
    log_every=50,
    sample_every=100_000,  # sheets only at the end of each stage
    checkpoint_every=100_000,
)

# nano v2's adapters fine-tuned on masks as users get them (issue 19), from the shipped weights
# (`--init-from`): half the samples carry the masks "Automatic" computes, the rest the true ones;
# autoencoder and base untouched. Measured: no change with either mask (nano's colours come mostly
# from its prior and finishing, which take the mask as given; docs/automask.md), so not shipped.
NANO_V2_AUTOMASK = replace(
    NANO_V2,
    samples=4_000,
    base=StageRecipe(steps=0, batch=16, learning_rate=0.0),
    adapters=StageRecipe(steps=300, batch=16, learning_rate=1e-4, warmup=20),
    auto_mask_share=0.5,
)

# The same recipe, minutes instead of hours: what the tests train.
SMOKE = Recipe(
    config="tiny",
    samples=24,
    sample_size=128,
    vae=StageRecipe(steps=3, batch=4, learning_rate=1e-3, warmup=1),
    base=StageRecipe(steps=3, batch=4, learning_rate=1e-3, warmup=1),
    adapters=StageRecipe(steps=3, batch=4, learning_rate=1e-3, warmup=1),
    vae_crop=64,
    log_every=1,
    sample_every=2,
    checkpoint_every=2,
)

RECIPES: dict[str, Recipe] = {
    "nano": NANO,
    "nano-continue": NANO_CONTINUE,
    "nano-ztsnr": NANO_ZTSNR,
    "nano-v2": NANO_V2,
    "nano-v2-gpu": NANO_V2_GPU,
    "nano-v2-automask": NANO_V2_AUTOMASK,
    "smoke": SMOKE,
    "smoke-prior": replace(SMOKE, config="tiny-prior"),
}


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise KeyError(f"unknown recipe {name!r}: expected one of {', '.join(sorted(RECIPES))}") from None
