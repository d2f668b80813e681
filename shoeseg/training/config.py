"""Stage configs (YAML files in ``training/configs``) as typed dataclasses."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from shoeseg.constants import DEFAULT_DATA_ROOT


def data_root(override: str | None = None) -> Path:
    """The data folder: argument, else $SHOESEG_DATA, else ``../shared/data``."""
    return Path(override or os.environ.get("SHOESEG_DATA") or DEFAULT_DATA_ROOT)


def _from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    """``cls(**data)`` with unknown keys refused by name; YAML lists become tuples where the default is one."""
    known = {f.name: f for f in fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(known)}")
    values = {
        k: tuple(v) if isinstance(v, list) and isinstance(known[k].default, tuple) else v for k, v in data.items()
    }
    return cls(**values)


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
    The ``*_p`` values are probabilities; the tuples are (low, high) ranges drawn uniformly per sample.
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
    flip_p: float = 0.5  # horizontal mirror
    rotate: float = 20.0  # degrees, either way
    affine_p: float = 0.6
    affine_scale: tuple[float, float] = (0.85, 1.15)
    affine_translate: tuple[float, float] = (-0.1, 0.1)  # fraction of the side
    affine_shear: tuple[float, float] = (-5.0, 5.0)  # degrees
    distort_p: float = 0.1  # one of perspective, grid distortion
    perspective_scale: tuple[float, float] = (0.02, 0.06)
    grid_distort: float = 0.15
    noise_p: float = 0.2  # one of Gaussian (std as a fraction of 255), ISO noise
    noise_std: tuple[float, float] = (0.01, 0.05)
    contrast_p: float = 0.2  # one of CLAHE, sharpen
    sharpen_alpha: tuple[float, float] = (0.1, 0.3)
    degrade_p: float = 0.1  # one of Gaussian / motion blur, JPEG, downscale
    blur_limit: tuple[int, int] = (3, 5)  # kernel sizes
    jpeg_quality: tuple[int, int] = (40, 90)
    downscale: tuple[float, float] = (0.5, 0.8)
    color_p: float = 0.8  # one of colour jitter, RGB shift, Planckian jitter, channel shuffle
    jitter: tuple[float, float, float, float] = (0.25, 0.25, 0.3, 0.05)  # brightness, contrast, saturation, hue
    rgb_shift: int = 20  # per channel, either way, 0-255 units
    crop_min_scale: float = 0.35  # random resized crop: area share kept
    crop_ratio: tuple[float, float] = (0.8, 1.25)  # and its aspect range


@dataclass
class DataConfig:
    """Where samples come from, relative to the data root."""

    cutouts: list[str] = field(default_factory=lambda: ["shoes/train"])
    pairs: list[str] = field(default_factory=list)
    cutout_share: float = 1.0
    pale_weight: float = 1.0  # draw pale cutouts (white shoes) this many times as often (data.PALE_LUMA)
    holed_weight: float = 1.0  # and cutouts with enclosed background (strap gaps) this many times
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
    grad_clip: float = 5.0  # max global gradient norm per step
    fog_weight: float = 0.0  # weight of losses.fog_loss: undecided alpha away from the true edge
    fog_band: float = 0.02  # ... "away" = farther than this share of the input's diagonal
    frozen_encoder_blocks: int = 0  # the stem and this many early encoder blocks keep their weights
    freeze_norm: bool = False  # BatchNorm keeps the statistics it started with (small fine-tuning batches)
    cosine_floor: float = 0.02  # the schedule's last learning rate, as a share of the peak
    val_batch_size: int = 4
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

    def to_dict(self) -> dict[str, Any]:
        """The resolved stage in plain JSON types (tuples as lists): what checkpoints record."""
        return json.loads(json.dumps(asdict(self)))
