"""The converter against the released v1.5 layout (``switch_manifest.json``), at full size, allocating nothing.

A :class:`MetaReader` serves every manifest key as a meta tensor of its real shape, so the
whole 1.1-billion-parameter model is converted into meta-device modules in a few seconds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from refcolor.cli import main
from refcolor.convert.checks import CheckpointMismatchError
from refcolor.convert.converter import check_checkpoint, convert_checkpoint, convert_to_modules
from refcolor.convert.mapping import build_plan, load_manifest
from refcolor.convert.official_config import load_official_config, resolve_config
from refcolor.diffusion.config import OFFICIAL_TINY, V1_5
from refcolor.diffusion.pipeline import ReferenceColorizationPipeline
from refcolor.diffusion.schedulers import default_scheduler

from .official_files import OFFICIAL, TINY_CHECKPOINT, TINY_CONFIG, MetaReader, requires_official

LORA_KEY = "model.diffusion_model.output_blocks.5.1.transformer_blocks.0.attn2.to_v.lora_up_bg.weight"
CONV_KEY = "control_encoder.output_blocks.2.3.weight"


def elements(shapes: dict[str, tuple[int, ...]]) -> int:
    return sum(math.prod(shape) for shape in shapes.values())


@pytest.mark.skipif(not (OFFICIAL / "switch_manifest.json").is_file(), reason="shared manifest not present")
def test_the_packaged_manifest_is_the_shared_one() -> None:
    shared = json.loads((OFFICIAL / "switch_manifest.json").read_text())
    manifest = load_manifest()
    assert manifest.keys == {k: tuple(v) for k, v in shared["keys"].items()}
    assert manifest.optional == frozenset(shared["optional_keys"])


def test_v1_5_plan_expects_exactly_the_manifest() -> None:
    """The shapes derived from our modules through the mapping are the released ones, key for key."""
    plan, manifest = build_plan(V1_5), load_manifest()
    assert plan.expected == manifest.keys
    assert len(plan.targets) == len(manifest.keys) - len(manifest.optional) == 1251
    squeezed = sorted(k for k, t in plan.targets.items() if t.squeeze)
    assert squeezed == sorted(
        f"first_stage_model.{part}.mid.attn_1.{p}.weight"
        for part in ("encoder", "decoder")
        for p in ("q", "k", "v", "proj_out")
    )


def test_full_size_checkpoint_converts_into_a_pipeline_with_the_manifest_parameter_count() -> None:
    reader = MetaReader()
    parts = convert_to_modules(reader, V1_5)
    manifest = load_manifest()
    assert sorted(reader.read) == sorted(set(manifest.keys) - manifest.optional)  # every key consumed once
    pipe = ReferenceColorizationPipeline(
        **parts, scheduler=default_scheduler(V1_5.schedule), both_mode_shares_tokens=True
    )
    weights = {k: s for k, s in manifest.keys.items() if k not in manifest.optional}
    converted = sum(
        p.numel()
        for name, module in pipe.components.items()
        if isinstance(module, torch.nn.Module) and name != "image_encoder"
        for p in module.parameters()
    )
    assert (
        converted == elements(weights) == manifest.n_params - elements({k: manifest.keys[k] for k in manifest.optional})
    )
    lora = sum(p.numel() for n, p in pipe.unet.named_parameters() if ".lora_" in n)
    assert lora == elements({k: s for k, s in weights.items() if ".lora_" in k}) == 34_352_128


def test_schedule_buffers_are_optional() -> None:
    check_checkpoint(MetaReader(optional=False), build_plan(V1_5), "no-buffers")


@pytest.mark.parametrize(
    ("reader", "category", "named"),
    [
        (MetaReader(drop=(LORA_KEY,)), "missing (1)", LORA_KEY),
        (
            MetaReader(reshape={CONV_KEY: (1280, 1280, 3, 1)}),
            "wrong shape (1)",
            f"{CONV_KEY}: expected [1280, 1280, 3, 3], got [1280, 1280, 3, 1]",
        ),
        (
            MetaReader(extra={"cond_stage_model.visual.proj": (1280, 1024)}),
            "unexpected (1)",
            "cond_stage_model.visual.proj",
        ),
    ],
    ids=["missing-lora", "reshaped", "unexpected"],
)
def test_a_changed_key_fails_naming_it(reader: MetaReader, category: str, named: str) -> None:
    with pytest.raises(CheckpointMismatchError) as raised:
        convert_to_modules(reader, V1_5)
    message = str(raised.value)
    assert category in message and named in message
    assert reader.read == []  # checked before anything is read


def test_mismatch_writes_no_folder(tmp_path: Path) -> None:
    with pytest.raises(CheckpointMismatchError, match="missing"):
        convert_checkpoint(MetaReader(drop=(CONV_KEY,)), tmp_path / "out", V1_5)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


@requires_official
def test_tiny_config_json_is_the_official_tiny_config() -> None:
    assert load_official_config(TINY_CONFIG) is OFFICIAL_TINY
    assert resolve_config("v1.5") is V1_5
    with pytest.raises(ValueError, match="unknown model config"):
        resolve_config("v9")


@requires_official
def test_torch_checkpoint_converts_like_the_safetensors_one(converted_tiny: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    state = load_file(str(TINY_CHECKPOINT))
    checkpoint = tmp_path / "tiny_switch.ckpt"
    torch.save({"state_dict": state, "global_step": 1}, checkpoint)  # a training checkpoint's layout
    out = convert_checkpoint(checkpoint, tmp_path / "from_ckpt", OFFICIAL_TINY)
    for file in sorted(converted_tiny.rglob("*.safetensors")):
        relative = file.relative_to(converted_tiny)
        if relative.parts[0] == "image_encoder":
            continue
        assert (out / relative).read_bytes() == file.read_bytes(), relative


@requires_official
def test_convert_command_names_the_offending_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from safetensors.torch import load_file

    state = load_file(str(TINY_CHECKPOINT))
    del state[LORA_KEY]
    state[CONV_KEY] = state[CONV_KEY][:, :, :, :2].contiguous()
    checkpoint = tmp_path / "broken.pt"
    torch.save(state, checkpoint)
    code = main(["convert", str(checkpoint), str(tmp_path / "out"), "--config", str(TINY_CONFIG)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"missing (1):\n    {LORA_KEY}" in err
    assert f"{CONV_KEY}: expected [128, 128, 3, 3], got [128, 128, 3, 2]" in err
    assert not (tmp_path / "out").exists()


def test_an_existing_folder_is_only_replaced_when_asked_and_a_pipeline(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="--overwrite"):
        convert_checkpoint(MetaReader(), tmp_path, V1_5)
    with pytest.raises(FileExistsError, match="not a pipeline folder"):
        convert_checkpoint(MetaReader(), tmp_path, V1_5, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"
