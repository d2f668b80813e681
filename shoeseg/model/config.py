"""The model's configuration: everything needed to rebuild it, stored inside each checkpoint."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and input contract of a ResUNet.

    encoder: any timm model name that supports ``features_only`` (5 stages).
    decoder_channels: widths of the decoder levels, deepest first (strides 16, 8, 4, 2).
    skip_channels: width each encoder level is reduced to before the full-scale fusion.
    refine_channels: width of the full-resolution refinement stage (0 disables it).
    input_size: side of the square letterbox the model is served at (divisible by 32).
    """

    encoder: str = "tf_efficientnet_lite2"
    decoder_channels: tuple[int, ...] = (128, 80, 48, 32)
    skip_channels: int = 24
    refine_channels: int = 16
    dropout: float = 0.03
    num_classes: int = 2
    input_size: int = 512
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.input_size % 32:
            raise ValueError(f"input_size must be divisible by 32, got {self.input_size}")
        if len(self.decoder_channels) != 4:
            raise ValueError("decoder_channels needs 4 widths (strides 16, 8, 4, 2)")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Rebuild from ``to_dict`` output; unknown keys are rejected with their names."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown ModelConfig keys {sorted(unknown)}; known: {sorted(known)}")
        values = dict(data)
        for key in ("decoder_channels", "mean", "std"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)
