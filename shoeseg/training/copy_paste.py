"""CopyPaste: the object (soft alpha) pasted at a random scale and place on a random background."""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import albumentations as A
import cv2
import numpy as np

from .backgrounds import contact_shadow, list_images, random_crop_resize, studio_sweep
from .studio import light_prop, mirror_reflection, tint_backdrop


def place_object(
    image: np.ndarray, alpha: np.ndarray, canvas: tuple[int, int], scale: float, centre: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """The object of ``image``/``alpha`` resized and placed on an empty canvas of size (H, W).

    image: (h, w, 3) uint8; alpha: (h, w) float in [0, 1]. scale: object bbox's longest side as a
    fraction of the canvas' shorter side; centre: (y, x) of the object in canvas fractions.
    Returns (H, W, 3) float32 colour and (H, W) float32 alpha (zero outside the object).
    """
    canvas_h, canvas_w = canvas
    full_alpha = np.zeros((canvas_h, canvas_w), np.float32)
    full_obj = np.zeros((canvas_h, canvas_w, 3), np.float32)
    ys, xs = np.nonzero(alpha > 0.02)
    if len(ys) == 0:
        return full_obj, full_alpha
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    obj, obj_alpha = image[y0:y1, x0:x1], alpha[y0:y1, x0:x1]
    factor = scale * min(canvas_h, canvas_w) / max(y1 - y0, x1 - x0)
    new_w, new_h = max(1, round((x1 - x0) * factor)), max(1, round((y1 - y0) * factor))
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    obj = cv2.resize(obj, (new_w, new_h), interpolation=interp).astype(np.float32)
    obj_alpha = np.clip(cv2.resize(obj_alpha.astype(np.float32), (new_w, new_h), interpolation=interp), 0, 1)
    top = round(centre[0] * canvas_h - new_h / 2)
    left = round(centre[1] * canvas_w - new_w / 2)
    cy0, cx0 = max(top, 0), max(left, 0)
    cy1, cx1 = min(top + new_h, canvas_h), min(left + new_w, canvas_w)
    if cy1 > cy0 and cx1 > cx0:
        full_alpha[cy0:cy1, cx0:cx1] = obj_alpha[cy0 - top : cy1 - top, cx0 - left : cx1 - left]
        full_obj[cy0:cy1, cx0:cx1] = obj[cy0 - top : cy1 - top, cx0 - left : cx1 - left]
    return full_obj, full_alpha


def composite(obj: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``obj`` over ``background`` with ``alpha`` (all canvas-sized float32) -> (H, W, 3) uint8."""
    a = alpha[..., None]
    return np.clip(obj * a + background * (1 - a) + 0.5, 0, 255).astype(np.uint8)


def paste_object(
    image: np.ndarray,
    alpha: np.ndarray,
    background: np.ndarray,
    scale: float,
    centre: tuple[float, float],
) -> tuple[np.ndarray, np.ndarray]:
    """Alpha-composite the object of ``image``/``alpha`` onto ``background`` ((H, W, 3) float32), placed
    as in ``place_object``. Returns (H, W, 3) uint8 and (H, W) float32 alpha."""
    obj, placed = place_object(image, alpha, background.shape[:2], scale, centre)
    return composite(obj, placed, background), placed


class CopyPaste(A.DualTransform):
    """Albumentations transform: composite the (image, soft mask) object onto a new background.

    Backgrounds are real photos from ``background_dir`` (sampled per file-name glob with
    ``background_weights``, else uniformly) or, with ``studio_p``, a synthetic studio sweep that
    gets a soft contact shadow with ``shadow_p`` (the shadow stays background). The canvas'
    longest side is ``canvas`` and its height/width ratio is drawn from ``aspect_range``; the
    object's centre is drawn from ``centre`` (canvas fractions). Studio realism (``training.studio``,
    all background): a studio sweep is recoloured with ``tint_p``; a pale box or plinth stands beside or
    under the object with ``prop_p``; a glossy table's faded mirror image lies below it with
    ``reflection_p``. The mask is float32 alpha in [0, 1].
    """

    def __init__(
        self,
        background_dir: str | Path | None,
        canvas: int = 512,
        scale: tuple[float, float] = (0.45, 0.95),
        studio_p: float = 0.5,
        shadow_p: float = 0.5,
        p: float = 0.5,
        background_weights: dict[str, float] | None = None,
        centre: tuple[float, float] = (0.3, 0.7),
        aspect_range: tuple[float, float] = (1.0, 1.0),
        reflection_p: float = 0.0,
        prop_p: float = 0.0,
        tint_p: float = 0.0,
    ) -> None:
        super().__init__(p=p)
        self.backgrounds = list_images(background_dir) if background_dir else []
        self.groups, self.group_p = _background_groups(self.backgrounds, background_weights or {})
        self.canvas = canvas
        self.scale = scale
        self.studio_p = studio_p if self.backgrounds else 1.0
        self.shadow_p = shadow_p
        self.background_weights = background_weights
        self.centre = centre
        self.aspect_range = aspect_range
        self.reflection_p, self.prop_p, self.tint_p = reflection_p, prop_p, tint_p

    def _canvas_size(self, rng: np.random.Generator) -> tuple[int, int]:
        ratio = rng.uniform(*self.aspect_range)
        return (self.canvas, round(self.canvas / ratio)) if ratio >= 1 else (round(self.canvas * ratio), self.canvas)

    def _background(self, rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, bool]:
        if rng.random() < self.studio_p:
            sweep = studio_sweep(size, rng)
            return (tint_backdrop(sweep, rng) if rng.random() < self.tint_p else sweep), True
        group = self.groups[rng.choice(len(self.groups), p=self.group_p)]
        path = group[rng.integers(len(group))]
        photo = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        return random_crop_resize(photo, size, rng).astype(np.float32), False

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        rng = np.random.default_rng(self.random_generator.integers(2**32))
        image, alpha = data["image"], data["mask"].astype(np.float32)
        background, studio = self._background(rng, self._canvas_size(rng))
        scale = rng.uniform(*self.scale)
        centre = (rng.uniform(*self.centre), rng.uniform(*self.centre))
        obj, new_alpha = place_object(image, alpha, background.shape[:2], scale, centre)
        if rng.random() < self.prop_p:
            background = light_prop(background, new_alpha, rng)
        if studio and rng.random() < self.shadow_p:
            background = background * (1 - contact_shadow(new_alpha, rng)[..., None])
        if rng.random() < self.reflection_p:
            background = mirror_reflection(background, obj, new_alpha, rng)
        image_out = composite(obj, new_alpha, background)
        return {"composite": image_out, "new_alpha": new_alpha}

    def apply(self, img: np.ndarray, composite: np.ndarray, **params: Any) -> np.ndarray:
        return composite

    def apply_to_mask(self, mask: np.ndarray, new_alpha: np.ndarray, **params: Any) -> np.ndarray:
        return new_alpha

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return (
            "canvas",
            "scale",
            "studio_p",
            "shadow_p",
            "background_weights",
            "centre",
            "aspect_range",
            "reflection_p",
            "prop_p",
            "tint_p",
        )


def _background_groups(files: list[Path], weights: dict[str, float]) -> tuple[list[list[Path]], np.ndarray]:
    """Split ``files`` by the file-name globs of ``weights`` -> (groups, normalised probabilities)."""
    if not files or not weights:
        return [files], np.ones(1)
    groups = {pattern: [f for f in files if fnmatch(f.name, pattern)] for pattern in weights}
    empty = [pattern for pattern, group in groups.items() if not group]
    if empty:
        raise ValueError(f"background_weights: no background file matches {empty}; globs match file names")
    p = np.asarray([weights[pattern] for pattern in groups], np.float64)
    return list(groups.values()), p / p.sum()
