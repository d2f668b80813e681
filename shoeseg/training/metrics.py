"""Segmentation metrics as pure tensor functions (per image, then averaged by the caller)."""

from __future__ import annotations

import cv2
import numpy as np
import torch

METRIC_NAMES = ("iou", "precision", "recall", "f1", "mae")


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
    """Sums per-image metrics over batches; ``means()`` gives per-image averages."""

    def __init__(self) -> None:
        self.sums = {name: 0.0 for name in METRIC_NAMES}
        self.count = 0

    def update(self, metrics: dict[str, torch.Tensor]) -> None:
        for name in METRIC_NAMES:
            self.sums[name] += float(metrics[name].sum())
        self.count += int(metrics["iou"].numel())

    def means(self) -> dict[str, float]:
        return {name: self.sums[name] / max(self.count, 1) for name in METRIC_NAMES} | {"n": self.count}


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
