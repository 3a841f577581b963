"""`refcolor batch --ray` on a local Ray cluster of this machine (issue 20): the same frames as a local
batch, a worker killed mid-shot loses and repeats nothing, and a driver killed mid-shot resumes."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from support import REFCOLOR, free_tcp_port
from test_batch_cli import images, make_shot, wait_for_done

from refcolor.batch.cluster import ClusterOptions, RayRenderer, ray_renderer
from refcolor.batch.run import ShotSpec, run_shot
from refcolor.models import load_colorizer
from refcolor_protocol.messages import ColorizeParams

ray = pytest.importorskip("ray")
RAY = str(Path(sys.executable).with_name("ray"))


def stop_cluster(temp: Path) -> None:
    """Ends the processes of the cluster whose files are under ``temp`` (and no other Ray on this machine)."""
    import psutil

    for process in psutil.process_iter(["cmdline"]):
        if any(str(temp) in part for part in process.info["cmdline"] or ()):
            with contextlib.suppress(psutil.Error):
                process.kill()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """A head node with 2 CPUs in its own processes (as a studio's cluster is), this process a driver."""
    port = free_tcp_port()
    temp = Path(tempfile.mkdtemp(prefix="rc-ray-", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    # One authentication mode for the head and every driver (this process, the CLI's): left unset, a
    # head turns token mode on when ~/.ray/auth_token exists (any earlier local ray.init writes one)
    # and a driver connecting by address does not, and is refused.
    mode = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    try:
        started = subprocess.run(
            [RAY, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
             "--disable-usage-stats", f"--temp-dir={temp}"],
            capture_output=True, text=True, timeout=120,
        )
        assert started.returncode == 0, started.stdout + started.stderr
        address = f"127.0.0.1:{port}"
        ray.init(address=address, logging_level="WARNING", log_to_driver=False)
        yield address
    finally:
        ray.shutdown()
        stop_cluster(temp)
        shutil.rmtree(temp, ignore_errors=True)
        if mode is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = mode


def spec(folder: Path, out: str, model: str, frames: int) -> ShotSpec:
    if not (folder / "frames").exists():
        make_shot(folder, frames)
    paths = sorted((folder / "frames").glob("*.png"))
    params = ColorizeParams(seed=5, steps=6, previews=False)
    return ShotSpec(frames=paths, reference=folder / "sheet.png", output=folder / out, params=params, model=model,
                    masks=folder / "masks")


@pytest.mark.parametrize("model", ["classical", "tiny"])
def test_the_cluster_makes_the_frames_a_local_batch_makes(cluster: str, tmp_path: Path, model: str) -> None:
    import torch

    local = spec(tmp_path, "local", model, 4)
    # A Ray worker with one CPU runs torch on one thread (Ray sets OMP_NUM_THREADS); float sums in
    # another order differ in the last bit (tiny: 1 level in 0.003 % of pixels), so the local run
    # does the same arithmetic.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_shot(local, lambda: load_colorizer(model))
    finally:
        torch.set_num_threads(threads)
    on_ray = spec(tmp_path, "ray", model, 4)
    summary, _ = run_shot(on_ray, renderer=ray_renderer(ClusterOptions(workers=2), model))
    assert summary.ok and summary.done == 4
    want, got = images(local.output), images(on_ray.output)
    assert want.keys() == got.keys() and len(want) == 12
    assert all(np.array_equal(want[name], got[name]) for name in want), "the cluster's frames differ"
    strip = lambda m: [{k: v for k, v in f.items() if k != "seconds"} for f in m["frames"]]  # noqa: E731
    assert strip(json.loads((local.output / "manifest.json").read_text())) == strip(
        json.loads((on_ray.output / "manifest.json").read_text())
    )


def test_a_worker_killed_mid_shot_loses_and_repeats_nothing(cluster: str, tmp_path: Path) -> None:
    local = spec(tmp_path, "local", "classical", 6)
    run_shot(local, lambda: load_colorizer("classical"))
    renderers: list[RayRenderer] = []

    def make(shot, todo, arrays):
        renderers.append(RayRenderer(ClusterOptions(workers=2, window=4), "classical", "cpu", {}, shot, todo, arrays))
        return renderers[0]

    reported: list[int] = []

    def on_frame(index: int, record: dict) -> None:
        reported.append(index)
        if index == 0:  # frames 1-4 are out on the two workers: kill one of them
            pid = renderers[0].worker_pids()[1]
            subprocess.run(["kill", "-9", str(pid)], check=True)

    on_ray = spec(tmp_path, "ray", "classical", 6)
    summary, _ = run_shot(on_ray, on_frame=on_frame, renderer=make)
    assert summary.ok and summary.done == 6
    assert reported == list(range(6)), "a frame was lost or reported twice"
    assert renderers[0].tries, "no frame was on the killed worker: the scenario did not happen"
    want, got = images(local.output), images(on_ray.output)
    assert want.keys() == got.keys() and all(np.array_equal(want[n], got[n]) for n in want)


def test_a_driver_killed_mid_shot_resumes_on_the_cluster(cluster: str, tmp_path: Path) -> None:
    local = spec(tmp_path, "local", "classical", 8)
    run_shot(local, lambda: load_colorizer("classical"))
    out = tmp_path / "ray"
    command = [*REFCOLOR, "batch", str(tmp_path / "frames"), "--reference", str(tmp_path / "sheet.png"), "--masks",
               str(tmp_path / "masks"), "--model", "classical", "--seed", "5", "--steps", "6", "--ray", cluster,
               "--workers", "2", "-o", str(out)]
    driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_done(out / "manifest.json", 2, driver)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=60)
    finally:
        driver.kill()
    done_before = sum(f["status"] == "done" for f in json.loads((out / "manifest.json").read_text())["frames"])
    time.sleep(1)  # the cluster notices the dead driver and frees its workers
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{8 - done_before} frames colorized, {done_before} already done" in resumed.stderr
    want, got = images(local.output), images(out)
    assert want.keys() == got.keys() and all(np.array_equal(want[n], got[n]) for n in want)
