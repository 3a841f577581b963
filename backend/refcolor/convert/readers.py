"""Reading checkpoints one tensor at a time.

A converter never needs the whole checkpoint in memory: it asks a :class:`TensorReader`
for the key names and shapes first (to check them), then for one tensor after another.
``.safetensors`` files are read with plain file reads (shapes come from the header, a
tensor is read when asked for); torch pickles (``.ckpt``/``.pt``/``.pth``) are loaded
with ``mmap=True, weights_only=True``, so their storages stay on disk until touched.
Tests pass their own reader (e.g. meta tensors of a manifest's shapes).
"""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import torch

logger = logging.getLogger(__name__)

DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")


class TensorReader(Protocol):
    """Named tensors of a checkpoint, read one at a time."""

    def names(self) -> list[str]: ...

    def shape(self, key: str) -> tuple[int, ...]: ...

    def get(self, key: str) -> torch.Tensor: ...

    def close(self) -> None: ...


class SafetensorsReader:
    """A ``.safetensors`` file: shapes from its header, each tensor read from disk on :meth:`get`.

    Plain reads rather than ``safe_open``'s memory map: a map keeps every page it touched
    in the process (4.5 GB resident after a full pass), a read holds one tensor.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file = self.path.open("rb")
        (length,) = struct.unpack("<Q", self._file.read(8))
        header = json.loads(self._file.read(length))
        header.pop("__metadata__", None)
        self._start = 8 + length
        self._entries: dict[str, tuple[torch.dtype, tuple[int, ...], int, int]] = {}
        for key, entry in header.items():
            if entry["dtype"] not in DTYPES:
                raise ValueError(f"{self.path}: {key} has dtype {entry['dtype']}, which is not supported")
            begin, end = entry["data_offsets"]
            self._entries[key] = (DTYPES[entry["dtype"]], tuple(entry["shape"]), begin, end)

    def names(self) -> list[str]:
        return list(self._entries)

    def shape(self, key: str) -> tuple[int, ...]:
        return self._entries[key][1]

    def get(self, key: str) -> torch.Tensor:
        dtype, shape, begin, end = self._entries[key]
        if end == begin:
            return torch.empty(shape, dtype=dtype)
        data = bytearray(end - begin)
        self._file.seek(self._start + begin)
        if self._file.readinto(data) != len(data):
            raise ValueError(f"{self.path} is truncated: {key} lies beyond its end")
        return torch.frombuffer(data, dtype=dtype).reshape(shape)

    def close(self) -> None:
        self._file.close()


class StateDictReader:
    """An in-memory (or memory-mapped) mapping of names to tensors."""

    def __init__(self, state: Mapping[str, torch.Tensor]) -> None:
        self._state = dict(state)

    def names(self) -> list[str]:
        return list(self._state)

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self._state[key].shape)

    def get(self, key: str) -> torch.Tensor:
        return self._state[key]

    def close(self) -> None:
        self._state.clear()


def _unwrap(loaded: Any, path: Path) -> dict[str, torch.Tensor]:
    """The state dict inside a torch pickle: the object itself or its ``state_dict`` entry."""
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping):
        raise ValueError(f"{path}: expected a state dict (or a dict with 'state_dict'), got {type(loaded).__name__}")
    tensors = {k: v for k, v in loaded.items() if isinstance(v, torch.Tensor)}
    others = sorted(k for k in loaded if k not in tensors)
    if others:
        raise ValueError(
            f"{path}: entries that are not tensors: {others[:5]}{' ...' if len(others) > 5 else ''}; "
            "expected a flat state dict"
        )
    return tensors


def load_torch_pickle(path: str | Path) -> StateDictReader:
    """A torch checkpoint, memory-mapped where its format allows it (``torch.save`` zip format)."""
    path = Path(path)
    try:
        loaded = torch.load(str(path), map_location="cpu", mmap=True, weights_only=True)
    except RuntimeError as error:
        if "mmap" not in str(error):
            raise
        # The legacy (pre-1.6) format cannot be memory-mapped: it is read into memory whole.
        logger.warning("%s is in torch's legacy format; loading it without mmap (needs its size in RAM)", path)
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    return StateDictReader(_unwrap(loaded, path))


def open_checkpoint(path: str | Path) -> TensorReader:
    """A reader for ``path`` (``.safetensors``, ``.ckpt``, ``.pt``, ``.pth`` or ``.bin``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: unknown suffix, or a pickle that is not a state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        return SafetensorsReader(path)
    if suffix in PICKLE_SUFFIXES:
        return load_torch_pickle(path)
    raise ValueError(
        f"{path}: unknown checkpoint type {suffix!r}; expected one of "
        f"{', '.join(SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES)}"
    )
