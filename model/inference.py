"""Batched forward pass shared by the handler, the CLI, evaluation and the benchmarks."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _probability(model: nn.Module, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """(B, 3, S, S) -> (B, S, S) foreground probability; ``scale`` != 1 runs the model on a resized copy
    (sides rounded to a multiple of 32) and resizes the probability back."""
    size = x.shape[-1]
    if scale != 1.0:
        side = max(32, round(size * scale / 32) * 32)
        x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
    x = x.contiguous(memory_format=torch.channels_last)
    # fp16 on CUDA: the fastest path at the served batch sizes with the same masks as fp32 (bf16 moved
    # 0.3 % of mask pixels and IoU by 0.004 on the bench; see reports/bench_gpu.md). fp32 on CPU.
    with torch.autocast(x.device.type, dtype=torch.float16, enabled=x.device.type == "cuda"):
        logits = model(x)
    prob = torch.softmax(logits.float(), dim=1)[:, 1]
    if prob.shape[-1] != size:
        prob = F.interpolate(prob[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    return prob


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
    scales: Sequence[float] = (),
) -> torch.Tensor:
    """Normalised images (B, 3, S, S) -> foreground probability (B, S, S) float32 on the model's device.

    ``tta`` (for the whole batch or per image): average with the prediction on the horizontally flipped
    image (the one flip training used), and at each of ``scales`` (e.g. (0.75, 1.25)) too, plain and
    flipped. Runs channels_last (faster on CPU and on tensor cores) and fp16 autocast on CUDA.
    """
    device = next(model.parameters()).device
    x = torch.as_tensor(batch).to(device, non_blocking=True)  # _probability makes it channels_last
    prob = _probability(model, x)
    rows = torch.from_numpy(tta_rows(tta, len(x))).to(device)
    if rows.any():
        sub = x[rows]
        views = [prob[rows], _probability(model, sub.flip(-1)).flip(-1)]
        for scale in scales:
            views += [_probability(model, sub, scale), _probability(model, sub.flip(-1), scale).flip(-1)]
        prob[rows] = torch.stack(views).mean(0)
    return prob
