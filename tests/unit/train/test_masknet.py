"""Fine-tuning the mask network (refcolor.train.masknet): the real U²-Netp graph of the rembg package,
converted to torch, trained a few steps on tiny folders, written back into the graph for onnxruntime."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from refcolor.data.samples import SampleSource
from refcolor.imaging import automask
from refcolor.train import masknet


@pytest.fixture(scope="module")
def base() -> masknet.Convertible:
    return masknet.Convertible.load(automask.u2netp_path())


def _image(seed: int, side: int = 72) -> np.ndarray:
    return (np.random.default_rng(seed).random((side, side + 8, 3)) * 255).astype(np.uint8)


def test_every_weight_is_matched_to_its_initializer(base: masknet.Convertible) -> None:
    names = {init.name for init in base.graph.graph.initializer}
    assert len(base.parameters) == len(list(base.module.parameters())) > 100
    assert set(base.parameters) <= names
    assert len(set(base.parameters.values())) == len(base.parameters)  # one parameter per initializer


def test_trained_weights_written_back_run_in_onnxruntime_at_any_side(
    base: masknet.Convertible, tmp_path: Path
) -> None:
    converted = masknet.Convertible.load(automask.u2netp_path())
    with torch.no_grad():
        for parameter in converted.module.parameters():
            parameter.mul_(0.9).add_(0.01)
    converted.save(tmp_path / "tuned.onnx")
    image = _image(0)
    for side in (64, 96):  # the package's graph says 320 x 320 only; ours any side
        batch = automask.net_input(image, side)
        with torch.no_grad():
            expected = converted.module(torch.from_numpy(batch))[0][0, 0].numpy()
            before = base.module(torch.from_numpy(batch))[0][0, 0].numpy()
        net = automask.SaliencyNet(tmp_path / "tuned.onnx", side=side)
        got = net.session.run(None, {net.input: batch})[0][0, 0]
        assert got.shape == (side, side)
        np.testing.assert_allclose(got, expected, atol=1e-4)
        assert np.abs(got - before).max() > 0.01  # the new weights, not the package's


def test_pairs_are_the_reference_the_target_and_the_sketch_with_their_masks(folders: tuple[Path, Path]) -> None:
    source = SampleSource.from_folders(*folders, size=64, seed=3)
    sample = source[0]
    out = masknet.pairs(source, 0, 48)
    assert [kind for _, _, kind in out] == ["reference", "reference", "sketch"]
    for image, target, _ in out:
        assert image.shape == (3, 48, 48) and target.shape == (48, 48)
        assert target.min() >= 0.0 and target.max() <= 1.0
    np.testing.assert_array_equal(out[0][0], automask.net_input(sample.reference, 48)[0])
    sketch_rgb = np.repeat(sample.sketch[..., None], 3, axis=2)
    np.testing.assert_array_equal(out[2][0], automask.net_input(sketch_rgb, 48)[0])
    assert abs(out[2][1].mean() - (sample.mask >= 128).mean()) < 0.05  # the character's alpha
    assert abs(out[0][1].mean() - (sample.reference_mask >= 128).mean()) < 0.05


def test_batches_are_half_coloured_and_half_sketches(folders: tuple[Path, Path]) -> None:
    source = SampleSource.from_folders(*folders, size=64, seed=3)
    images, targets = next(masknet.batches([source], 6, seed=0, side=32))
    assert images.shape == (6, 3, 32, 32) and targets.shape == (6, 1, 32, 32)
    mean, std = torch.from_numpy(automask.MEAN)[:, None, None], torch.from_numpy(automask.STD)[:, None, None]
    pixels = images * std + mean  # the pictures as they were before normalising
    grey = [bool(torch.allclose(p[0], p[1], atol=1e-5) and torch.allclose(p[1], p[2], atol=1e-5)) for p in pixels]
    assert grey == [False] * 3 + [True] * 3  # a grey sketch, repeated on three channels


def test_a_batch_can_be_all_sketches(folders: tuple[Path, Path]) -> None:
    # A network for line art only (--sketch-share 1): every picture of the batch is a grey sketch.
    source = SampleSource.from_folders(*folders, size=64, seed=3)
    images, _ = next(masknet.batches([source], 4, seed=0, side=32, sketch_share=1.0))
    mean, std = torch.from_numpy(automask.MEAN)[:, None, None], torch.from_numpy(automask.STD)[:, None, None]
    pixels = images * std + mean
    assert all(torch.allclose(p[0], p[1], atol=1e-5) and torch.allclose(p[1], p[2], atol=1e-5) for p in pixels)


def test_batches_take_several_input_sides_in_turn(folders: tuple[Path, Path]) -> None:
    # The network runs at 256² and, for larger pictures, 320²: it can be trained at both.
    source = SampleSource.from_folders(*folders, size=64, seed=3)
    stream = masknet.batches([source], 2, seed=0, side=[32, 48])
    shapes = [tuple(next(stream)[0].shape[2:]) for _ in range(3)]
    assert shapes == [(32, 32), (48, 48), (32, 32)]


def test_validation_characters_and_backgrounds_are_kept_apart(folders: tuple[Path, Path]) -> None:
    paths = [Path(f"c{i:02d}.png") for i in range(20)]
    kept, apart = masknet.split(paths, 8)
    assert apart == [Path("c00.png"), Path("c08.png"), Path("c16.png")]
    assert sorted(kept + apart) == paths and not set(kept) & set(apart)


def test_fine_tuning_fits_a_batch(base: masknet.Convertible, folders: tuple[Path, Path]) -> None:
    torch.manual_seed(0)
    net = masknet.Convertible.load(automask.u2netp_path())
    source = SampleSource.from_folders(*folders, size=64, seed=3)
    images, targets = next(masknet.batches([source], 4, seed=0, side=64))
    optimizer = torch.optim.Adam(net.module.parameters(), lr=1e-4)
    losses = []
    for _ in range(8):
        loss = masknet.loss_fn(net.module(images), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert losses[-1] < 0.7 * losses[0]


def test_a_training_run_writes_a_graph_and_a_log(folders: tuple[Path, Path], tmp_path: Path) -> None:
    data = folders[0].parent
    path = masknet.train(data, tmp_path / "run", steps=2, batch=2, save_every=1, sample_sides=(64,), net_side=48)
    assert path == tmp_path / "run" / "u2netp_refcolor.onnx"
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2] and all(np.isfinite(e["loss"]) for e in log)
    net = automask.SaliencyNet(path, side=48)
    assert net(_image(1)).shape == (72, 80)


def test_converting_leaves_no_stand_in_for_torchvision_behind(base: masknet.Convertible) -> None:
    # Other libraries ask importlib whether torchvision exists; a stand-in left in sys.modules
    # (without a spec) made that question raise, and a second conversion failed.
    import importlib.util
    import sys

    masknet.Convertible.load(automask.u2netp_path())
    assert "torchvision" not in sys.modules or sys.modules["torchvision"].__spec__ is not None
    importlib.util.find_spec("torchvision")  # answers (None here), does not raise


def test_faded_sketches_keep_their_paper_and_lighten_their_ink() -> None:
    sketch = np.full((8, 8), 255, np.uint8)
    sketch[2:6, 3] = 0
    sketch[4, 1:7] = 100
    for seed in range(5):
        light = masknet.faded(sketch, np.random.default_rng(seed))
        assert (light[sketch == 255] == 255).all()
        ink = light[sketch == 0].astype(int)
        assert ((ink >= 255 - 0.8 * 255 - 1) & (ink <= 255 - 0.3 * 255 + 1)).all()  # 30–80 % as dark
        assert (light[sketch == 100] > 100).all()


def test_a_faint_share_of_pairs_gets_a_lighter_sketch(folders: tuple[Path, Path]) -> None:
    source = SampleSource.from_folders(*folders, size=64, seed=3)
    for index in range(3):
        plain = masknet.pairs(source, index, 48)
        faint = masknet.pairs(source, index, 48, faint=1.0)
        np.testing.assert_array_equal(plain[0][0], faint[0][0])  # coloured pictures untouched
        np.testing.assert_array_equal(plain[2][1], faint[2][1])  # the same character to find
        assert faint[2][0].mean() > plain[2][0].mean()  # lighter lines (paper is the brightest either way)


def test_training_draws_the_folders_backgrounds_unless_asked_for_varied_ones(
    folders: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The defaults reproduce the shipped graph's recipe; varied backgrounds are an option (round 5).
    made: list[type] = []
    real = masknet.batches

    def recording(sources: list[SampleSource], *args: object, **kwargs: object) -> object:
        made.extend(type(source) for source in sources)
        return real(sources, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(masknet, "batches", recording)
    data = folders[0].parent
    masknet.train(data, tmp_path / "a", steps=1, batch=2, sample_sides=(64,), net_side=32)
    masknet.train(
        data, tmp_path / "b", steps=1, batch=2, sample_sides=(64,), net_side=32, background_shares=(0, 0, 1, 0)
    )
    assert made == [SampleSource, masknet.scenery.VariedSource]


def test_workers_draw_disjoint_samples_and_the_sources_in_turn(
    folders: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Data-loader worker k of n draws samples k, k + n, ...: no two workers prepare the same sample.
    drawn: list[tuple[int, int]] = []
    real = masknet.pairs

    def recording(source: SampleSource, index: int, *args: object) -> object:
        drawn.append((source.size, index))
        return real(source, index, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(masknet, "pairs", recording)
    small, large = (SampleSource.from_folders(*folders, size=s, seed=3) for s in (48, 64))
    for worker in range(2):
        next(masknet.batches([small, large], 4, seed=[0, worker], side=32, start=worker, stride=2))
    assert drawn == [(48, 0), (64, 2), (48, 1), (64, 3)]  # two samples each (2 sketches a batch)


def test_a_data_loader_of_several_workers_gives_distinct_half_precision_batches(folders: tuple[Path, Path]) -> None:
    source = SampleSource.from_folders(*folders, size=64, seed=3)
    got = list(itertools.islice(masknet.loader([source], 4, seed=0, workers=2, side=[32, 48]), 4))
    assert [(i.dtype, i.shape, t.shape) for i, t in got] == [
        (np.float16, (4, 3, s, s), (4, 1, s, s)) for s in (32, 48, 32, 48)  # the sides in turn, over both workers
    ]
    assert not np.array_equal(got[0][0], got[1][0])  # each worker its own samples
    direct = next(masknet.batches([source], 4, seed=[0, 0], side=[32, 48], start=0, stride=2))
    np.testing.assert_allclose(got[0][0], direct[0].numpy(), atol=2e-3)  # float16 keeps them to a thousandth
    np.testing.assert_allclose(got[0][1], direct[1].numpy(), atol=1e-3)


class _Oracle(torch.nn.Module):
    """Answers with the validation's own targets (or their opposite), looked up by picture."""

    def __init__(self, validation: masknet.Validation, invert: bool = False) -> None:
        super().__init__()
        self.answers = {images.shape[-1]: targets for images, targets, _ in validation.sets}
        self.invert, self.seen = invert, 0

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        targets = self.answers[images.shape[-1]]
        answer = targets[self.seen % len(targets) : self.seen % len(targets) + len(images)]
        self.seen += len(images)
        return [1.0 - answer if self.invert else answer]


def test_validation_measures_the_networks_mask_per_kind_on_kept_apart_pictures(folders: tuple[Path, Path]) -> None:
    data = folders[0].parent
    validation = masknet.Validation.draw(data, 3, seed=5, sample_sides=(64,), net_sides=(32, 48))
    assert [(tuple(i.shape), tuple(t.shape)) for i, t, _ in validation.sets] == [
        ((9, 3, 32, 32), (9, 1, 32, 32)), ((9, 3, 48, 48), (9, 1, 48, 48))
    ]  # fmt: skip
    assert validation.sets[0][2] == ["reference", "reference", "sketch"] * 3
    _, apart = masknet.split(sorted(folders[0].iterdir()), masknet.HOLD_OUT_CHARACTERS)
    source = SampleSource(apart, masknet.split(sorted(folders[1].iterdir()), masknet.HOLD_OUT_BACKGROUNDS)[1],
                          size=64, seed=5)  # fmt: skip
    np.testing.assert_array_equal(validation.sets[1][0][2].numpy(), masknet.pairs(source, 0, 48)[2][0])
    assert validation.measure(_Oracle(validation), "cpu", chunk=4) == {"reference": 1.0, "sketch": 1.0}
    wrong = validation.measure(_Oracle(validation, invert=True), "cpu", chunk=4)
    assert set(wrong) == {"reference", "sketch"} and max(wrong.values()) < 0.05  # (ties at 0.5 overlap)


def test_a_timed_run_with_workers_validates_and_keeps_its_best_graph(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    data = folders[0].parent
    path = masknet.train(
        data, tmp_path / "run", None, batch=2, sample_sides=(64,), net_side=[32, 48], minutes=0.05, workers=2,
        validate=2, validate_every=1,
    )  # fmt: skip
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [e for e in log if "loss" in e]
    checks = [e for e in log if "validation" in e]
    assert losses and losses[-1]["seconds"] >= 3.0  # ran until its time was up
    assert [e["step"] for e in checks] == [e["step"] for e in losses]  # measured after every step
    assert all(set(e["validation"]) == {"reference", "sketch"} for e in checks)
    assert automask.SaliencyNet(path, side=48)(_image(2)).shape == (72, 80)
    assert automask.SaliencyNet(tmp_path / "run" / masknet.BEST, side=48)(_image(2)).shape == (72, 80)
    with pytest.raises(ValueError, match="steps, minutes"):
        masknet.train(data, tmp_path / "x", None)


def test_the_learning_rate_warms_up_then_falls_as_a_cosine_of_the_run_behind() -> None:
    assert masknet.lr_factor(1, 4, 0.0) == pytest.approx(0.25)
    assert masknet.lr_factor(4, 4, 0.0) == pytest.approx(1.0)
    assert masknet.lr_factor(10, 4, 0.5) == pytest.approx(0.5)
    assert masknet.lr_factor(10, 4, 1.0) == pytest.approx(0.0)
    assert masknet.lr_factor(10, 4, 1.7) == pytest.approx(0.0)  # a step begun just past the budget
    falling = [masknet.lr_factor(10, 4, done) for done in np.linspace(0, 1, 11)]
    assert all(a > b for a, b in itertools.pairwise(falling))


def test_the_learning_rate_follows_the_time_budget(
    folders: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A run given in minutes warms up, then its cosine runs by the clock: lower at every step after.
    monkeypatch.setattr(masknet, "WARMUP_STEPS", 2)
    data = folders[0].parent
    masknet.train(data, tmp_path / "run", None, batch=2, lr=1e-3, sample_sides=(64,), net_side=32, minutes=0.08)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    rates = [entry["lr"] for entry in log]
    assert len(rates) >= 3 and log[-1]["seconds"] >= 4.8  # as many steps as 4.8 s allow
    assert rates[0] == pytest.approx(5e-4, rel=0.05)  # half warm, the clock barely started
    assert all(a >= b for a, b in itertools.pairwise(rates[1:]))  # then falling with the time (3 figures logged)
    assert rates[-1] < rates[1]


@pytest.mark.timeout(240)
def test_workers_start_after_this_process_used_opencvs_threads(folders: tuple[Path, Path], tmp_path: Path) -> None:
    # On real data the run hung before its first batch: validation pictures are resized by OpenCV in
    # this process, whose thread pool a forked worker inherited locked (cv2.setNumThreads never returned).
    import cv2

    cv2.resize(np.zeros((2000, 2000, 3), np.uint8), (1000, 1000), interpolation=cv2.INTER_AREA)
    data = folders[0].parent
    path = masknet.train(
        data, tmp_path / "run", None, batch=2, sample_sides=(64,), net_side=32, minutes=0.05, workers=2
    )
    assert path.is_file() and (tmp_path / "run" / "log.jsonl").read_text().count('"loss"') >= 1
