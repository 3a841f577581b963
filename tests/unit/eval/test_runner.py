from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from refcolor.cli import eval as eval_cli
from refcolor.eval import runner
from refcolor.eval.triplets import ablate_reference, make_triplets
from refcolor.models.job import ColorizeJob, LayerSet, ModelInfo
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
    assert [m["name"] for m in data["methods"]] == ["ground truth", "classical-mean", "correspondence"]
    fg = data["methods"][1]["metrics"]["fg_error"]
    assert set(fg) == {"mean", "low", "high", "n"} and fg["low"] <= fg["mean"] <= fg["high"] and fg["n"] == 3
    assert (out / "contact-sheet.png").stat().st_size > 0 and "classical-mean" in (
        out / "table.md"
    ).read_text()
    assert "classical-mean" in capsys.readouterr().out


def test_reference_ablations_replace_only_the_reference(folders):
    sample = make_triplets(*folders, n=1, seed=2, size=64)[0]
    flat = ablate_reference(sample, "flat")
    side = sample.reference_mask >= 128
    for part in (side, ~side):
        colours = np.unique(flat.reference[part], axis=0)
        assert len(colours) == 1  # one colour per side: the side's mean
        assert np.abs(colours[0] - sample.reference[part].mean(0)).max() <= 0.5
    assert np.array_equal(flat.reference_mask, sample.reference_mask) and np.array_equal(flat.target, sample.target)
    truth = ablate_reference(sample, "truth")
    assert np.array_equal(truth.reference, sample.target) and np.array_equal(truth.reference_mask, sample.mask)
    assert np.array_equal(truth.sketch, sample.sketch) and not np.array_equal(sample.reference, sample.target)
    with pytest.raises(ValueError, match=r"'blur'.*flat, truth"):
        ablate_reference(sample, "blur")


def test_ablated_rows_send_the_replaced_reference(monkeypatch, folders):
    import refcolor.models

    monkeypatch.setattr(refcolor.models, "load_colorizer", lambda name, device: BlankColorizer())
    rows = runner.model_methods("blank", modes=[Mode.BOTH], finishing_off=True, reference_ablations=["truth"])
    assert [(m.name, m.reference) for m in rows] == [
        ("blank [both]", ""), ("blank, truth reference [both]", "truth"),
        ("blank, finishing off [both]", ""), ("blank, finishing off, truth reference [both]", "truth"),
    ]  # fmt: skip
    assert rows[3].overrides == runner.FINISHING_OFF and len({id(m.colorizer) for m in rows}) == 1
    triplets = make_triplets(*folders, n=2, seed=0, size=48)
    runner.evaluate(rows[:2], triplets, seed=0)
    jobs = rows[0].colorizer.jobs
    assert np.array_equal(jobs[0].reference[..., :3], triplets[0].reference)  # the plain row: untouched
    assert np.array_equal(jobs[2].reference[..., :3], triplets[0].target)  # the ablated row: the truth
    assert np.array_equal(jobs[3].reference_mask, triplets[1].mask)
    with pytest.raises(ValueError, match="'blur'"):
        runner.model_methods("blank", reference_ablations=["blur"])


def test_a_method_that_reads_only_side_means_scores_the_same_with_a_flat_reference(folders):
    # The classical baseline paints each side the mean colour of that side of the reference:
    # the flat ablation, which keeps exactly those means, must not change what it paints.
    triplets = make_triplets(*folders, n=3, seed=1, size=64)
    baseline = runner.baseline_methods()[0]  # classical-mean
    flat = runner.Method("classical, flat reference", baseline.model, baseline.mode, baseline.colorizer,
                         baseline.steps, reference="flat")  # fmt: skip
    truth = runner.Method("classical, truth reference", baseline.model, baseline.mode, baseline.colorizer,
                          baseline.steps, reference="truth")  # fmt: skip
    _, as_given, ablated, from_truth = runner.evaluate([baseline, flat, truth], triplets, seed=0).results
    for a, b in zip(as_given.outputs, ablated.outputs, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    # ...while another reference does (the truth's background is another crop, with other means).
    assert any(not np.array_equal(a, b) for a, b in zip(as_given.outputs, from_truth.outputs, strict=True))
    assert abs(as_given.summary["fg_error"].mean - ablated.summary["fg_error"].mean) < 0.2


def eval_cli_with_blank(folders, tmp_path) -> tuple[argparse.ArgumentParser, list[str]]:
    """`refcolor eval`'s parser, and the arguments that run the blank model on two small triplets."""
    parser = argparse.ArgumentParser()
    eval_cli.add_arguments(parser)
    common = ["--characters", str(folders[0]), "--backgrounds", str(folders[1]), "--n", "2", "--size", "48",
              "--out", str(tmp_path / "eval"), "--no-frechet", "--model", "blank", "--modes", "both"]  # fmt: skip
    return parser, common


def test_cli_adds_ablated_rows_and_refuses_unknown_ones(monkeypatch, folders, tmp_path, capsys):
    import refcolor.models

    monkeypatch.setattr(refcolor.models, "load_colorizer", lambda name, device: BlankColorizer())
    parser, common = eval_cli_with_blank(folders, tmp_path)
    assert eval_cli.run(parser.parse_args([*common, "--reference-ablation", "flat"])) == 0
    data = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert [m["name"] for m in data["methods"]] == ["ground truth", "blank [both]", "blank, flat reference [both]"]
    assert data["config"]["reference_ablations"] == ["flat"]
    with pytest.raises(SystemExit):
        parser.parse_args([*common, "--reference-ablation", "blur"])
    assert "invalid choice: 'blur'" in capsys.readouterr().err


def test_cli_auto_masks_add_rows_that_send_computed_masks_and_report_their_iou(monkeypatch, folders, tmp_path):
    import refcolor.models
    from refcolor.imaging import automask

    blank = BlankColorizer()
    monkeypatch.setattr(refcolor.models, "load_colorizer", lambda name, device: blank)
    # Stand-ins for the two mask makers, so the rows can be told apart by what they were sent.
    monkeypatch.setattr(automask, "sketch_mask", lambda sketch: np.full(sketch.shape[:2], 255, np.uint8))
    monkeypatch.setattr(automask, "reference_mask", lambda rgb: np.zeros(rgb.shape[:2], np.uint8))
    parser, common = eval_cli_with_blank(folders, tmp_path)
    assert eval_cli.run(parser.parse_args([*common, "--masks", "auto"])) == 0
    data = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert [m["name"] for m in data["methods"]] == ["ground truth", "blank [both]", "blank, auto masks [both]"]
    triplets = make_triplets(*folders, n=2, seed=0, size=48)
    given, auto = blank.jobs[:2], blank.jobs[2:]
    assert np.array_equal(given[0].sketch_mask, triplets[0].mask)
    assert (auto[0].sketch_mask == 255).all() and (auto[1].reference_mask == 0).all()
    # IoU of an all-foreground sketch mask is the character's share of the canvas; of an empty
    # reference mask, 0.
    share = np.mean([(t.mask >= 128).mean() for t in triplets])
    ious = data["config"]["auto_mask_iou"]
    assert ious["reference"]["mean"] == 0.0 and abs(ious["sketch"]["mean"] - share) < 1e-6
    assert "auto sketch mask IoU" in (tmp_path / "eval" / "table.md").read_text()
