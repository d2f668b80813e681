"""In-process cutout of one image, the same steps as the server: for the CLI and evaluation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from handler.image_io import letterbox, unletterbox_probability
from model.inference import foreground_probability


def predict_alpha(
    model: torch.nn.Module, image: np.ndarray, tta: bool = False, scales: Sequence[float] = ()
) -> np.ndarray:
    """RGB (H, W, 3) uint8 -> foreground alpha (H, W) float32 in [0, 1] at the image's own size.

    ``tta``/``scales``: test-time augmentation, see ``model.inference.foreground_probability``."""
    config = model.config
    x, info = letterbox(image, config.input_size, config.mean, config.std)
    prob = foreground_probability(model, x[None], tta=tta, scales=scales)[0].cpu().numpy()
    return unletterbox_probability(prob, info)
