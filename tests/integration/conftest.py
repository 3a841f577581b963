from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import ServerProcess, ThreadServer, short_ipc_address, thread_server


@pytest.fixture(autouse=True)
def _isolated_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's real connection file."""
    monkeypatch.setenv("REFCOLOR_RUNTIME_DIR", str(tmp_path / "runtime"))


@pytest.fixture(params=["tcp", "ipc"])
def bind(request: pytest.FixtureRequest) -> str:
    return "tcp://127.0.0.1:0" if request.param == "tcp" else short_ipc_address()


@pytest.fixture
def server(bind: str) -> Iterator[ThreadServer]:
    """A keyed server in a thread, on tcp and on ipc."""
    running = thread_server(bind=bind, preview_every=2, preview_size=64)
    yield running
    running.stop()


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[ServerProcess]:
    running = ServerProcess.start(tmp_path / "srv", "--model", "classical")
    yield running
    running.kill()
