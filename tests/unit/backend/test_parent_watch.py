"""The backend ends with the process that started it (refcolor.service.parent)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from refcolor.service.parent import PARENT_ENV, is_alive, parent_from_env, watch_parent


def test_a_process_is_alive_until_it_ends_even_before_it_is_reaped() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert is_alive(child.pid)
        child.kill()
        deadline = time.monotonic() + 5
        while is_alive(child.pid) and time.monotonic() < deadline:  # a zombie until waited for
            time.sleep(0.05)
        assert not is_alive(child.pid)
    finally:
        child.kill()
        child.wait()
    assert is_alive(os.getpid())


def test_the_watch_calls_back_once_when_the_parent_ends() -> None:
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    gone = threading.Event()
    calls = []

    def on_gone() -> None:
        calls.append(time.monotonic())
        gone.set()

    watch_parent(parent.pid, on_gone, interval_s=0.05)
    time.sleep(0.3)
    assert not gone.is_set()
    ended = time.monotonic()
    parent.kill()
    assert gone.wait(5)
    parent.wait()
    time.sleep(0.2)
    assert len(calls) == 1 and calls[0] - ended < 2


def test_the_parent_comes_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv(PARENT_ENV, "4242")
    assert parent_from_env() == 4242
    for bad in ("", "abc", "0", "-3"):
        monkeypatch.setenv(PARENT_ENV, bad)
        assert parent_from_env() is None
