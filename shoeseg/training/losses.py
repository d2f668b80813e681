"""Boundary-weighted cross-entropy + Dice. Pure functions."""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .metrics import enclosed_background


def boundary_weight_map(
    mask: np.ndarray, w0: float = 5.0, sigma: float = 4.0, base: float = 1.0, hole_weight: float = 0.0
) -> np.ndarray:
    """Per-pixel weight that peaks on the object contour and falls off on both sides, plus
    ``hole_weight`` on the enclosed background (strap gaps: small in area, so plain CE hardly sees them).

    mask: (H, W) float alpha in [0, 1] or bool/uint8; binarised at 0.5.
    Returns (H, W) float32: ``base + w0 * exp(-d^2 / (2 sigma^2))``, d = distance (px) to the contour.
    """
    binary = (np.asarray(mask, dtype=np.float32) >= 0.5).astype(np.uint8)
    if binary.min() == binary.max():  # no contour: uniform weight
        return np.full(binary.shape, base, dtype=np.float32)
    inside = cv2.distanceTransform(binary, cv2.DIST_L2, 3)
    outside = cv2.distanceTransform(1 - binary, cv2.DIST_L2, 3)
    distance = np.where(binary > 0, inside, outside)
    weight = base + w0 * np.exp(-(distance**2) / (2 * sigma**2))
    if hole_weight:
        weight = weight + hole_weight * enclosed_background(binary > 0)
    return weight.astype(np.float32)


def weighted_cross_entropy(logits: torch.Tensor, alpha: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Soft-target cross-entropy, weighted per pixel.

    logits: (B, 2, H, W); alpha: (B, H, W) foreground probability in [0, 1]; weight: (B, H, W).
    """
    log_p = F.log_softmax(logits.float(), dim=1)
    ce = -(alpha * log_p[:, 1] + (1 - alpha) * log_p[:, 0])
    return (ce * weight).sum() / weight.sum().clamp_min(1e-6)


def weighted_dice_loss(
    logits: torch.Tensor, alpha: torch.Tensor, weight: torch.Tensor, eps: float = 1.0
) -> torch.Tensor:
    """1 - weighted soft Dice of the foreground channel, averaged over the batch. Shapes as above."""
    prob = torch.softmax(logits.float(), dim=1)[:, 1]
    dims = (1, 2)
    intersection = (weight * prob * alpha).sum(dims)
    total = (weight * prob).sum(dims) + (weight * alpha).sum(dims)
    return (1 - (2 * intersection + eps) / (total + eps)).mean()


def far_from_edge(alpha: torch.Tensor, band: int) -> torch.Tensor:
    """(B, H, W) float 0/1: pixels farther than ``band`` px (chessboard distance) from the edge of ``alpha``
    binarised at 0.5. alpha: (B, H, W) in [0, 1]."""
    solid = (alpha >= 0.5).float().unsqueeze(1)
    kernel = 2 * band + 1
    grown = F.max_pool2d(solid, kernel, stride=1, padding=band)
    shrunk = -F.max_pool2d(-solid, kernel, stride=1, padding=band)
    return (grown == shrunk).float().squeeze(1)


def fog_loss(logits: torch.Tensor, alpha: torch.Tensor, band: int) -> torch.Tensor:
    """Mean undecidedness ``4 p (1 - p)`` of the predicted foreground over the pixels farther than ``band`` px
    from the true edge: a matte is soft only at its edges. logits (B, 2, H, W), alpha (B, H, W) -> scalar."""
    prob = torch.softmax(logits.float(), dim=1)[:, 1]
    far = far_from_edge(alpha, band)
    return (4 * prob * (1 - prob) * far).sum() / far.sum().clamp_min(1.0)


def segmentation_loss(
    logits: torch.Tensor, alpha: torch.Tensor, weight: torch.Tensor, ce_weight: float = 1.0, dice_weight: float = 1.0
) -> torch.Tensor:
    """``ce_weight * CE + dice_weight * Dice``, both boundary-weighted."""
    return ce_weight * weighted_cross_entropy(logits, alpha, weight) + dice_weight * weighted_dice_loss(
        logits, alpha, weight
    )
