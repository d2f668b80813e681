"""Backgrounds for compositing: real photos and synthetic studio sweeps with soft contact shadows."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in ``folder``, sorted; a clear error when there are none."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
    if not files:
        raise FileNotFoundError(f"no images in {folder}; pass the right data directory (see ../shared/data/README.md)")
    return files


def random_crop_resize(image: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random crop of ``image`` (at least half of each side) resized to ``size`` = (h, w)."""
    h, w = image.shape[:2]
    ch = int(h * rng.uniform(0.5, 1.0))
    cw = min(w, max(1, int(ch * size[1] / size[0] * rng.uniform(0.9, 1.1))))
    ch = min(h, ch)
    top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    crop = image[top : top + ch, left : left + cw]
    return cv2.resize(crop, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def studio_sweep(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A white / light-grey seamless backdrop: soft vertical gradient, vignette, faint noise.

    Returns (h, w, 3) float32 in [0, 255].
    """
    h, w = size
    top = rng.uniform(200, 255)
    bottom = np.clip(top + rng.uniform(-25, 15), 180, 255)
    gradient = np.linspace(top, bottom, h, dtype=np.float32)[:, None]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    radius = ((xx / w - 0.5) ** 2 + (yy / h - 0.5) ** 2) * rng.uniform(0, 0.35)
    grey = gradient * (1 - radius)
    tint = rng.uniform(-4, 4, size=3).astype(np.float32)
    image = grey[..., None] + tint + rng.normal(0, rng.uniform(0, 2.5), size=(h, w, 1)).astype(np.float32)
    return np.clip(image, 0, 255)


def contact_shadow(alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A soft shadow under the object whose (h, w) alpha is given: a blurred ellipse at its base,
    sometimes with a blurred, offset copy of the silhouette. Returns (h, w) darkness in [0, 1].
    """
    h, w = alpha.shape
    ys, xs = np.nonzero(alpha > 0.5)
    shadow = np.zeros((h, w), np.float32)
    if len(ys) == 0:
        return shadow
    x0, x1, y1 = xs.min(), xs.max(), ys.max()
    centre = (int((x0 + x1) / 2), int(y1 - rng.uniform(0, 0.04) * h))
    axes = (max(2, int((x1 - x0) * rng.uniform(0.45, 0.6))), max(2, int((y1 - ys.min()) * rng.uniform(0.04, 0.12))))
    cv2.ellipse(shadow, centre, axes, 0, 0, 360, 1.0, -1)
    if rng.random() < 0.4:
        shift = np.float32([[1, 0, rng.uniform(-0.05, 0.05) * w], [0, 1, rng.uniform(0, 0.04) * h]])
        shadow = np.maximum(shadow, 0.6 * cv2.warpAffine(alpha.astype(np.float32), shift, (w, h)))
    blur = int(max(h, w) * rng.uniform(0.015, 0.05)) * 2 + 1
    shadow = cv2.GaussianBlur(shadow, (blur, blur), 0)
    return np.clip(shadow * rng.uniform(0.15, 0.55), 0, 1)
