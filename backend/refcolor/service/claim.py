"""What a server may take at start and must give back at stop: its address and connection file.

Two servers must not share either. At start, a live one (its socket accepts a connection, its
connection file's backend answers a ping) is refused with a message; a stale one, left by a
server that died, is taken over. At stop, a server removes only what is still its own: the ipc
socket file it bound (the same inode) and a connection file that still names it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from refcolor_protocol.client import backend_answers
from refcolor_protocol.connection import ConnectionInfo, read_connection_file

logger = logging.getLogger(__name__)


class InUseError(ValueError):
    """Another live backend holds the address or the connection file."""


def ipc_path(address: str) -> Path | None:
    transport, _, rest = address.partition("://")
    return Path(rest) if transport == "ipc" and rest not in ("", "*") else None


def _unix_socket_accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2.0)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except OSError:  # not a socket, no permission...: not ours to take
            return True
        return True


def claim_address(address: str) -> None:
    """Before binding ``address``: refuse an ipc path a live server listens on; remove a stale one.

    Raises:
        InUseError: a server accepts connections there.
    """
    path = ipc_path(address)
    if path is None or not os.path.lexists(path):
        return
    if _unix_socket_accepts(path):
        raise InUseError(
            f"{address} is in use: another backend listens there. Stop it (its connection file names its pid), "
            "or bind another path."
        )
    logger.info("taking over %s: the socket file was left by a server that is gone", address)
    path.unlink()


def claim_connection_file(path: Path) -> None:
    """Refuse a connection file whose backend still answers; a stale or unreadable one is overwritten.

    Raises:
        InUseError: the backend it names answers a ping.
    """
    try:
        info = read_connection_file(path)
    except FileNotFoundError:
        return
    except (OSError, ValueError) as exc:
        logger.info("replacing the connection file %s: %s", path, exc)
        return
    if backend_answers(info):
        raise InUseError(
            f"{path} belongs to a backend that is running (pid {info.pid}, {info.address}). Use it, stop it, "
            "or give this one another --connection-file."
        )
    logger.info("taking over the connection file %s: its backend (pid %s) does not answer", path, info.pid)


@dataclass
class Claimed:
    """What this server created, to remove at stop if it is still its own."""

    address: str
    socket_file: Path | None = None
    socket_inode: tuple[int, int] | None = None
    connection_file: Path | None = None

    def bound(self) -> None:
        """Call right after binding: remember the identity of the ipc socket file just made."""
        path = ipc_path(self.address)
        if path is not None:
            with contextlib.suppress(OSError):
                stat = path.lstat()
                self.socket_file, self.socket_inode = path, (stat.st_dev, stat.st_ino)

    def release(self) -> None:
        if self.socket_file is not None:
            with contextlib.suppress(OSError):
                stat = self.socket_file.lstat()
                if (stat.st_dev, stat.st_ino) == self.socket_inode:
                    self.socket_file.unlink()
        if self.connection_file is not None and _names_this_process(self.connection_file, self.address):
            self.connection_file.unlink(missing_ok=True)


def _names_this_process(path: Path, address: str) -> bool:
    try:
        info: ConnectionInfo = read_connection_file(path)
    except (OSError, ValueError):
        return False
    return info.pid == os.getpid() and info.address == address
