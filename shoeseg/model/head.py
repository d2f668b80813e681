"""Segmentation head: stride-2 decoder features -> full-resolution 2-class logits."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ConvUnit, ResidualSEBlock


class SegmentationHead(nn.Module):
    """Residual block at stride 2, then (optionally) a light full-resolution refinement that sees
    the input pixels, so edges are sharp at the input resolution.

    forward: (B, C, H/2, W/2) features and (B, 3, H, W) image -> (B, num_classes, H, W) logits.
    """

    def __init__(self, in_ch: int, num_classes: int, refine_channels: int) -> None:
        super().__init__()
        self.block = ResidualSEBlock(in_ch, in_ch)
        self.refine_channels = refine_channels
        if refine_channels:
            self.squeeze = ConvUnit(in_ch, refine_channels, kernel_size=1)
            self.image_stem = ConvUnit(3, refine_channels // 2)
            self.refine = ConvUnit(refine_channels + refine_channels // 2, refine_channels)
            self.classify = nn.Conv2d(refine_channels, num_classes, 1)
        else:
            self.classify = nn.Conv2d(in_ch, num_classes, 1)

    def forward(self, x: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        x = self.block(x)
        if not self.refine_channels:
            return F.interpolate(self.classify(x), size=image.shape[-2:], mode="bilinear", align_corners=False)
        x = F.interpolate(self.squeeze(x), size=image.shape[-2:], mode="bilinear", align_corners=False)
        x = self.refine(torch.cat([x, self.image_stem(image)], dim=1))
        return self.classify(x)
