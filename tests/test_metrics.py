"""Boundary IoU, hole recall, the accumulator's structure means and the confidence statistics, on tiny masks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from shoeseg.training.metrics import (
    MetricAccumulator,
    average_ranks,
    band_width,
    boundary_iou,
    enclosed_background,
    flagged_catch,
    fog,
    hole_recall,
    inner_boundary,
    per_image_metrics,
    spearman,
    structure_metrics,
)


def square(size: int = 40, top: int = 10, left: int = 10, side: int = 20) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[top : top + side, left : left + side] = True
    return mask


def ring(size: int = 40) -> np.ndarray:
    """A 20 px square with a 10 px square hole in the middle (100 enclosed pixels)."""
    mask = square(size)
    mask[15:25, 15:25] = False
    return mask


def c_shape(size: int = 40) -> np.ndarray:
    """The ring opened on its right side: the hole reaches the outside, so nothing is enclosed."""
    mask = ring(size)
    mask[15:25, 25:30] = False
    return mask


def test_ring_hole_is_enclosed_c_shape_is_not() -> None:
    assert enclosed_background(ring()).sum() == 100
    assert enclosed_background(ring())[15:25, 15:25].all()
    assert not enclosed_background(c_shape()).any()
    assert not enclosed_background(square()).any()


def test_band_width_is_two_percent_of_the_diagonal_at_least_one() -> None:
    assert band_width(300, 400) == 10  # diagonal 500
    assert band_width(10, 10) == 1  # 0.28 rounds to 0: at least 1


def test_inner_boundary_is_the_band_inside_the_contour() -> None:
    band = inner_boundary(square(), 2)
    assert band.sum() == 20 * 20 - 16 * 16  # the outer 2 px of the 20 px square
    assert not band[14:26, 14:26].any() and not (band & ~square()).any()
    edge = np.ones((10, 10), bool)  # a mask that fills the image: its band runs along the border
    assert inner_boundary(edge, 1).sum() == 100 - 64


def test_boundary_iou_identical_shifted_and_empty() -> None:
    assert boundary_iou(square(), square()) == 1.0
    shifted = boundary_iou(square(left=12), square())
    assert 0 < shifted < 1
    assert boundary_iou(square(left=14), square()) < shifted  # further off, lower
    assert boundary_iou(np.zeros((40, 40), bool), np.zeros((40, 40), bool)) == 1.0
    assert boundary_iou(np.zeros((40, 40), bool), square()) == 0.0


def test_boundary_iou_sees_a_filled_hole_that_area_iou_hardly_sees() -> None:
    big = np.zeros((200, 200), bool)
    big[20:180, 20:180] = True
    holed = big.copy()
    holed[90:110, 90:110] = False  # a 20 px strap gap: 400 of 25,200 pixels
    prob = torch.from_numpy(big.astype(np.float32))[None]
    true = torch.from_numpy(holed.astype(np.float32))[None]
    area = float(per_image_metrics(prob, true)["iou"][0])
    structure = structure_metrics(prob, true)
    assert area > 0.98  # area IoU barely notices
    assert float(structure["biou"][0]) < 0.9  # the band around the gap is missing
    assert float(structure["hole_recall"][0]) == 0.0 and float(structure["enclosed"][0]) == 400


def test_hole_recall_counts_predicted_background_in_the_true_hole() -> None:
    truth = ring()
    assert hole_recall(truth, truth) == (1.0, 100)
    assert hole_recall(square(), truth) == (0.0, 100)
    half = ring()
    half[15:25, 15:20] = True  # half the hole filled
    assert hole_recall(half, truth) == (0.5, 100)
    recall, count = hole_recall(truth, c_shape())
    assert math.isnan(recall) and count == 0


def test_hole_recall_mean_skips_images_with_small_holes() -> None:
    truth = torch.from_numpy(np.stack([ring(), ring()]).astype(np.float32))
    prob = torch.from_numpy(np.stack([ring(), square()]).astype(np.float32))
    counted = structure_metrics(prob, truth, min_enclosed=100)["hole_recall"]
    assert counted.tolist() == [1.0, 0.0]
    assert torch.isnan(structure_metrics(prob, truth, min_enclosed=101)["hole_recall"]).all()  # 100 < 101


def test_accumulator_means_structure_metrics_over_the_images_that_have_them() -> None:
    truth = torch.from_numpy(np.stack([ring(), c_shape(), ring()]).astype(np.float32))
    prob = torch.from_numpy(np.stack([ring(), c_shape(), square()]).astype(np.float32))
    acc = MetricAccumulator()
    acc.update(per_image_metrics(prob, truth) | structure_metrics(prob, truth, min_enclosed=100))
    means = acc.means()
    assert means["n"] == 3 and means["hole_n"] == 2
    assert means["hole_recall"] == pytest.approx(0.5)  # (1 + 0) / 2: the C shape has no hole to count
    assert 0 < means["biou"] < 1
    plain = MetricAccumulator()
    plain.update(per_image_metrics(prob, truth))  # training's validation: the keys it always had
    assert set(plain.means()) == {"iou", "precision", "recall", "f1", "mae", "n"}
    empty = MetricAccumulator()
    empty.update(per_image_metrics(prob[1:2], truth[1:2]) | structure_metrics(prob[1:2], truth[1:2]))
    assert empty.means()["hole_recall"] is None and empty.means()["hole_n"] == 0


def test_fog_counts_a_half_transparent_blob_away_from_the_edge_not_a_soft_edge() -> None:
    truth = square(size=100, top=20, left=20, side=60)  # band width: 2 % of the 141 px diagonal = 3 px
    assert band_width(100, 100) == 3
    exact = truth.astype(np.float32)
    assert fog(exact, truth) == 0.0
    soft_edge = exact.copy()
    soft_edge[18:23, 20:80] = 0.5  # undecided only within 3 px of the top edge
    assert fog(soft_edge, truth) == 0.0
    blob = exact.copy()
    blob[40:50, 40:50] = 0.5  # a see-through patch inside the object, far from its edge
    blob[0:5, 0:10] = 0.3  # and a kept backdrop smear in a corner
    assert fog(blob, truth) == pytest.approx(100.0 * (100 + 50) / 100**2)
    nearly = exact.copy()
    nearly[40:50, 40:50] = 0.95  # 242 of 255: decided enough
    assert fog(nearly, truth) == 0.0
    means = MetricAccumulator()
    both = torch.from_numpy(np.stack([exact, blob])), torch.from_numpy(np.stack([truth, truth]).astype(np.float32))
    means.update(per_image_metrics(*both) | structure_metrics(*both))
    assert means.means()["fog"] == pytest.approx(0.75)


def test_spearman_ranks_and_ties() -> None:
    assert average_ranks(np.array([10, 30, 20, 20])).tolist() == [1, 4, 2.5, 2.5]
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert spearman(x, x**3) == pytest.approx(1.0)  # monotone, not linear: still 1
    assert spearman(x, -x) == pytest.approx(-1.0)
    assert spearman(x, np.array([2.0, 1.0, 4.0, 3.0, 5.0])) == pytest.approx(0.8)  # 1 - 6 * 4 / (5 * 24)
    assert math.isnan(spearman(x, np.ones(5)))
    with pytest.raises(ValueError, match="one length"):
        spearman(x, x[:3])


def test_flagged_catch_share_of_bad_among_least_confident() -> None:
    confidence = np.arange(20, dtype=float)  # image i has confidence i
    bad = np.zeros(20, bool)
    bad[[0, 1, 15]] = True
    assert flagged_catch(confidence, bad, 0.1) == (pytest.approx(2 / 3), 2)  # flags images 0 and 1
    assert flagged_catch(-confidence, bad, 0.1) == (pytest.approx(0.0), 2)  # surest wrongly: catches none
    assert flagged_catch(confidence, bad, 0.8)[0] == pytest.approx(1.0)
    share, flagged = flagged_catch(confidence, np.zeros(20, bool), 0.1)
    assert math.isnan(share) and flagged == 2
    assert flagged_catch(np.arange(21, dtype=float), np.zeros(21, bool), 0.1)[1] == 3  # ceil(2.1)
