"""Where a shot's files go: a local folder, or shared storage anything ``fsspec`` opens
(``s3://bucket/shot``, ``gs://...``, ``memory://...``; the protocol's package must be installed,
e.g. ``s3fs``).

A local folder gets every file under a temporary name renamed into place (a run killed at any
moment leaves whole files), and a lock file so two runs never write it at once. On object storage
a file is one object, written whole by a single put: it appears complete or not at all, so there is
no temporary name; there is no lock either (object stores have no advisory locks), so one run per
output is up to the studio's scheduler.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

LOCK_FILE = ".refcolor-batch.lock"
LOCAL_PROTOCOLS = (None, "file", "local")


class OutputBusyError(RuntimeError):
    """Another run holds the output's lock."""


def is_local(where: str | os.PathLike[str]) -> bool:
    """Whether ``where`` is a local path (a plain path or a ``file://`` URL)."""
    from fsspec.core import split_protocol

    protocol, _ = split_protocol(os.fspath(where))
    return protocol in LOCAL_PROTOCOLS


class Output:
    """A shot's output: files by name, read, checked and written whole."""

    def __init__(self, where: str | os.PathLike[str]) -> None:
        text = os.fspath(where)
        self.where = text
        self.folder: Path | None = None  # a local folder
        self.fs: Any = None  # else an fsspec filesystem, and the path in it
        self.root = ""
        if is_local(text):
            from fsspec.core import strip_protocol

            self.folder = Path(strip_protocol(text) if text.startswith(("file:", "local:")) else text)
        else:
            from fsspec.core import url_to_fs

            try:
                self.fs, self.root = url_to_fs(text)
            except (ImportError, ValueError) as error:  # an unknown protocol, or its package missing
                raise ValueError(f"cannot open the output {text}: {error}") from None
            self.root = self.root.rstrip("/")

    def __str__(self) -> str:
        return self.where

    def describe(self, name: str) -> str:
        """Where file ``name`` is, for messages."""
        return str(self.folder / name) if self.folder is not None else f"{self.where.rstrip('/')}/{name}"

    def _path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def prepare(self) -> None:
        """Create the output, and remove what a killed run was writing (never a finished file)."""
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            for stale in self.folder.glob(".*.tmp"):
                stale.unlink(missing_ok=True)
        else:
            self.fs.makedirs(self.root, exist_ok=True)

    def exists(self, name: str) -> bool:
        if self.folder is not None:
            return (self.folder / name).is_file()
        return bool(self.fs.isfile(self._path(name)))

    def read(self, name: str) -> bytes:
        """File ``name``'s bytes.

        Raises:
            OSError: it cannot be read (FileNotFoundError when it is not there).
        """
        if self.folder is not None:
            return (self.folder / name).read_bytes()
        return bytes(self.fs.cat_file(self._path(name)))

    def write(self, name: str, data: bytes) -> None:
        """File ``name`` written whole: a temporary file renamed into place, or one object put."""
        if self.folder is None:
            self.fs.pipe_file(self._path(name), data)
            return
        path = self.folder / name
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            temporary.write_bytes(data)
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Held for a run: a second run on the same local folder is refused.

        Raises:
            OutputBusyError: another run holds it.
        """
        if self.folder is None:
            logger.info("%s is not a local folder: no lock; run one batch per output", self.where)
            yield
            return
        with _folder_lock(self.folder):
            yield


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Holds ``folder``'s lock file for the block.

    Raises:
        OutputBusyError: another run holds it.
    """
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks here; one run per folder is up to the user
        yield
        return
    with open(folder / LOCK_FILE, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise OutputBusyError(f"another refcolor batch is writing to {folder}") from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
