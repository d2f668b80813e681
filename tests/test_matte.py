"""The decisive matte: opaque or clear away from the edge, soft along it, following the photo's edge."""

from __future__ import annotations

import numpy as np

from shoeseg.pipeline.matte import decisive_matte, guided_filter
from shoeseg.training.metrics import fog


def photo_and_alpha() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 200x200 photo: a dark disc (radius 60) on a light grey backdrop; the true mask; a foggy model alpha
    (a half-believed patch on the backdrop, a see-through spot inside, an edge blurred and shifted 1 px)."""
    yy, xx = np.mgrid[0:200, 0:200]
    inside = (yy - 100) ** 2 + (xx - 100) ** 2 <= 60**2
    image = np.where(inside[..., None], 40, 210).astype(np.uint8).repeat(3, axis=2)
    alpha = inside.astype(np.float32)
    alpha = np.pad(alpha, ((0, 0), (1, 0)))[:, :200]  # 1 px to the right of the photo's edge
    alpha[10:40, 10:60] = 0.4  # a kept backdrop patch
    alpha[90:110, 90:110] = 0.6  # a see-through spot inside
    return image, inside, alpha.astype(np.float32)


def test_matte_clears_fog_and_keeps_the_object() -> None:
    image, truth, alpha = photo_and_alpha()
    matte = decisive_matte(image, alpha)
    assert matte.shape == alpha.shape and matte.dtype == np.float32
    assert fog(alpha, truth) > 1.0 and fog(matte, truth) == 0.0
    assert np.all(matte[10:40, 10:60] == 0) and np.all(matte[90:110, 90:110] == 1)
    soft = (matte > 0) & (matte < 1)
    assert soft.any()  # the edge stays soft ...
    ys, xs = np.nonzero(soft)
    radius = np.hypot(ys - 100, xs - 100)
    assert np.all(np.abs(radius - 60) <= 3)  # ... only within the band (r = 0.4 % of 200 px, rounded to 1) + 2


def test_matte_without_an_edge_is_the_thresholded_alpha() -> None:
    image = np.zeros((20, 30, 3), np.uint8)
    assert np.array_equal(decisive_matte(image, np.full((20, 30), 0.3, np.float32)), np.zeros((20, 30), np.float32))
    assert np.array_equal(decisive_matte(image, np.full((20, 30), 0.7, np.float32)), np.ones((20, 30), np.float32))


def test_guided_filter_keeps_the_guides_edge() -> None:
    guide = np.zeros((20, 20), np.float32)
    guide[:, 10:] = 1.0
    source = guide.copy()
    source[:, 9] = 1.0  # the mask 1 px off the photo's edge
    out = guided_filter(guide, source, 2, 1e-3)
    assert out[10, 9] < 0.5 < out[10, 10]  # pulled back onto the guide's edge
