"""Batched forward pass shared by the handler, the CLI, evaluation and the benchmarks."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn


def _probability(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, 3, S, S) -> (B, S, S) foreground probability."""
    x = x.contiguous(memory_format=torch.channels_last)
    # fp16 on CUDA: the fastest path at the served batch sizes with the same masks as fp32 (bf16 moved
    # 0.3 % of mask pixels and IoU by 0.004 on the bench; see reports/bench_gpu.md). fp32 on CPU.
    with torch.autocast(x.device.type, dtype=torch.float16, enabled=x.device.type == "cuda"):
        logits = model(x)
    return torch.softmax(logits.float(), dim=1)[:, 1]


def tta_rows(tta: bool | Sequence[bool], count: int) -> np.ndarray:
    """``tta`` for a whole batch or per image -> (count,) bool."""
    rows = np.asarray([tta] * count if isinstance(tta, bool) else list(tta), dtype=bool)
    if rows.shape != (count,):
        raise ValueError(f"tta has {rows.size} flags for a batch of {count}")
    return rows


def mirror_average(
    predict: Callable[[np.ndarray], np.ndarray], batch: np.ndarray, tta: bool | Sequence[bool] = False
) -> np.ndarray:
    """``predict`` ((B, 3, S, S) -> (B, S, S) numpy) with test-time augmentation for the ``tta`` rows: the
    mean of the prediction and the mirrored prediction on the mirrored image (numpy runtimes, e.g. ONNX)."""
    probs = predict(batch)
    rows = np.flatnonzero(tta_rows(tta, len(batch)))
    if rows.size:
        mirrored = predict(np.ascontiguousarray(batch[rows][..., ::-1]))[..., ::-1]
        probs[rows] = (probs[rows] + mirrored) / 2
    return probs


@torch.inference_mode()
def foreground_probability(
    model: nn.Module,
    batch: torch.Tensor | np.ndarray,
    tta: bool | Sequence[bool] = False,
) -> torch.Tensor:
    """Normalised images (B, 3, S, S) -> foreground probability (B, S, S) float32 on the model's device.

    ``tta`` (for the whole batch or per image): average with the prediction on the horizontally flipped
    image (the one flip training used). Runs channels_last (faster on CPU and on tensor cores) and fp16
    autocast on CUDA.
    """
    device = next(model.parameters()).device
    x = torch.as_tensor(batch).to(device, non_blocking=True)  # _probability makes it channels_last
    prob = _probability(model, x)
    rows = torch.from_numpy(tta_rows(tta, len(x))).to(device)
    if rows.any():
        prob[rows] = (prob[rows] + _probability(model, x[rows].flip(-1)).flip(-1)) / 2
    return prob


# quality=best: the model at 0.625x and 1x its input size over the whole photo and at BEST_CROP_SCALE x on the
# object's box that the 1x pass found (sides rounded to the encoder's stride, 32); each image keeps the most
# confident (``most_confident``): which view suits a photo varies with its framing and clutter, and the one
# the model is surest at is mostly the one it is right at. The crop sees the shoe at more pixels than a
# whole-photo 1.5x pass for 0.69x its cost; the small whole-photo pass is there for the few photos whose
# framing the model reads better small (on white ~1 in 11), and 320 px serves them as well as 384 did for
# 0.69x its cost. Full bench, shipped weights, int8, 0.75x / 1x / box 1.25x -> 0.625x / 1x / box 1.25x: IoU
# white 0.9871 -> 0.9877, scene 0.9718 -> 0.9720; Boundary IoU 0.908 -> 0.910, 0.902 -> 0.903; hole recall
# 0.880 -> 0.878, 0.765 -> 0.772. docs/performance.md, "quality=best".
BEST_SCALES = (0.625, 1.0)
BEST_CROP_SCALE = 1.25


def scale_sizes(input_size: int, scales: Sequence[float] = BEST_SCALES) -> list[int]:
    """Model input sides for ``scales`` x ``input_size``, each a multiple of 32 (the encoder's stride)."""
    return [max(32, round(input_size * scale / 32) * 32) for scale in scales]


def crop_size(input_size: int) -> int:
    """The input side of quality=best's pass on the object's box."""
    return scale_sizes(input_size, (BEST_CROP_SCALE,))[0]


def best_sides(input_size: int) -> list[int]:
    """Every input side quality=best runs, the whole-photo ones first: each needs its own ONNX graph."""
    return list(dict.fromkeys([*scale_sizes(input_size), crop_size(input_size)]))


def edge_uncertainty(alpha: np.ndarray) -> float:
    """(H, W) foreground probability -> how unsure the mask is: sum of min(p, 1 - p) (the soft, undecided
    part) per foreground pixel, so objects of any size compare. 0 for a mask of pure 0s and 1s."""
    return float(np.minimum(alpha, 1.0 - alpha).sum(dtype=np.float64) / (np.count_nonzero(alpha >= 0.5) + 1))


def most_confident(alphas: Sequence[np.ndarray]) -> int:
    """Index of the prediction (each (H, W) probability of the same image) with the lowest ``edge_uncertainty``."""
    if not alphas:
        raise ValueError("most_confident needs at least one prediction")
    return int(np.argmin([edge_uncertainty(a) for a in alphas]))


# Confidence = exp(-edge_uncertainty / CONFIDENCE_SCALE). On bench scene and the real photos (shipped weights)
# the uncertainty's median is ~0.025 (confidence ~0.73) and its 90th percentile ~0.055 (~0.5, the default
# flag, DEFAULT_LOW_CONFIDENCE). Full bench: Spearman 0.55 with per-image Boundary IoU, and the least confident
# 10 % hold 61 % of the cutouts under 0.95 IoU. Computed on at most CONFIDENCE_SIDE px a side: the ratio
# barely moves with size.
CONFIDENCE_SCALE = 0.08
CONFIDENCE_SIDE = 1024


def cutout_confidence(alpha: np.ndarray) -> float:
    """(H, W) foreground probability -> confidence in [0, 1] that the cutout needs no retouching (1: every
    pixel decided; 0 when nothing reaches 0.5: a product photo without a product is a failed cutout). Ranks
    cutouts: the least confident are the ones to send to a person."""
    step = max(1, round(max(alpha.shape) / CONFIDENCE_SIDE))
    sample = alpha[::step, ::step]
    if not (sample >= 0.5).any():
        return 0.0
    return float(np.exp(-edge_uncertainty(sample) / CONFIDENCE_SCALE))
