"""Apply ``Options`` to one cutout: (RGB image, soft alpha) -> encoded bytes. Shared by the handler and the CLI.

Steps, in order: ``matte`` (the decisive matte, unless ``threshold`` is given) -> crop to the object (+ margin)
-> ``canvas`` (the product's box scaled to ``fill`` and placed by ``align`` / ``floor``) -> resize to ``size``
-> ``threshold`` -> ``refine`` (foreground colours) -> ``shadow`` -> ``output`` (RGBA, mask, or RGB on ``bg``)
-> PNG / WebP. With default options the bytes are exactly ``encode_rgba_png(image, decisive_matte(image, alpha))``.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from shoeseg.pipeline.catalogue import object_rows_cols, place_on_canvas, visible, with_shadow
from shoeseg.pipeline.image_io import (
    DEFAULT_PNG_LEVEL,
    InvalidImageError,
    alpha_to_uint8,
    clear_hidden,
    encode_rgba_png,
    png_params,
)
from shoeseg.pipeline.matte import decisive_matte
from shoeseg.pipeline.options import OptionError, Options

# Alpha below this is noise for crop=true (soft halos, shadows the model half-believes): 8/255.
CROP_NOISE = 8 / 255
WEBP_QUALITY = 90  # lossy colour planes for rgba/rgb (libwebp keeps the alpha plane lossless); masks: lossless
WEBP_MAX_SIDE = 16383
WHITE = (255, 255, 255, 255)
# refine=true above this many pixels runs pymatting on a downscaled copy (``estimate_foreground``): its
# multilevel solver costs ~0.5 us a pixel on 2 busy cores (a 46.6 MP photo took 20-30 s, the whole budget of a
# batch), 4 MP ~1-2 s. Bench photos are all below it and refine exactly as before.
REFINE_MAX_PIXELS = 4_000_000
DEFAULTS = Options()


class NoObjectError(InvalidImageError):
    """crop=true on an image where the model found nothing: 422 ``NoObject``."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 422)

    def to_json(self) -> dict:
        return {"code": self.status, "type": "NoObject", "message": self.message}


def crop_box(alpha: np.ndarray, margin: tuple[float, bool], floor: float = CROP_NOISE) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the pixels with ``alpha >= floor``, grown by ``margin`` (px, or % of the
    box's longest side) and clamped to the image; ``NoObjectError`` (422) when no pixel qualifies."""
    box = object_rows_cols(alpha, floor)
    if box is None:
        raise NoObjectError(f"found no object to crop to (alpha < {floor:.3f} everywhere); retry without crop")
    top, bottom, left, right = box
    value, percent = margin
    pad = round(value / 100 * max(bottom - top, right - left)) if percent else round(value)
    h, w = alpha.shape
    return max(0, top - pad), min(h, bottom + pad), max(0, left - pad), min(w, right + pad)


def canvas_box(
    image: np.ndarray, alpha: np.ndarray, options: Options
) -> tuple[tuple[int, int, int, int], tuple[int, int, int] | None]:
    """The box a canvas places: under the decisive matte (which leaves no noise) every pixel the result will
    show (``catalogue.visible``: on the backdrop of an opaque result, else every alpha that survives 8-bit), so
    the product's visible box is exactly ``fill`` of the canvas; else, as ``crop``, alpha >= 8/255.
    Returns (top, bottom, left, right) and the backdrop it was seen on (None: transparent); ``NoObjectError``
    (422) when nothing is there."""
    opaque = options.output == "rgb" or (options.bg is not None and options.bg[3] == 255)
    backdrop = (options.bg or WHITE)[:3] if opaque and options.output != "mask" else None
    if options.threshold is not None or options.matte != "decisive":
        return crop_box(alpha, (0.0, False), options.threshold or CROP_NOISE), backdrop
    box = object_rows_cols(visible(image, alpha, backdrop), 0.5)
    if box is None:
        raise NoObjectError("found no object to place on the canvas (nothing visible); retry without canvas")
    return box, backdrop


def fit_size(image: np.ndarray, alpha: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Downscale both so the longest side is at most ``size`` (area filter); never enlarges."""
    h, w = alpha.shape
    scale = size / max(h, w)
    if scale >= 1:
        return image, alpha
    dsize = (max(1, round(w * scale)), max(1, round(h * scale)))
    area = cv2.INTER_AREA
    return cv2.resize(image, dsize, interpolation=area), cv2.resize(alpha, dsize, interpolation=area)


def _foreground_ml(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """pymatting's estimate at the given size, (H, W, 3) uint8. Imported here: its numba kernels compile on
    first use (~40 s once, then cached)."""
    from pymatting import estimate_foreground_ml

    fg = estimate_foreground_ml(image.astype(np.float32) / 255.0, alpha.astype(np.float32, copy=False))
    return np.clip(fg * 255.0 + 0.5, 0, 255).astype(np.uint8)


def estimate_foreground(image: np.ndarray, alpha: np.ndarray, max_pixels: int = REFINE_MAX_PIXELS) -> np.ndarray:
    """The object's own colours under soft alpha, without the background bleeding through.

    (H, W, 3) uint8 + (H, W) float alpha -> (H, W, 3) uint8, by pymatting's multilevel foreground estimation
    (Germer et al. 2020). Above ``max_pixels`` (0: no bound) it runs on a copy downscaled to that size and
    only its correction (estimate minus photo) is upsampled and added to the full-size photo: the correction
    lives in the soft edge and is smooth, while the photo's own detail stays sharp everywhere else.
    """
    h, w = alpha.shape
    if h * w < 2:  # pymatting divides by zero on a single pixel, whose colour is its own anyway
        return image.copy()
    if max_pixels and h * w > max_pixels:
        scale = (max_pixels / (h * w)) ** 0.5
        dsize = (max(2, round(w * scale)), max(2, round(h * scale)))
        small = cv2.resize(image, dsize, interpolation=cv2.INTER_AREA)
        alpha_small = cv2.resize(alpha.astype(np.float32, copy=False), dsize, interpolation=cv2.INTER_AREA)
        correction = _foreground_ml(small, alpha_small).astype(np.int16) - small.astype(np.int16)
        correction = cv2.resize(correction, (w, h), interpolation=cv2.INTER_LINEAR)
        fg = cv2.add(image.astype(np.int16), correction)  # int16: no wrap-around, clipped to 0..255 below
        fg = np.clip(fg, 0, 255).astype(np.uint8)
    else:
        fg = _foreground_ml(image, alpha)
    solid = alpha >= 1.0  # where the object is opaque its pixels are exactly the photo's
    fg[solid] = image[solid]
    return fg


def over(rgb: np.ndarray, alpha: np.ndarray, bg: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``rgb`` with ``alpha`` composited over a flat colour ``bg`` (Porter-Duff over) -> (RGB uint8, alpha)."""
    bg_alpha = bg[3] / 255.0
    out_alpha = alpha + bg_alpha * (1.0 - alpha)
    a = alpha[..., None]
    colour = np.asarray(bg[:3], np.float32) * (bg_alpha * (1.0 - a))
    premultiplied = rgb.astype(np.float32) * a + colour
    safe = np.where(out_alpha > 0, out_alpha, 1.0)[..., None]
    return np.clip(premultiplied / safe + 0.5, 0, 255).astype(np.uint8), out_alpha


def encode(pixels: np.ndarray, fmt: str, png_level: int = DEFAULT_PNG_LEVEL) -> bytes:
    """(H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA uint8 -> PNG or WebP bytes."""
    if fmt == "webp" and max(pixels.shape[:2]) > WEBP_MAX_SIDE:
        message = f"WebP holds at most {WEBP_MAX_SIDE} px a side; add size={WEBP_MAX_SIDE} or use format=png"
        raise OptionError("format", message)
    if pixels.ndim == 3:
        code = cv2.COLOR_RGBA2BGRA if pixels.shape[2] == 4 else cv2.COLOR_RGB2BGR
        pixels = cv2.cvtColor(pixels, code)
    if fmt == "png":
        params = png_params(png_level)
    else:
        params = [cv2.IMWRITE_WEBP_QUALITY, 101 if pixels.ndim == 2 else WEBP_QUALITY]  # >100: lossless
    ok, buf = cv2.imencode(f".{fmt}", pixels, params)
    if not ok:
        raise RuntimeError(f"{fmt} encoding failed")
    return buf.tobytes()


def render(
    image: np.ndarray, alpha: np.ndarray, options: Options = DEFAULTS, png_level: int = DEFAULT_PNG_LEVEL
) -> bytes:
    """(H, W, 3) uint8 RGB + (H, W) alpha in [0, 1] at the same size -> the encoded result ``options`` ask for."""
    if image.shape[:2] != alpha.shape:
        raise ValueError(f"alpha {alpha.shape} does not match image {image.shape[:2]}")
    if options.threshold is None and options.matte == "decisive":
        alpha = decisive_matte(image, alpha)
    if replace(options, tta=False, quality=DEFAULTS.quality) == DEFAULTS:  # how the alpha was made is done
        return encode_rgba_png(image, alpha, png_level)  # the common case, without copies
    if options.canvas is not None:
        box, backdrop = canvas_box(image, alpha, options)
        image, alpha = place_on_canvas(image, alpha, options, box, backdrop)
    elif options.crop:
        top, bottom, left, right = crop_box(alpha, options.margin, options.threshold or CROP_NOISE)
        image, alpha = image[top:bottom, left:right], alpha[top:bottom, left:right]
    if options.size:
        image, alpha = fit_size(image, alpha, options.size)
    if options.threshold is not None:
        alpha = (alpha >= options.threshold).astype(np.float32)
    if options.output == "mask":
        return encode(alpha_to_uint8(alpha), options.format, png_level)
    rgb = estimate_foreground(image, alpha) if options.refine else image
    if options.shadow != "none":
        rgb, alpha = with_shadow(rgb, alpha, options)
    if options.output == "rgb":
        rgb, _ = over(rgb, alpha, options.bg or WHITE)
        return encode(rgb, options.format, png_level)
    if options.bg is not None:
        rgb, alpha = over(rgb, alpha, options.bg)
    return encode(clear_hidden(np.dstack([rgb, alpha_to_uint8(alpha)])), options.format, png_level)
