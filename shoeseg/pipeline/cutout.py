"""In-process cutout of one image, the same steps as the server: for the CLI and evaluation."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from shoeseg.model.inference import foreground_probability, most_confident, scale_sizes
from shoeseg.model.runtime import Predictor
from shoeseg.pipeline.image_io import letterbox, unletterbox_probability

# A forward path for the model's input size, or one per input side (ONNX graphs have one side each).
Predictors = Predictor | Mapping[int, Predictor] | None


def predictor_for(predictors: Predictors, size: int, input_size: int) -> Predictor | None:
    """The path that runs side ``size``: from a mapping by side, a single predictor only at ``input_size``."""
    if isinstance(predictors, Mapping):
        return predictors.get(size)
    return predictors if size == input_size else None


def alpha_at_size(
    model: torch.nn.Module, image: np.ndarray, size: int, tta: bool = False, predictor: Predictors = None
) -> np.ndarray:
    """RGB (H, W, 3) uint8 letterboxed to ``size`` x ``size`` -> alpha (H, W) float32 in [0, 1] at its own size.

    ``predictor``: the path for the model's own input size (e.g. the server's ``OnnxPredictor``, whose graph
    has that one size), or a mapping side -> path; sides without one run ``model`` eagerly."""
    config = model.config
    x, info = letterbox(image, size, config.mean, config.std)
    run = predictor_for(predictor, size, config.input_size)
    if run is None:  # eager PyTorch takes any side
        return unletterbox_probability(foreground_probability(model, x[None], tta=tta)[0].cpu().numpy(), info)
    return unletterbox_probability(run(x[None], tta)[0], info)


def best_alpha(
    model: torch.nn.Module,
    image: np.ndarray,
    tta: bool = False,
    predictor: Predictors = None,
    base: np.ndarray | None = None,
) -> np.ndarray:
    """``quality=best``: the most confident alpha of the model at 0.75x, 1x and 1.5x its input size
    (``model.inference.BEST_SCALES``). ``base``: the 1x alpha when already computed (the server's batch)."""
    alphas = []
    for size in scale_sizes(model.config.input_size):
        if base is not None and size == model.config.input_size:
            alphas.append(base)
        else:
            alphas.append(alpha_at_size(model, image, size, tta, predictor))
    return alphas[most_confident(alphas)]


def predict_alpha(
    model: torch.nn.Module,
    image: np.ndarray,
    tta: bool = False,
    quality: str = "fast",
    predictor: Predictors = None,
) -> np.ndarray:
    """RGB (H, W, 3) uint8 -> foreground alpha (H, W) float32 in [0, 1] at the image's own size.

    ``tta``: average with the mirrored image (``model.inference.foreground_probability``); ``quality``:
    ``fast`` one pass at the model's input size, ``best`` see ``best_alpha``; ``predictor``: see
    ``alpha_at_size``."""
    if quality == "best":
        return best_alpha(model, image, tta, predictor)
    return alpha_at_size(model, image, model.config.input_size, tta, predictor)
