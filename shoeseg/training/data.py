"""Datasets: RGBA cutouts (alpha = mask) and ``images/`` + ``masks/`` pairs, mixed per epoch."""

from __future__ import annotations

import logging
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from .backgrounds import list_images
from .losses import boundary_weight_map
from .metrics import enclosed_background

log = logging.getLogger(__name__)

# A cutout is "pale" when its object's mean luma (0-255) is above this: white shoes, whose edges vanish
# on white sweeps and which the studio realism (mirror images, pale props) teaches the model to drop.
PALE_LUMA = 170.0
# ... and "holed" when at least this share of its object's area is enclosed background (strap gaps).
HOLED_SHARE = 0.01
# Traits are measured on a copy at most this many pixels on a side: cheap, and enough for both.
TRAIT_SIDE = 256


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot decode image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_cutout(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """RGBA cutout -> (H, W, 3) uint8 RGB and (H, W) float32 alpha in [0, 1]."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None or image.ndim != 3 or image.shape[2] != 4:
        raise ValueError(f"{path} is not an RGBA cutout")
    return cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB), image[..., 3].astype(np.float32) / 255.0


def read_mask(path: Path) -> np.ndarray:
    """8-bit mask (0 background, 255 object, soft values between) -> (H, W) float32 in [0, 1]."""
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise ValueError(f"cannot decode mask {path}")
    return mask.astype(np.float32) / 255.0


def cutout_files(folder: Path) -> list[Path]:
    """Images in ``folder`` that carry an alpha channel; others are skipped with a warning."""
    files = []
    for path in list_images(folder):
        with Image.open(path) as image:
            has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
        if has_alpha:
            files.append(path)
        else:
            log.warning("skipping %s: no alpha channel (mode %s), so no mask", path, image.mode)
    return files


def pair_files(folder: Path) -> list[tuple[Path, Path]]:
    """(image, mask) paths of an ``images/`` + ``masks/<stem>.png`` folder."""
    masks = {p.stem: p for p in (folder / "masks").glob("*.png")}
    pairs = [(img, masks[img.stem]) for img in list_images(folder / "images") if img.stem in masks]
    if not pairs:
        raise FileNotFoundError(f"no images/ + masks/ pairs in {folder}")
    return pairs


def cutout_traits(rgb: np.ndarray, alpha: np.ndarray) -> tuple[bool, bool]:
    """(pale, holed) of one cutout: rgb (H, W, 3) uint8, alpha (H, W) float in [0, 1]."""
    scale = TRAIT_SIDE / max(alpha.shape)
    if scale < 1:
        size = (max(1, round(alpha.shape[1] * scale)), max(1, round(alpha.shape[0] * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)
    solid = alpha >= 0.5
    if not solid.any():
        return False, False
    luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[solid].mean()
    holed = enclosed_background(solid).sum() >= HOLED_SHARE * solid.sum()
    return bool(luma > PALE_LUMA), bool(holed)


def cutout_sampling_p(paths: list[Path], pale_weight: float, holed_weight: float) -> np.ndarray | None:
    """Probability of drawing each cutout, (N,): a pale one ``pale_weight`` times as often as a plain one,
    a holed one ``holed_weight`` times (both: the product). None when both weights are 1 (uniform)."""
    if pale_weight == 1.0 and holed_weight == 1.0:
        return None
    weights = np.ones(len(paths))
    for i, path in enumerate(paths):
        pale, holed = cutout_traits(*read_cutout(path))
        weights[i] *= (pale_weight if pale else 1.0) * (holed_weight if holed else 1.0)
    log.info("sampling %d cutouts: weight %.1f total, %.1f if uniform", len(paths), weights.sum(), len(paths))
    return weights / weights.sum()


class MixedSegmentationDataset(Dataset):
    """``length`` samples per epoch, each drawn (seeded by epoch and index) from the cutouts with
    probability ``cutout_share`` (each cutout with ``cutout_p``, uniform by default), else from the pairs.
    Items: image (3, S, S), alpha (S, S), boundary weight (S, S)."""

    def __init__(
        self,
        cutout_dirs: list[Path],
        pair_dirs: list[Path],
        cutout_share: float,
        length: int,
        cutout_pipeline: A.Compose,
        pair_pipeline: A.Compose,
        weight_args: tuple[float, ...] = (5.0, 4.0),
        seed: int = 0,
        sample_weights: tuple[float, float] = (1.0, 1.0),
    ) -> None:
        self.cutouts = [p for d in cutout_dirs for p in cutout_files(d)]
        self.cutout_p = cutout_sampling_p(self.cutouts, *sample_weights)
        self.pairs = [pair for d in pair_dirs for pair in pair_files(d)]
        if not self.cutouts and not self.pairs:
            raise ValueError("no training data: set data.cutouts or data.pairs in the stage config")
        self.cutout_share = cutout_share if self.pairs else 1.0
        if not self.cutouts:
            self.cutout_share = 0.0
        self.length = length
        self.cutout_pipeline, self.pair_pipeline = cutout_pipeline, pair_pipeline
        self.weight_args = weight_args
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if rng.random() < self.cutout_share:
            pick = (
                rng.integers(len(self.cutouts))
                if self.cutout_p is None
                else rng.choice(len(self.cutouts), p=self.cutout_p)
            )
            image, alpha = read_cutout(self.cutouts[pick])
            pipeline = self.cutout_pipeline
        else:
            image_path, mask_path = self.pairs[rng.integers(len(self.pairs))]
            image, alpha = read_rgb(image_path), read_mask(mask_path)
            if alpha.shape != image.shape[:2]:
                alpha = cv2.resize(alpha, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
            pipeline = self.pair_pipeline
        pipeline.set_random_seed(int(rng.integers(2**31)))
        out = pipeline(image=image, mask=alpha)
        alpha_t = out["mask"].float().clamp(0, 1)
        weight = torch.from_numpy(boundary_weight_map(alpha_t.numpy(), *self.weight_args))
        return out["image"].float(), alpha_t, weight


class PairEvalDataset(Dataset):
    """Letterboxed ``images/`` + ``masks/`` pairs for validation: image (3, S, S), alpha (S, S)."""

    def __init__(self, folder: Path, pipeline: A.Compose, limit: int = 0) -> None:
        pairs = pair_files(folder)
        if limit and limit < len(pairs):
            pairs = pairs[:: max(1, len(pairs) // limit)][:limit]
        self.pairs = pairs
        self.pipeline = pipeline

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, mask_path = self.pairs[index]
        out = self.pipeline(image=read_rgb(image_path), mask=read_mask(mask_path))
        return out["image"].float(), out["mask"].float()
