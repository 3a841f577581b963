"""The sketch encoder: multi-scale features of the line art, added to the UNet's main path.

Same layout as the official ``MultiEncoder`` (``refnet/modules/encoder.py``), so its
``control_encoder.*`` keys map one to one onto ``stem.*``/``zero_layer.*``/
``output_blocks.*``/``zero_blocks.*`` here: a convolutional stem down to latent
resolution, then one block per UNet level. Every output passes through a 1x1
convolution initialised to zero, so a fresh encoder leaves the UNet unchanged.

Input: the inverted line art (white lines on black) in [-1, 1]; a blank sketch
(all -1) is the "no sketch" input of sketch guidance.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


def _conv(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)


def _zero_conv(channels: int) -> nn.Sequential:
    conv = nn.Conv2d(channels, channels, 1)
    nn.init.zeros_(conv.weight)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return nn.Sequential(conv)


class SketchEncoder(ModelMixin, ConfigMixin):
    """Line art (B, in_channels, H, W) -> one feature map per UNet injection point.

    Args:
        in_channels: channels of the line-art input (3: the official encoder takes RGB).
        block_out_channels: the UNet's ``block_out_channels``; feature ``0`` has
            ``block_out_channels[0]`` channels at latent size (added after ``conv_in``), feature
            ``i + 1`` matches the output of UNet down block ``i``.
        stem_channels: widths of the stem; it downsamples by ``2 ** (len(stem_channels) - 1)``.
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280),
        stem_channels: tuple[int, ...] = (16, 32, 96, 256),
    ) -> None:
        super().__init__()
        widths = list(stem_channels)
        layers: list[nn.Module] = [
            _conv(in_channels, widths[0]),
            nn.SiLU(),
            _conv(widths[0], widths[0]),
            nn.SiLU(),
        ]
        for i in range(1, len(widths)):
            layers += [_conv(widths[i - 1], widths[i], stride=2), nn.SiLU()]
            if i < len(widths) - 1:
                layers += [_conv(widths[i], widths[i]), nn.SiLU()]
        layers.append(_conv(widths[-1], block_out_channels[0]))
        self.stem = nn.Sequential(*layers)  # official: control_encoder.model
        self.zero_layer = _zero_conv(block_out_channels[0])

        self.output_blocks = nn.ModuleList()
        self.zero_blocks = nn.ModuleList()
        previous = block_out_channels[0]
        for i, channels in enumerate(block_out_channels):
            last = i == len(block_out_channels) - 1  # the UNet's last level does not downsample
            self.output_blocks.append(
                nn.Sequential(
                    nn.SiLU(),
                    _conv(previous, channels, 1 if last else 2),
                    nn.SiLU(),
                    _conv(channels, channels),
                )
            )
            self.zero_blocks.append(_zero_conv(channels))
            previous = channels

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.config.stem_channels) - 1)

    def forward(self, sketch: torch.Tensor) -> list[torch.Tensor]:
        """(B, C, H, W) line art in [-1, 1] -> [(B, c_0, H/8, W/8), (B, c_0, H/16, W/16), ...]."""
        x = self.stem(sketch)
        features = [self.zero_layer(x)]
        for block, zero in zip(self.output_blocks, self.zero_blocks, strict=True):
            x = block(x)
            features.append(zero(x))
        return features
