"""In-process cutout of one image, the same steps as the server: for the CLI and evaluation."""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np
import torch

from shoeseg.model.inference import foreground_probability, most_confident, scale_sizes
from shoeseg.model.runtime import Predictor
from shoeseg.pipeline.image_io import LetterboxInfo, letterbox, unletterbox_probability

# quality=best on photos above this many pixels picks its side on the model-sized probabilities and brings only
# the chosen one to the photo's size: the uncertainty is a ratio that barely moves with resolution (see
# model.inference.CONFIDENCE_SIDE), and at 46.7 MP the two extra full-size upsamplings and three full-size
# uncertainty maps were ~3 s of the ~7 s quality=best added (2 busy cores). Below it (bench) nothing changes.
CHOOSE_FULL_SIZE_PIXELS = 4_000_000
CHOOSE_SIDE = 1536  # the common size the sides are compared at (longest side), above the largest side (768)

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
    return unletterbox_probability(*probability_at_size(model, image, size, tta, predictor))


def probability_at_size(
    model: torch.nn.Module, image: np.ndarray, size: int, tta: bool = False, predictor: Predictors = None
) -> tuple[np.ndarray, LetterboxInfo]:
    """RGB (H, W, 3) uint8 -> the model's (size, size) probability of its letterbox, and where the photo sits."""
    config = model.config
    x, info = letterbox(image, size, config.mean, config.std)
    run = predictor_for(predictor, size, config.input_size)
    if run is None:  # eager PyTorch takes any side
        return foreground_probability(model, x[None], tta=tta)[0].cpu().numpy(), info
    return run(x[None], tta)[0], info


def _inner(prob: np.ndarray, info: LetterboxInfo) -> np.ndarray:
    """The photo's part of a letterboxed probability, at the model's resolution."""
    new_h, new_w = info.inner
    return prob[info.pad_top : info.pad_top + new_h, info.pad_left : info.pad_left + new_w]


def best_alpha(
    model: torch.nn.Module,
    image: np.ndarray,
    tta: bool = False,
    predictor: Predictors = None,
    base: np.ndarray | None = None,
) -> np.ndarray:
    """``quality=best``: the most confident alpha of the model at 0.75x, 1x and 1.5x its input size
    (``model.inference.BEST_SCALES``). ``base``: the 1x alpha when already computed (the server's batch)."""
    input_size = model.config.input_size
    if image.shape[0] * image.shape[1] > CHOOSE_FULL_SIZE_PIXELS:
        return _best_alpha_large(model, image, tta, predictor, base)
    alphas = []
    for size in scale_sizes(input_size):
        if base is not None and size == input_size:
            alphas.append(base)
        else:
            alphas.append(alpha_at_size(model, image, size, tta, predictor))
    return alphas[most_confident(alphas)]


def _best_alpha_large(
    model: torch.nn.Module, image: np.ndarray, tta: bool, predictor: Predictors, base: np.ndarray | None
) -> np.ndarray:
    """``best_alpha`` for a big photo: the side chosen on the model-sized probabilities (``base`` downscaled to
    the input size's), then only the chosen one upsampled to the photo's size."""
    input_size = model.config.input_size
    h, w = image.shape[:2]
    scale = CHOOSE_SIDE / max(h, w)
    shape = (max(1, round(w * scale)), max(1, round(h * scale)))  # cv2's (width, height)
    candidates: list[tuple[np.ndarray, LetterboxInfo] | None] = []  # None: ``base`` stands for that side
    small: list[np.ndarray] = []
    for size in scale_sizes(input_size):
        if base is not None and size == input_size:
            small.append(cv2.resize(base, shape, interpolation=cv2.INTER_AREA))
            candidates.append(None)
        else:
            prob, info = probability_at_size(model, image, size, tta, predictor)
            up = cv2.resize(np.ascontiguousarray(_inner(prob, info)), shape, interpolation=cv2.INTER_CUBIC)
            small.append(np.clip(up, 0.0, 1.0))
            candidates.append((prob, info))
    chosen = candidates[most_confident(small)]
    return base if chosen is None else unletterbox_probability(*chosen)


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
