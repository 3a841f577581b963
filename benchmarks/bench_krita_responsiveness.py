"""Krita's event loop, and where the time goes, during a colorize run (real Krita, headless).

A 5 ms QTimer probe inside Krita records the longest gap between its ticks while the plugin
reads the layers, sends them, receives progress and previews, and writes the result layers.
The docker's stage lines are timed too: reading, sending, waiting, encoding, denoising,
upsampling, finishing, building and placing the layers (seconds each, from one run).
Needs `make setup` (krita, pyzmq for Krita's Python). Prints ``name: value`` lines.

Run: .venv/bin/python benchmarks/bench_krita_responsiveness.py [--size 2048] [--height H] [--steps 20]
     [--model nano]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from support import ServerProcess  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="the document's width (and height, unless --height)")
    parser.add_argument("--height", type=int, default=0)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--model", default="tiny")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rc-bench-"))
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR"):
        (work / name).mkdir(mode=0o700)
        env[name] = str(work / name)
    env["PYTHONPATH"] = os.pathsep.join(
        str(p) for p in (ROOT / "protocol", ROOT / "plugin", ROOT / ".venv" / "krita-site", ROOT / "tests" / "krita")
    )
    server = ServerProcess.start(work / "backend", "--model", args.model)
    try:
        config = {
            "connection_file": str(server.connection_file),
            "out": str(work / "observed.json"),
            "scenario": "colorize",
            "size": [args.size, args.height or args.size],
            "steps": args.steps,
            "timeout_s": 600,
        }
        (work / "config.json").write_text(json.dumps(config))
        subprocess.run(
            [
                shutil.which("kritarunner") or "kritarunner",
                "-s",
                "krita_flow",
                "-f",
                "main",
                "--",
                str(work / "config.json"),
            ],
            env=env,
            capture_output=True,
            timeout=900,
            check=False,
        )
        observed = json.loads((work / "observed.json").read_text())
    finally:
        server.kill()
    if "exception" in observed or observed["events"][-1][0] != "done":
        raise SystemExit(f"the run did not finish: {observed.get('exception') or observed['events'][-3:]}")
    print(f"# {args.size}x{args.height or args.size} document, model {args.model}, {args.steps} steps")
    for name, seconds in stage_times(observed["stages"]).items():
        print(f"stage_{name}_s: {seconds:.2f}")
    print(f"run_s: {observed['elapsed_s']:.2f}")
    print(f"max_event_loop_stall_ms: {observed['max_stall_ms']}")


STAGES = {  # the docker's stage line -> a short name
    "Reading": "read",
    "Sending": "send",
    "Waiting": "queue",
    "Started": "start",
    "Encoding": "encode",
    "Colorizing": "denoise",
    "Bringing": "upsample",
    "Finishing": "finish",
    "Building": "layers",
    "Placing": "place",
}


def stage_times(stages: list[list]) -> dict[str, float]:
    """Seconds from each stage line to the next, summed per stage."""
    times: dict[str, float] = {}
    for (start, text), (end, _) in itertools.pairwise(stages):
        name = STAGES.get(text.split(" ", 1)[0].rstrip("…:"), "other")
        times[name] = times.get(name, 0.0) + end - start
    return times


if __name__ == "__main__":
    main()
