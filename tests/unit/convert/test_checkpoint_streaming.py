"""Reading checkpoints a tensor at a time and writing safetensors files a tensor at a time."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from refcolor.convert.readers import SafetensorsReader, open_checkpoint
from refcolor.convert.writer import SafetensorsWriter


def sample_tensors() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "a.weight": torch.randn(3, 5, generator=generator),
        "b.half": torch.randn(7, generator=generator).half(),
        "c.bf16": torch.randn(2, 2, 1, 1, generator=generator).bfloat16(),
        "d.scalar": torch.tensor(2.5),
        "e.index": torch.arange(6, dtype=torch.int64).reshape(2, 3),
        "f.empty": torch.zeros(0, 4),
    }


def test_written_file_is_what_safetensors_itself_reads(tmp_path: Path) -> None:
    tensors = sample_tensors()
    path = tmp_path / "streamed.safetensors"
    with SafetensorsWriter(path, {k: (tuple(v.shape), v.dtype) for k, v in tensors.items()}) as writer:
        for name in reversed(list(tensors)):  # any order
            writer.write(name, tensors[name])
    loaded = load_file(str(path))
    assert loaded.keys() == tensors.keys()
    for name, tensor in tensors.items():
        assert loaded[name].dtype == tensor.dtype and torch.equal(loaded[name], tensor), name


def test_writer_casts_and_refuses_mistakes(tmp_path: Path) -> None:
    path = tmp_path / "half.safetensors"
    writer = SafetensorsWriter(path, {"x": ((2, 2), torch.float16), "y": ((1,), torch.float16)})
    writer.write("x", torch.ones(2, 2))
    with pytest.raises(ValueError, match=r"shape \(3,\), declared \(1,\)"):
        writer.write("y", torch.ones(3))
    with pytest.raises(KeyError, match="'z' was not declared"):
        writer.write("z", torch.ones(1))
    with pytest.raises(ValueError, match="written twice"):
        writer.write("x", torch.ones(2, 2))
    with pytest.raises(ValueError, match=r"never written, e.g. \['y'\]"):
        writer.close()
    assert load_file(str(path))["x"].dtype == torch.float16


def test_safetensors_reader_gives_shapes_without_reading(tmp_path: Path) -> None:
    tensors = sample_tensors()
    path = tmp_path / "plain.safetensors"
    save_file(tensors, str(path))
    reader = open_checkpoint(path)
    assert isinstance(reader, SafetensorsReader)
    assert sorted(reader.names()) == sorted(tensors)
    assert reader.shape("c.bf16") == (2, 2, 1, 1) and reader.shape("d.scalar") == ()
    assert torch.equal(reader.get("a.weight"), tensors["a.weight"])
    reader.close()


@pytest.mark.parametrize("wrapped", [False, True], ids=["state-dict", "training-checkpoint"])
def test_torch_checkpoints_are_memory_mapped_state_dicts(tmp_path: Path, wrapped: bool) -> None:
    tensors = {k: v for k, v in sample_tensors().items() if k != "f.empty"}
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": tensors, "epoch": 3} if wrapped else tensors, path)
    reader = open_checkpoint(path)
    assert sorted(reader.names()) == sorted(tensors)
    assert reader.shape("a.weight") == (3, 5)
    assert torch.equal(reader.get("e.index"), tensors["e.index"])


def test_bad_checkpoints_are_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        open_checkpoint(tmp_path / "absent.safetensors")
    (tmp_path / "model.onnx").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"unknown checkpoint type '.onnx'"):
        open_checkpoint(tmp_path / "model.onnx")
    torch.save({"weights": torch.ones(1), "note": "hello"}, tmp_path / "mixed.pt")
    with pytest.raises(ValueError, match=r"not tensors: \['note'\]"):
        open_checkpoint(tmp_path / "mixed.pt")
