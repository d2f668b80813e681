"""Pre- and post-processing timings of the serving path (handler/image_io.py) on synthetic JPEG photos."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image

from benchmarks.timing import Timing, measure
from shoeseg.model.config import IMAGENET_MEAN, IMAGENET_STD
from shoeseg.pipeline.image_io import decode_image, encode_rgba_png, letterbox, unletterbox_probability

PNG_LEVELS = (0, 1, 3, 6)
DEFAULT_IMAGES = ((1500, 1500), (4000, 3000))  # (width, height)


def synthetic_photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8 RGB: a shoe-like dark shape with a sole on a light studio gradient, plus sensor noise."""
    rng = np.random.default_rng(seed)
    yy = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    xx = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    background = 235.0 - 25.0 * yy - 10.0 * (xx - 0.5) ** 2
    image = np.repeat(np.broadcast_to(background, (height, width))[..., None], 3, axis=2).copy()
    s = min(width, height)
    cx, cy = width // 2, height // 2
    upper = np.array(
        [[cx - 0.38 * s, cy + 0.12 * s], [cx - 0.30 * s, cy - 0.05 * s], [cx - 0.05 * s, cy - 0.10 * s],
         [cx + 0.05 * s, cy - 0.28 * s], [cx + 0.30 * s, cy - 0.26 * s], [cx + 0.36 * s, cy + 0.12 * s]],
        np.int32,
    )  # fmt: skip
    cv2.fillPoly(image, [upper], (60.0, 70.0, 150.0), lineType=cv2.LINE_AA)
    sole = ((cx, int(cy + 0.14 * s)), (int(0.40 * s), int(0.05 * s)))
    cv2.ellipse(image, sole[0], sole[1], 0, 0, 360, (245.0, 245.0, 240.0), -1, lineType=cv2.LINE_AA)
    cv2.ellipse(image, (cx, int(cy + 0.2 * s)), (int(0.42 * s), int(0.03 * s)), 0, 0, 360, (120.0,) * 3, -1)
    image += rng.normal(0.0, 6.0, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def jpeg_bytes(image: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def synthetic_probability(size: int) -> np.ndarray:
    """(size, size) float32 soft foreground map: a blurred ellipse."""
    prob = np.zeros((size, size), np.float32)
    cv2.ellipse(prob, (size // 2, size // 2), (size * 3 // 8, size // 5), 0, 0, 360, 1.0, -1)
    return cv2.GaussianBlur(prob, (0, 0), size / 200 + 0.5)


@dataclass
class StageRow:
    """One pre/post-processing step on one image."""

    stage: str
    image: str  # "WxH"
    timing: Timing
    output_bytes: int | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "image": self.image,
            "median_ms": self.timing.median * 1e3,
            "output_bytes": self.output_bytes,
            "note": self.note,
            "timing": self.timing.to_dict(),
        }


def bench_prepost(
    images: tuple[tuple[int, int], ...],
    model_size: int,
    repeats: int,
    slow_repeats: int,
    warmup: int = 1,
    log: Callable[[str], None] = print,
) -> list[StageRow]:
    """decode, letterbox, un-letterbox and PNG encode (levels 0, 1, 3, 6) for each (width, height) JPEG.

    ``slow_repeats`` is used for PNG encoding, which takes seconds on a 12 MP image.
    """
    rows: list[StageRow] = []
    prob = synthetic_probability(model_size)
    for width, height in images:
        name = f"{width}x{height}"
        data = jpeg_bytes(synthetic_photo(width, height))
        log(f"  pre/post {name} JPEG ({len(data) / 1e6:.2f} MB) ...")
        rows.append(StageRow("decode (JPEG)", name, measure(lambda d=data: decode_image(d), repeats, warmup)))
        rgb = decode_image(data)
        rows.append(
            StageRow(
                f"letterbox to {model_size}",
                name,
                measure(lambda rgb=rgb: letterbox(rgb, model_size, IMAGENET_MEAN, IMAGENET_STD), repeats, warmup),
            )
        )
        _, info = letterbox(rgb, model_size, IMAGENET_MEAN, IMAGENET_STD)
        rows.append(
            StageRow(
                "un-letterbox + upsample",
                name,
                measure(lambda info=info: unletterbox_probability(prob, info), repeats, warmup),
            )
        )
        alpha = unletterbox_probability(prob, info)
        for level in PNG_LEVELS:
            png = encode_rgba_png(rgb, alpha, level)  # also the warm-up call
            timing = measure(lambda rgb=rgb, alpha=alpha, lv=level: encode_rgba_png(rgb, alpha, lv), slow_repeats, 0)
            rows.append(StageRow(f"PNG encode level {level}", name, timing, len(png)))
        log(f"           -> done ({sum(r.timing.median for r in rows if r.image == name):.2f} s of medians)")
    return rows
