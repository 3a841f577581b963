"""``refcolor models download v1.5`` with a mocked Hub: what it shows, asks and does; offline instructions.

No test touches the network: the Hub calls are replaced, and ``cached_file`` (which would only
look at the local cache) is replaced too so the machine's cache does not matter.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import pytest

from refcolor.cli import main
from refcolor.cli import models as models_cli
from refcolor.convert import hub

SIZES = {hub.CHECKPOINT_FILE: 4_500_205_000, "config.json": 4_520, "model.safetensors": 3_944_517_836}


@pytest.fixture
def no_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setattr(hub, "cached_file", lambda file: None)
    monkeypatch.setattr(hub, "hub_cache_dir", lambda: tmp_path / "hf-cache")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("REFCOLOR_MODELS_DIR", str(tmp_path / "models"))
    return tmp_path / "models" / "v1.5"


@pytest.fixture
def hub_metadata(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str]]]:
    asked: list[tuple[str, list[str]]] = []

    def get_paths_info(self: object, repo: str, paths: list[str]) -> list[SimpleNamespace]:
        asked.append((repo, list(paths)))
        return [SimpleNamespace(path=p, size=SIZES[p]) for p in paths]

    monkeypatch.setattr(huggingface_hub.HfApi, "get_paths_info", get_paths_info)
    return asked


def forbid_download(monkeypatch: pytest.MonkeyPatch) -> None:
    def download(file: hub.HubFile) -> Path:
        raise AssertionError(f"downloaded {file.filename}")

    monkeypatch.setattr(hub, "download", download)


def assert_instructions(text: str, target: Path) -> None:
    assert f"https://huggingface.co/tellurion/ColorizeDiffusion/resolve/main/{hub.CHECKPOINT_FILE}" in text
    assert "https://huggingface.co/laion/CLIP-ViT-H-14-laion2B-s32B-b79K/resolve/main/model.safetensors" in text
    assert "resolve/main/config.json" in text
    assert f"refcolor convert {hub.CHECKPOINT_FILE} {target} --clip CLIP_DIR" in text
    assert "CC-BY-NC-SA-4.0" in text and "MIT" in text


def test_offline_mode_says_which_files_to_put_where(monkeypatch, no_cache: Path, capsys) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    forbid_download(monkeypatch)
    assert main(["models", "download", "v1.5"]) == 2
    assert_instructions(capsys.readouterr().err, no_cache)


@pytest.mark.parametrize("error", [ConnectionError("Name or service not known"), TimeoutError("timed out")])
def test_unreachable_hub_says_which_files_to_put_where(monkeypatch, no_cache: Path, capsys, error) -> None:
    def unreachable(self: object, repo: str, paths: list[str]) -> list[object]:
        raise error

    monkeypatch.setattr(huggingface_hub.HfApi, "get_paths_info", unreachable)
    forbid_download(monkeypatch)
    assert main(["models", "download", "v1.5", "--yes"]) == 2
    assert_instructions(capsys.readouterr().err, no_cache)


def test_sizes_licences_and_free_space_are_shown_before_asking(
    monkeypatch, no_cache: Path, hub_metadata, capsys
) -> None:
    monkeypatch.setattr(hub, "free_bytes", lambda path: 123_000_000_000)
    forbid_download(monkeypatch)
    questions: list[str] = []

    def ask(question: str) -> str:
        questions.append(question)
        return "n"

    assert models_cli.download("v1.5", no_cache, ask=ask) == 1
    text = capsys.readouterr().out
    assert questions == ["Download and convert? [y/N] "]
    assert f"tellurion/ColorizeDiffusion/{hub.CHECKPOINT_FILE}  4.50 GB  licence CC-BY-NC-SA-4.0" in text
    assert "laion/CLIP-ViT-H-14-laion2B-s32B-b79K/model.safetensors  3.94 GB  licence MIT" in text
    assert "download: 8.44 GB" in text and "(free: 123.00 GB)" in text
    assert "non-commercial" in text
    assert "nothing downloaded" in text
    assert sorted(hub_metadata) == [
        ("laion/CLIP-ViT-H-14-laion2B-s32B-b79K", ["config.json", "model.safetensors"]),
        ("tellurion/ColorizeDiffusion", [hub.CHECKPOINT_FILE]),
    ]


def test_yes_downloads_into_the_cache_and_converts(monkeypatch, no_cache: Path, hub_metadata, tmp_path) -> None:
    monkeypatch.setattr(hub, "free_bytes", lambda path: 10**12)
    fetched: list[str] = []

    def download(file: hub.HubFile) -> Path:
        fetched.append(file.filename)
        return tmp_path / "snapshots" / file.repo.replace("/", "--") / file.filename

    converted: list[tuple[object, ...]] = []
    monkeypatch.setattr(hub, "download", download)
    monkeypatch.setattr(models_cli, "_convert", lambda *args: converted.append(args) or 0)
    assert main(["models", "download", "v1.5", "--yes", "--dtype", "fp16"]) == 0
    assert fetched == [hub.CHECKPOINT_FILE, "config.json", "model.safetensors"]
    clip_dir = tmp_path / "snapshots" / "laion--CLIP-ViT-H-14-laion2B-s32B-b79K"
    checkpoint = tmp_path / "snapshots" / "tellurion--ColorizeDiffusion" / hub.CHECKPOINT_FILE
    assert converted == [("v1.5", checkpoint, clip_dir, no_cache, "fp16", False)]


def test_not_enough_disk_space_stops_before_downloading(monkeypatch, no_cache: Path, hub_metadata, capsys) -> None:
    monkeypatch.setattr(hub, "free_bytes", lambda path: 1_000_000_000)
    forbid_download(monkeypatch)
    assert main(["models", "download", "v1.5", "--yes"]) == 2
    assert "not enough free disk space" in capsys.readouterr().err


def test_an_already_converted_model_needs_no_network(monkeypatch, no_cache: Path, capsys) -> None:
    no_cache.mkdir(parents=True)
    (no_cache / "model_index.json").write_text("{}")
    monkeypatch.setattr(hub, "cached_file", lambda file: pytest.fail("looked at the Hub cache"))
    assert main(["models", "download", "v1.5"]) == 0
    assert f"refcolor serve --model v1.5 --weights {no_cache}" in capsys.readouterr().out


def test_list_shows_where_v1_5_goes(no_cache: Path, capsys) -> None:
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert f"v1.5  (not downloaded: {no_cache})" in out and "tiny" in out
