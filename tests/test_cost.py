"""The cost limit (shoeseg/pipeline/cost.py) and the bounded expensive steps: pure functions, then the handler
with the tiny model (no server)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from ts.context import Context

from benchmarks.bad_inputs import png_header_only
from shoeseg.handler.resunet_handler import ResUNetHandler, _cost_limits
from shoeseg.pipeline import cost, cutout
from shoeseg.pipeline.compose import REFINE_MAX_PIXELS, estimate_foreground
from shoeseg.pipeline.image_io import image_size, unletterbox_probability
from shoeseg.pipeline.options import parse_options
from tests.serving_helpers import image_bytes
from tests.test_handler import handler_and_context, run  # noqa: F401 - the tiny-model handler fixture

ALL = parse_options({"quality": "best", "tta": "true", "refine": "true"})
PLAIN = parse_options({})
LIMIT = cost.DEFAULT_MAX_REQUEST_COST


def test_cost_grows_with_pixels_and_options() -> None:
    option_sets = [PLAIN, parse_options({"tta": "1"}), parse_options({"quality": "best"}), ALL]
    for options in option_sets:
        costs = [cost.request_cost(mp * 1_000_000, options) for mp in (0.1, 1, 4, 12, 48)]
        assert costs == sorted(costs) and costs[0] > 0
    at_24mp = [cost.request_cost(24_000_000, o) for o in option_sets]
    assert at_24mp == sorted(at_24mp)


def test_default_limits_accept_plain_photos_and_refuse_the_costliest() -> None:
    """Every plain, tta or quality=best photo under the pixel limit passes; the issue's 46.6 MP request with
    quality=best, tta and refine does not."""
    for options in (PLAIN, parse_options({"tta": "1"}), parse_options({"quality": "best"})):
        assert cost.request_cost(48_000_000, options) <= LIMIT
    assert cost.request_cost(8368 * 5576, ALL) > LIMIT
    assert cost.DEFAULT_MAX_BATCH_COST >= LIMIT


def test_max_megapixels_is_the_limit_inverted() -> None:
    for options in (PLAIN, ALL, parse_options({"refine": "1"})):
        mp = cost.max_megapixels(LIMIT, options)
        assert cost.request_cost(int(mp * 1e6), options) <= LIMIT < cost.request_cost(int((mp + 0.1) * 1e6), options)
    assert cost.max_megapixels(1.0, ALL) == 0.0  # not even an empty image


def test_cost_limit_error_says_what_fits() -> None:
    w, h = 8368, 5576
    err = cost.CostLimitError(w, h, ALL, cost.request_cost(w * h, ALL), LIMIT)
    doc = json.loads(json.dumps(err.to_json()))
    assert (doc["code"], doc["type"], doc["limit"]) == (413, "CostLimit", LIMIT)
    assert doc["max_megapixels"] == cost.max_megapixels(LIMIT, ALL) and doc["cost"] > LIMIT
    message = doc["message"]
    assert "handler.max_request_cost" in message and f"{LIMIT:.0f}" in message
    assert "quality=best, tta=true, refine=true" in message and "without refine=true up to" in message
    suggested = message.split("downscale it to ")[1].split(")")[0]  # the size it proposes must pass
    sw, sh = map(int, suggested.split("x"))
    assert abs(sw / sh - w / h) < 0.01 and cost.request_cost(sw * sh, ALL) <= LIMIT


def test_admission_is_cheapest_first_within_the_budget() -> None:
    admission = cost.admit([5.0, 90.0, 80.0, None, 30.0, 5.0], budget=150)
    assert admission.admitted == [True, False, True, None, True, True] and admission.total == 120
    assert cost.admit([120.0, 130.0], budget=100).admitted == [True, False]  # the cheapest always runs
    assert cost.admit([500.0, 500.0], budget=0).admitted == [True, True]  # 0: no batch limit


def test_cost_settings_are_checked() -> None:
    assert _cost_limits({}) == (cost.DEFAULT_MAX_REQUEST_COST, cost.DEFAULT_MAX_BATCH_COST)
    assert _cost_limits({"max_request_cost": 0, "max_batch_cost": 0}) == (0, 0)
    with pytest.raises(ValueError, match="max_batch_cost must be 0 .* or at least max_request_cost"):
        _cost_limits({"max_request_cost": 200, "max_batch_cost": 150})


def test_image_size_reads_only_the_header() -> None:
    assert image_size(png_header_only(8368, 5576)) == (8368, 5576)  # no pixel data to decode at all
    assert image_size(image_bytes(30, 20, "JPEG")) == (30, 20)


def test_handler_refuses_a_costly_request_before_decoding_it(
    handler_and_context: tuple[ResUNetHandler, Context],  # noqa: F811
) -> None:
    """The header alone decides: a 46.7 MP PNG header with no pixel data gets 413 CostLimit, not the 400 that
    decoding its missing pixels would give; the other request of the batch is served."""
    handler, context = handler_and_context
    options = {"quality": b"best", "tta": b"true", "refine": b"true"}
    out = run(handler, context, [{"body": png_header_only(8368, 5576), **options}, {"body": image_bytes(40, 30)}])
    doc = json.loads(out[0])
    assert context.get_response_status(0)[0] == 413 and doc["type"] == "CostLimit" and doc["max_megapixels"] > 10
    assert Image.open(io.BytesIO(out[1])).size == (40, 30)


def test_handler_runs_a_batch_cheapest_first_and_answers_the_rest_busy(
    handler_and_context: tuple[ResUNetHandler, Context],  # noqa: F811
) -> None:
    handler, context = handler_and_context
    costly = {"body": image_bytes(900, 700, "JPEG"), "quality": b"best", "tta": b"true"}
    small = {"body": image_bytes(40, 30)}
    budget = cost.request_cost(900 * 700, parse_options({"quality": "best", "tta": "true"}))
    budget += 2 * cost.request_cost(40 * 30, PLAIN)  # room for one costly request beside the two small ones
    saved = handler.max_request_cost, handler.max_batch_cost
    handler.max_request_cost, handler.max_batch_cost = budget, budget
    try:
        out = run(handler, context, [costly, small, costly, small])
    finally:
        handler.max_request_cost, handler.max_batch_cost = saved
    statuses = [context.get_response_status(i)[0] for i in range(4)]
    assert statuses == [200, 200, 429, 200]  # the two small ones first, then one costly fits, the second not
    doc = json.loads(out[2])
    assert doc["type"] == "Busy" and doc["retry_after"] == cost.RETRY_AFTER_S and "max_batch_cost" in doc["message"]
    assert context.get_response_headers(2).get("Retry-After") == str(cost.RETRY_AFTER_S)


def test_refine_above_its_bound_stays_close_to_the_full_refine() -> None:
    """Downscaled refine keeps the photo's opaque pixels exactly and lands near the full-size estimate."""
    rng = np.random.default_rng(0)
    h, w = 300, 400
    yy, xx = np.mgrid[0:h, 0:w]
    alpha = np.clip(1.2 - np.hypot(yy - h / 2, xx - w / 2) / 90, 0, 1).astype(np.float32)  # soft disc
    image = np.where(alpha[..., None] > 0.5, [200, 40, 40], [30, 200, 30]).astype(np.uint8)
    image = np.clip(image + rng.integers(-10, 10, image.shape), 0, 255).astype(np.uint8)
    full = estimate_foreground(image, alpha, max_pixels=0)
    bounded = estimate_foreground(image, alpha, max_pixels=h * w // 9)
    solid, soft = alpha >= 1.0, (alpha > 0.05) & (alpha < 0.95)
    assert bounded.shape == image.shape and np.array_equal(bounded[solid], image[solid])
    moved = np.abs(full[soft].astype(int) - image[soft]).mean()  # what refine does to the edge colours
    off = np.abs(bounded[soft].astype(int) - full[soft]).mean()
    assert moved > 5 and off < moved / 3, (moved, off)
    assert REFINE_MAX_PIXELS >= 1_000_000


def test_best_on_a_big_photo_returns_one_of_its_sides(
    handler_and_context: tuple[ResUNetHandler, Context],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The big-photo path of quality=best (the view chosen at CHOOSE_SIDE) answers one of its views at the
    photo's size: exactly one of the whole-photo alphas, or the crop's (0 outside the object's box)."""
    handler, _ = handler_and_context
    model = handler.model
    rgb = np.asarray(Image.open(io.BytesIO(image_bytes(300, 200))).convert("RGB"))
    sides = cutout.scale_sizes(model.config.input_size)
    alphas = [unletterbox_probability(*cutout.probability_at_size(model, rgb, s)) for s in sides]
    monkeypatch.setattr(cutout, "CHOOSE_FULL_SIZE_PIXELS", 0)
    got = cutout.best_alpha(model, rgb, base=alphas[1])
    assert got.shape == (200, 300)
    box = cutout.object_box(alphas[1], margin=cutout.CROP_MARGIN + 0.02)  # the big path finds it at CHOOSE_SIDE
    if not any(np.array_equal(got, a) for a in alphas):
        assert box is not None
        outside = np.ones(got.shape, bool)
        outside[box] = False
        assert got.any() and not got[outside].any()
