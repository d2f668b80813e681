"""Stage configs (YAML files in ``training/configs``) as typed dataclasses."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from shoeseg.constants import DEFAULT_DATA_ROOT


def data_root(override: str | None = None) -> Path:
    """The data folder: argument, else $SHOESEG_DATA, else ``../shared/data``."""
    return Path(override or os.environ.get("SHOESEG_DATA") or DEFAULT_DATA_ROOT)


def _from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(known)}")
    return cls(**data)


def _read_with_base(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    raw = yaml.safe_load(path.read_text()) or {}
    base = raw.pop("base", None)
    if base is None:
        return raw
    base_path = (path.parent / base).resolve()
    if base_path in seen or base_path == path.resolve():
        raise ValueError(f"{path}: base {base!r} leads back to itself")
    merged = _read_with_base(base_path, (*seen, path.resolve()))
    for key, value in raw.items():
        nested = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = {**merged[key], **value} if nested else value
    return merged


@dataclass
class AugmentConfig:
    """Augmentation probabilities and ranges (see ``augment.train_pipeline``).

    ``background_weights`` maps file-name globs in the backgrounds folder to sampling weights
    (e.g. ``{"shoe_*": 0.7, "street_*": 0.3}``; empty = every photo equally likely).
    ``aspect_range`` is the canvas' height/width range; ``letterbox_p`` is how often the canvas
    is letterboxed (black bars, as at inference) instead of randomly cropped to the square input.
    ``reflection_p``, ``prop_p``, ``tint_p``: studio realism (see ``training.studio``).
    """

    canvas: int = 512
    copy_paste_p: float = 0.4
    paste_min_scale: float = 0.45
    paste_max_scale: float = 0.95
    paste_centre: tuple[float, float] = (0.3, 0.7)
    background_weights: dict[str, float] = field(default_factory=dict)
    aspect_range: tuple[float, float] = (1.0, 1.0)
    letterbox_p: float = 0.0
    studio_p: float = 0.5
    shadow_p: float = 0.5
    reflection_p: float = 0.0
    prop_p: float = 0.0
    tint_p: float = 0.0
    rotate: float = 20.0
    affine_p: float = 0.6
    distort_p: float = 0.1
    noise_p: float = 0.2
    contrast_p: float = 0.2
    degrade_p: float = 0.1
    color_p: float = 0.8
    crop_min_scale: float = 0.35


@dataclass
class DataConfig:
    """Where samples come from, relative to the data root."""

    cutouts: list[str] = field(default_factory=lambda: ["shoes/train"])
    pairs: list[str] = field(default_factory=list)
    cutout_share: float = 1.0
    backgrounds: str | None = "backgrounds"
    val: list[str] = field(default_factory=lambda: ["bench/white", "bench/scene"])
    val_limit: int = 0


@dataclass
class TrainConfig:
    """One training stage."""

    name: str
    model: dict[str, Any] = field(default_factory=dict)
    init: str = "imagenet"
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    image_size: int = 320
    val_size: int = 320
    epochs: int = 10
    samples_per_epoch: int = 512
    batch_size: int = 8
    lr: float = 1e-3
    encoder_lr: float = 3e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    ce_weight: float = 1.0
    dice_weight: float = 1.0
    boundary_w0: float = 5.0
    boundary_sigma: float = 4.0
    hole_weight: float = 0.0  # extra loss weight on the true mask's enclosed background (strap gaps)
    num_workers: int = 1  # data-loading processes; -1: all cores but two (at least one)
    seed: int = 0

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """A stage YAML; ``base: other.yaml`` (beside it) starts from that stage's keys, ``data`` and
        ``augment`` merged key by key, so a stage writes only what it changes."""
        raw = _read_with_base(Path(path))
        raw["data"] = _from_dict(DataConfig, raw.get("data", {}), f"{path}: data")
        raw["augment"] = _from_dict(AugmentConfig, raw.get("augment", {}), f"{path}: augment")
        return _from_dict(cls, raw, str(path))
