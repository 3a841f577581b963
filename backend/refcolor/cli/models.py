"""``refcolor models``: list the models, download and convert the official v1.5 model.

``refcolor models download v1.5`` shows the files, their sizes (from the Hub's metadata),
licences and the free disk space, asks before downloading (unless ``--yes``), downloads
into the Hugging Face cache and converts into the default models folder. Offline it says
which files to put where. Wired into ``refcolor`` by :mod:`refcolor.cli`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from refcolor.convert import hub

CLIP_VISION_FP32_BYTES = 632_076_800 * 4  # the vision tower of ViT-H/14, written into the folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="the models this backend can load, and where v1.5 is")
    download = actions.add_parser("download", help="download and convert an official model (v1.5)")
    download.add_argument("name", choices=sorted(hub.MODEL_FILES), help="the model")
    download.add_argument("--dir", type=Path, help="folder to convert into (default: the models folder)")
    download.add_argument("--yes", action="store_true", help="do not ask before downloading")
    download.add_argument("--dtype", choices=("fp32", "fp16", "bf16"), default="fp32", help="dtype of the folder")
    download.add_argument("--overwrite", action="store_true", help="convert again into an existing folder")


def _gb(size: int | None) -> str:
    return "size unknown" if size is None else f"{size / hub.GB:.2f} GB"


def _list() -> int:
    from refcolor.models import available_models

    for name in available_models():
        line = name
        if name in hub.MODEL_FILES:
            folder = hub.default_model_dir(name)
            state = "converted" if (folder / "model_index.json").is_file() else "not downloaded"
            line += f"  ({state}: {folder})"
        print(line)
    return 0


def download(
    name: str,
    target: Path,
    yes: bool = False,
    dtype: str = "fp32",
    overwrite: bool = False,
    ask: Callable[[str], str] = input,
) -> int:
    """The ``download`` action; returns the exit status (0 done, 1 declined, 2 cannot)."""
    if (target / "model_index.json").is_file() and not overwrite:
        print(f"{name} is already converted in {target} (--overwrite to redo it)")
        print(f"serve it: refcolor serve --model {name} --weights {target}")
        return 0
    files = hub.MODEL_FILES[name]
    paths: dict[tuple[str, str], Path | None] = {(f.repo, f.filename): hub.cached_file(f) for f in files}
    if not all(paths.values()):
        if hub.offline_mode():
            print(hub.offline_instructions(name, target), file=sys.stderr)
            return 2
        try:
            files = tuple(hub.with_sizes(files))
        except hub.offline_errors():
            print(hub.offline_instructions(name, target), file=sys.stderr)
            return 2
        except FileNotFoundError as error:
            print(f"refcolor models download: {error}", file=sys.stderr)
            return 2
        to_fetch = [f for f in files if paths[(f.repo, f.filename)] is None]
        scale = 0.5 if dtype in ("fp16", "bf16") else 1.0
        folder_size = int(((files[0].size or 0) + CLIP_VISION_FP32_BYTES) * scale)
        download_size = sum(f.size or 0 for f in to_fetch)
        cache = hub.hub_cache_dir()
        print(f"{name}: files from the Hugging Face Hub")
        for f in files:
            state = "to download" if f in to_fetch else "cached"
            print(f"  {f.repo}/{f.filename}  {_gb(f.size)}  licence {f.license}  ({state})")
        print(
            f"The checkpoint's licence is {hub.CHECKPOINT_LICENSE}: non-commercial use only, share-alike; "
            f"the CLIP weights are {hub.CLIP_LICENSE}."
        )
        print(f"download: {_gb(download_size)} into {cache} (free: {_gb(hub.free_bytes(cache))})")
        print(f"converted folder: about {_gb(folder_size)} in {target} (free: {_gb(hub.free_bytes(target))})")
        if hub.free_bytes(cache) < download_size:
            print("refcolor models download: not enough free disk space for the download", file=sys.stderr)
            return 2
        if not yes:
            try:
                answer = ask("Download and convert? [y/N] ")
            except EOFError:
                print("refcolor models download: no answer (not a terminal?); pass --yes", file=sys.stderr)
                return 1
            if answer.strip().lower() not in ("y", "yes"):
                print("nothing downloaded")
                return 1
        try:
            for f in to_fetch:
                print(f"downloading {f.repo}/{f.filename} ...", flush=True)
                paths[(f.repo, f.filename)] = hub.download(f)
        except hub.offline_errors():
            print(hub.offline_instructions(name, target), file=sys.stderr)
            return 2
    checkpoint, clip_config = (paths[(f.repo, f.filename)] for f in files[:2])
    if checkpoint is None or clip_config is None:
        print("refcolor models download: a file did not arrive; run the command again", file=sys.stderr)
        return 2
    return _convert(name, checkpoint, clip_config.parent, target, dtype, overwrite)


def _convert(name: str, checkpoint: Path, clip_dir: Path, target: Path, dtype: str, overwrite: bool) -> int:
    import torch

    from refcolor.cli.convert import DTYPES
    from refcolor.convert.converter import convert_checkpoint
    from refcolor.diffusion.config import get_config

    print(f"converting {checkpoint} into {target} ...", flush=True)
    try:
        convert_checkpoint(
            checkpoint,
            target,
            get_config(name),
            clip=clip_dir,
            dtype=getattr(torch, DTYPES[dtype]),
            overwrite=overwrite,
        )
    except (OSError, ValueError) as error:
        print(f"refcolor models download: {error}", file=sys.stderr)
        return 2
    print(f"done. serve it: refcolor serve --model {name} --weights {target} --device cuda")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        return _list()
    target = args.dir or hub.default_model_dir(args.name)
    return download(args.name, target, args.yes, args.dtype, args.overwrite)
