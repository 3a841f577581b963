"""Connection files: how a client finds a running backend and its key.

Like Jupyter's kernel connection files: a small JSON file written by the server with
0600 permissions (only its owner can read the key), removed when the server stops::

    {"transport": "tcp", "address": "tcp://127.0.0.1:5557", "key": "<hex>",
     "signature_scheme": "blake3", "pid": 1234, "protocol_version": "1.7"}
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import ipaddress
import json
import os
import secrets
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .spec import PROTOCOL_VERSION, SIGNATURE_SCHEME, SIGNATURE_SCHEMES


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


def is_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie counts as gone on Linux)."""
    if sys.platform == "win32":
        import ctypes

        synchronize, wait_timeout = 0x00100000, 0x102
        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]  # Windows only
        handle = kernel32.OpenProcess(synchronize, False, pid)
        if not handle:
            return False
        try:
            return bool(kernel32.WaitForSingleObject(handle, 0) == wait_timeout)
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:  # a parent that died but was not reaped yet is a zombie: gone for our purposes
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


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

    @property
    def backend_gone(self) -> bool:
        """True when the file names a local backend whose process has ended: a stale file, left by
        a backend that crashed or was killed. (False when there is no pid or it still runs.)"""
        return self.pid > 0 and is_local_address(self.address) and not is_alive(self.pid)

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
        if scheme not in SIGNATURE_SCHEMES:
            raise ValueError(
                f"{source}: signature_scheme {scheme!r} is not supported; "
                f"expected one of {', '.join(SIGNATURE_SCHEMES)}"
            )
        pid = data.get("pid", 0)
        version = data.get("protocol_version", PROTOCOL_VERSION)
        return cls(
            address=address,
            key=key.encode("ascii"),
            signature_scheme=scheme,
            pid=pid if isinstance(pid, int) else 0,
            protocol_version=version if isinstance(version, str) else PROTOCOL_VERSION,
        )


MAX_CONNECTION_FILE_BYTES = 64 * 1024
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # not on Windows
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def _check_private(path: Path, what: str, st: os.stat_result) -> None:
    """Refuse ``path`` if another user owns it or anyone but its owner may write it (POSIX only)."""
    if sys.platform == "win32":
        return
    if st.st_uid != os.geteuid():
        raise PermissionError(
            f"refusing {what} {path}: it belongs to user id {st.st_uid}, not to you ({os.geteuid()}). "
            "Someone else may have put it there; remove it, or use a folder of your own (REFCOLOR_RUNTIME_DIR)."
        )
    if st.st_mode & 0o022:
        raise PermissionError(
            f"refusing {what} {path}: others can write to it (mode {stat.S_IMODE(st.st_mode):04o}), so another "
            f"user could replace the connection file. Run: chmod go-w {path}"
        )


def private_folder(folder: str | os.PathLike[str]) -> Path:
    """``folder``, made if missing with every new level 0700 (whatever the umask), and checked: it
    must be a folder of this user that nobody else can write.

    Raises:
        PermissionError: it belongs to someone else, or others can write to it.
        NotADirectoryError: it is not a folder.
    """
    path = Path(folder)
    missing = []
    probe = path
    while not os.path.lexists(probe) and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for level in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(level, 0o700)
            os.chmod(level, 0o700)  # mkdir's mode is cut by the umask
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(f"{path} is not a folder (a link or a file is there); remove it")
    _check_private(path, "the folder", st)
    return path


def write_connection_file(info: ConnectionInfo, path: str | os.PathLike[str]) -> Path:
    """Write ``info`` to ``path`` readable by its owner only (0600), atomically.

    The folder is made private (see :func:`private_folder`); the file is written under a new
    random name, opened exclusively without following links, then renamed over ``path``.

    Raises:
        PermissionError: the folder is not private (the message says how to fix it).
        OSError: writing failed (a full disk...); no temp file is left behind.
    """
    target = Path(path)
    private_folder(target.parent)
    for leftover in target.parent.glob(f".{target.name}.*.tmp"):  # of a writer that crashed
        with contextlib.suppress(OSError):
            leftover.unlink()
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(info.to_dict(), handle, indent=2)
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise OSError(exc.errno, f"cannot write the connection file {target}: {exc.strerror or exc}") from None
    return target


def read_connection_file(path: str | os.PathLike[str]) -> ConnectionInfo:
    """Read a connection file; never blocks, never follows a link at ``path``.

    Raises:
        FileNotFoundError: no such file (no backend is running there).
        PermissionError: the file or its folder belongs to someone else or others can write it.
        ValueError: not a regular file (a FIFO, a device...) or not a valid connection file; the
            message says why.
    """
    source = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ValueError(f"{source}: is a symbolic link; a connection file must be a regular file") from None
        raise
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{source}: not a regular file (a FIFO, a device or a folder); remove it")
        _check_private(Path(source).parent, "the folder of", os.stat(Path(source).parent))
        _check_private(Path(source), "the connection file", st)
        raw = handle.read(MAX_CONNECTION_FILE_BYTES + 1)
    if len(raw) > MAX_CONNECTION_FILE_BYTES:
        raise ValueError(f"{source}: larger than {MAX_CONNECTION_FILE_BYTES} bytes; not a connection file")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{source}: not valid UTF-8 JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a JSON object")
    return ConnectionInfo.from_dict(data, source)
