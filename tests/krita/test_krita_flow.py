"""The plugin's colorize flow inside a real, headless Krita (kritarunner) against a real backend."""

from __future__ import annotations

import sys

import pytest
from kritatest import run_flow
from support import ServerProcess

pytestmark = pytest.mark.timeout(400)


def test_colorize_adds_a_group_below_the_line_art_and_touches_nothing_else(krita_env, backend, tmp_path) -> None:
    observed = run_flow(
        krita_env, tmp_path, scenario="colorize", connection_file=str(backend.connection_file), size=[320, 240]
    )
    assert observed["events"][-1] == ["done", ["Colorized 1 (seed 3)"]]
    assert observed["statuses"][-1][1] is True and "model tiny" in observed["statuses"][-1][0]
    # bottom first: the group sits directly below the line art, above the paper
    assert observed["stack"][:4] == ["paper", "Colorized 1", "line art", "notes"]
    (group,) = observed["groups"]
    assert group["visible"] and set(group["layers"]) == {"foreground", "background"}
    fg, bg = group["layers"]["foreground"], group["layers"]["background"]
    assert fg["type"] == bg["type"] == "paintlayer"
    # foreground: exactly the selection (80, 60, 160, 120); background: the whole document
    assert fg["bounds"] == [80, 60, 160, 120] and bg["bounds"] == [0, 0, 320, 240]
    assert fg["inside_min_alpha"] == 255 and fg["outside_max_alpha"] == 0
    assert bg["inside_min_alpha"] == 0 and bg["outside_max_alpha"] == 255
    assert observed["originals_unchanged"] and observed["selection_unchanged"]


def test_cancel_mid_job_leaves_the_document_untouched(krita_env, backend, tmp_path) -> None:
    observed = run_flow(
        krita_env,
        tmp_path,
        scenario="cancel",
        connection_file=str(backend.connection_file),
        size=[256, 192],
        steps=150,
        reference_size=[1000, 800],
    )
    assert observed["cancel_sent"]
    assert observed["events"][-1] == ["failed", "Cancelled: the document was not changed."]
    steps = [e[1] for e in observed["events"] if e[0] == "progress"]
    assert max(steps) < 150
    assert observed["groups"] == [] and "Colorized 1" not in observed["stack"]
    assert observed["originals_unchanged"] and observed["selection_unchanged"]


def test_no_backend_gives_a_status_not_an_exception(krita_env, tmp_path) -> None:
    observed = run_flow(
        krita_env,
        tmp_path,
        scenario="no_backend",
        connection_file=str(tmp_path / "none.json"),
        size=[64, 64],
        timeout_s=15,
    )
    texts = [text for text, ok in observed["statuses"]]
    assert not any(ok for _, ok in observed["statuses"])
    assert any("No backend running" in t and "none.json" in t for t in texts), texts
    assert observed["groups"] == [] and observed["originals_unchanged"]


def test_a_stale_connection_file_starts_a_new_backend(krita_env, tmp_path) -> None:
    # The fault: a backend that crashed left its connection file behind, and the plugin kept
    # connecting to the dead address forever. A file whose backend process has ended is stale:
    # the plugin starts a new backend (it may: a Python is set), connects, and colorizes.
    dead = ServerProcess.start(tmp_path / "backend", "--model", "classical")
    dead.kill()  # SIGKILL: no cleanup, the file stays
    assert dead.connection_file.exists()
    observed = run_flow(
        krita_env,
        tmp_path,
        scenario="colorize",
        connection_file=str(dead.connection_file),
        backend_python=sys.executable,
        model="classical",
        size=[160, 120],
    )
    texts = [text for text, ok in observed["statuses"]]
    assert "Starting the backend…" in texts, texts
    assert observed["events"][-1] == ["done", ["Colorized 1 (seed 3)"]], observed["events"]
    assert observed["statuses"][-1][1] is True and "model classical" in observed["statuses"][-1][0]
    assert observed["originals_unchanged"]
