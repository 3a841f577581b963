"""Model configurations: the shapes of every component, as frozen dataclasses.

``tiny`` is the full architecture with random weights, sized for tests (a 20-step
256x256 job in about a second on two CPU cores). ``v1.5`` has the shapes of the
official ColorizeDiffusion v1.5 ("switch") checkpoint so a converter can map its
keys onto ours; ``official-tiny`` has the shapes of the authors' tiny test variant
(``shared/official/tiny_config.json``). ``nano`` is the trained default model
(``refcolor/weights/nano``, recipe in :mod:`refcolor.train`): 128 px in pixel space
(4x4 patches as channels), a reference encoder trained with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class AdapterSpec:
    """The rank of one LoRA adapter on ``attn2.to_q/to_k/to_v``.

    Exactly one of ``rank`` (the same rank on every layer) and ``rank_fraction``
    (rank = ``int(fraction * min(in_features, out_features))`` per layer, as the
    official background adapter) is set.
    """

    rank: int | None = None
    rank_fraction: float | None = None

    def __post_init__(self) -> None:
        if (self.rank is None) == (self.rank_fraction is None):
            raise ValueError(
                f"AdapterSpec needs exactly one of rank={self.rank!r} and "
                f"rank_fraction={self.rank_fraction!r}"
            )

    def rank_for(self, in_features: int, out_features: int) -> int:
        if self.rank is not None:
            return self.rank
        fraction = self.rank_fraction if self.rank_fraction is not None else 0.0
        return max(1, int(fraction * min(in_features, out_features)))


@dataclass(frozen=True)
class UNetSpec:
    """A Stable-Diffusion-2-style ``UNet2DConditionModel`` (no text: context = reference tokens)."""

    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    layers_per_block: int = 2  # 2 keeps the official injection points (input blocks 0, 3, 6, 9, 11)
    attention_head_dim: int = 64  # channels per head; heads per level = channels // this
    cross_attention_dim: int = 1024  # width of the reference tokens
    norm_num_groups: int = 32
    # The official ldm SpatialTransformer uses 1x1 conv proj_in/proj_out (SD2.1 itself uses linear ones).
    use_linear_projection: bool = False
    # The lowest level has no attention, as SD2.1 and the official attention_resolutions [4, 2, 1].
    attention_levels: tuple[bool, ...] = (True, True, True, False)
    # > 0: a colour prior (the split correspondence, refcolor.imaging.matching, as sRGB in [-1, 1]
    # at the latent grid) is concatenated to the noisy latents; conv_in takes latent + these channels.
    prior_channels: int = 0


@dataclass(frozen=True)
class VaeSpec:
    block_out_channels: tuple[int, ...] = (128, 256, 512, 512)
    layers_per_block: int = 2
    latent_channels: int = 4
    norm_num_groups: int = 32
    scaling_factor: float = 0.18215  # SD2.1's latent scale, as the official config
    # > 0: no learned VAE but a PatchAutoencoder (pixels rearranged into patch_size^2 * 3 channels);
    # block_out_channels, layers_per_block and norm_num_groups are then unused.
    patch_size: int = 0

    @property
    def downsample_factor(self) -> int:
        return self.patch_size or 2 ** (len(self.block_out_channels) - 1)

    @property
    def channels(self) -> int:
        return 3 * self.patch_size**2 if self.patch_size else self.latent_channels


@dataclass(frozen=True)
class SketchEncoderSpec:
    in_channels: int = 3  # the official encoder takes the inverted line art as RGB
    # Widths of the full-resolution stem; each step after the first halves the size, so the
    # stem downsamples by 2 ** (len - 1), which must equal the VAE's factor (8).
    stem_channels: tuple[int, ...] = (16, 32, 96, 256)


@dataclass(frozen=True)
class ReferenceEncoderSpec:
    """A CLIP vision tower (transformers ``CLIPVisionModelWithProjection``)."""

    hidden_size: int = 1280
    intermediate_size: int = 5120
    num_hidden_layers: int = 32
    num_attention_heads: int = 16
    image_size: int = 224
    patch_size: int = 14
    projection_dim: int = 1024  # = UNet cross_attention_dim
    hidden_act: str = "gelu"  # OpenCLIP ViT-H/14 uses exact GELU, not quick_gelu

    @property
    def num_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2


@dataclass(frozen=True)
class BackgroundSpec:
    """Background recovery transformer (learned queries) and the mask-threshold embedding."""

    dim: int = 1024
    layers: int = 6
    learned_queries: int = 256  # = number of background tokens it outputs
    head_dim: int = 64
    mlp_ratio: int = 4
    threshold_sinusoidal_dim: int = 256


@dataclass(frozen=True)
class ScheduleSpec:
    """The training noise schedule (SD2.1's, eps-prediction), shared by every scheduler.

    Every field is a diffusers scheduler argument of the same name (they are passed as ``asdict``).
    """

    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: str = "scaled_linear"
    prediction_type: str = "epsilon"
    # Zero terminal SNR (Lin et al. 2024, diffusers' ``rescale_betas_zero_snr``): at the last training
    # step no signal is left, as at the start of sampling. Needs v-prediction.
    rescale_betas_zero_snr: bool = False


@dataclass(frozen=True)
class ModelConfig:
    name: str
    native_resolution: int  # side of a square with the area the model works at
    unet: UNetSpec = field(default_factory=UNetSpec)
    vae: VaeSpec = field(default_factory=VaeSpec)
    sketch_encoder: SketchEncoderSpec = field(default_factory=SketchEncoderSpec)
    reference_encoder: ReferenceEncoderSpec = field(default_factory=ReferenceEncoderSpec)
    background: BackgroundSpec = field(default_factory=BackgroundSpec)
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    foreground_adapter: AdapterSpec = field(default_factory=lambda: AdapterSpec(rank=4))
    background_adapter: AdapterSpec = field(default_factory=lambda: AdapterSpec(rank_fraction=0.5))
    # The official "both" mode builds its context as [fg, bg] repeated, so each side attends to
    # *all* tokens (tiny_switch_io.txt, mode_both). False gives the paper's clean split.
    both_mode_shares_tokens: bool = False
    # How far (model-resolution pixels) the upsampler averages chroma within each closed region of
    # the line art; luminance always uses 2 (refcolor.imaging.upsample.TENT_RADIUS).
    chroma_radius: float = 2.0
    # Finishing (refcolor.imaging.finishing), the defaults of the pipeline's color_match and flatten:
    # how far each side's colours are matched to its part of the reference, and how far each closed
    # region's pixels are pulled to the region's mean. 0 = off; jobs may override both.
    color_match: float = 0.0
    flatten: float = 0.0
    # For a UNet with a colour prior: below 1, denoising starts from the prior noised to this share of
    # the schedule (pipeline config prior_strength; 1 = from pure noise).
    prior_strength: float = 1.0

    def __post_init__(self) -> None:
        if self.reference_encoder.projection_dim != self.unet.cross_attention_dim:
            raise ValueError(
                f"{self.name}: reference tokens are {self.reference_encoder.projection_dim}-d but the UNet "
                f"expects {self.unet.cross_attention_dim}-d context; make them equal"
            )
        if self.background.dim != self.unet.cross_attention_dim:
            raise ValueError(
                f"{self.name}: background.dim={self.background.dim} must equal the context width "
                f"{self.unet.cross_attention_dim}"
            )
        if self.native_resolution % 64:
            raise ValueError(
                f"{self.name}: native_resolution={self.native_resolution} is not a multiple of 64"
            )


TINY = ModelConfig(
    name="tiny",
    native_resolution=256,
    unet=UNetSpec(
        block_out_channels=(16, 16, 32, 32),  # per-op overhead dominates at this size; keep it small
        attention_head_dim=8,
        cross_attention_dim=32,
        norm_num_groups=8,
    ),
    vae=VaeSpec(block_out_channels=(8, 16, 32, 32), layers_per_block=1, norm_num_groups=8),
    sketch_encoder=SketchEncoderSpec(stem_channels=(8, 16, 16, 32)),
    reference_encoder=ReferenceEncoderSpec(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=64,
        patch_size=8,
        projection_dim=32,
    ),
    background=BackgroundSpec(dim=32, layers=2, learned_queries=64, head_dim=16, threshold_sinusoidal_dim=64),
)

# The released weights were used with the official shared-token "both" context; `--both-clean` turns it off.
V1_5 = ModelConfig(name="v1.5", native_resolution=512, both_mode_shares_tokens=True)

NANO = ModelConfig(
    name="nano",
    native_resolution=128,
    unet=UNetSpec(
        block_out_channels=(64, 128, 192),
        layers_per_block=1,
        attention_head_dim=32,
        cross_attention_dim=128,
        norm_num_groups=16,
        # No self-attention over the 32x32 level: it would cost more than the rest of the UNet.
        attention_levels=(False, True, True),
    ),
    vae=VaeSpec(patch_size=4, scaling_factor=1.0),  # pixel space, 4x4 patches; scale set by training
    sketch_encoder=SketchEncoderSpec(stem_channels=(16, 32, 64)),
    reference_encoder=ReferenceEncoderSpec(
        hidden_size=128,
        intermediate_size=384,
        num_hidden_layers=3,
        num_attention_heads=4,
        image_size=64,
        patch_size=8,
        projection_dim=128,
    ),
    background=BackgroundSpec(dim=128, layers=2, learned_queries=64, head_dim=32, threshold_sinusoidal_dim=64),
    # v-prediction: an eps-predicting model this small, trained this briefly, leaves noise in the last
    # steps (low-noise eps is the hardest target); v stays well-posed at every noise level.
    schedule=ScheduleSpec(prediction_type="v_prediction", rescale_betas_zero_snr=True),
    foreground_adapter=AdapterSpec(rank=8),
    # Its colours are grainy at 128 px: averaging the chroma over 6 low-resolution pixels (within each
    # closed region; luma keeps the usual 2) took 1 point off ΔE00 on training triplets (model card).
    chroma_radius=6.0,
    # It washes colours out and leaves grain: matching each side to its reference side and pulling
    # fills halfway to their region's mean (chosen on training triplets) took held-out `both` FG
    # dE00 30.2 -> 21.5 and line F1 0.68 -> 0.88 (model card, "Finishing"). Since the local flatten
    # with a wider background window (issue 14, session 3), all the way: flat cel fills, blotches gone
    # from skies and hills, FG seg 11.59 -> 11.90 and FG dE00 15.67 -> 15.48 on training triplets.
    color_match=1.0,
    flatten=1.0,
)

# nano v2: nano with the split correspondence as a colour prior beside the noisy latents (UNet
# conv_in 48 + 3 channels); trained on from nano's weights, the prior's input channels starting at zero.
# Its samples start from the prior noised to 20 % of the schedule (4 of 20 steps): chosen on 24 training
# triplets (FG palette-segment error 14.7 from pure noise, 13.9 / 13.6 / 13.4 / 13.3 / 13.2 at 0.8 / 0.6
# / 0.4 / 0.3 / 0.2; model card).
NANO_V2 = replace(NANO, name="nano-v2", unet=replace(NANO.unet, prior_channels=3), prior_strength=0.2)

# tiny with the colour prior (tests).
TINY_PRIOR = replace(TINY, name="tiny-prior", unet=replace(TINY.unet, prior_channels=3))

OFFICIAL_TINY = ModelConfig(
    name="official-tiny",
    native_resolution=128,
    unet=UNetSpec(block_out_channels=(32, 64, 128, 128), attention_head_dim=16, cross_attention_dim=64),
    vae=VaeSpec(block_out_channels=(32, 64, 128, 128)),
    sketch_encoder=SketchEncoderSpec(),
    reference_encoder=ReferenceEncoderSpec(
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=32,
        patch_size=8,
        projection_dim=64,
    ),
    background=BackgroundSpec(
        dim=64, layers=6, learned_queries=16, head_dim=64, threshold_sinusoidal_dim=256
    ),
    both_mode_shares_tokens=True,
)

CONFIGS: dict[str, ModelConfig] = {c.name: c for c in (TINY, TINY_PRIOR, NANO, NANO_V2, V1_5, OFFICIAL_TINY)}


def get_config(name: str) -> ModelConfig:
    """The configuration called ``name``.

    Raises:
        KeyError: unknown name (the message lists the known ones).
    """
    try:
        return CONFIGS[name]
    except KeyError:
        raise KeyError(
            f"unknown model config {name!r}: expected one of {', '.join(sorted(CONFIGS))}"
        ) from None
