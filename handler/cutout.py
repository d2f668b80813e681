"""In-process cutout of one image, the same steps as the server: for the CLI and evaluation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from handler.image_io import letterbox, unletterbox_probability
from model.inference import foreground_probability
from model.runtime import Predictor


def predict_alpha(
    model: torch.nn.Module,
    image: np.ndarray,
    tta: bool = False,
    scales: Sequence[float] = (),
    predictor: Predictor | None = None,
) -> np.ndarray:
    """RGB (H, W, 3) uint8 -> foreground alpha (H, W) float32 in [0, 1] at the image's own size.

    ``tta``/``scales``: test-time augmentation, see ``model.inference.foreground_probability``.
    ``predictor``: run the forward pass there (e.g. the server's ``OnnxPredictor``; no ``scales``)."""
    config = model.config
    x, info = letterbox(image, config.input_size, config.mean, config.std)
    if predictor is not None and not scales:
        prob = predictor(x[None], tta)[0]
    else:
        prob = foreground_probability(model, x[None], tta=tta, scales=scales)[0].cpu().numpy()
    return unletterbox_probability(prob, info)
