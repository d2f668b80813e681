"""Studio realism for CopyPaste: a glossy table's mirror image, light props, coloured backdrops.

Everything drawn here is background: a cutout trained with it learns that the faded mirror image
under a shoe, the plinth it stands on and the box beside it are not part of the shoe. Pure
functions of numpy arrays and a seeded ``rng``.
"""

from __future__ import annotations

import cv2
import numpy as np


def base_row(alpha: np.ndarray) -> int | None:
    """The lowest row where the object's alpha reaches 0.5 (where it stands), or None when empty."""
    rows = np.nonzero((alpha >= 0.5).any(axis=1))[0]
    return int(rows[-1]) if len(rows) else None


def mirror_reflection(
    background: np.ndarray, obj: np.ndarray, alpha: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """The object's faded mirror image on a glossy table, drawn onto ``background``.

    background, obj: (H, W, 3) float32; alpha: (H, W) float32 of the placed object. The image is
    flipped about the object's base row (with a small gap and a vertical squash for perspective),
    faded with distance from the base, blurred. Returns the new (H, W, 3) float32 background.
    """
    base = base_row(alpha)
    if base is None:
        return background
    h, w = alpha.shape
    rows = np.nonzero((alpha >= 0.5).any(axis=1))[0]
    height = max(1, base - int(rows[0]))
    squash, gap = rng.uniform(0.6, 1.0), rng.uniform(0, 0.02) * height
    flip = np.float32([[1, 0, 0], [0, -squash, base * (1 + squash) + gap]])  # src row y -> dst row -s*y + ...
    mirrored = cv2.warpAffine(obj, flip, (w, h), flags=cv2.INTER_LINEAR)
    mirrored_alpha = cv2.warpAffine(alpha, flip, (w, h), flags=cv2.INTER_LINEAR)
    depth = np.clip((np.arange(h, dtype=np.float32) - base) / height, 0, None)
    fade = rng.uniform(0.15, 0.65) * np.exp(-depth / rng.uniform(0.1, 0.5))
    weight = mirrored_alpha * fade[:, None]
    blur = int(height * rng.uniform(0.0, 0.03)) * 2 + 1
    if blur > 1:
        weight = cv2.GaussianBlur(weight, (blur, blur), 0)
        mirrored = cv2.GaussianBlur(mirrored, (blur, blur), 0)
    weight = weight[..., None]
    return background * (1 - weight) + mirrored * weight


def light_prop(background: np.ndarray, alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A pale box or plinth drawn onto ``background``: under the object (it stands on the top face)
    or beside it. background: (H, W, 3) float32; alpha: (H, W) of the placed object. Returns float32."""
    base = base_row(alpha)
    if base is None:
        return background
    h, w = alpha.shape
    ys, xs = np.nonzero(alpha >= 0.5)
    x0, x1, y0 = int(xs.min()), int(xs.max()), int(ys.min())
    obj_w, obj_h = max(1, x1 - x0), max(1, base - y0)
    colour = _prop_colour(rng)
    out = background.copy()
    if rng.random() < 0.5:  # plinth: top face at the object's base, front face below it
        left = int(x0 - obj_w * rng.uniform(0.05, 0.5))
        right = int(x1 + obj_w * rng.uniform(0.05, 0.5))
        top = int(base - obj_h * rng.uniform(0.0, 0.08))
        front = int(base + obj_h * rng.uniform(0.02, 0.12))
        bottom = int(front + obj_h * rng.uniform(0.3, 1.5))
    else:  # box beside the object, standing on the same floor line
        side = 1 if rng.random() < 0.5 else -1
        box_w = int(obj_w * rng.uniform(0.3, 0.9))
        edge = x1 + int(obj_w * rng.uniform(-0.1, 0.2)) if side > 0 else x0 - int(obj_w * rng.uniform(-0.1, 0.2))
        left, right = (edge, edge + box_w) if side > 0 else (edge - box_w, edge)
        bottom = int(base + obj_h * rng.uniform(-0.05, 0.05))
        top = int(bottom - obj_h * rng.uniform(0.3, 1.2))
        front = int(top + (bottom - top) * rng.uniform(0.1, 0.25))
    left, right = max(0, left), min(w, right)
    top, front, bottom = max(0, top), max(0, front), min(h, bottom)
    if right - left < 2 or bottom - top < 2:
        return background
    out[top:front, left:right] = colour * rng.uniform(1.0, 1.08)  # the lit top face
    out[front:bottom, left:right] = colour * rng.uniform(0.8, 0.97)
    edge = np.zeros((h, w), np.float32)
    edge[front : min(h, front + 2), left:right] = 1.0
    edge = cv2.GaussianBlur(edge, (5, 5), 0)[..., None]
    out = out * (1 - 0.15 * edge)
    return np.clip(out, 0, 255).astype(np.float32)


def tint_backdrop(backdrop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A studio sweep recoloured (pastel to saturated), so gaps in the object show a colour."""
    colour = rng.uniform(0.25, 1.0, size=3).astype(np.float32)
    colour /= colour.max()
    strength = rng.uniform(0.2, 1.0)
    return np.clip(backdrop * (1 - strength + strength * colour), 0, 255).astype(np.float32)


def _prop_colour(rng: np.random.Generator) -> np.ndarray:
    kind = rng.random()
    if kind < 0.5:  # white / light grey
        return np.full(3, rng.uniform(200, 250), np.float32) + rng.uniform(-5, 5, 3).astype(np.float32)
    if kind < 0.8:  # pastel
        return rng.uniform(170, 250, 3).astype(np.float32)
    return np.float32([rng.uniform(150, 210), rng.uniform(110, 160), rng.uniform(70, 120)])  # light wood
