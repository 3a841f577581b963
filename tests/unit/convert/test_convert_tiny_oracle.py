"""The authors' tiny checkpoint, converted by ``refcolor convert``, reproduces their recorded outputs.

``shared/official/tiny_switch_io.safetensors`` holds inputs and the authors' model outputs
(``tiny_switch_io.txt``): sketch features, threshold embeddings, recovered background tokens,
the UNet context and noise prediction of every inference mode (including the authors' "both"
quirk, the clean "both" and scaled background attention), and the VAE. Our outputs come from
the inputs alone, through the converted folder, the pipeline's token-set builder and our
gather-based split-attention processor.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from refcolor.cli import main
from refcolor.convert.oracle import MODE_CASES, TOLERANCE, compare, reproduce
from refcolor.diffusion.pipeline import ReferenceColorizationPipeline

from .official_files import TINY_CHECKPOINT, TINY_CONFIG, TINY_IO, requires_official

pytestmark = requires_official

OUTPUTS = [
    *(f"control.{i}" for i in range(5)),
    "thresh_emb.ref",
    "thresh_emb.sketch",
    "bg_emb",
    "dbg.time_emb",
    *(f"{mode}.{part}" for mode in MODE_CASES for part in ("context", "eps")),
    "vae.decode",
    "vae.encode_mean",
    "vae.encode_logvar",
]


@pytest.fixture(scope="module")
def ours(converted_pipe: ReferenceColorizationPipeline, tiny_io: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return reproduce(converted_pipe, tiny_io)


@pytest.fixture(scope="module")
def report(ours: dict[str, torch.Tensor], tiny_io: dict[str, torch.Tensor]) -> object:
    return compare(ours, tiny_io)


def test_the_oracle_file_has_exactly_the_outputs_we_reproduce(report) -> None:
    assert sorted(report.errors) == sorted(OUTPUTS)
    assert report.not_reproduced == []
    assert {"mode_both", "mode_both_nodup", "mode_bg_scaled", "mode_none_uncond"} <= set(MODE_CASES)


@pytest.mark.parametrize("name", OUTPUTS)
def test_output_matches_the_authors_model(report, name: str) -> None:
    assert report.errors[name] <= TOLERANCE, f"{name}: max abs error {report.errors[name]:.3e}"


def test_the_quirk_and_the_clean_both_mode_differ(ours) -> None:
    """A test that cannot fail is a defect: the two 'both' contexts must give different predictions."""
    assert ours["mode_both.context"].shape[1] == 2 * ours["mode_both_nodup.context"].shape[1]
    assert (ours["mode_both.eps"] - ours["mode_both_nodup.eps"]).abs().max() > 100 * TOLERANCE


def test_oracle_command_converts_and_passes(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["oracle", str(TINY_CHECKPOINT), str(TINY_IO), "--config", str(TINY_CONFIG)])
    out = capsys.readouterr().out
    assert code == 0, out
    for name in OUTPUTS:
        assert name in out
    assert f"all {len(OUTPUTS)} reproduced tensors within" in out


def test_oracle_command_fails_naming_a_perturbed_tensor(
    converted_tiny: Path, tiny_io: dict[str, torch.Tensor], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    perturbed = dict(tiny_io)
    perturbed["mode_bg_scaled.eps"] = tiny_io["mode_bg_scaled.eps"].clone()
    perturbed["mode_bg_scaled.eps"][1, 2, 3, 4] += 1e-3
    path = tmp_path / "perturbed_io.safetensors"
    save_file(perturbed, str(path))
    code = main(["oracle", str(converted_tiny), str(path)])
    captured = capsys.readouterr()
    assert code == 1
    assert "FAILED beyond 0.0001: mode_bg_scaled.eps" in captured.err
    assert "mode_bg_scaled.eps" in [line.split()[0] for line in captured.out.splitlines() if "FAIL" in line]


def test_oracle_command_refuses_a_file_without_inputs(converted_tiny: Path, tmp_path: Path, capsys) -> None:
    path = tmp_path / "outputs_only.safetensors"
    save_file({"bg_emb": torch.zeros(1, 2, 3)}, str(path))
    assert main(["oracle", str(converted_tiny), str(path)]) == 2
    assert "in.x" in capsys.readouterr().err
