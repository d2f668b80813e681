"""Catalogue style: canvas placement, presets, shadows and their conflicts, on tiny synthetic shoes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from shoeseg.pipeline.catalogue import SHADOW_TOP, contact_shadow, drop_shadow, standing_footprint
from shoeseg.pipeline.compose import render
from shoeseg.pipeline.cost import request_cost
from shoeseg.pipeline.options import PRESETS, OptionError, parse_options


def shoe(height: int = 120, width: int = 160, top: int = 30, left: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """A photo with a dark 'shoe' standing on its flat sole: a 40 x 70 box with a rounded toe, on a grey sweep."""
    image = np.full((height, width, 3), 180, np.uint8)
    alpha = np.zeros((height, width), np.float32)
    alpha[top : top + 40, left : left + 70] = 1.0
    alpha[top : top + 15, left + 45 : left + 70] = 0.0  # the shaft is shorter than the foot
    image[alpha > 0] = (90, 30, 20)
    return image, alpha


def decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def opaque_box(alpha: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero((alpha > 0).any(axis=1)), np.flatnonzero((alpha > 0).any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


@pytest.mark.parametrize("position", [(30, 50), (60, 10), (5, 85)])
def test_amazon_preset_fills_85_percent_centred_on_pure_white(position: tuple[int, int]) -> None:
    image, alpha = shoe(top=position[0], left=position[1])
    out = decoded(render(image, alpha, parse_options({"preset": "amazon"})))
    assert out.shape == (2000, 2000, 3)
    product = np.any(out != 255, axis=2)
    top, bottom, left, right = opaque_box(product)
    assert abs((right - left) - 0.85 * 2000) <= 1  # the width binds (70 x 40 box)
    assert abs((left + right) / 2 - 1000) <= 1 and abs((top + bottom) / 2 - 1000) <= 1
    assert np.all(out[:top] == 255) and np.all(out[bottom:] == 255)  # the backdrop is exactly white


def test_bottom_alignment_puts_every_product_on_one_floor_line() -> None:
    lows = []
    for size, position in (((120, 160), (30, 50)), ((300, 200), (200, 20)), ((90, 400), (10, 300))):
        image, alpha = shoe(*size, *position)
        options = parse_options({"canvas": "1600x1600", "align": "bottom", "floor": "0.9", "output": "mask"})
        mask = decoded(render(image, alpha, options))
        lows.append(int(np.flatnonzero((mask >= 128).any(axis=1))[-1]))
    assert max(lows) - min(lows) <= 1 and abs(lows[0] - 0.9 * 1599) <= 1


def test_square_canvas_keeps_the_product_size_and_enlarging_needs_a_canvas() -> None:
    image, alpha = shoe()
    out = decoded(render(image, alpha, parse_options({"preset": "transparent-square"})))
    assert out.shape == (80, 80, 4)  # ceil(72 / 0.9): the product keeps its 70 px and the matte's 1 px soft edges
    big = decoded(render(image, alpha, parse_options({"canvas": "720x420", "fill": "1"})))
    top, bottom, left, right = opaque_box(big[..., 3])
    assert (right - left, bottom - top) == (720, 420)  # the 72 x 42 visible box enlarged 10x (Lanczos)


@pytest.mark.parametrize("kind", [contact_shadow, drop_shadow])
def test_shadows_lie_on_the_floor_at_the_asked_opacity(kind) -> None:  # noqa: ANN001 - a shadow function
    _, alpha = shoe(240, 320, 60, 100)
    shadow = kind(alpha, 0.6, 0.05)
    visible = shadow * (1 - alpha)
    assert visible.max() == pytest.approx(0.6, abs=1e-5)  # the darkest the product leaves in view
    rows = np.flatnonzero((shadow > 1e-4).any(axis=1))
    top, bottom = 60, 100  # the product's rows
    assert rows[0] >= bottom - SHADOW_TOP * (bottom - top)  # nothing above the product's lowest tenth
    assert visible[bottom:].max() > 0.3  # it shows below the sole


def test_no_shadow_where_the_product_does_not_stand() -> None:
    yy, xx = np.mgrid[0:200, 0:200]
    sole_from_below = (((yy - 100) / 80.0) ** 2 + ((xx - 100) / 30.0) ** 2 <= 1).astype(np.float32)
    assert standing_footprint(sole_from_below) is None
    assert contact_shadow(sole_from_below, 0.5, 0.05).max() == 0
    assert drop_shadow(sole_from_below, 0.5, 0.05).max() == 0


def test_rgba_keeps_its_shadow_in_the_alpha_and_rgb_paints_it() -> None:
    image, alpha = shoe(240, 320, 60, 100)
    rgba = decoded(render(image, alpha, parse_options({"shadow": "contact", "shadow_opacity": "0.5"})))
    below = rgba[100:110, 110:160]
    assert below[..., 3].max() > 100 and np.all(below[3:, :, :3] == 0)  # black, semi-transparent, past the edge
    rgb = decoded(render(image, alpha, parse_options({"shadow": "contact", "output": "rgb"})))
    assert rgb[100:110, 110:160].min() < 200 and np.all(rgb[:50] == 255)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"fill": "0.8"}, ("fill", "canvas")),
        ({"canvas": "square", "floor": "0.9"}, ("floor", "align")),
        ({"canvas": "square", "crop": "true"}, ("crop", "canvas")),
        ({"shadow": "drop", "output": "mask"}, ("shadow", "output")),
        ({"shadow_blur": "0.1"}, ("shadow_blur", "shadow")),
        ({"matte": "soft", "threshold": "0.5"}, ("matte", "threshold")),
        ({"preset": "amazon", "output": "mask"}, ("bg", "output")),
        ({"canvas": "0x10"}, ("canvas",)),
        ({"preset": "ebay"}, ("preset",)),
    ],
)
def test_meaningless_combinations_name_both_options(fields: dict, named: tuple[str, ...]) -> None:
    with pytest.raises(OptionError) as info:
        parse_options(fields)
    doc = info.value.to_json()
    assert doc["code"] == 400 and doc["option"] == named[0]
    assert all(name in doc["message"] for name in named)


def test_presets_are_options_and_explicit_ones_win() -> None:
    amazon = parse_options({"preset": "amazon"})
    assert (amazon.output, amazon.bg, amazon.canvas, amazon.fill) == ("rgb", (255, 255, 255, 255), (2000, 2000), 0.85)
    assert parse_options({"preset": "amazon", "fill": "0.5"}).fill == 0.5
    assert set(PRESETS) == {"amazon", "shopify", "transparent-square"}


def test_the_cost_counts_the_canvas() -> None:
    plain = request_cost(1_000_000, parse_options({}))
    assert request_cost(1_000_000, parse_options({"preset": "amazon"})) == pytest.approx(plain + 4.0)
    assert request_cost(1_000_000, parse_options({"canvas": "16384x16384"})) > 250


def test_the_canvas_places_what_the_result_shows() -> None:
    image, alpha = shoe()
    image[alpha > 0] = (250, 250, 250)  # a white shoe: its faint edge vanishes on white
    alpha[30:70, 50:52] = 0.05  # a ghost at the heel, 2 px wide, that white would not show
    out = decoded(render(image, alpha, parse_options({"preset": "amazon"})))
    top, bottom, left, right = opaque_box(np.any(out != 255, axis=2))
    assert abs((right - left) - 1700) <= 1 and abs((left + right) / 2 - 1000) <= 1
