"""Catalogue style: the product placed on a canvas (``canvas``, ``fill``, ``align``, ``floor``) and the shadow
a product photographer's floor would give it (``shadow``, ``shadow_opacity``, ``shadow_blur``).

Pure array functions on (H, W, 3) uint8 RGB and (H, W) float32 alpha in [0, 1]; ``compose.render`` calls
them in its order of steps.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from shoeseg.pipeline.options import MAX_SIZE, SQUARE, Options

# A shadow never reaches above the product's lowest share of its box height: above it a shadow reads as a halo.
SHADOW_TOP = 0.1
# The product stands when the silhouette's lowest rows (this share of its box height) span at least
# STANDING_SPAN of its width (a sole or a heel line near the floor) and its box is at most STANDING_ASPECT
# times as tall as wide: a sole shown from below or a shoe seen from above stands upright in the frame, taller
# than any side view, and gets no shadow.
FOOT_BAND = 0.1
STANDING_SPAN = 0.4
STANDING_ASPECT = 2.2
# How fast the contact darkens towards the floor: a column whose lowest opaque pixel is d px above the lowest
# row of the product contributes exp(-d / (CONTACT_FALLOFF x box height)): the sole's flat, the arch's faint.
CONTACT_FALLOFF = 0.03
DROP_SQUASH = 0.08  # the drop shadow: the silhouette flattened to this share of its height ...
DROP_SHIFT = 0.06  # ... and moved this share of the box width to the right, away from a light at the upper left


def object_rows_cols(alpha: np.ndarray, floor: float) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) of the pixels with ``alpha >= floor`` (bottom, right exclusive); None if none."""
    rows, cols = np.flatnonzero((alpha >= floor).any(axis=1)), np.flatnonzero((alpha >= floor).any(axis=0))
    if rows.size == 0:
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def visible(image: np.ndarray, alpha: np.ndarray, backdrop: tuple[int, int, int] | None) -> np.ndarray:
    """(H, W) float32 1 where the 8-bit result shows the product: composited over an opaque ``backdrop`` where
    some channel moves by half a level or more (alpha x |colour - backdrop| >= 0.5), on a transparent result
    where the alpha survives 8-bit rounding (alpha >= 0.5 / 255). A white sole's faint edge on white is not
    seen, so it does not count towards the product's box."""
    if backdrop is None:
        return (alpha >= 0.5 / 255).astype(np.float32)
    difference = np.abs(image.astype(np.float32) - np.asarray(backdrop, np.float32)).max(axis=2)
    return (alpha * difference >= 0.5).astype(np.float32)


def canvas_size(options: Options, box_h: int, box_w: int) -> tuple[int, int]:
    """(width, height) of the canvas: the option's, or for ``square`` the side at which the product's box
    keeps its size at ``fill`` (at most ``MAX_SIZE``)."""
    if options.canvas != SQUARE:
        return options.canvas
    side = min(MAX_SIZE, math.ceil(max(box_h, box_w) / options.fill))
    return side, side


def resample(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """To ``size`` (width, height): Lanczos-4 (8 x 8 taps) when enlarging, the area filter when shrinking."""
    enlarge = size[0] > pixels.shape[1] or size[1] > pixels.shape[0]
    return cv2.resize(pixels, size, interpolation=cv2.INTER_LANCZOS4 if enlarge else cv2.INTER_AREA)


def place_on_canvas(
    image: np.ndarray,
    alpha: np.ndarray,
    options: Options,
    box: tuple[int, int, int, int],
    backdrop: tuple[int, int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The product's ``box`` (top, bottom, left, right) scaled so its binding side takes ``fill`` of the canvas
    and placed centred, or with ``align=bottom`` standing with its lowest opaque row at ``floor`` of the
    canvas height, horizontally centred. Centred means the scaled product's ``visible`` box (on ``backdrop``):
    the filter's last faint rows may vanish, so the scaled box alone could sit a pixel or two off.
    Returns the canvas's RGB (H, W, 3) uint8 and alpha (H, W) float32."""
    top, bottom, left, right = box
    width, height = canvas_size(options, bottom - top, right - left)
    scale = min(options.fill * width / (right - left), options.fill * height / (bottom - top))
    size = (max(1, round((right - left) * scale)), max(1, round((bottom - top) * scale)))
    rgb = resample(np.ascontiguousarray(image[top:bottom, left:right]), size)
    part = np.clip(resample(np.ascontiguousarray(alpha[top:bottom, left:right]), size), 0.0, 1.0)
    seen = object_rows_cols(visible(rgb, part, backdrop), 0.5) or (0, size[1], 0, size[0])
    x = (width - seen[2] - seen[3]) // 2
    if options.align == "bottom":
        opaque = np.flatnonzero((part >= 0.5).any(axis=1))
        lowest = int(opaque[-1]) if opaque.size else size[1] - 1
        y = round(options.floor * (height - 1)) - lowest
    else:
        y = (height - seen[0] - seen[1]) // 2
    out_rgb = np.zeros((height, width, 3), np.uint8)
    out_alpha = np.zeros((height, width), np.float32)
    # the placed part may reach past the canvas (align=bottom with a high product): only its overlap is drawn
    top_in, left_in = max(0, -y), max(0, -x)
    bottom_in, right_in = min(size[1], height - y), min(size[0], width - x)
    if bottom_in > top_in and right_in > left_in:
        target = (slice(y + top_in, y + bottom_in), slice(x + left_in, x + right_in))
        out_rgb[target] = rgb[top_in:bottom_in, left_in:right_in]
        out_alpha[target] = part[top_in:bottom_in, left_in:right_in]
    return out_rgb, out_alpha


def standing_footprint(alpha: np.ndarray) -> tuple[np.ndarray, int, int, int] | None:
    """Where the product meets the floor: per column (W,), how much it touches the floor (1 where its lowest
    opaque pixel is on the lowest row, fading with the height above it, see ``CONTACT_FALLOFF``); its lowest
    opaque row, box height and box width. None when it does not stand (``STANDING_SPAN``,
    ``STANDING_ASPECT``) or is empty."""
    box = object_rows_cols(alpha, 0.5)
    if box is None:
        return None
    top, bottom, left, right = box
    box_h, box_w = bottom - top, right - left
    solid = alpha >= 0.5
    band = max(2, round(FOOT_BAND * box_h))
    if np.count_nonzero(solid[bottom - band : bottom].any(axis=0)) < STANDING_SPAN * box_w:
        return None
    if box_h > STANDING_ASPECT * box_w:
        return None
    has_any = solid.any(axis=0)
    lowest_per_column = solid.shape[0] - 1 - np.argmax(solid[::-1], axis=0)
    height_above = np.clip(bottom - 1 - lowest_per_column, 0, None).astype(np.float32)  # empty columns: 0
    footprint = np.where(has_any, np.exp(-height_above / max(1.0, CONTACT_FALLOFF * box_h)), 0.0)
    return footprint.astype(np.float32), bottom - 1, box_h, box_w


def contact_shadow(alpha: np.ndarray, opacity: float, blur: float) -> np.ndarray:
    """(H, W) shadow opacity: the footprint drawn as a thin strip just under the contact line, blurred wide and
    flat (horizontal sigma ``blur`` x the box width, vertical a third of it); darkest visible value ``opacity``."""
    found = standing_footprint(alpha)
    if found is None:
        return np.zeros_like(alpha)
    footprint, lowest, box_h, box_w = found
    shadow = np.zeros_like(alpha)
    thickness = max(1, round(0.01 * box_h))
    shadow[lowest + 1 : lowest + 1 + thickness] = footprint
    return finish_shadow(shadow, alpha, opacity, blur * box_w, lowest, box_h)


def drop_shadow(alpha: np.ndarray, opacity: float, blur: float) -> np.ndarray:
    """(H, W) shadow opacity: the silhouette cast on the floor behind the product, squashed to ``DROP_SQUASH``
    of its height onto the contact line, shifted away from the light, blurred by ``blur`` x the box width."""
    found = standing_footprint(alpha)
    if found is None:
        return np.zeros_like(alpha)
    _, lowest, box_h, box_w = found
    h, w = alpha.shape
    squashed_h = max(1, round(DROP_SQUASH * box_h))
    top = lowest + 1 - box_h
    silhouette = np.ascontiguousarray(alpha[max(0, top) : lowest + 1])
    flat = cv2.resize(silhouette, (w, squashed_h), interpolation=cv2.INTER_AREA)
    shadow = np.zeros_like(alpha)
    shift = round(DROP_SHIFT * box_w)
    rows = slice(max(0, lowest + 1 - squashed_h), lowest + 1)
    flat = flat[squashed_h - (rows.stop - rows.start) :]
    shadow[rows, max(0, shift) : w + min(0, shift)] = flat[:, max(0, -shift) : w - max(0, shift)]
    return finish_shadow(shadow, alpha, opacity, blur * box_w, lowest, box_h)


def finish_shadow(
    shadow: np.ndarray, alpha: np.ndarray, opacity: float, sigma: float, lowest: int, box_h: int
) -> np.ndarray:
    """Blur the drawn ``shadow`` wide and flat (horizontal ``sigma`` px, vertical a third of it), fade it out
    above the product's lowest ``SHADOW_TOP`` of its box (a linear ramp over that tenth's upper half, nothing
    above it), then scale it so its darkest pixel that the product (``alpha``) leaves visible is ``opacity``;
    under the product it may be darker (hidden), never above 1."""
    sigma = max(0.5, sigma)
    shadow = cv2.GaussianBlur(shadow, (0, 0), sigmaX=sigma, sigmaY=max(1.0, sigma / 3))
    limit = lowest + 1 - SHADOW_TOP * box_h  # no shadow above this row
    ramp_end = limit + SHADOW_TOP * box_h / 2
    rows = np.arange(shadow.shape[0], dtype=np.float32)
    shadow = shadow * np.clip((rows - limit) / max(ramp_end - limit, 1.0), 0.0, 1.0)[:, None]
    peak = float((shadow * (1.0 - alpha)).max())
    if peak <= 0:
        return np.zeros_like(alpha)
    return np.clip(shadow * (opacity / peak), 0.0, 1.0).astype(np.float32)


SHADOW_MAKERS = {"contact": contact_shadow, "drop": drop_shadow}  # options.SHADOWS but "none"


def with_shadow(rgb: np.ndarray, alpha: np.ndarray, options: Options) -> tuple[np.ndarray, np.ndarray]:
    """The product over its black, semi-transparent shadow (Porter-Duff over): the RGB where the product is,
    and an alpha that holds both, so the cutout keeps its shadow on any backdrop."""
    shadow = SHADOW_MAKERS[options.shadow](alpha, options.shadow_opacity, options.shadow_blur)
    out_alpha = alpha + shadow * (1.0 - alpha)
    safe = np.where(out_alpha > 0, out_alpha, 1.0)[..., None]
    out_rgb = np.clip(rgb.astype(np.float32) * alpha[..., None] / safe + 0.5, 0, 255).astype(np.uint8)
    return out_rgb, out_alpha.astype(np.float32)
