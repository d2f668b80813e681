"""The decisive matte: the model's alpha resolved to opaque or clear, soft only along the object's edge.

The model's alpha is unsure in places a person sees as fog: a grey patch kept around a pasted product shot,
a see-through insole, a cloud over a coloured prop. A cutout is soft at its edge and nowhere else, so the
alpha is thresholded at 0.5, and only in a thin band around that mask's edge is it made soft again by a guided
filter (He et al. 2010) with the photo at full resolution as the guide: the soft edge follows the photo's own
edge instead of the model's upsampled one.
"""

from __future__ import annotations

import cv2
import numpy as np

# The band's half-width and the guided filter's radius, as a share of the photo's longest side (at least 1 px).
EDGE_RADIUS = 0.004
# The guided filter's regulariser on the grey guide in [0, 1]: below it, guide variance counts as noise.
EDGE_EPS = 1e-3
# The filter's coefficients are computed on a copy shrunk by radius / this (the fast guided filter, He & Sun
# 2015), at least 1: at 1500 px (radius 6) a third of the size, a ninth of the box-filter work.
PIXELS_PER_STEP = 2


def box_mean(image: np.ndarray, radius: int) -> np.ndarray:
    """Mean over the (2r+1)^2 window around each pixel (edges reflected). (H, W) float32 -> (H, W) float32."""
    return cv2.boxFilter(image, cv2.CV_32F, (2 * radius + 1, 2 * radius + 1), borderType=cv2.BORDER_REFLECT)


def guided_filter(guide: np.ndarray, source: np.ndarray, radius: int, eps: float, step: int = 1) -> np.ndarray:
    """Grey guided filter: ``source`` smoothed where ``guide`` is flat, its edges kept where the guide has them.
    ``step`` > 1: the fast guided filter, its linear coefficients computed on both shrunk by ``step`` and
    brought back to full size (bilinear) before they are applied to the full-resolution guide.

    guide, source: (H, W) float32; returns (H, W) float32.
    """
    h, w = guide.shape
    small = (max(1, round(w / step)), max(1, round(h / step)))
    g, src = guide, source
    if step > 1:
        g, src = (cv2.resize(x, small, interpolation=cv2.INTER_AREA) for x in (guide, source))
    r = max(1, round(radius / step))
    mean_g, mean_s = box_mean(g, r), box_mean(src, r)
    var_g = box_mean(g * g, r) - mean_g * mean_g
    cov = box_mean(g * src, r) - mean_g * mean_s
    a = cov / (var_g + eps)
    b = mean_s - a * mean_g
    mean_a, mean_b = box_mean(a, r), box_mean(b, r)
    if step > 1:
        mean_a, mean_b = (cv2.resize(x, (w, h), interpolation=cv2.INTER_LINEAR) for x in (mean_a, mean_b))
    return mean_a * guide + mean_b


def decisive_matte(
    image: np.ndarray, alpha: np.ndarray, radius_share: float = EDGE_RADIUS, eps: float = EDGE_EPS
) -> np.ndarray:
    """(H, W, 3) uint8 RGB photo + (H, W) float alpha in [0, 1] -> (H, W) float32 alpha that is 0 or 1 except
    within r px of the edge of ``alpha >= 0.5`` (r = ``radius_share`` x the longest side, at least 1), where it
    is that mask guided-filtered by the grey photo. The filter runs on the edge band's bounding box only."""
    h, w = alpha.shape
    solid = (alpha >= 0.5).astype(np.uint8)
    radius = max(1, round(radius_share * max(h, w)))
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    band = cv2.dilate(solid, kernel) != cv2.erode(solid, kernel)
    out = solid.astype(np.float32)
    rows, cols = np.flatnonzero(band.any(axis=1)), np.flatnonzero(band.any(axis=0))
    if rows.size == 0:  # nothing, or everything, is the object: no edge to soften
        return out
    pad = 2 * radius  # the filter's two box means reach this far
    top, bottom = max(0, rows[0] - pad), min(h, rows[-1] + 1 + pad)
    left, right = max(0, cols[0] - pad), min(w, cols[-1] + 1 + pad)
    grey = cv2.cvtColor(np.ascontiguousarray(image[top:bottom, left:right]), cv2.COLOR_RGB2GRAY)
    step = max(1, radius // PIXELS_PER_STEP)
    soft = guided_filter(grey.astype(np.float32) / 255.0, out[top:bottom, left:right], radius, eps, step)
    np.copyto(out[top:bottom, left:right], np.clip(soft, 0.0, 1.0), where=band[top:bottom, left:right])
    return out
