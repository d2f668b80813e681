"""UNet3+-style decoder: every level fuses all encoder levels, residual SE blocks, SPPF bottleneck."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import SPPF, ConvUnit, ResidualSEBlock


def resample_to(x: torch.Tensor, stride_from: int, stride_to: int) -> torch.Tensor:
    """Bring a map from one stride to another: max-pool when shrinking, bilinear when growing."""
    if stride_from == stride_to:
        return x
    if stride_from < stride_to:
        factor = stride_to // stride_from
        return F.max_pool2d(x, kernel_size=factor, stride=factor)
    return F.interpolate(x, scale_factor=stride_from // stride_to, mode="bilinear", align_corners=False)


class FullScaleSkip(nn.Module):
    """Fuses all (already reduced) encoder maps at one decoder stride.

    forward: list of 5 maps (B, skip_ch, H/s_i, W/s_i) -> (B, out_ch, H/stride, W/stride).
    """

    def __init__(self, skip_ch: int, n_levels: int, out_ch: int, strides: list[int], stride: int) -> None:
        super().__init__()
        self.strides = strides
        self.stride = stride
        self.fuse = ResidualSEBlock(skip_ch * n_levels, out_ch)

    def forward(self, reduced: list[torch.Tensor]) -> torch.Tensor:
        maps = [resample_to(m, s, self.stride) for m, s in zip(reduced, self.strides)]
        return self.fuse(torch.cat(maps, dim=1))


class DecoderLevel(nn.Module):
    """x2 upsample of the deeper level, concat with the full-scale skip, residual SE block."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, dropout: float) -> None:
        super().__init__()
        self.block = ResidualSEBlock(in_ch + skip_ch, out_ch, dropout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.block(torch.cat([x, skip], dim=1))


class UNet3PlusDecoder(nn.Module):
    """Decoder from the stride-32 bottleneck down to stride 2.

    forward: encoder maps (list of 5) -> (B, decoder_channels[-1], H/2, W/2).
    """

    def __init__(
        self,
        encoder_channels: list[int],
        encoder_strides: list[int],
        decoder_channels: tuple[int, ...],
        skip_channels: int,
        dropout: float,
    ) -> None:
        super().__init__()
        deepest = encoder_channels[-1]
        self.bottleneck = nn.Sequential(SPPF(deepest), ResidualSEBlock(deepest, decoder_channels[0], dropout))
        self.reduce = nn.ModuleList(ConvUnit(c, skip_channels, kernel_size=1) for c in encoder_channels)
        level_strides = [16, 8, 4, 2]
        n = len(encoder_channels)
        self.skips = nn.ModuleList(
            FullScaleSkip(skip_channels, n, width, encoder_strides, stride)
            for width, stride in zip(decoder_channels, level_strides)
        )
        in_widths = [decoder_channels[0], *decoder_channels[:-1]]
        self.levels = nn.ModuleList(
            DecoderLevel(in_ch, out_ch, out_ch, dropout) for in_ch, out_ch in zip(in_widths, decoder_channels)
        )

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        reduced = [r(f) for r, f in zip(self.reduce, features)]
        x = self.bottleneck(features[-1])
        for skip, level in zip(self.skips, self.levels):
            x = level(x, skip(reduced))
        return x
