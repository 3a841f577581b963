"""``ReferenceColorizationPipeline``: sketch + reference -> colored layers (Yan et al., CVPR 2025).

Stages of ``__call__``: 1 check inputs; 2 bring images to the model's sizes; 3 encode
(cached by content hash when enabled); 4 build the guidance batches of the mode; 5 denoise;
6 decode, bring the colors back to full resolution with edge-aware upsampling and split them
into combined/foreground/background layers.
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DiffusionPipeline
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

from refcolor import LEGACY_MODULES
from refcolor.diffusion import inputs
from refcolor.diffusion.adapters import check_adapters
from refcolor.diffusion.attention import install_split_processors, masks_per_level
from refcolor.diffusion.background import BackgroundEncoder
from refcolor.diffusion.cache import ENCODING_CACHE_BYTES, EncodingCache, content_hash
from refcolor.diffusion.conditioning import (
    COND,
    NO_REFERENCE,
    NO_SKETCH,
    GuidanceBatch,
    TokenSets,
    build_batch,
    combine_guidance,
    token_sets_for_mode,
)
from refcolor.diffusion.patch_autoencoder import PatchAutoencoder, downsample_factor
from refcolor.diffusion.reference_encoder import encode_reference, encoder_input_size
from refcolor.diffusion.schedulers import make_scheduler
from refcolor.diffusion.sketch_encoder import SketchEncoder
from refcolor.diffusion.unet import SketchUNet
from refcolor.imaging import finishing, pixels
from refcolor.imaging.matching import WORK_SIDE as PRIOR_SIDE
from refcolor.imaging.matching import Correspondence, SideFields, composite, load_line_features
from refcolor.imaging.pixels import bands
from refcolor.imaging.upsample import TENT_RADIUS, Regions, in_parallel, upsample_lab
from refcolor_protocol import ColorizeParams, Mode, Stage

logger = logging.getLogger(__name__)

REGIONS_SHARE = 0.15  # of the upsampling stage's progress: the closed regions of the line art

StepCallback = Callable[["ReferenceColorizationPipeline", int, int, dict[str, torch.Tensor]], dict[str, Any]]
# SD's approximate latent -> RGB map; only for cheap previews.
LATENT_RGB = torch.tensor(
    [[0.298, 0.207, 0.208], [0.187, 0.286, 0.173], [-0.158, 0.189, 0.264], [-0.184, -0.271, -0.473]]
)


@dataclass
class ColorizationOutput:
    """One entry per variation; every layer is (H, W, 4) uint8 RGBA at the output size."""

    combined: list[np.ndarray]  # opaque: the fills with the sketch's lines multiplied over them
    foreground: list[np.ndarray]  # the fills alone (they go under the line art); alpha = the sketch mask
    background: list[np.ndarray]  # alpha = its complement
    native: np.ndarray  # (V, h, w, 3) float colors at model resolution, before upsampling
    interrupted: bool = False  # True when the interrupt flag (diffusers' ``_interrupt``) stopped denoising early


class ReferenceColorizationPipeline(DiffusionPipeline):
    """Split cross-attention sketch colorization. Components are built by :mod:`refcolor.diffusion.factory`.

    Config: ``native_resolution`` (side of the square area the model works at),
    ``both_mode_shares_tokens`` (the official "both" context quirk) and ``chroma_radius`` (how
    far, in model-resolution pixels, the upsampler averages chroma inside each closed region of
    the line art; see :func:`refcolor.imaging.upsample.upsample_fills`); ``color_match`` and
    ``flatten``, the defaults of the call's finishing strengths (:mod:`refcolor.imaging.finishing`);
    ``prior_strength``, for a model with a colour prior: below 1, denoising starts from the prior
    noised to that share of the schedule instead of from pure noise (the skipped steps count as done).
    """

    model_cpu_offload_seq = "image_encoder->background_encoder->sketch_encoder->unet->vae"
    _callback_tensor_inputs: ClassVar[list[str]] = ["latents"]

    def __init__(
        self,
        vae: AutoencoderKL | PatchAutoencoder,
        unet: SketchUNet,
        sketch_encoder: SketchEncoder,
        background_encoder: BackgroundEncoder,
        image_encoder: torch.nn.Module,
        scheduler: SchedulerMixin,
        native_resolution: int = 512,
        both_mode_shares_tokens: bool = False,
        chroma_radius: float = TENT_RADIUS,
        color_match: float = 0.0,
        flatten: float = 0.0,
        prior_strength: float = 1.0,
    ) -> None:
        super().__init__()
        check_adapters(unet)
        install_split_processors(unet)
        self.register_modules(
            vae=vae,
            unet=unet,
            sketch_encoder=sketch_encoder,
            background_encoder=background_encoder,
            image_encoder=image_encoder,
            scheduler=scheduler,
        )
        self.register_to_config(
            native_resolution=native_resolution,
            both_mode_shares_tokens=both_mode_shares_tokens,
            chroma_radius=chroma_radius,
            color_match=color_match,
            flatten=flatten,
            prior_strength=prior_strength,
        )
        self.encoding_cache: EncodingCache | None = None
        self._correspondence: Correspondence | None = None  # built on first use (colour prior models)
        self._interrupt = False
        check_adapters(self.unet)

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any) -> ReferenceColorizationPipeline:
        """diffusers' loader, then every weight copied into fresh memory.

        Loaded tensors can sit at odd addresses inside the file buffer, and BLAS picks other kernels
        for unaligned data, so fp32 results would differ in the last bits from the model that was
        saved; the copy makes a reloaded pipeline reproduce it exactly. Folders saved before the
        layout of issue 15 name older module paths; diffusers loads only modules already imported,
        so those names are imported first (:data:`refcolor.LEGACY_MODULES`).
        """
        for legacy in LEGACY_MODULES:
            importlib.import_module(legacy)
        pipe = super().from_pretrained(*args, **kwargs)
        for component in pipe.components.values():
            if isinstance(component, torch.nn.Module):
                for tensor in itertools.chain(component.parameters(), component.buffers()):
                    tensor.data = tensor.data.clone()
        return pipe

    # ---- controls -------------------------------------------------------------------------------

    def enable_encoding_cache(self, max_bytes: int = ENCODING_CACHE_BYTES) -> EncodingCache:
        """Cache encodings (reference tokens, sketch features, colour-prior fields), keyed by the
        content of their inputs, holding at most ``max_bytes``. (Nothing at full resolution is
        cached: a document's fills would hold hundreds of MB between jobs.)"""
        self.encoding_cache = EncodingCache(max_bytes)
        return self.encoding_cache

    @property
    def interrupt(self) -> bool:
        """diffusers' convention: a step-end callback sets ``_interrupt`` to stop after that step."""
        return self._interrupt

    @property
    def latent_factor(self) -> int:
        return downsample_factor(self.vae)

    # ---- 1. inputs ------------------------------------------------------------------------------

    # ---- 3. encoders (cached) -------------------------------------------------------------------

    def _cached(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        return compute() if self.encoding_cache is None else self.encoding_cache.get_or_compute(key, compute)

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return pixels.to_tensor(array).to(self._execution_device)

    def encode_sketch(self, ink: np.ndarray) -> list[torch.Tensor]:
        """Sketch features of native-size line ink (h, w) in [0, 1]; the blank sketch is all zeros."""

        def compute() -> list[torch.Tensor]:
            x = self._tensor(ink * 2.0 - 1.0).to(
                self.sketch_encoder.dtype
            )  # (1, 1, h, w), white lines on black
            x = x.expand(-1, self.sketch_encoder.config.in_channels, -1, -1)
            with torch.no_grad():
                return [f.to(self.unet.dtype) for f in self.sketch_encoder(x)]

        return self._cached(("sketch", content_hash(ink)), compute)

    def encode_reference_tokens(self, rgb: np.ndarray) -> torch.Tensor:
        """(1, T, D) tokens of an (S, S, 3) float RGB reference in [0, 1]."""

        def compute() -> torch.Tensor:
            with torch.no_grad():
                scaled = self._tensor(rgb * 2.0 - 1.0).to(self.image_encoder.dtype)
                return encode_reference(self.image_encoder, scaled).to(self.unet.dtype)

        return self._cached(("reference", content_hash(rgb)), compute)

    def encode_background_tokens(
        self,
        reference_rgb: np.ndarray,
        reference_mask: np.ndarray | None,
        background_rgb: np.ndarray | None,
        threshold: float,
    ) -> torch.Tensor:
        """Background tokens: of a separate background image, else the reference with its foreground
        whited out, through the recovery transformer; plus the threshold embedding (official
        ``bg_enhance``)."""

        def compute() -> torch.Tensor:
            with torch.no_grad():
                embedding = self.background_encoder.threshold_embedding(threshold).to(self.unet.dtype)
                if background_rgb is not None:
                    return self.encode_reference_tokens(background_rgb) + embedding
                keep = (
                    reference_rgb
                    if reference_mask is None
                    else np.where((reference_mask < threshold)[..., None], reference_rgb, 1.0)
                )
                tokens = self.encode_reference_tokens(keep.astype(np.float32))
                dtype = self.background_encoder.dtype
                return self.background_encoder.recover(tokens.to(dtype), threshold).to(self.unet.dtype)

        key = ("background", content_hash(reference_rgb, reference_mask, background_rgb, threshold))
        return self._cached(key, compute)

    @property
    def prior_channels(self) -> int:
        """Input channels of the UNet beyond the latents: the colour prior's (0 = no prior)."""
        return int(self.unet.config.in_channels) - int(self.unet.config.out_channels)

    def prior_fields(self, prior: inputs.PriorImages) -> SideFields:
        """What the sketch takes from each token set of the reference (:mod:`refcolor.imaging.matching`),
        cached: a job needs them at the latent grid and, starting from the prior, at the native size."""

        def compute() -> SideFields:
            if self._correspondence is None:
                self._correspondence = Correspondence(load_line_features(str(self._execution_device)))
            return self._correspondence.side_fields(
                prior.sketch_paper, prior.reference_rgb, prior.reference_mask, prior.background_rgb
            )

        images = (prior.sketch_paper, prior.reference_rgb, prior.reference_mask, prior.background_rgb)
        key = ("prior", content_hash(*images))
        return self._cached(key, compute)

    def colour_prior(
        self, images: inputs.PreparedImages, mode: Mode, threshold: float, size: tuple[int, int], fields: SideFields
    ) -> torch.Tensor:
        """(1, 3, h, w) sRGB in [-1, 1] of ``size`` = (w, h) (the latent grid, or the native size for a
        start image): ``fields`` (:meth:`prior_fields`) for ``mode``, composited by the sketch mask."""
        mask = pixels.resize_float(images.native_mask, size) >= threshold
        rgb = composite(fields.for_mode(mode), None if mask.all() else mask, size)
        return self._tensor(rgb * 2.0 - 1.0).to(self.unet.dtype)

    # ---- preview --------------------------------------------------------------------------------

    def preview_image(self, latents: torch.Tensor, index: int = 0) -> np.ndarray:
        """A cheap (h, w, 4) uint8 preview of ``latents[index]``: the pixels themselves in pixel space,
        else SD's linear latent -> RGB map (no VAE decode)."""
        latent = latents[index].detach().float().cpu()  # (C, h, w)
        if isinstance(self.vae, PatchAutoencoder):
            image = self.vae.decode(latent[None] / self.vae.config.scaling_factor).sample[0]
            rgb = image.permute(1, 2, 0).add(1).div(2).clamp(0, 1).numpy()
        else:
            factors = LATENT_RGB[: latent.shape[0]]
            rgb = torch.einsum("chw,cr->hwr", latent, factors).add(1).div(2).clamp(0, 1).numpy()
        return np.dstack([pixels.to_uint8(rgb), np.full(rgb.shape[:2], 255, np.uint8)])

    # ---- the call -------------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(
        self,
        sketch: pixels.ImageInput,
        reference: pixels.ImageInput,
        sketch_mask: pixels.ImageInput | None = None,
        reference_mask: pixels.ImageInput | None = None,
        background: pixels.ImageInput | None = None,
        params: ColorizeParams | None = None,
        *,
        denoised: np.ndarray | None = None,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        callback_on_step_end: StepCallback | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        callback_on_stage: Callable[[Stage, float], None] | None = None,
        output_type: str = "layers",
    ) -> ColorizationOutput:
        """Colorize ``sketch`` after ``reference``.

        Args:
            sketch: line art (dark lines on white or on transparency), any size; outputs have its size.
            reference: the color reference; its alpha, if not opaque, is its foreground mask.
            sketch_mask: (H, W) foreground mask of the sketch (255/1 = character). None: all foreground.
            reference_mask: foreground mask of the reference (overrides its alpha).
            background: a separate background reference, used for the background tokens instead of
                recovering them from the reference.
            params: the colorization parameters, with the protocol's names, ranges and defaults
                (PROTOCOL.md, ColorizeParams; None: all defaults). ``variations`` images are made, each
                from its own noise; ``seed`` and ``previews`` are the caller's (seeds travel in
                ``generator``); ``resolution`` is rounded to a multiple of 64.
            denoised: the ``native`` images of an earlier call with the same inputs, seeds and
                denoising parameters: encoding and denoising are skipped and only upsampling and
                finishing run (how a new ``color_match``/``flatten`` is tried at once).
            generator: one generator, or one per variation (CPU generators reproduce across devices).
            callback_on_step_end: ``f(pipe, step, timestep, {"latents": ...}) -> dict`` after every
                step; a returned ``"latents"`` replaces the latents. Exceptions propagate (cancel).
            callback_on_step_end_tensor_inputs: tensors handed to the callback.
            callback_on_stage: ``f(stage, done)`` as each stage starts (encoding, denoising, upsampling,
                finishing; ``done`` 0), so a caller can say what runs, and after each band of the
                full-resolution stages (``done`` in (0, 1]); exceptions propagate (cancel).
            output_type: ``"layers"``, the full-resolution layers; ``"native"``, only the model's own
                images (``native``; the layer lists are empty): the full-resolution stages are skipped.

        Returns:
            :class:`ColorizationOutput`.

        Raises:
            ValueError: a bad image or parameter, named with its value.
        """
        # 1. inputs
        if output_type not in ("layers", "native"):
            raise ValueError(f"output_type={output_type!r}; use 'layers' or 'native'")
        params = inputs.check_inputs(
            sketch, reference, sketch_mask, reference_mask, background, params or ColorizeParams(),
            generator, callback_on_step_end_tensor_inputs,
        )  # fmt: skip
        variations = params.variations
        self._interrupt = False
        self._on_stage = callback_on_stage or (lambda stage, done: None)
        device = self._execution_device

        # 2. model sizes
        side = inputs.model_side(params.resolution) or self.config.native_resolution
        images = inputs.prepare_images(
            sketch,
            reference,
            sketch_mask,
            reference_mask,
            background,
            side,
            encoder_input_size(self.image_encoder),
            prior_side=PRIOR_SIDE if self.prior_channels else 0,
        )
        width, height = images.native_size

        if denoised is not None:
            expected = (variations, height, width, 3)
            if denoised.shape != expected:
                raise ValueError(
                    f"denoised has shape {denoised.shape}, expected {expected} for these inputs; pass the "
                    "`native` of a call with the same sketch, resolution and variations"
                )
            return self._finish(denoised, images, params, False)

        # 3. encode; 4. guidance batches (inside the reference window and outside it)
        self._on_stage(Stage.ENCODING, 0.0)
        tokens, features, blank = self._encode(images, params)
        fields = self.prior_fields(images.prior) if images.prior is not None else None
        batch_in, batch_out, priors = self._guidance_batches(images, params, tokens, features, blank, fields)

        # 5. denoise
        self._on_stage(Stage.DENOISING, 0.0)
        sampler = make_scheduler(params.scheduler.value, self.scheduler.config)
        sampler.set_timesteps(params.steps, device=device)
        generators = list(generator) if isinstance(generator, Sequence) else generator
        latents, timesteps, skipped = self._start_latents(images, params, fields, sampler, generators)
        step_kwargs = (
            {"generator": generators} if "generator" in inspect.signature(sampler.step).parameters else {}
        )
        last_train_step = sampler.config.num_train_timesteps - 1
        interrupted = False
        with self.progress_bar(total=len(timesteps)) as bar:
            for i, t in enumerate(timesteps, start=skipped):
                if self.interrupt:
                    interrupted = True
                    break
                progress = 1.0 - float(t) / last_train_step
                batch = batch_in if params.guidance_start <= progress <= params.guidance_end else batch_out
                model_input = sampler.scale_model_input(torch.cat([latents] * len(batch.branches)), t)
                noise = self.unet(
                    model_input,
                    t,
                    batch.context,
                    batch.sketch_features,
                    cross_attention_kwargs=batch.cross_attention_kwargs,
                    prior=priors[id(batch)],
                ).sample
                predictions = dict(zip(batch.branches, noise.chunk(len(batch.branches)), strict=True))
                noise = combine_guidance(predictions, params.reference_scale, params.sketch_scale)
                latents = sampler.step(noise, t, latents, **step_kwargs, return_dict=False)[0]
                if callback_on_step_end is not None:
                    tensors = {
                        name: {"latents": latents}[name] for name in callback_on_step_end_tensor_inputs
                    }
                    returned = callback_on_step_end(self, i, int(t), tensors) or {}
                    latents = returned.get("latents", latents)
                bar.update()

        # 6. decode; upsample and finish
        decoded = self.vae.decode(latents.to(self.vae.dtype) / self.vae.config.scaling_factor).sample
        native = ((decoded.float() + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()  # (V, h, w, 3)
        if output_type == "native":
            return ColorizationOutput([], [], [], native, interrupted)
        return self._finish(native, images, params, interrupted)

    def _encode(
        self, images: inputs.PreparedImages, params: ColorizeParams
    ) -> tuple[TokenSets, list[torch.Tensor], list[torch.Tensor]]:
        """Stage 3: the mode's token sets, the sketch's features and a blank sketch's (cached)."""
        mode, threshold, dtype = params.mode, params.mask_threshold, self.unet.dtype
        features = self.encode_sketch(images.ink)
        blank = self.encode_sketch(np.zeros_like(images.ink))
        reference_tokens = self.encode_reference_tokens(images.reference_rgb)
        background_tokens: torch.Tensor | None = None
        threshold_embedding: torch.Tensor | None = None
        if mode in (Mode.BACKGROUND, Mode.BOTH):
            if images.reference_mask is None and images.background_rgb is None:
                logger.warning(
                    "mode %s without a reference mask, reference alpha or background image: "
                    "the background tokens are recovered from the whole reference",
                    mode.value,
                )
            background_tokens = self.encode_background_tokens(
                images.reference_rgb, images.reference_mask, images.background_rgb, threshold
            )
            threshold_embedding = self.background_encoder.threshold_embedding(threshold).to(dtype)
        tokens = token_sets_for_mode(
            mode, reference_tokens, background_tokens, threshold_embedding, self.config.both_mode_shares_tokens
        )
        return tokens, features, blank

    def _guidance_batches(
        self,
        images: inputs.PreparedImages,
        params: ColorizeParams,
        tokens: TokenSets,
        features: list[torch.Tensor],
        blank: list[torch.Tensor],
        fields: SideFields | None,
    ) -> tuple[GuidanceBatch, GuidanceBatch, dict[int, torch.Tensor | None]]:
        """Stage 4: the UNet batches inside the guidance window and outside it, and each one's colour
        prior (by ``id`` of the batch; None for a model without one)."""
        mode, threshold, variations, dtype = params.mode, params.mask_threshold, params.variations, self.unet.dtype
        width, height = images.native_size
        masks: dict[int, torch.Tensor] | None = None
        if tokens.background is not None:
            latent_mask_t = F.interpolate(
                self._tensor(images.native_mask), scale_factor=1 / self.latent_factor, mode="area"
            )
            masks = masks_per_level(latent_mask_t.to(dtype), len(self.unet.config.block_out_channels), threshold)
        use_ref, use_sketch = params.reference_scale != 1.0, params.sketch_scale != 1.0
        inside = (COND,) + ((NO_REFERENCE,) if use_ref else ()) + ((NO_SKETCH,) if use_sketch else ())
        outside = (COND,) + ((NO_SKETCH,) if use_sketch else ())
        scales = dict(foreground_scale=params.fg_strength, background_scale=params.bg_strength, merge=params.merge)
        batch_in = build_batch(mode, inside, tokens, features, blank, variations, masks, **scales)
        batch_out = build_batch(mode, outside, tokens.zeros(tokens=1), features, blank, variations, masks, **scales)
        priors: dict[int, torch.Tensor | None] = {id(batch_in): None, id(batch_out): None}
        if fields is not None:
            latent_size = (width // self.latent_factor, height // self.latent_factor)
            prior = self.colour_prior(images, mode, threshold, latent_size, fields)
            # The reference's colours, like its tokens: none in the no-reference branch, none outside
            # the guidance window.
            priors[id(batch_in)] = torch.cat(
                [(prior if b != NO_REFERENCE else torch.zeros_like(prior)).expand(variations, -1, -1, -1)
                 for b in batch_in.branches]
            )  # fmt: skip
            priors[id(batch_out)] = torch.zeros_like(prior).expand(variations * len(batch_out.branches), -1, -1, -1)
        return batch_in, batch_out, priors

    def _start_latents(
        self,
        images: inputs.PreparedImages,
        params: ColorizeParams,
        fields: SideFields | None,
        sampler: SchedulerMixin,
        generators: torch.Generator | list[torch.Generator] | None,
    ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Stage 5's start: the first latents, the timesteps to run and how many were skipped."""
        variations, dtype = params.variations, self.unet.dtype
        width, height = images.native_size
        shape = (variations, self.unet.config.out_channels, height // self.latent_factor, width // self.latent_factor)
        noise_start = randn_tensor(shape, generator=generators, device=self._execution_device, dtype=dtype)
        timesteps, skipped = sampler.timesteps, 0
        strength = self._own(params, "prior_strength")
        if fields is None or strength >= 1.0:
            return noise_start * sampler.init_noise_sigma, timesteps, skipped
        # Start from the colour prior, noised to the strength's step (SDEdit, Meng et al. 2022): the
        # model refines colours that are already in place instead of drawing them from noise.
        skipped = min(len(timesteps) - 1, round(len(timesteps) * (1.0 - strength)))
        timesteps = timesteps[skipped:]
        if hasattr(sampler, "set_begin_index"):
            sampler.set_begin_index(skipped)
        start = self.colour_prior(images, params.mode, params.mask_threshold, (width, height), fields)
        with torch.no_grad():
            encoded = self.vae.encode(start.to(self.vae.dtype)).latent_dist.mode()
        start_latents = (encoded * self.vae.config.scaling_factor).to(dtype).expand(variations, -1, -1, -1)
        return sampler.add_noise(start_latents, noise_start, timesteps[:1].repeat(variations)), timesteps, skipped

    def _own(self, params: ColorizeParams, name: str) -> float:
        """Parameter ``name`` of the job, or the model's own value (the config key of the same name)
        when the job leaves it auto."""
        value = getattr(params, name)
        return float(getattr(self.config, name) if value is None else value)

    def _finish(
        self, native: np.ndarray, images: inputs.PreparedImages, params: ColorizeParams, interrupted: bool
    ) -> ColorizationOutput:
        """Step 6 after decoding: (V, h, w, 3) model-resolution images to finished full-size layers.

        The full-resolution work runs band by band (:mod:`refcolor.imaging.upsample`): the
        temporaries stay small, and after each band the stage's progress is reported (where a
        cancel takes effect)."""
        mode, mask_threshold = params.mode, params.mask_threshold
        full_mask = images.full_mask
        foreground = None if full_mask is None else full_mask >= mask_threshold
        alpha = np.full(images.full_ink.shape, 255, np.uint8) if full_mask is None else pixels.to_uint8(full_mask)
        color_match, flatten = self._own(params, "color_match"), self._own(params, "flatten")
        sides = (
            finishing.sides_for_mode(
                mode, images.reference_rgb, images.reference_mask, images.background_rgb, mask_threshold
            )
            if color_match > 0
            else finishing.Sides(None)  # colour matching off: no reference statistics needed
        )
        self._on_stage(Stage.UPSAMPLING, 0.0)
        regions = Regions.of(  # about a sixth of the stage's time
            images.full_ink, foreground, progress=lambda done: self._on_stage(Stage.UPSAMPLING, REGIONS_SHARE * done)
        )
        lab = upsample_lab(
            np.concatenate(list(finishing.to_lab(native)), axis=-1),  # (h, w, 3V): one upsampling for all
            regions,
            float(self.config.chroma_radius),
            progress=lambda done: self._on_stage(Stage.UPSAMPLING, REGIONS_SHARE + (1 - REGIONS_SHARE) * done),
        )
        self._on_stage(Stage.FINISHING, 0.0)
        variations = len(native)
        combined, foreground_layers, background_layers = [], [], []
        for v in range(variations):
            # A third of the stage for the statistics, the rest for the bands of layers.
            def report(done: float, v: int = v) -> None:
                self._on_stage(Stage.FINISHING, (v + done) / variations)

            finish = finishing.Finishing(
                lab[..., 3 * v : 3 * v + 3], regions, foreground, sides, color_match, flatten,
                progress=lambda done: report(done / 3),
            )  # fmt: skip
            layers = pixels.empty_layers(images.full_ink.shape)

            def band(rows: slice, finish: finishing.Finishing = finish, layers: tuple = layers) -> None:
                pixels.write_layers(finish.rgb(rows), images.full_ink[rows], alpha[rows], [x[rows] for x in layers])

            in_parallel(band, list(bands(*images.full_ink.shape)), lambda done: report(1 / 3 + 2 / 3 * done))
            combined.append(layers[0])
            foreground_layers.append(layers[1])
            background_layers.append(layers[2])
        self.maybe_free_model_hooks()
        return ColorizationOutput(combined, foreground_layers, background_layers, native, interrupted)
