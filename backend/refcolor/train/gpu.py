"""Training on a borrowed GPU machine: what travels there, what runs there, what comes back.

The machine has a GPU, 16 cores, Python 3.12 with torch, transformers, peft, scipy, scikit-image,
Pillow, onnx, onnxruntime and OpenCV, but no network, no diffusers and at most 64 MiB of inputs
(this repository included);
files come back at most 16 MiB each. So (``make gpu-pack`` here, ``make gpu-train`` there):

* :func:`pack` writes the training split as WebP images in tar shards of at most ``shard_bytes``
  (characters at most 256 px, backgrounds 512 px: colour samples are drawn at 256 px), and the colour
  prior's feature extractor (:class:`refcolor.imaging.matching.LineFeatures`, the part of
  EfficientNet-Lite0 it uses: 2.9 MB instead of the 18 MB package) as safetensors.
* :func:`run` unpacks them, trains with ``refcolor train``'s :class:`~refcolor.train.trainer.Trainer`
  from the shipped model for a fixed time, exports the model and writes it back as a tar split into
  parts of at most ``part_bytes``.
* :func:`run_masks` fine-tunes the mask network (issue 19) there for a fixed time, from the same
  shards, and writes its graphs back as ``masks.tar`` parts.
* :func:`join` puts the parts back together here.
* :func:`travelling_bytes` says whether the repository and the packed folder fit the machine's limit.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import save_file

from refcolor.data.samples import IMAGE_SUFFIXES
from refcolor.imaging.matching import LINE_FEATURES_ENV

logger = logging.getLogger(__name__)

SHARD_BYTES = 24 << 20  # data shards
PART_BYTES = 15 << 20  # result parts (the machine returns files of at most 16 MiB)
# Everything that travels (the repository's files and .gpu/) must fit in TRAVEL_BYTES: the repository
# takes 36.5 MiB (mostly the shipped models), the wheels 7 and the prior's features 3, leaving the data
# about 17 with no margin. At 320 px and quality 90 the training split took 23 MiB, at 288 and 80 16
# (63.3 MiB in all: too close); at 256 and 80, 15.3 (61.6 in all). Colour samples are drawn at 256 px;
# mask samples also at 512, where a character is enlarged up to twice.
CHARACTER_SIDE = 256
BACKGROUND_SIDE = 512
QUALITY = 80  # WebP quality (alpha is kept losslessly); 2.8 grey levels mean error at 90, 3.4 at 80
TRAVEL_BYTES = 64 << 20  # the device machine's limit on the working tree that travels, carried paths included
METHOD = 4  # WebP's effort: 6 made files 1 % smaller and took 100 times as long (1.5 s a character: a
# 40-minute pack of the training split where a lent GPU waits; 4 packs it in about a minute)
LINE_FEATURES_FILE = "line_features.safetensors"
MANIFEST = "pack.json"
RESULT = "result.tar"
MASKS_RESULT = "masks.tar"  # the mask network's run
MASK_NET_SIDES = (256, 320, 384)  # every side automatic masks run the network at


def _webp(path: Path, side: int) -> bytes:
    opened = Image.open(path)
    image = opened.convert("RGBA" if "A" in opened.getbands() or "transparency" in opened.info else "RGB")
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "WEBP", quality=QUALITY, method=METHOD, exact=True)
    return out.getvalue()


def pack(data: Path, out: Path, shard_bytes: int = SHARD_BYTES) -> list[Path]:
    """The training split of ``data`` (``refcolor data build``) as WebP tar shards in ``out``, with the
    colour prior's feature weights and a manifest. Returns the shards.

    Raises:
        FileNotFoundError: ``data`` has no ``train/characters`` or ``train/backgrounds``.
    """
    from refcolor.imaging.matching import load_line_features

    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("data-*.tar"):
        old.unlink()
    payloads: list[tuple[str, bytes]] = []
    counts: dict[str, int] = {}
    for kind, side in (("characters", CHARACTER_SIDE), ("backgrounds", BACKGROUND_SIDE)):
        folder = data / "train" / kind
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is missing: build the data first with `refcolor data build {data}`")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        counts[kind] = len(files)
        payloads += [(f"train/{kind}/{path.stem}.webp", _webp(path, side)) for path in files]
    groups: list[list[tuple[str, bytes]]] = [[]]
    for name, payload in payloads:  # 1 KiB of header and padding per member, 10 KiB at the end, at most
        if groups[-1] and sum(len(b) + 1024 for _, b in groups[-1]) + len(payload) + 1024 > shard_bytes - 10240:
            groups.append([])
        groups[-1].append((name, payload))
    shards = [out / f"data-{index:03d}.tar" for index in range(len(groups))]
    for shard, group in zip(shards, groups, strict=True):
        with tarfile.open(shard, "w") as tar:
            for name, payload in group:
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    features = load_line_features("cpu")
    save_file({k: v.contiguous() for k, v in features.state_dict().items()}, str(out / LINE_FEATURES_FILE))
    manifest = {"shards": [s.name for s in shards], "counts": counts, "character_side": CHARACTER_SIDE,
                "background_side": BACKGROUND_SIDE, "quality": QUALITY}  # fmt: skip
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1))
    logger.info("packed %s into %d shards (%.1f MB)", counts, len(shards), sum(s.stat().st_size for s in shards) / 1e6)
    return shards


def travelling_bytes(repository: Path, carried: Sequence[Path] = ()) -> int:
    """Bytes that travel to the device machine with ``carried``: the repository's tracked files and
    its untracked files git does not ignore, and the carried folders' files.

    Raises:
        subprocess.CalledProcessError: ``repository`` is not a git work tree.
    """
    listed = subprocess.run(
        ["git", "-C", str(repository), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    files = {repository / name for name in listed.decode().split("\0") if name}
    files |= {path for folder in carried for path in folder.rglob("*")}
    return sum(path.stat().st_size for path in files if path.is_file() and not path.is_symlink())


def unpack(packed: Path, dest: Path) -> Path:
    """Extract ``packed``'s shards into ``dest`` (a data folder with ``train/``); returns ``dest``."""
    manifest = json.loads((packed / MANIFEST).read_text())
    for name in manifest["shards"]:
        with tarfile.open(packed / name) as tar:
            tar.extractall(dest, filter="data")
    return dest


def split(folder: Path, out: Path, part_bytes: int = PART_BYTES, name: str = RESULT) -> list[Path]:
    """``folder`` as one tar cut into parts of at most ``part_bytes`` (``NAME.000``, ...) in ``out``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(folder, arcname=".")
    data = buffer.getvalue()
    out.mkdir(parents=True, exist_ok=True)
    parts = []
    for index, start in enumerate(range(0, len(data), part_bytes)):
        parts.append(out / f"{name}.{index:03d}")
        parts[-1].write_bytes(data[start : start + part_bytes])
    return parts


def join(parts_folder: Path, dest: Path, name: str = RESULT) -> Path:
    """Reassemble :func:`split`'s parts ``NAME.NNN`` from ``parts_folder`` into the folder ``dest``."""
    parts = sorted(parts_folder.glob(f"{name}.[0-9][0-9][0-9]"))
    if not parts:
        raise FileNotFoundError(f"{parts_folder} holds no {name}.NNN parts")
    data = b"".join(p.read_bytes() for p in parts)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def run(
    packed: Path,
    out: Path,
    init_from: Path,
    config: str = "nano-v2",
    recipe: str = "nano-v2-gpu",
    device: str = "cuda",
    minutes: float = 8.5,
    workers: int | None = None,
    precision: str = "bf16",
    work: Path | None = None,
) -> list[Path]:
    """Unpack, train for at most ``minutes`` (the cache build included), export in fp16 and split the
    model folder with its log and sample sheets into ``out``. Returns the parts."""
    from refcolor.diffusion.config import get_config
    from refcolor.train.recipe import get_recipe
    from refcolor.train.trainer import Trainer

    start = time.monotonic()
    work = work or Path(os.environ.get("TMPDIR", "/tmp")) / "refcolor-gpu"
    if work.exists():
        shutil.rmtree(work)
    data = unpack(packed, work / "data")
    workers = default_workers() if workers is None else workers
    previous = os.environ.get(LINE_FEATURES_ENV)
    os.environ[LINE_FEATURES_ENV] = str(packed / LINE_FEATURES_FILE)  # the cache's workers inherit it
    try:
        trainer = Trainer(get_config(config), get_recipe(recipe), work / "run", data, device, 0, workers, precision)
        trainer.initialise_from(init_from)
        trainer.cache()  # built here, inside the time budget
        logger.info("data ready after %.0f s", time.monotonic() - start)
        done = trainer.train(max_seconds=max(0.0, minutes * 60 - (time.monotonic() - start)))
        model = trainer.export(work / "result" / "model", torch.float16)
    finally:
        if previous is None:
            os.environ.pop(LINE_FEATURES_ENV, None)
        else:
            os.environ[LINE_FEATURES_ENV] = previous
    for name in ("log.jsonl", "samples"):
        source = work / "run" / name
        if source.is_dir():
            shutil.copytree(source, work / "result" / name)
        elif source.is_file():
            shutil.copy2(source, work / "result" / name)
    status = {"finished": done, "stage": trainer.stage, "step": trainer.step, "seconds": time.monotonic() - start,
              "device": device, "recipe": recipe, "model": str(model.relative_to(work / "result"))}  # fmt: skip
    (work / "result" / "status.json").write_text(json.dumps(status, indent=1))
    logger.info("%s", status)
    return split(work / "result", out)


def run_masks(
    packed: Path,
    out: Path,
    minutes: float = 2.5,
    device: str = "cuda",
    workers: int | None = None,
    batch: int = 32,
    lr: float = 1e-4,
    validate: int = 32,
    validate_every: int = 200,
    base: Path | None = None,
    net_sides: tuple[int, ...] = MASK_NET_SIDES,
    work: Path | None = None,
) -> list[Path]:
    """Unpack, fine-tune the mask network (:func:`refcolor.train.masknet.train`) from ``base`` (by
    default the graph refcolor ships: the package U²-Netp came in is not on the machine, and its
    4.4 MiB would not fit the 64) for ``minutes`` of training at every side automatic masks run it
    at, with ``workers`` processes drawing batches, and split its folder (the last graph, the best
    one on the kept-apart part, the log, a status) into ``out`` as ``masks.tar.NNN`` parts. A run
    that fails or is stopped (SIGTERM, as ``timeout`` sends) still writes what it has, its status
    saying so."""
    import signal

    from refcolor.imaging import automask
    from refcolor.train import masknet

    start = time.monotonic()
    work = work or Path(os.environ.get("TMPDIR", "/tmp")) / "refcolor-gpu-masks"
    if work.exists():
        shutil.rmtree(work)
    result = work / "result"
    status: dict[str, object] = {"finished": False, "device": device, "batch": batch, "lr": lr,
                                 "net_sides": list(net_sides)}  # fmt: skip

    def stop(number: int, _: object) -> None:
        raise SystemExit(f"stopped by signal {number}")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        data = unpack(packed, work / "data") / "train"
        torch.backends.cudnn.benchmark = device.startswith("cuda")  # three input sides, each tuned once
        masknet.train(
            data, result, None, batch=batch, lr=lr, base=base or automask.mask_net_path(), net_side=list(net_sides),
            minutes=minutes, device=device, workers=default_workers() if workers is None else workers,
            validate=validate, validate_every=validate_every, save_every=250,
        )  # fmt: skip
        status["finished"] = True
    except BaseException as exc:
        status["error"] = repr(exc)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        result.mkdir(parents=True, exist_ok=True)
        log_file = result / "log.jsonl"
        log = [json.loads(line) for line in log_file.read_text().splitlines()] if log_file.is_file() else []
        checks = [entry for entry in log if "validation" in entry]
        best = max(checks, key=lambda entry: sum(entry["validation"].values()))["step"] if checks else None
        status |= {"steps": max((entry["step"] for entry in log), default=0),
                   "seconds": round(time.monotonic() - start, 1),
                   "validation": checks[-1]["validation"] if checks else None, "best": best}  # fmt: skip
        (result / "status.json").write_text(json.dumps(status, indent=1))
        logger.info("%s", status)
        parts = split(result, out, name=MASKS_RESULT)
    return parts


def default_workers() -> int:
    """Sample-preparation processes: the cores this process may use, less two (the trainer and the
    GPU's feeding), at most 14 (a container's ``os.cpu_count()`` can be the host's)."""
    return max(1, min(len(os.sched_getaffinity(0)), 16) - 2)
