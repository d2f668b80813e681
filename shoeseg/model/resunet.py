"""ResUNet: timm encoder + UNet3+ decoder + head, wired from a ModelConfig."""

from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig
from .decoder import UNet3PlusDecoder
from .encoder import TimmEncoder
from .head import SegmentationHead


class ResUNet(nn.Module):
    """Background-removal network.

    forward: normalised images (B, 3, H, W), H and W divisible by 32 -> logits (B, 2, H, W).
    Class 1 is the foreground.
    """

    def __init__(self, config: ModelConfig, pretrained_encoder: bool = False) -> None:
        super().__init__()
        self.config = config
        self.encoder = TimmEncoder(config.encoder, pretrained=pretrained_encoder)
        self.decoder = UNet3PlusDecoder(
            self.encoder.channels,
            self.encoder.strides,
            config.decoder_channels,
            config.skip_channels,
            config.dropout,
        )
        self.head = SegmentationHead(config.decoder_channels[-1], config.num_classes, config.refine_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            raise ValueError(f"input height and width must be divisible by 32, got {tuple(x.shape[-2:])}")
        return self.head(self.decoder(self.encoder(x)), x)
