"""Segmentation metrics as pure tensor / array functions (per image, then averaged by the caller).

Area metrics (IoU, precision, recall, F1, MAE) hardly move when a strap gap is filled or an edge frays;
Boundary IoU and hole recall (``structure_metrics``) are made to see exactly that.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

METRIC_NAMES = ("iou", "precision", "recall", "f1", "mae")
BOUNDARY_RATIO = 0.02  # Boundary IoU's band width as a share of the image diagonal (Cheng et al. 2021)
MIN_ENCLOSED = 200  # an image counts towards hole recall when its true mask encloses at least this many pixels
STRUCTURE_NAMES = ("biou", "hole_recall", "fog")
# Fog: predicted alpha in this range (26..229 of 255) counts as undecided.
UNDECIDED = (26 / 255, 229 / 255)


def per_image_metrics(prob: torch.Tensor, alpha: torch.Tensor, threshold: float = 0.5) -> dict[str, torch.Tensor]:
    """IoU, precision, recall, F1 at ``prob >= threshold`` vs ``alpha >= 0.5``, and soft-mask MAE.

    prob, alpha: (B, H, W) in [0, 1]. Returns a dict of (B,) tensors. Empty-vs-empty counts as 1.
    """
    pred = prob >= threshold
    true = alpha >= 0.5
    dims = (1, 2)
    tp = (pred & true).sum(dims).float()
    fp = (pred & ~true).sum(dims).float()
    fn = (~pred & true).sum(dims).float()

    def ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
        return torch.where(den > 0, num / den.clamp_min(1), torch.ones_like(num))

    precision = ratio(tp, tp + fp)
    recall = ratio(tp, tp + fn)
    return {
        "iou": ratio(tp, tp + fp + fn),
        "precision": precision,
        "recall": recall,
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "mae": (prob.float() - alpha.float()).abs().mean(dims),
    }


class MetricAccumulator:
    """Sums per-image metrics over batches; ``means()`` gives per-image averages.

    With ``structure_metrics`` merged into the updates, ``means()`` also has ``biou``, ``fog``, ``hole_recall`` (the
    mean over the images whose true mask encloses background: its nan rows are skipped) and ``hole_n``.
    """

    def __init__(self) -> None:
        self.sums = {name: 0.0 for name in (*METRIC_NAMES, *STRUCTURE_NAMES)}
        self.count = self.structure_count = self.hole_n = 0

    def update(self, metrics: dict[str, torch.Tensor]) -> None:
        for name in METRIC_NAMES:
            self.sums[name] += float(metrics[name].sum())
        self.count += int(metrics["iou"].numel())
        if "biou" in metrics:
            self.sums["biou"] += float(metrics["biou"].sum())
            self.sums["fog"] += float(metrics["fog"].sum())
            self.structure_count += int(metrics["biou"].numel())
            counted = ~torch.isnan(metrics["hole_recall"])
            self.sums["hole_recall"] += float(metrics["hole_recall"][counted].sum())
            self.hole_n += int(counted.sum())

    def means(self) -> dict[str, float]:
        means = {name: self.sums[name] / max(self.count, 1) for name in METRIC_NAMES} | {"n": self.count}
        if self.structure_count:
            means["biou"] = self.sums["biou"] / self.structure_count
            means["fog"] = self.sums["fog"] / self.structure_count
            means["hole_recall"] = self.sums["hole_recall"] / self.hole_n if self.hole_n else None
            means["hole_n"] = self.hole_n
        return means


def enclosed_background(mask: np.ndarray) -> np.ndarray:
    """Background pixels not 4-connected to the image border (strap gaps, closed arches).

    mask: (H, W) bool, or float alpha binarised at 0.5. Returns (H, W) bool.
    """
    background = (np.asarray(mask, dtype=np.float32) < 0.5).astype(np.uint8)
    count, labels = cv2.connectedComponents(background, connectivity=4)
    if count <= 1:
        return np.zeros(background.shape, bool)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return (background > 0) & ~np.isin(labels, border)


# ---- structure: boundaries and holes, the defects area IoU hardly sees -------------------------------------


def band_width(height: int, width: int, ratio: float = BOUNDARY_RATIO) -> int:
    """Boundary IoU's band width d in pixels: ``ratio`` of the image diagonal, at least 1."""
    return max(1, round(ratio * float(np.hypot(height, width))))


def inner_boundary(mask: np.ndarray, width: int) -> np.ndarray:
    """The mask's pixels within ``width`` px (chessboard distance) of its contour or of the image border.

    mask: (H, W) bool. Returns (H, W) bool. Outside the image counts as background, as in the paper's code
    (it pads with zeros before eroding), so a mask cut by the border has a band along it.
    """
    m = np.asarray(mask, bool).astype(np.uint8)
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)  # = ``width`` erosions by 3x3
    eroded = cv2.erode(m, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return (m > 0) & (eroded == 0)


def boundary_iou(pred: np.ndarray, true: np.ndarray, ratio: float = BOUNDARY_RATIO) -> float:
    """IoU of the inner boundary bands of two (H, W) bool masks (band width ``band_width``). 1 when both empty."""
    width = band_width(*true.shape, ratio)
    a, b = inner_boundary(pred, width), inner_boundary(true, width)
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b) / union) if union else 1.0


def hole_recall(pred: np.ndarray, true: np.ndarray) -> tuple[float, int]:
    """Share of the true mask's enclosed background (``enclosed_background``) that ``pred`` leaves background.

    pred, true: (H, W) bool. Returns (recall, enclosed pixel count); recall is nan when nothing is enclosed.
    """
    enclosed = enclosed_background(true)
    count = int(np.count_nonzero(enclosed))
    if not count:
        return float("nan"), 0
    return float(np.count_nonzero(enclosed & ~np.asarray(pred, bool)) / count), count


def fog(prob: np.ndarray, true: np.ndarray, ratio: float = BOUNDARY_RATIO) -> float:
    """Share (in %) of the image's pixels farther than d (``band_width``: ``ratio`` of the diagonal, chessboard
    distance) from the true mask's edge whose predicted alpha is undecided (``UNDECIDED``): a see-through
    insole, a smear under the sole, a kept backdrop patch. A matte may be soft at its edges, nowhere else.

    prob: (H, W) float alpha in [0, 1]; true: (H, W) bool.
    """
    width = band_width(*true.shape, ratio)
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    solid = np.asarray(true, bool).astype(np.uint8)
    far = cv2.dilate(solid, kernel) == cv2.erode(solid, kernel)
    undecided = (prob >= UNDECIDED[0]) & (prob <= UNDECIDED[1])
    return 100.0 * float(np.count_nonzero(undecided & far)) / prob.size


def structure_metrics(
    prob: torch.Tensor, alpha: torch.Tensor, threshold: float = 0.5, min_enclosed: int = MIN_ENCLOSED
) -> dict[str, torch.Tensor]:
    """Boundary IoU and hole recall at ``prob >= threshold`` vs ``alpha >= 0.5``, and ``fog``, per image.

    prob, alpha: (B, H, W) in [0, 1]. Returns (B,) tensors: ``biou``; ``hole_recall``, nan where the true
    mask encloses fewer than ``min_enclosed`` pixels (so the mean skips it); ``enclosed`` (pixel count); ``fog``.
    """
    probs = prob.cpu().numpy()
    trues = (alpha >= 0.5).cpu().numpy()
    biou, recall, enclosed, fogs = [], [], [], []
    for p, true in zip(probs, trues):
        pred = p >= threshold
        biou.append(boundary_iou(pred, true))
        r, count = hole_recall(pred, true)
        recall.append(r if count >= min_enclosed else float("nan"))
        enclosed.append(count)
        fogs.append(fog(p, true))
    columns = {"biou": biou, "hole_recall": recall, "enclosed": enclosed, "fog": fogs}
    return {name: torch.tensor(values, dtype=torch.float64) for name, values in columns.items()}


# ---- confidence: does a per-cutout score rank the cutouts that need a look? --------------------------------
BAD_IOU = 0.95  # a cutout below this IoU needs retouching
FLAG_SHARE = 0.10  # the least confident share sent to a person


def average_ranks(values: np.ndarray) -> np.ndarray:
    """(N,) values -> (N,) ranks from 1, ties sharing their mean rank."""
    values = np.asarray(values, np.float64)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), np.float64)
    ranks[order] = np.arange(1, len(values) + 1)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation of two (N,) arrays (Pearson of their average ranks); nan when either is constant
    or N < 2."""
    if len(x) != len(y):
        raise ValueError(f"spearman needs arrays of one length, got {len(x)} and {len(y)}")
    if len(x) < 2:
        return float("nan")
    rx, ry = average_ranks(x) - (len(x) + 1) / 2, average_ranks(y) - (len(y) + 1) / 2
    den = float(np.sqrt((rx**2).sum() * (ry**2).sum()))
    return float((rx * ry).sum() / den) if den > 0 else float("nan")


def flagged_catch(confidence: np.ndarray, bad: np.ndarray, share: float = FLAG_SHARE) -> tuple[float, int]:
    """Flag the ``ceil(share * N)`` least confident of N cutouts: (share of the ``bad`` ones flagged, flagged count).

    confidence: (N,) float, higher = surer; bad: (N,) bool. The share is nan when none is bad. Ties at the cut
    are broken by position (stable sort), so a constant confidence catches by chance, not all.
    """
    bad = np.asarray(bad, bool)
    flagged = int(np.ceil(share * len(bad) - 1e-9))
    if not bad.any():
        return float("nan"), flagged
    lowest = np.argsort(np.asarray(confidence, np.float64), kind="stable")[:flagged]
    return float(bad[lowest].sum() / bad.sum()), flagged
