"""Writing a ``.safetensors`` file one tensor at a time.

``safetensors.torch.save_file`` needs every tensor in memory at once; a 3.6 GB UNet
would then be held whole. The format is simple enough to stream: an 8-byte header
length, a JSON header with each tensor's dtype, shape and byte range, then the raw
bytes. Names, shapes and dtypes are declared up front, so every range is known and
tensors can be written in any order (each is seeked to).
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from types import TracebackType

import torch

from refcolor.convert.readers import DTYPES

DTYPE_NAMES: dict[torch.dtype, str] = {dtype: name for name, dtype in DTYPES.items()}
HEADER_ALIGNMENT = 8  # the reference implementation pads the JSON header to a multiple of 8


class SafetensorsWriter:
    """Declare every tensor, then :meth:`write` each exactly once; :meth:`close` checks that.

    Args:
        path: the file to write.
        entries: name -> (shape, dtype), the file's whole contents.
        metadata: string metadata (``{"format": "pt"}`` as ``save_file`` writes).
    """

    def __init__(
        self,
        path: str | Path,
        entries: dict[str, tuple[tuple[int, ...], torch.dtype]],
        metadata: dict[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        self._entries = dict(entries)
        self._ranges: dict[str, tuple[int, int]] = {}
        header: dict[str, object] = {"__metadata__": dict(metadata or {"format": "pt"})}
        offset = 0
        for name in sorted(self._entries):
            shape, dtype = self._entries[name]
            if dtype not in DTYPE_NAMES:
                raise ValueError(f"{name}: dtype {dtype} cannot be written to safetensors")
            size = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
            self._ranges[name] = (offset, offset + size)
            header[name] = {"dtype": DTYPE_NAMES[dtype], "shape": list(shape), "data_offsets": [offset, offset + size]}
            offset += size
        encoded = json.dumps(header, separators=(",", ":")).encode()
        encoded += b" " * (-len(encoded) % HEADER_ALIGNMENT)
        self._data_start = 8 + len(encoded)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("wb")
        self._file.write(struct.pack("<Q", len(encoded)))
        self._file.write(encoded)
        self._file.truncate(self._data_start + offset)
        self._written: set[str] = set()

    def write(self, name: str, tensor: torch.Tensor) -> None:
        """Write ``tensor`` (cast to the declared dtype) as ``name``.

        Raises:
            KeyError: ``name`` was not declared.
            ValueError: wrong shape, or written twice.
        """
        if name not in self._entries:
            raise KeyError(f"{self.path}: {name!r} was not declared")
        shape, dtype = self._entries[name]
        if tuple(tensor.shape) != tuple(shape):
            raise ValueError(f"{self.path}: {name} has shape {tuple(tensor.shape)}, declared {tuple(shape)}")
        if name in self._written:
            raise ValueError(f"{self.path}: {name} written twice")
        data = tensor.detach().to(device="cpu", dtype=dtype).contiguous().reshape(-1)
        begin, end = self._ranges[name]
        if end > begin:
            self._file.seek(self._data_start + begin)
            self._file.write(data.view(torch.uint8).numpy().data)
        self._written.add(name)

    def close(self) -> None:
        """Close the file; raise ``ValueError`` if a declared tensor was never written."""
        self._file.close()
        missing = sorted(set(self._entries) - self._written)
        if missing:
            raise ValueError(f"{self.path}: {len(missing)} declared tensors never written, e.g. {missing[:3]}")

    def __enter__(self) -> SafetensorsWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        else:
            self._file.close()
