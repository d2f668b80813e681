"""In-process cutout of one image, the same steps as the server: for the CLI and evaluation."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

import cv2
import numpy as np
import torch

from shoeseg.model.inference import crop_size, foreground_probability, most_confident, scale_sizes
from shoeseg.model.runtime import Predictor
from shoeseg.pipeline.image_io import LetterboxInfo, letterbox, unletterbox_probability

# quality=best on photos above this many pixels picks its side on the model-sized probabilities and brings only
# the chosen one to the photo's size: the uncertainty is a ratio that barely moves with resolution (see
# model.inference.CONFIDENCE_SIDE), and at 46.7 MP the two extra full-size upsamplings and three full-size
# uncertainty maps were ~3 s of the ~7 s quality=best added (2 busy cores). Below it (bench) nothing changes.
CHOOSE_FULL_SIZE_PIXELS = 4_000_000
CHOOSE_SIDE = 1536  # the common size the sides are compared at (longest side), above the largest side (640)
# quality=best's crop pass: the object's box grows by this share of its longer side (plus CROP_PAD px) on each
# side, so edges the 1x pass cut short and the context of the sole stay in view.
CROP_MARGIN = 0.12
CROP_PAD = 4

Box = tuple[slice, slice]  # rows, columns

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


def object_box(alpha: np.ndarray, margin: float = CROP_MARGIN) -> Box | None:
    """(H, W) probability -> the rows and columns of its foreground's (>= 0.5) bounding box grown by
    ``margin`` x its longer side + CROP_PAD px each way, within the image; None when nothing reaches 0.5."""
    rows = np.flatnonzero((alpha >= 0.5).any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero((alpha >= 0.5).any(axis=0))
    (top, bottom), (left, right) = (int(rows[0]), int(rows[-1]) + 1), (int(cols[0]), int(cols[-1]) + 1)
    pad = int(margin * max(bottom - top, right - left)) + CROP_PAD
    h, w = alpha.shape
    return slice(max(0, top - pad), min(h, bottom + pad)), slice(max(0, left - pad), min(w, right + pad))


def pasted(part: np.ndarray, box: Box, shape: tuple[int, int]) -> np.ndarray:
    """A box's (h, w) alpha -> the (H, W) ``shape`` alpha that is 0 outside ``box``."""
    out = np.zeros(shape, np.float32)
    out[box] = part
    return out


def best_alpha(
    model: torch.nn.Module,
    image: np.ndarray,
    tta: bool = False,
    predictor: Predictors = None,
    base: np.ndarray | None = None,
) -> np.ndarray:
    """``quality=best``: the most confident alpha of the model at 0.75x and 1x its input size and at 1.25x on
    the object's box (``model.inference.BEST_SCALES``, ``BEST_CROP_SCALE``). ``base``: the 1x alpha when
    already computed (the server's batch)."""
    input_size = model.config.input_size
    if image.shape[0] * image.shape[1] > CHOOSE_FULL_SIZE_PIXELS:
        return _best_alpha_large(model, image, tta, predictor, base)
    sizes = scale_sizes(input_size)
    alphas = []
    for size in sizes:
        if base is None or size != input_size:
            alphas.append(alpha_at_size(model, image, size, tta, predictor))
        else:
            alphas.append(base)
    box = object_box(alphas[sizes.index(input_size)])
    if box is not None:
        part = alpha_at_size(model, np.ascontiguousarray(image[box]), crop_size(input_size), tta, predictor)
        alphas.append(pasted(part, box, image.shape[:2]))
    return alphas[most_confident(alphas)]


def _best_alpha_large(
    model: torch.nn.Module, image: np.ndarray, tta: bool, predictor: Predictors, base: np.ndarray | None
) -> np.ndarray:
    """``best_alpha`` for a big photo: the view chosen on probabilities at CHOOSE_SIDE (``base`` downscaled),
    then only the chosen one brought to the photo's size."""
    input_size = model.config.input_size
    h, w = image.shape[:2]
    scale = CHOOSE_SIDE / max(h, w)
    shape = (max(1, round(h * scale)), max(1, round(w * scale)))
    small: list[np.ndarray] = []  # each view's alpha at ``shape``
    finals: list[Callable[[], np.ndarray]] = []  # each view's alpha at the photo's size, made when chosen
    sizes = scale_sizes(input_size)
    for size in sizes:
        if base is not None and size == input_size:
            small.append(cv2.resize(base, shape[::-1], interpolation=cv2.INTER_AREA))
            finals.append(lambda: base)
        else:
            prob, info = probability_at_size(model, image, size, tta, predictor)
            small.append(_resized(_inner(prob, info), shape))
            finals.append(partial(unletterbox_probability, prob, info))
    small_box = object_box(small[sizes.index(input_size)])
    if small_box is not None:
        box = tuple(slice(round(s.start / scale), min(n, round(s.stop / scale))) for s, n in zip(small_box, (h, w)))
        prob, info = probability_at_size(model, np.ascontiguousarray(image[box]), crop_size(input_size), tta, predictor)
        box_shape = tuple(s.stop - s.start for s in small_box)
        small.append(pasted(_resized(_inner(prob, info), box_shape), small_box, shape))
        finals.append(lambda: pasted(unletterbox_probability(prob, info), box, (h, w)))
    return finals[most_confident(small)]()


def _resized(prob: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A model-resolution probability -> (h, w) ``shape`` (bicubic, clipped to [0, 1])."""
    return np.clip(cv2.resize(np.ascontiguousarray(prob), shape[::-1], interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


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
