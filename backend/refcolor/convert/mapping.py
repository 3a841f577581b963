"""Which official key becomes which of ours: the conversion plan, built without touching data.

The official checkpoint uses the original LDM layout (``model.diffusion_model.*``,
``first_stage_model.*``) plus ``control_encoder.*``, ``thresh_embedder.*`` and
``transformer.*``. The UNet and VAE names go through diffusers' own single-file
conversion (``convert_ldm_unet_checkpoint``/``convert_ldm_vae_checkpoint``), run on
:class:`_Handle` objects that stand for tensors, so the plan knows every rename (and
the VAE attention's 1x1-conv -> linear squeeze) before a byte is read. The LoRA keys
ride along through the UNet conversion (they sit under the attention blocks) and are
then renamed to peft's (``lora_down_fg`` -> ``lora_A`` of adapter ``foreground``,
``lora_up_bg`` -> ``lora_B`` of ``background``).

The expected *shape* of every official key is derived from our own modules of the
chosen :class:`~refcolor.diffusion.config.ModelConfig` (built on the meta device), so the
same plan checks the real v1.5 checkpoint and the authors' tiny variant; for ``v1.5``
the derived shapes equal the released manifest's (a test holds them together).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

import torch

from refcolor.diffusion.attention import BACKGROUND, FOREGROUND
from refcolor.diffusion.config import ModelConfig

if TYPE_CHECKING:
    from refcolor.diffusion.factory import Components  # heavy: diffusers, transformers

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
SKETCH_PREFIX = "control_encoder."
THRESHOLD_PREFIX = "thresh_embedder."
TRANSFORMER_PREFIX = "transformer."
LORA_KEY = re.compile(r"(?P<layer>.*)\.lora_(?P<kind>down|up)_(?P<side>fg|bg)\.weight")
LORA_SIDES = {"fg": FOREGROUND, "bg": BACKGROUND}
MANIFEST_FILE = "switch_manifest.json"
WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"
ADAPTER_FILE = "adapter_model.safetensors"
COMPONENTS = ("unet", "vae", "sketch_encoder", "background_encoder")


@dataclass(frozen=True)
class Manifest:
    """The official checkpoint's key names and shapes (``switch_manifest.json``)."""

    keys: dict[str, tuple[int, ...]]
    optional: frozenset[str]  # DDPM schedule buffers: recomputed from the config, may be absent
    n_params: int


@functools.lru_cache(maxsize=1)
def load_manifest() -> Manifest:
    """The manifest shipped with the package (a copy of ``shared/official/switch_manifest.json``)."""
    text = resources.files("refcolor.convert").joinpath(MANIFEST_FILE).read_text()
    data = json.loads(text)
    return Manifest(
        keys={k: tuple(v) for k, v in data["keys"].items()},
        optional=frozenset(data["optional_keys"]),
        n_params=int(data["n_params"]),
    )


@dataclass(frozen=True)
class TensorTarget:
    """Where one official tensor goes.

    ``component`` is a pipeline folder (``unet``, ``vae``, ...); ``adapter`` names the peft
    adapter for LoRA weights; ``key`` is the name inside the saved file; ``squeeze`` counts the
    trailing singleton dimensions the official tensor has and ours drops.
    """

    component: str
    key: str
    adapter: str | None = None
    squeeze: int = 0

    @property
    def file(self) -> str:
        """The file, relative to the pipeline folder."""
        if self.adapter is not None:
            return f"{self.component}/adapters/{self.adapter}/{ADAPTER_FILE}"
        return f"{self.component}/{WEIGHTS_FILE}"

    @property
    def module_key(self) -> str:
        """The parameter's name in our live module (peft inserts ``base_layer``/the adapter name)."""
        if self.adapter is not None:
            return re.sub(r"\.(lora_[AB])\.weight$", rf".\1.{self.adapter}.weight", self.key)
        if self.component == "unet" and re.search(r"attn2\.to_[qkv]\.weight$", self.key):
            return self.key.replace(".weight", ".base_layer.weight")
        return self.key

    def convert(self, tensor: torch.Tensor) -> torch.Tensor:
        """The official tensor in our layout."""
        for _ in range(self.squeeze):
            tensor = tensor[..., 0]
        return tensor


@dataclass(frozen=True)
class ConversionPlan:
    config: ModelConfig
    targets: dict[str, TensorTarget]  # official key -> target
    file_shapes: dict[str, dict[str, tuple[int, ...]]]  # file -> saved key -> shape
    expected: dict[str, tuple[int, ...]]  # official key -> shape it must have
    optional: frozenset[str] = field(default_factory=frozenset)

    def files(self) -> list[str]:
        return sorted(self.file_shapes)


class _Handle:
    """Stands for an official tensor inside diffusers' conversion functions (name and shape only)."""

    def __init__(self, key: str, shape: tuple[int, ...], squeeze: int = 0) -> None:
        self.key, self.shape, self.squeeze = key, shape, squeeze

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, index: Any) -> _Handle:
        # diffusers squeezes 1x1 convolutions with x[:, :, 0] / x[:, :, 0, 0]
        if not (
            isinstance(index, tuple)
            and index[:2] == (slice(None), slice(None))
            and all(i == 0 for i in index[2:])
            and len(index) == self.ndim
        ):
            raise TypeError(f"unexpected indexing {index!r} of {self.key} during conversion")
        return _Handle(self.key, self.shape[:2], len(index) - 2)


def _diffusers_targets(converted: dict[str, Any], component: str) -> dict[str, TensorTarget]:
    targets: dict[str, TensorTarget] = {}
    for key, handle in converted.items():
        if not isinstance(handle, _Handle):
            continue  # diffusers looked up a key the checkpoint does not have (None)
        match = LORA_KEY.fullmatch(key)
        if match:
            kind = "lora_A" if match["kind"] == "down" else "lora_B"
            target = TensorTarget(component, f"{match['layer']}.{kind}.weight", adapter=LORA_SIDES[match["side"]])
        else:
            target = TensorTarget(component, key, squeeze=handle.squeeze)
        if handle.key in targets:
            raise RuntimeError(f"{handle.key} was converted twice")
        targets[handle.key] = target
    return targets


def _renamed(key: str) -> TensorTarget | None:
    """Targets of the components that keep the official structure (renames only)."""
    if key.startswith(SKETCH_PREFIX):
        rest = key.removeprefix(SKETCH_PREFIX)
        name = "stem." + rest.removeprefix("model.") if rest.startswith("model.") else rest
        return TensorTarget("sketch_encoder", name)
    if key.startswith(THRESHOLD_PREFIX):
        return TensorTarget("background_encoder", "threshold_embedder." + key.removeprefix(THRESHOLD_PREFIX))
    if key.startswith(TRANSFORMER_PREFIX):
        return TensorTarget("background_encoder", key)
    return None


def target_modules(config: ModelConfig) -> Components:
    """Our modules of ``config`` on the meta device (shapes only, nothing allocated)."""
    from refcolor.diffusion.factory import build_components  # heavy: diffusers, transformers

    with torch.device("meta"):
        return build_components(config, every_path_random=False)


def saved_shapes(parts: Components) -> dict[str, dict[str, tuple[int, ...]]]:
    """file -> key -> shape of what ``save_pretrained`` writes for these modules' weights."""
    from peft import get_peft_model_state_dict

    files: dict[str, dict[str, tuple[int, ...]]] = {}
    for component in COMPONENTS:
        state = parts[component].state_dict()
        files[f"{component}/{WEIGHTS_FILE}"] = {
            k.replace(".base_layer.", "."): tuple(v.shape) for k, v in state.items() if ".lora_" not in k
        }
    for adapter in (FOREGROUND, BACKGROUND):
        state = get_peft_model_state_dict(parts["unet"], adapter_name=adapter)
        files[f"unet/adapters/{adapter}/{ADAPTER_FILE}"] = {k: tuple(v.shape) for k, v in state.items()}
    return files


@functools.lru_cache(maxsize=4)
def build_plan(config: ModelConfig) -> ConversionPlan:
    """The conversion plan of ``config``: every official key's target and expected shape.

    Raises:
        RuntimeError: ``config`` does not fit the official key layout (a plan that would leave
            one of our weights unset or an official key unused).
    """
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

    manifest = load_manifest()
    parts = target_modules(config)
    handles = {k: _Handle(k, shape) for k, shape in manifest.keys.items() if k not in manifest.optional}
    targets: dict[str, TensorTarget] = {}
    unet_handles = {k: h for k, h in handles.items() if k.startswith(UNET_PREFIX)}
    targets.update(_diffusers_targets(convert_ldm_unet_checkpoint(unet_handles, dict(parts["unet"].config)), "unet"))
    vae_handles = {k: h for k, h in handles.items() if k.startswith(VAE_PREFIX)}
    targets.update(_diffusers_targets(convert_ldm_vae_checkpoint(vae_handles, dict(parts["vae"].config)), "vae"))
    for key in handles:
        target = _renamed(key)
        if target is not None:
            targets[key] = target

    file_shapes = saved_shapes(parts)
    unused = sorted(set(handles) - set(targets))
    produced: dict[str, set[str]] = {}
    for target in targets.values():
        produced.setdefault(target.file, set()).add(target.key)
    problems = [f"official keys without a target: {unused[:5]}"] if unused else []
    for file, shapes in file_shapes.items():
        missing, extra = set(shapes) - produced.get(file, set()), produced.get(file, set()) - set(shapes)
        if missing or extra:
            problems.append(f"{file}: unset {sorted(missing)[:5]}, unknown {sorted(extra)[:5]}")
    if problems:
        raise RuntimeError(f"config {config.name!r} does not fit the official key layout: " + "; ".join(problems))

    expected = {key: file_shapes[t.file][t.key] + (1,) * t.squeeze for key, t in targets.items()}
    for key in manifest.optional:
        expected[key] = manifest.keys[key]
    return ConversionPlan(config, targets, file_shapes, expected, manifest.optional)
