"""`refcolor serve` and `refcolor ping` as a user runs them."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest
from support import REFCOLOR, ServerProcess, free_tcp_port

from refcolor_protocol import PROTOCOL_VERSION


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*REFCOLOR, *args], capture_output=True, text=True, timeout=timeout)


def test_serve_writes_a_private_connection_file_and_ping_reads_it(server_process) -> None:
    mode = stat.S_IMODE(os.stat(server_process.connection_file).st_mode)
    assert mode == 0o600
    info = json.loads(server_process.connection_file.read_text())
    assert info["transport"] == "tcp" and info["signature_scheme"] == "blake3" and len(info["key"]) == 64
    done = run("ping", "--connection-file", str(server_process.connection_file))
    assert done.returncode == 0, done.stderr
    assert f"protocol {PROTOCOL_VERSION}" in done.stdout and "model         classical (classical) on cpu" in done.stdout
    assert "max_pixels=67108864" in done.stdout
    assert "auto masks    sketch, reference" in done.stdout


def test_ping_uses_only_the_protocol_package(server_process) -> None:
    """The plugin's diagnostics run this inside Krita: no numpy, torch or backend code."""
    script = textwrap.dedent(
        f"""
        import sys
        from refcolor_protocol.cli import main
        code = main(["ping", "--connection-file", {str(server_process.connection_file)!r}])
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in {{"numpy", "torch", "refcolor", "PIL", "scipy"}})
        print("HEAVY", heavy)
        sys.exit(code if not heavy else 9)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "HEAVY []" in done.stdout


def test_ping_explains_a_missing_backend(tmp_path) -> None:
    done = run("ping", "--connection-file", str(tmp_path / "nothing.json"))
    assert done.returncode == 1 and "no backend is running there" in done.stderr and "refcolor serve" in done.stderr
    port = free_tcp_port()
    done = run("ping", "--connect", f"tcp://127.0.0.1:{port}", "--timeout", "0.5")
    assert done.returncode == 1 and "did not answer" in done.stderr and "[timeout]" in done.stderr


def test_ping_with_the_wrong_key_says_so(server_process) -> None:
    info = json.loads(server_process.connection_file.read_text())
    done = run("ping", "--connect", info["address"], "--key", "0" * 64)
    assert done.returncode == 1 and "bad_signature" in done.stderr


def test_serve_refuses_a_public_address_without_a_key(tmp_path) -> None:
    done = run("serve", "--bind", "tcp://0.0.0.0:0", "--no-key", "--connection-file", str(tmp_path / "c.json"))
    assert done.returncode == 2 and "refusing to listen on tcp://0.0.0.0:0 without a key" in done.stderr
    assert not (tmp_path / "c.json").exists()


def test_serve_reports_an_address_in_use(tmp_path) -> None:
    port = free_tcp_port()
    first = ServerProcess.start(tmp_path / "a", "--model", "classical", bind=f"tcp://127.0.0.1:{port}")
    try:
        done = run("serve", "--bind", f"tcp://127.0.0.1:{port}", "--connection-file", str(tmp_path / "b.json"))
        assert done.returncode == 2 and "Is another backend running?" in done.stderr
    finally:
        first.kill()


def test_serve_reports_an_unknown_model(tmp_path) -> None:
    done = run("serve", "--model", "nope", "--bind", "tcp://127.0.0.1:0", "--connection-file", str(tmp_path / "c.json"))
    assert done.returncode == 2 and "unknown model 'nope'" in done.stderr and "classical" in done.stderr


@pytest.mark.parametrize("extra", [[], ["--no-key"]])
def test_serve_on_ipc_with_and_without_key(tmp_path, extra: list[str]) -> None:
    from support import short_ipc_address

    server = ServerProcess.start(tmp_path / "srv", "--model", "classical", *extra, bind=short_ipc_address())
    try:
        done = run("ping", "--connection-file", str(server.connection_file))
        assert done.returncode == 0, done.stderr
    finally:
        server.kill()


def test_ping_refuses_a_fifo_at_the_connection_file_instead_of_hanging(tmp_path) -> None:
    fifo = tmp_path / "backend.json"
    os.mkfifo(fifo, 0o600)
    done = run("ping", "--connection-file", str(fifo), timeout=20)
    assert done.returncode != 0 and "not a regular file" in done.stderr, done


def test_serve_refuses_a_connection_file_folder_others_can_write(tmp_path) -> None:
    folder = tmp_path / "open"
    folder.mkdir()
    folder.chmod(0o777)
    args = ["--model", "classical", "--bind", "tcp://127.0.0.1:0", "--connection-file", str(folder / "c.json")]
    done = run("serve", *args)
    assert done.returncode == 2 and "others can write to it (mode 0777)" in done.stderr, done
    assert "Traceback" not in done.stderr and list(folder.iterdir()) == []
