"""Building blocks of the ResUNet: conv units, residual SE blocks, SPPF."""

from __future__ import annotations

import torch
from torch import nn


class ConvUnit(nn.Sequential):
    """Conv (no bias) -> BatchNorm -> SiLU. Shape: (B, in, H, W) -> (B, out, H, W)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.SiLU(inplace=True),
        )


class SqueezeExcite(nn.Module):
    """Channel attention: global pool -> bottleneck MLP (SiLU) -> sigmoid gate."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.SiLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class ResidualSEBlock(nn.Module):
    """Two conv units plus a shortcut, then squeeze-and-excitation and Dropout2d.

    Shape: (B, in, H, W) -> (B, out, H, W).
    """

    def __init__(self, in_ch: int, out_ch: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.body = nn.Sequential(ConvUnit(in_ch, out_ch), ConvUnit(out_ch, out_ch))
        self.shortcut = (
            nn.Identity()
            if in_ch == out_ch
            else nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch))
        )
        self.se = SqueezeExcite(out_ch)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.se(self.body(x) + self.shortcut(x)))


class SPPF(nn.Module):
    """Spatial pyramid pooling (fast), residual: three chained 5x5 max-pools.

    Shape: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden = channels // 2
        self.reduce = ConvUnit(channels, hidden, kernel_size=1)
        self.pool = nn.MaxPool2d(5, stride=1, padding=2)
        self.expand = ConvUnit(hidden * 4, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y0 = self.reduce(x)
        y1 = self.pool(y0)
        y2 = self.pool(y1)
        y3 = self.pool(y2)
        return x + self.expand(torch.cat([y0, y1, y2, y3], dim=1))
