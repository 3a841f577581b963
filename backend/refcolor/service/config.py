"""The service's settings: where it listens, which model, and its limits (advertised in capabilities)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from refcolor_protocol.schema import PARAMS

DEFAULT_BIND = "tcp://127.0.0.1:5557"
LIMITED_PARAMS = tuple(spec for spec in PARAMS if spec.limit)  # capped by a ServerConfig field of the same name


@dataclass(frozen=True)
class ServerConfig:
    bind: str = DEFAULT_BIND  # a port of 0 or * picks a free one (see Server.address)
    key: bytes = b""  # empty: no signing, allowed on loopback/ipc only
    connection_file: Path | None = None  # written at start (0600), removed at shutdown
    model: str = "nano"
    device: str = "cpu"
    max_pixels: int = 8192 * 8192  # per image: a 64-megapixel RGBA image is 256 MiB
    max_queue: int = 8  # waiting jobs hold their images in memory, so keep this modest
    max_steps: int = 200
    max_variations: int = 8
    max_resolution: int = 1024  # the model's working side: its cost grows with the square
    max_job_seconds: float = 1800.0  # a running job is stopped after this (job_timed_out); 0 = no limit
    preview_every: int = 2
    preview_size: int = 256
    heartbeat_ms: int = 1000
    extra_models: tuple[str, ...] = field(default=())  # model folders to offer besides the registry
    # model name -> its factory's options (v1.5's weights folder...), from the CLI's model options
    model_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def max_frame_bytes(self) -> int:
        """The largest frame a valid request can have: one max-size RGBA image."""
        return self.max_pixels * 4 + (1 << 20)
