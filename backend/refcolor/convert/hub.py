"""Where the official v1.5 model comes from and where it goes: Hugging Face Hub files and local folders.

Downloads go through ``huggingface_hub`` into its standard cache (``HF_HOME``/``HF_HUB_CACHE``);
the converted refcolor folder goes to :func:`default_model_dir` (``$REFCOLOR_MODELS_DIR/<name>``,
default ``$XDG_DATA_HOME/refcolor/models/<name>``, i.e. ``~/.local/share/refcolor/models/<name>``),
which is where ``refcolor serve --model v1.5`` looks when no ``--weights`` is given.
Only this module talks to the Hub; it never does so unless asked.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

CHECKPOINT_REPO = "tellurion/ColorizeDiffusion"
# The v1.5 ("switch", eps-prediction) file named by the authors; its exact name in the repository
# could not be checked from here (no network) — change this constant if the Hub listing differs.
CHECKPOINT_FILE = "switch-eps.safetensors"
CHECKPOINT_LICENSE = "CC-BY-NC-SA-4.0"
CLIP_REPO = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
CLIP_FILES = ("config.json", "model.safetensors")  # transformers-format CLIPModel weights
CLIP_LICENSE = "MIT"
GB = 1e9


@dataclass(frozen=True)
class HubFile:
    repo: str
    filename: str
    license: str
    size: int | None = None  # bytes, from the Hub's metadata

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.repo}/resolve/main/{self.filename}"


MODEL_FILES: dict[str, tuple[HubFile, ...]] = {
    "v1.5": (
        HubFile(CHECKPOINT_REPO, CHECKPOINT_FILE, CHECKPOINT_LICENSE),
        *(HubFile(CLIP_REPO, name, CLIP_LICENSE) for name in CLIP_FILES),
    ),
}


def default_models_dir() -> Path:
    """``$REFCOLOR_MODELS_DIR``, else ``$XDG_DATA_HOME/refcolor/models`` (``~/.local/share/...``)."""
    explicit = os.environ.get("REFCOLOR_MODELS_DIR")
    if explicit:
        return Path(explicit).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home).expanduser() / "refcolor" / "models"


def default_model_dir(name: str) -> Path:
    """Where ``refcolor models download NAME`` puts the converted folder."""
    return default_models_dir() / name


def hub_cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def offline_mode() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set (read at call time, so a test or shell can set it late)."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE")
    if value is not None:
        return value.strip().lower() in ("1", "on", "yes", "true")
    return bool(constants.HF_HUB_OFFLINE)


def offline_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the Hub cannot be reached" (builtin, requests', httpx's, the hub's own)."""
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    errors: list[type[BaseException]] = [ConnectionError, TimeoutError, OfflineModeIsEnabled, LocalEntryNotFoundError]
    for module_name in ("httpx2", "httpx"):
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        errors.append(module.TransportError)
    try:
        import requests

        errors += [requests.ConnectionError, requests.Timeout]
    except ImportError:
        pass
    return tuple(errors)


def cached_file(file: HubFile) -> Path | None:
    """The file's path in the local Hugging Face cache, or None (never touches the network)."""
    from huggingface_hub import hf_hub_download

    missing: tuple[type[BaseException], ...] = (*offline_errors(), FileNotFoundError, ValueError)
    try:
        return Path(hf_hub_download(file.repo, file.filename, local_files_only=True))
    except missing:
        return None


def cached_clip_dir() -> Path | None:
    """The cached CLIP ViT-H/14 snapshot folder if all its files are there, else None."""
    paths = [cached_file(HubFile(CLIP_REPO, name, CLIP_LICENSE)) for name in CLIP_FILES]
    if any(p is None for p in paths):
        return None
    return paths[0].parent if paths[0] is not None else None


def with_sizes(files: tuple[HubFile, ...]) -> list[HubFile]:
    """``files`` with their sizes from the Hub's metadata (one request per repository).

    Raises:
        one of :func:`offline_errors`: the Hub cannot be reached.
    """
    from huggingface_hub import HfApi

    api = HfApi()
    sizes: dict[tuple[str, str], int | None] = {}
    for repo in dict.fromkeys(f.repo for f in files):
        names = [f.filename for f in files if f.repo == repo]
        for info in api.get_paths_info(repo, names):
            sizes[(repo, info.path)] = getattr(info, "size", None)
    missing = [f for f in files if (f.repo, f.filename) not in sizes]
    if missing:
        raise FileNotFoundError(
            "not found on the Hub: "
            + ", ".join(f"{f.repo}/{f.filename}" for f in missing)
            + " (the file may have been renamed: see the repository's file list)"
        )
    return [HubFile(f.repo, f.filename, f.license, sizes[(f.repo, f.filename)]) for f in files]


def download(file: HubFile) -> Path:
    """Download ``file`` into the Hugging Face cache (resumes; shows huggingface_hub's progress bar)."""
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(file.repo, file.filename))


def free_bytes(path: Path) -> int:
    """Free space on the file system that holds ``path`` (or its nearest existing parent)."""
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def offline_instructions(name: str, target: Path) -> str:
    """What to put where when this machine cannot reach the Hub."""
    files = MODEL_FILES[name]
    checkpoint, clip = files[0], files[1:]
    lines = [
        f"The Hugging Face Hub cannot be reached (offline, or HF_HUB_OFFLINE is set), so {name} cannot be "
        "downloaded from here. On a machine with network access, download:",
        *(f"  {f.url}   ({f.license})" for f in files),
        "Then either",
        f"  (a) copy them here and convert: put {checkpoint.filename} anywhere, the CLIP files "
        f"({', '.join(f.filename for f in clip)}) together in one folder CLIP_DIR, and run",
        f"        refcolor convert {checkpoint.filename} {target} --clip CLIP_DIR",
        "  or (b) fill this machine's Hugging Face cache (huggingface-cli download "
        f"{checkpoint.repo} {checkpoint.filename}; huggingface-cli download {clip[0].repo} "
        f"{' '.join(f.filename for f in clip)}, then copy {hub_cache_dir()} over) and run "
        f"`refcolor models download {name}` again: cached files are used without network.",
        f"Then: refcolor serve --model {name} --weights {target}",
    ]
    return "\n".join(lines)
