"""timm encoder wrapper: five feature maps with channels and strides from ``feature_info``."""

from __future__ import annotations

import timm
import torch
from torch import nn


class TimmEncoder(nn.Module):
    """Wraps ``timm.create_model(features_only=True)``.

    forward: (B, 3, H, W) -> list of 5 maps, map i has ``channels[i]`` channels at H/``strides[i]``.
    """

    def __init__(self, name: str, pretrained: bool = False) -> None:
        super().__init__()
        self.model = timm.create_model(name, pretrained=pretrained, features_only=True, out_indices=(0, 1, 2, 3, 4))
        self.channels: list[int] = list(self.model.feature_info.channels())
        self.strides: list[int] = list(self.model.feature_info.reduction())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model(x)
