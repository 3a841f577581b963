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
    """A crashed writer may leave its temporary file behind with wide permissions."""
    path = tmp_path / "backend.json"
    leftover = tmp_path / f".backend.json.{os.getpid()}.tmp"
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
