"""Connection files: how a client finds a running backend and its key.

Like Jupyter's kernel connection files: a small JSON file written by the server with
0600 permissions (only its owner can read the key), removed when the server stops::

    {"transport": "tcp", "address": "tcp://127.0.0.1:5557", "key": "<hex>",
     "signature_scheme": "hmac-sha256", "pid": 1234, "protocol_version": "1.5"}
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .spec import PROTOCOL_VERSION, SIGNATURE_SCHEME


def runtime_dir() -> Path:
    """Where connection files live: $REFCOLOR_RUNTIME_DIR, else a per-user runtime folder."""
    override = os.environ.get("REFCOLOR_RUNTIME_DIR")
    if override:
        return Path(override)
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home())) / "refcolor" / "runtime"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "refcolor" / "runtime"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg) / "refcolor"
    return Path.home() / ".local" / "share" / "refcolor" / "runtime"


def default_connection_file() -> Path:
    return runtime_dir() / "backend.json"


def new_key() -> bytes:
    return secrets.token_hex(32).encode("ascii")


TRANSPORT_USERNAME = b"refcolor"
"""The ZeroMQ PLAIN user name a client of a keyed server connects with (see transport_password)."""


def transport_password(key: bytes) -> bytes:
    """The ZeroMQ PLAIN password for a keyed server: hex HMAC-SHA256(key, "refcolor transport").

    A keyed server admits a connection only after this ZAP handshake, so a peer without the
    key cannot make it buffer a single message. Derived, so the key itself never travels.
    """
    return hmac.new(key, b"refcolor transport", hashlib.sha256).hexdigest().encode("ascii")


def is_local_address(address: str) -> bool:
    """True for ipc/inproc endpoints and tcp on a loopback interface."""
    transport, _, rest = address.partition("://")
    if transport in ("ipc", "inproc"):
        return True
    if transport != "tcp":
        return False
    host = rest.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # an interface name or a hostname: assume it is reachable from outside


@dataclass(frozen=True)
class ConnectionInfo:
    address: str  # a ZeroMQ endpoint a client can connect to, e.g. tcp://127.0.0.1:5557
    key: bytes = b""
    signature_scheme: str = SIGNATURE_SCHEME
    pid: int = 0
    protocol_version: str = PROTOCOL_VERSION

    @property
    def transport(self) -> str:
        return self.address.partition("://")[0]

    def to_dict(self) -> dict[str, Any]:
        return {
            "transport": self.transport,
            "address": self.address,
            "key": self.key.decode("ascii"),
            "signature_scheme": self.signature_scheme,
            "pid": self.pid,
            "protocol_version": self.protocol_version,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "connection file") -> ConnectionInfo:
        address = data.get("address")
        if not isinstance(address, str) or "://" not in address:
            raise ValueError(f"{source}: 'address' must be an endpoint like tcp://127.0.0.1:5557, got {address!r}")
        key = data.get("key", "")
        if not isinstance(key, str) or not key.isascii():
            raise ValueError(f"{source}: 'key' must be an ASCII string, got {key!r:.20}")
        scheme = data.get("signature_scheme", SIGNATURE_SCHEME)
        if scheme != SIGNATURE_SCHEME:
            raise ValueError(f"{source}: signature_scheme {scheme!r} is not supported; expected {SIGNATURE_SCHEME!r}")
        pid = data.get("pid", 0)
        version = data.get("protocol_version", PROTOCOL_VERSION)
        return cls(
            address=address,
            key=key.encode("ascii"),
            signature_scheme=scheme,
            pid=pid if isinstance(pid, int) else 0,
            protocol_version=version if isinstance(version, str) else PROTOCOL_VERSION,
        )


def write_connection_file(info: ConnectionInfo, path: str | os.PathLike[str]) -> Path:
    """Write ``info`` to ``path`` readable by its owner only (0600), atomically."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(info.to_dict(), handle, indent=2)
    os.chmod(tmp, 0o600)  # in case the file existed with wider permissions
    os.replace(tmp, target)
    return target


def read_connection_file(path: str | os.PathLike[str]) -> ConnectionInfo:
    """Read a connection file.

    Raises:
        FileNotFoundError: no such file (no backend is running there).
        ValueError: the file is not a valid connection file; the message says why.
    """
    source = str(path)
    with open(path, encoding="utf-8") as handle:
        try:
            data = json.load(handle)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{source}: not valid UTF-8 JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a JSON object")
    return ConnectionInfo.from_dict(data, source)
