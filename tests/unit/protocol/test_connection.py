"""Connection files (0600, round trip, clear errors), loopback detection and the runtime folder."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from refcolor_protocol.connection import (
    ConnectionInfo,
    default_connection_file,
    is_local_address,
    new_key,
    read_connection_file,
    runtime_dir,
    write_connection_file,
)
from refcolor_protocol.spec import PROTOCOL_VERSION, SIGNATURE_SCHEME

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def info() -> ConnectionInfo:
    return ConnectionInfo(address="tcp://127.0.0.1:5557", key=new_key(), pid=4242)


@posix_only
def test_written_with_mode_0600(tmp_path: Path) -> None:
    path = write_connection_file(info(), tmp_path / "backend.json")
    assert path == tmp_path / "backend.json"
    assert mode_of(path) == 0o600


@posix_only
def test_mode_0600_even_under_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = write_connection_file(info(), tmp_path / "backend.json")
    finally:
        os.umask(old)
    assert mode_of(path) == 0o600


@posix_only
def test_existing_0644_file_is_replaced_with_0600(tmp_path: Path) -> None:
    path = tmp_path / "backend.json"
    path.write_text("{}")
    path.chmod(0o644)
    write_connection_file(info(), path)
    assert mode_of(path) == 0o600
    assert read_connection_file(path).pid == 4242


@posix_only
def test_leftover_temporary_file_with_0644_does_not_leak_the_key(tmp_path: Path) -> None:
    """A crashed writer may leave its temporary file behind with wide permissions: it is removed,
    and the key is written only to a new file made 0600."""
    path = tmp_path / "backend.json"
    leftover = tmp_path / ".backend.json.0123456789abcdef.tmp"
    leftover.write_text("old")
    leftover.chmod(0o644)
    write_connection_file(info(), path)
    assert mode_of(path) == 0o600
    assert not leftover.exists()


@posix_only
def test_creates_missing_folders_private(tmp_path: Path) -> None:
    path = write_connection_file(info(), tmp_path / "run" / "refcolor" / "backend.json")
    assert path.exists() and mode_of(path.parent) & 0o077 == 0


def test_round_trip(tmp_path: Path) -> None:
    original = info()
    path = write_connection_file(original, tmp_path / "backend.json")
    assert read_connection_file(path) == original
    assert read_connection_file(str(path)) == original
    data = json.loads(path.read_text())
    assert data == {
        "transport": "tcp",
        "address": "tcp://127.0.0.1:5557",
        "key": original.key.decode(),
        "signature_scheme": SIGNATURE_SCHEME,
        "pid": 4242,
        "protocol_version": PROTOCOL_VERSION,
    }


def test_round_trip_ipc_without_key(tmp_path: Path) -> None:
    original = ConnectionInfo(address="ipc:///tmp/refcolor.sock")
    path = write_connection_file(original, tmp_path / "backend.json")
    loaded = read_connection_file(path)
    assert loaded == original and loaded.key == b"" and loaded.transport == "ipc"


def test_rewriting_replaces_the_content(tmp_path: Path) -> None:
    path = tmp_path / "backend.json"
    write_connection_file(info(), path)
    second = ConnectionInfo(address="tcp://127.0.0.1:6000", key=b"k2", pid=7)
    write_connection_file(second, path)
    assert read_connection_file(path) == second
    assert [p.name for p in tmp_path.iterdir()] == ["backend.json"]


def test_new_key_is_64_hex_digits() -> None:
    key = new_key()
    assert len(key) == 64 and int(key, 16) >= 0 and key != new_key()


def test_minimal_file_gets_defaults(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"address": "tcp://127.0.0.1:1"}')
    assert read_connection_file(path) == ConnectionInfo(address="tcp://127.0.0.1:1")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (b"", "not valid UTF-8 JSON"),
        (b"{not json", "not valid UTF-8 JSON"),
        (b'{"address": "tcp://\xff"}', "not valid UTF-8 JSON"),
        (b"[]", "expected a JSON object"),
        (b"{}", "'address' must be an endpoint"),
        (b'{"address": "127.0.0.1:5557"}', "'address' must be an endpoint"),
        (b'{"address": 5557}', "'address' must be an endpoint"),
        (b'{"address": "tcp://127.0.0.1:1", "key": 123}', "'key' must be an ASCII string"),
        ('{"address": "tcp://127.0.0.1:1", "key": "cl\u00e9"}'.encode(), "'key' must be an ASCII string"),
        (b'{"address": "tcp://127.0.0.1:1", "signature_scheme": "hmac-md5"}', "'hmac-md5' is not supported"),
    ],
)
def test_malformed_file_names_the_file(tmp_path: Path, text: bytes, problem: str) -> None:
    path = tmp_path / "broken.json"
    path.write_bytes(text)
    with pytest.raises(ValueError) as info:
        read_connection_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and problem in message


def test_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_connection_file(tmp_path / "nothing.json")


@pytest.mark.parametrize(
    "address",
    [
        "tcp://127.0.0.1:5557",
        "tcp://127.0.0.2:5557",
        "tcp://127.255.255.254:1",
        "tcp://localhost:5557",
        "tcp://[::1]:5557",
        "tcp://127.0.0.1:*",
        "ipc:///tmp/refcolor.sock",
        "ipc://@abstract",
        "inproc://x",
    ],
)
def test_local_addresses(address: str) -> None:
    assert is_local_address(address) is True


@pytest.mark.parametrize(
    "address",
    [
        "tcp://0.0.0.0:5557",
        "tcp://*:5557",
        "tcp://10.0.0.1:5557",
        "tcp://192.168.1.5:5557",
        "tcp://eth0:5557",
        "tcp://myhost:5557",
        "tcp://example.org:5557",
        "tcp://[::]:5557",
        "tcp://[2001:db8::1]:5557",
        "udp://127.0.0.1:5557",
        "ws://127.0.0.1:5557",
        "127.0.0.1:5557",
        "",
    ],
)
def test_non_local_addresses(address: str) -> None:
    assert is_local_address(address) is False


def test_runtime_dir_honours_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFCOLOR_RUNTIME_DIR", str(tmp_path / "rt"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    assert runtime_dir() == tmp_path / "rt"
    assert default_connection_file() == tmp_path / "rt" / "backend.json"


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="XDG layout is for Linux and the like")
def test_runtime_dir_falls_back_to_xdg_then_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REFCOLOR_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    assert runtime_dir() == tmp_path / "xdg" / "refcolor"
    monkeypatch.setenv("REFCOLOR_RUNTIME_DIR", "")  # empty counts as unset
    assert runtime_dir() == tmp_path / "xdg" / "refcolor"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert runtime_dir() == tmp_path / "home" / ".local" / "share" / "refcolor" / "runtime"


# --- issue 18, item 8: the connection file's folder, and what may sit at its path ---------------


@posix_only
def test_new_folders_are_0700_even_under_umask_000(tmp_path: Path) -> None:
    # The fault: parents were made with the umask (0777 under umask 000), so another local user
    # could plant a backend.json in them.
    old = os.umask(0)
    try:
        path = write_connection_file(info(), tmp_path / "a" / "b" / "backend.json")
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "a") == 0o700 and mode_of(tmp_path / "a" / "b") == 0o700
    assert mode_of(path) == 0o600


@posix_only
def test_a_folder_others_can_write_is_refused_for_writing_and_reading(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    path = write_connection_file(info(), folder / "backend.json")
    folder.chmod(0o777)
    with pytest.raises(PermissionError, match=r"others can write to it \(mode 0777\).*chmod go-w"):
        write_connection_file(info(), folder / "backend.json")
    with pytest.raises(PermissionError, match="others can write to it"):
        read_connection_file(path)


@posix_only
def test_a_file_others_can_write_is_refused(tmp_path: Path) -> None:
    path = write_connection_file(info(), tmp_path / "backend.json")
    path.chmod(0o622)
    with pytest.raises(PermissionError, match=r"the connection file .* others can write to it"):
        read_connection_file(path)


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() != 0, reason="needs root to give a file away")
def test_a_file_or_folder_of_another_user_is_refused(tmp_path: Path) -> None:
    path = write_connection_file(info(), tmp_path / "backend.json")
    os.chown(path, 65534, 65534)
    with pytest.raises(PermissionError, match="belongs to user id 65534"):
        read_connection_file(path)
    os.chown(path, 0, 0)
    os.chown(tmp_path, 65534, 65534)
    try:
        with pytest.raises(PermissionError, match="belongs to user id 65534"):
            write_connection_file(info(), tmp_path / "backend.json")
    finally:
        os.chown(tmp_path, 0, 0)


@posix_only
def test_the_temporary_file_is_never_followed_through_a_link(tmp_path: Path, monkeypatch) -> None:
    # The fault: the temp file was opened without O_EXCL|O_NOFOLLOW, so a link planted at its
    # (predictable) name made the server truncate and write the file the link points to.
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    monkeypatch.setattr("refcolor_protocol.connection.secrets.token_hex", lambda n: "fixed")
    # Planted after the sweep of leftovers would run: the open itself must refuse it.
    real_glob = Path.glob

    def plant_then_glob(self: Path, pattern: str):  # type: ignore[no-untyped-def]
        found = list(real_glob(self, pattern))
        (tmp_path / ".backend.json.fixed.tmp").symlink_to(victim)
        return found

    monkeypatch.setattr(Path, "glob", plant_then_glob)
    with pytest.raises(FileExistsError):
        write_connection_file(info(), tmp_path / "backend.json")
    assert victim.read_text() == "precious"


@posix_only
def test_a_fifo_at_the_path_is_refused_without_hanging(tmp_path: Path) -> None:
    # The fault: a FIFO there made `refcolor ping` (and the plugin, on Krita's UI thread) hang.
    import threading

    fifo = tmp_path / "backend.json"
    os.mkfifo(fifo, 0o600)
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            read_connection_file(fifo)
        except BaseException as exc:  # whatever it is, the test reports it
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)
    assert not reader.is_alive(), "reading a FIFO hung"
    assert isinstance(outcome[0], ValueError) and "not a regular file" in str(outcome[0])


@posix_only
def test_a_link_at_the_path_is_refused(tmp_path: Path) -> None:
    real = write_connection_file(info(), tmp_path / "real.json")
    (tmp_path / "backend.json").symlink_to(real)
    with pytest.raises(ValueError, match="symbolic link"):
        read_connection_file(tmp_path / "backend.json")


def test_a_full_disk_gives_a_clear_error_and_leaves_no_temporary_file(tmp_path: Path, monkeypatch) -> None:
    # The fault: a full disk gave a raw traceback and left a 0-byte temp file.
    import errno

    def full(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("refcolor_protocol.connection.json.dump", full)
    with pytest.raises(OSError, match=r"cannot write the connection file .*backend.json: No space left on device"):
        write_connection_file(info(), tmp_path / "backend.json")
    assert list(tmp_path.iterdir()) == []
