"""The seed project's ResUNet, rebuilt from ``shared/SEED_SPEC.md`` as the baseline for timing.

Random weights are fine (only cost is measured). Unlike the seed, which hard-coded the sizes of a
512x512 input, every resampling here targets the size of the map it feeds, so any input whose sides
are divisible by 32 works.
"""

from __future__ import annotations

import timm
import torch
import torch.nn.functional as F
from torch import nn

ENCODER = "efficientnet_b3"
SKIP_WIDTH = 24  # every encoder map is reduced to this before a full-scale connection
# Decoder widths, deepest first: level i works at stride 32 / 2**i and hands ``WIDTHS[i + 1]`` channels on.
WIDTHS = (384, 136, 48, 32, 24, 32)


def resample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize to ``size`` (antialiased when shrinking), identity when already there."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrinking = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=shrinking)


class ConvUnit(nn.Sequential):
    """Conv (no bias) -> BatchNorm -> SiLU; (B, in, H, W) -> (B, out, H / stride, W / stride)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.SiLU(inplace=True),
        )


class SqueezeExcite(nn.Module):
    """Global pool -> 1x1 (reduction 8) -> SiLU -> 1x1 -> sigmoid gate."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.SiLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class UBlockSet(nn.Module):
    """The seed's residual block: two conv units + shortcut, added, then SE and Dropout2d(0.03)."""

    def __init__(self, in_ch: int, out_ch: int, dropout: float = 0.03) -> None:
        super().__init__()
        self.body = nn.Sequential(ConvUnit(in_ch, out_ch), ConvUnit(out_ch, out_ch))
        self.shortcut = (
            nn.Identity()
            if in_ch == out_ch
            else nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch))
        )
        self.se = SqueezeExcite(out_ch)
        self.dropout = nn.Dropout2d(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.se(self.body(x) + self.shortcut(x)))


class SPPF(nn.Module):
    """1x1 unit to C/2, three chained 5x5 stride-1 max-pools, concat (2C), 1x1 unit back to C, plus input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.reduce = ConvUnit(channels, channels // 2, kernel_size=1)
        self.pool = nn.MaxPool2d(5, stride=1, padding=2)
        self.expand = ConvUnit(channels * 2, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y0 = self.reduce(x)
        y1 = self.pool(y0)
        y2 = self.pool(y1)
        y3 = self.pool(y2)
        return x + self.expand(torch.cat([y0, y1, y2, y3], dim=1))


class FullScaleConnection(nn.Module):
    """Every encoder map -> 1x1 unit to 24 ch -> bicubic resample to this level -> concat -> 1x1 unit."""

    def __init__(self, encoder_channels: list[int], out_ch: int) -> None:
        super().__init__()
        self.reduce = nn.ModuleList(ConvUnit(c, SKIP_WIDTH, kernel_size=1) for c in encoder_channels)
        self.fuse = ConvUnit(SKIP_WIDTH * len(encoder_channels), out_ch, kernel_size=1)

    def forward(self, features: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        maps = [resample(r(f), size) for r, f in zip(self.reduce, features)]
        return self.fuse(torch.cat(maps, dim=1))


class DecoderLevel(nn.Module):
    """skip = block(full-scale connection); x = 1x1 unit([x, skip]); x = block to the next width;
    x = bicubic x2 upsample + conv unit."""

    def __init__(self, encoder_channels: list[int], in_ch: int, width: int, next_width: int) -> None:
        super().__init__()
        self.connection = FullScaleConnection(encoder_channels, width)
        self.skip_block = UBlockSet(width, width)
        self.merge = ConvUnit(in_ch + width, width, kernel_size=1)
        self.block = UBlockSet(width, next_width)
        self.up = ConvUnit(next_width, next_width)

    def forward(self, x: torch.Tensor, features: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        skip = self.skip_block(self.connection(features, x.shape[-2:]))
        x = self.block(self.merge(torch.cat([x, skip], dim=1)))
        return self.up(resample(x, size))


class SeedResUNet(nn.Module):
    """EfficientNet-B3 encoder, SPPF, 1/64 bottleneck, five full-scale decoder levels, full-resolution head.

    forward: normalised (B, 3, H, W), H and W divisible by 32 -> logits (B, 2, H, W).
    """

    def __init__(self, num_classes: int = 2) -> None:
        super().__init__()
        self.encoder = timm.create_model(ENCODER, pretrained=False, features_only=True, out_indices=(0, 1, 2, 3, 4))
        channels = list(self.encoder.feature_info.channels())  # 24, 32, 48, 136, 384
        deepest = channels[-1]
        self.sppf = SPPF(deepest)
        self.down = nn.Sequential(
            nn.Conv2d(deepest, 512, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(512),
            nn.SiLU(inplace=True),
            nn.Dropout2d(0.05),
        )
        self.bottleneck = UBlockSet(512, 512)
        in_widths = [512, *WIDTHS[1:-1]]
        self.levels = nn.ModuleList(
            DecoderLevel(channels, in_ch, width, next_width)
            for in_ch, width, next_width in zip(in_widths, WIDTHS[:-1], WIDTHS[1:])
        )
        self.head = nn.Sequential(
            UBlockSet(WIDTHS[-1], WIDTHS[-1]), ConvUnit(WIDTHS[-1], WIDTHS[-1]), nn.Conv2d(WIDTHS[-1], num_classes, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            raise ValueError(f"input height and width must be divisible by 32, got {tuple(x.shape[-2:])}")
        features = self.encoder(x)
        deep = self.sppf(features[-1])
        y = resample(self.bottleneck(self.down(deep)), deep.shape[-2:])  # 1/64 and back to 1/32
        sizes = [tuple(f.shape[-2:]) for f in reversed(features[:-1])] + [tuple(x.shape[-2:])]
        for level, size in zip(self.levels, sizes):
            y = level(y, features, size)
        return self.head(y)


def build_seed() -> SeedResUNet:
    """A seed ResUNet with random weights, in eval mode."""
    return SeedResUNet().eval()
