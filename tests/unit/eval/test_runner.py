from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from refcolor import eval_cli
from refcolor.engine import ColorizeJob, LayerSet, ModelInfo
from refcolor.eval import runner
from refcolor.eval.triplets import make_triplets
from refcolor_protocol.messages import ColorizeParams, Mode


class BlankColorizer:
    """Paints everything white; records the jobs it saw."""

    def __init__(self) -> None:
        self.info = ModelInfo("blank", "test", "cpu", ("plain", "both"), 0)
        self.jobs: list[ColorizeJob] = []

    def colorize(self, job: ColorizeJob, ctx: object) -> list[LayerSet]:
        self.jobs.append(job)
        white = np.full((*job.sketch.shape[:2], 4), 255, np.uint8)
        return [LayerSet(white, white, white, job.seed)]


def test_triplets_are_deterministic(folders):
    a = make_triplets(*folders, n=3, seed=4, size=48)
    b = make_triplets(*folders, n=3, seed=4, size=48)
    assert all(
        np.array_equal(x.target, y.target) and np.array_equal(x.sketch, y.sketch)
        for x, y in zip(a, b, strict=True)
    )
    with pytest.raises(ValueError, match="n=0"):
        make_triplets(*folders, n=0)


def test_ground_truth_row_is_perfect_and_a_blank_model_is_not(folders):
    triplets = make_triplets(*folders, n=4, seed=0, size=64)
    blank = BlankColorizer()
    methods = [runner.Method("blank [both]", "blank", "both", blank)]
    evaluation = runner.evaluate(methods, triplets, seed=7)
    truth, blank_row = evaluation.results
    assert truth.method.name == runner.GROUND_TRUTH
    assert truth.summary["fg_error"].mean == 0 and truth.summary["bg_error"].mean == 0
    assert blank_row.summary["line_f1"].mean == 0 and blank_row.summary["fg_error"].mean > 10
    job = blank.jobs[2]
    assert job.seed == 9 and job.params.mode is Mode.BOTH and job.params.variations == 1
    assert np.array_equal(job.sketch_mask, triplets[2].mask) and job.sketch.shape == (64, 64, 4)


def test_steps_and_reference_guidance_reach_the_jobs(folders):
    triplets = make_triplets(*folders, n=2, seed=0, size=48)
    blank = BlankColorizer()
    methods = [runner.Method("blank [both]", "blank", "both", blank, steps=7, reference_scale=2.5)]
    runner.evaluate(methods, triplets, seed=0)
    assert [(job.params.steps, job.params.reference_scale) for job in blank.jobs] == [(7, 2.5), (7, 2.5)]
    runner.evaluate([runner.Method("blank [both]", "blank", "both", blank)], triplets[:1], seed=0)
    defaults = ColorizeParams()
    assert (blank.jobs[-1].params.steps, blank.jobs[-1].params.reference_scale) == (
        defaults.steps, defaults.reference_scale
    )


def test_baseline_fills_regions_from_its_own_side(folders):
    triplets = make_triplets(*folders, n=4, seed=0, size=64)
    evaluation = runner.evaluate(runner.baseline_methods(), triplets)
    baseline = evaluation.results[1]
    assert baseline.method.name == "classical-mean"
    # Synthetic characters are single-coloured discs: the side means are nearly exact.
    assert baseline.summary["fg_leak"].mean < 0.1 and baseline.summary["fg_error"].mean < 10
    assert baseline.summary["line_f1"].mean > 0.3


def test_model_methods_make_one_row_per_supported_mode(monkeypatch, folders):
    import refcolor.models

    monkeypatch.setattr(refcolor.models, "load_colorizer", lambda name, device: BlankColorizer())
    rows = runner.model_methods("blank", modes=[Mode.PLAIN, Mode.FOREGROUND, Mode.BOTH])
    assert [m.name for m in rows] == ["blank [plain]", "blank [both]"]
    rows = runner.model_methods("blank", modes=[Mode.BOTH], finishing_off=True)
    assert [m.name for m in rows] == ["blank [both]", "blank, finishing off [both]"]
    assert rows[0].colorizer is rows[1].colorizer  # loaded once
    job = runner.job_for(make_triplets(*folders, n=1, size=48)[0], Mode.BOTH, 3, overrides=rows[1].overrides)
    assert (job.params.color_match, job.params.flatten) == (0.0, 0.0)
    assert runner.job_for(make_triplets(*folders, n=1, size=48)[0], Mode.BOTH, 3).params.color_match is None
    with pytest.raises(ValueError, match="none of the requested"):
        runner.model_methods("blank", modes=[Mode.BACKGROUND])


def test_cli_writes_json_table_and_contact_sheet(folders, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    eval_cli.add_arguments(parser)
    out = tmp_path / "eval"
    args = parser.parse_args(
        ["--baselines", "--characters", str(folders[0]), "--backgrounds", str(folders[1]), "--n", "3",
         "--size", "48", "--out", str(out), "--no-frechet"]
    )  # fmt: skip
    assert eval_cli.run(args) == 0
    data = json.loads((out / "eval.json").read_text())
    assert [m["name"] for m in data["methods"]] == ["ground truth", "classical-mean"]
    fg = data["methods"][1]["metrics"]["fg_error"]
    assert set(fg) == {"mean", "low", "high", "n"} and fg["low"] <= fg["mean"] <= fg["high"] and fg["n"] == 3
    assert (out / "contact-sheet.png").stat().st_size > 0 and "classical-mean" in (
        out / "table.md"
    ).read_text()
    assert "classical-mean" in capsys.readouterr().out
