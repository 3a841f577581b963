"""The borrowed-GPU path (`make gpu-pack` / `make gpu-train`), end to end on the CPU with a few steps."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from refcolor.diffusion.config import TINY
from refcolor.diffusion.pipeline import ReferenceColorizationPipeline
from refcolor.imaging.matching import LINE_FEATURES_ENV, load_line_features
from refcolor.train import gpu, recipe
from refcolor.train.trainer import Trainer


@pytest.fixture
def data(data: Path) -> Path:
    """The training data set with one character larger than the packed side (it travels shrunk)."""
    big = np.zeros((700, 500, 4), np.uint8)
    big[100:600, 100:400] = (200, 60, 90, 255)
    Image.fromarray(big).save(data / "train" / "characters" / "big.png")
    return data


def test_pack_writes_small_webp_shards_and_the_prior_weights(data: Path, tmp_path: Path) -> None:
    shards = gpu.pack(data, tmp_path / "packed", shard_bytes=14_000)
    assert len(shards) >= 2 and all(s.stat().st_size <= 14_000 for s in shards)
    manifest = json.loads((tmp_path / "packed" / gpu.MANIFEST).read_text())
    backgrounds = len(list((data / "train" / "backgrounds").iterdir()))
    assert manifest["counts"] == {"characters": 4, "backgrounds": backgrounds}
    dest = gpu.unpack(tmp_path / "packed", tmp_path / "unpacked")
    characters = sorted((dest / "train" / "characters").iterdir())
    assert [p.name for p in characters] == ["big.webp", "c0.webp", "c1.webp", "c2.webp"]
    big = Image.open(characters[0])
    assert big.mode == "RGBA" and max(big.size) == gpu.CHARACTER_SIDE  # alpha kept, shrunk
    alpha = np.asarray(big)[..., 3]
    assert alpha.min() == 0 and alpha.max() == 255  # the character and its transparent surround
    # The prior's features load from the packed file exactly as from the package.
    paper = torch.ones(1, 1, 64, 64)
    paper[..., 30:33, :] = 0
    packed = load_line_features("cpu", tmp_path / "packed" / gpu.LINE_FEATURES_FILE)
    torch.testing.assert_close(packed(paper), load_line_features("cpu")(paper))


def test_a_gpu_run_trains_from_the_packed_data_and_its_parts_rebuild_a_model(data: Path, tmp_path: Path) -> None:
    gpu.pack(data, tmp_path / "packed")
    start = Trainer(TINY, recipe.SMOKE, tmp_path / "start-run", data, workers=0)
    init = start.export(tmp_path / "start")  # a model without the prior, as nano is for nano v2
    tiny = replace(recipe.SMOKE, config="tiny-prior", samples=6, sample_every=10_000, checkpoint_every=10_000)
    recipe.RECIPES["test-gpu"] = tiny
    try:
        parts = gpu.run(
            tmp_path / "packed", tmp_path / "out", init, config="tiny-prior", recipe="test-gpu", device="cpu",
            minutes=5, workers=0, precision="fp32", work=tmp_path / "work",
        )  # fmt: skip
    finally:
        del recipe.RECIPES["test-gpu"]
    assert LINE_FEATURES_ENV not in os.environ  # restored after the run
    assert parts and all(p.stat().st_size <= gpu.PART_BYTES for p in parts)
    result = gpu.join(tmp_path / "out", tmp_path / "result")
    status = json.loads((result / "status.json").read_text())
    assert status["finished"] and status["stage"] == "done" and status["device"] == "cpu"
    assert (result / "log.jsonl").read_text().count('"stage": "base"') == tiny.base.steps
    pipe = ReferenceColorizationPipeline.from_pretrained(result / status["model"])
    assert pipe.prior_channels == 3
    stored = load_file(str(result / status["model"] / "unet" / "diffusion_pytorch_model.safetensors"))
    assert stored["conv_in.weight"].dtype == torch.float16  # exported in fp16
    assert pipe.unet.conv_in.weight[:, -3:].abs().sum() > 0  # trained to read the prior


def test_split_parts_are_bounded_and_join_back(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    payload = np.random.default_rng(0).bytes(50_000)
    (folder / "sub" / "weights.bin").write_bytes(payload)
    parts = gpu.split(folder, tmp_path / "parts", part_bytes=16_000)
    assert len(parts) == 4 and max(p.stat().st_size for p in parts) == 16_000
    assert (gpu.join(tmp_path / "parts", tmp_path / "back") / "sub" / "weights.bin").read_bytes() == payload
    with pytest.raises(FileNotFoundError, match=r"no result\.tar"):
        gpu.join(tmp_path / "nothing", tmp_path / "x")


def test_a_gpu_mask_run_fine_tunes_the_shipped_mask_network_from_the_packed_data(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from refcolor.imaging import automask
    from refcolor.train import masknet

    def no_package() -> Path:  # as on the GPU machine: the rembg package is not there
        raise automask.MaskModelMissingError("no rembg here")

    monkeypatch.setattr(automask, "u2netp_path", no_package)
    gpu.pack(data, tmp_path / "packed")
    parts = gpu.run_masks(
        tmp_path / "packed", tmp_path / "out", minutes=0.05, device="cpu", workers=1, batch=2, validate=1,
        validate_every=2, net_sides=(32, 48), work=tmp_path / "work",
    )  # fmt: skip
    assert parts and all(p.name.startswith(f"{gpu.MASKS_RESULT}.") for p in parts)
    with pytest.raises(FileNotFoundError, match=r"no result\.tar"):  # the colour run's parts are not these
        gpu.join(tmp_path / "out", tmp_path / "wrong")
    result = gpu.join(tmp_path / "out", tmp_path / "result", name=gpu.MASKS_RESULT)
    status = json.loads((result / "status.json").read_text())
    assert status["finished"] and status["device"] == "cpu" and status["net_sides"] == [32, 48]
    assert status["steps"] >= 1 and set(status["validation"]) == {"reference", "sketch"}
    log = [json.loads(line) for line in (result / "log.jsonl").read_text().splitlines()]
    assert max(e["step"] for e in log) == status["steps"] and log[-1]["step"] == status["steps"]
    image = np.zeros((40, 56, 3), np.uint8)
    image[10:30, 20:40] = (250, 90, 20)
    for graph in ("u2netp_refcolor.onnx", masknet.BEST):  # the last and the best graphs run in onnxruntime
        assert automask.SaliencyNet(result / graph, side=48)(image).shape == (40, 56)
    tuned = masknet.Convertible.load(result / "u2netp_refcolor.onnx")
    shipped = masknet.Convertible.load(automask.mask_net_path())
    moved = [
        float((a - b).abs().max()) for a, b in zip(tuned.module.parameters(), shipped.module.parameters(), strict=True)
    ]
    assert 0 < max(moved) < 0.05  # trained on from the shipped graph (a few small steps)


def test_a_mask_run_that_fails_still_returns_what_it_has(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from refcolor.train import masknet

    def failing(data: Path, out: Path, *args: object, **kwargs: object) -> Path:
        out.mkdir(parents=True)
        (out / "u2netp_refcolor.onnx").write_bytes(b"graph so far")
        (out / "log.jsonl").write_text(json.dumps({"step": 1, "loss": 2.0}) + "\n")
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(masknet, "train", failing)
    gpu.pack(data, tmp_path / "packed")
    with pytest.raises(RuntimeError, match="out of memory"):
        gpu.run_masks(tmp_path / "packed", tmp_path / "out", device="cpu", workers=0, work=tmp_path / "work")
    result = gpu.join(tmp_path / "out", tmp_path / "result", name=gpu.MASKS_RESULT)
    status = json.loads((result / "status.json").read_text())
    assert not status["finished"] and "out of memory" in status["error"] and status["steps"] == 1
    assert (result / "u2netp_refcolor.onnx").read_bytes() == b"graph so far"


def _git_repository(root: Path) -> Path:
    import subprocess

    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / ".gitignore").write_text("/.gpu/\n/ignored.bin\n")  # 20 bytes
    (root / "tracked.bin").write_bytes(b"t" * 100)
    subprocess.run(["git", "-C", str(root), "add", ".gitignore", "tracked.bin"], check=True)
    (root / "untracked.bin").write_bytes(b"u" * 50)  # travels too: git does not ignore it
    (root / "ignored.bin").write_bytes(b"i" * 1000)
    (root / ".gpu" / "whl").mkdir(parents=True)
    (root / ".gpu" / "data-000.tar").write_bytes(b"d" * 200)
    (root / ".gpu" / "whl" / "x.whl").write_bytes(b"w" * 30)
    return root


def test_what_travels_is_the_repositorys_files_and_the_carried_folder(tmp_path: Path) -> None:
    root = _git_repository(tmp_path / "repo")
    assert gpu.travelling_bytes(root) == 20 + 100 + 50
    assert gpu.travelling_bytes(root, [root / ".gpu"]) == 20 + 100 + 50 + 200 + 30


def test_gpu_travel_refuses_a_pack_over_the_machines_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from refcolor.cli import main

    root = _git_repository(tmp_path / "repo")
    assert main(["gpu", "travel", "--packed", str(root / ".gpu"), "--repository", str(root)]) == 0
    assert "MiB travel" in capsys.readouterr().out
    monkeypatch.setattr(gpu, "TRAVEL_BYTES", 300)
    assert main(["gpu", "travel", "--packed", str(root / ".gpu"), "--repository", str(root)]) == 1
    error = capsys.readouterr().err
    assert "over the device machine's" in error and "CHARACTER_SIDE" in error
