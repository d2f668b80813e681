"""The one pipeline behind the library, the ``shoeseg`` command and the TorchServe handler.

    image (bytes, path, PIL, numpy) -> decode -> letterbox -> forward (batch; fast | best, tta)
        -> un-letterbox -> compose (options) -> encode (PNG / WebP)

``Remover`` keeps a model loaded and runs each step as its own method, so the handler can batch the
forward pass of many requests while the library and the command run one image end to end. No
TorchServe import here.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from shoeseg.constants import DEFAULT_WEIGHTS
from shoeseg.model import load_model
from shoeseg.model.inference import best_sides, cutout_confidence
from shoeseg.model.runtime import Predictor
from shoeseg.model.sessions import make_predictor
from shoeseg.pipeline.compose import render
from shoeseg.pipeline.cutout import best_alpha
from shoeseg.pipeline.image_io import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_PNG_LEVEL,
    InvalidImageError,
    LetterboxInfo,
    decode_image,
    letterbox,
    pil_to_rgb,
    unletterbox_probability,
)
from shoeseg.pipeline.options import Options, option_fields, parse_options

ImageInput = bytes | bytearray | memoryview | str | os.PathLike | Image.Image | np.ndarray


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto``: the first CUDA device when there is one, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def to_rgb(image: ImageInput, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Any accepted input -> (H, W, 3) uint8 RGB, decoded as the server decodes a request body.

    bytes: an encoded image; str / PathLike: its file; PIL image: any mode (alpha composited on white);
    numpy: (H, W, 3) RGB or (H, W) grey, uint8. Raises ``InvalidImageError`` saying what to pass instead.
    """
    if isinstance(image, bytes | bytearray | memoryview):
        return decode_image(image, max_pixels)
    if isinstance(image, str | os.PathLike):
        path = Path(image)
        if not path.is_file():
            raise InvalidImageError(f"no such image file: {path}", 404)
        return decode_image(path.read_bytes(), max_pixels)
    if isinstance(image, Image.Image):
        return pil_to_rgb(image)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
            raise InvalidImageError(
                f"a numpy image must be (H, W, 3) RGB or (H, W) grey uint8, got {image.shape} {image.dtype}"
            )
        rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image
        return np.ascontiguousarray(rgb)
    raise InvalidImageError(f"cannot read an image from a {type(image).__name__}: pass bytes, a path, PIL or numpy")


@dataclass(frozen=True)
class Cutout:
    """One image's result: the encoded bytes the options ask for, and how sure the model is of its mask
    (``cutout_confidence``: low ones are worth a look before they go out)."""

    data: bytes
    confidence: float


class Remover:
    """A loaded model and the steps that turn a photo into its cutout.

    ``Remover()`` loads the shipped weights on CUDA when there is one, else the CPU. ``remover.remove(image,
    **options)`` takes the server's request options (same names, values, defaults and errors).
    """

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        device: str | torch.device = "auto",
        runtime: str = "auto",
        *,
        model: torch.nn.Module | None = None,
        predictor: Predictor | None = None,
        best_predictors: Mapping[int, Predictor] | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        png_level: int = DEFAULT_PNG_LEVEL,
    ) -> None:
        """``model`` / ``predictor`` / ``best_predictors``: an already loaded model, its forward path and the
        paths for quality=best's other sides (the handler's, from its .mar; sides without one run eagerly),
        instead of loading ``weights`` (default: the shipped ones) and choosing ``runtime`` (``onnx_runtime``;
        the other sides' graphs are then exported on the first quality=best request)."""
        self.weights = Path(weights or DEFAULT_WEIGHTS)
        self.model = model if model is not None else load_model(self.weights, resolve_device(device))
        self.predictor = predictor or make_predictor(self.model, self.weights, runtime)
        self.sized = {self.input_size: self.predictor, **(best_predictors or {})}
        self.runtime = runtime if predictor is None else None  # None: make no graphs, use what was given
        self.max_pixels, self.png_level = max_pixels, png_level

    def sized_predictors(self) -> dict[int, Predictor]:
        """Input side -> forward path for quality=best (``model.inference.best_sides``), made on first use."""
        if self.runtime is not None:
            for side in best_sides(self.input_size):
                if side not in self.sized:
                    self.sized[side] = make_predictor(self.model, self.weights, self.runtime, side)
            self.runtime = None
        return self.sized

    @property
    def input_size(self) -> int:
        return self.model.config.input_size

    def decode(self, image: ImageInput) -> np.ndarray:
        """Any accepted input -> (H, W, 3) uint8 RGB (see ``to_rgb``)."""
        return to_rgb(image, self.max_pixels)

    def prepare(self, rgb: np.ndarray) -> tuple[np.ndarray, LetterboxInfo]:
        """(H, W, 3) uint8 -> the model's normalised (3, S, S) letterbox and where the photo sits in it."""
        config = self.model.config
        return letterbox(rgb, config.input_size, config.mean, config.std)

    def forward(self, batch: np.ndarray | torch.Tensor, tta: bool | Sequence[bool] = False) -> np.ndarray:
        """(N, 3, S, S) normalised -> (N, S, S) float32 foreground probability (``tta`` per image or for all)."""
        return self.predictor(batch, tta)

    def alpha(self, rgb: np.ndarray, prob: np.ndarray, info: LetterboxInfo, options: Options) -> np.ndarray:
        """One image's (S, S) probability from ``forward`` -> its (H, W) alpha at its own size; with
        ``quality=best`` the most confident of that and the model's passes at the other sizes."""
        alpha = unletterbox_probability(prob, info)
        if options.quality == "best":
            return best_alpha(self.model, rgb, options.tta, self.sized_predictors(), base=alpha)
        return alpha

    def render(self, rgb: np.ndarray, alpha: np.ndarray, options: Options) -> bytes:
        """(H, W, 3) uint8 + (H, W) alpha -> the encoded result ``options`` ask for (default RGBA PNG)."""
        return render(rgb, alpha, options, self.png_level)

    def predict_alpha(self, rgb: np.ndarray, options: Options = Options()) -> np.ndarray:  # noqa: B008 - frozen
        """(H, W, 3) uint8 -> (H, W) float32 alpha in [0, 1]: prepare, forward, alpha for one image."""
        array, info = self.prepare(rgb)
        return self.alpha(rgb, self.forward(array[None], options.tta)[0], info, options)

    def confidence(self, alpha: np.ndarray) -> float:
        """(H, W) alpha -> the cutout's confidence in [0, 1] (``cutout_confidence``), rounded as sent."""
        return round(cutout_confidence(alpha), 3)

    def process(self, image: ImageInput, options: Options = Options()) -> Cutout:  # noqa: B008 - frozen
        """One image end to end -> the bytes the server would answer with for the same options, and the
        confidence it would send in ``X-Cutout-Confidence``."""
        rgb = self.decode(image)
        alpha = self.predict_alpha(rgb, options)
        return Cutout(self.render(rgb, alpha, options), self.confidence(alpha))

    def cutout(self, image: ImageInput, options: Options = Options()) -> bytes:  # noqa: B008 - frozen
        """One image end to end -> the bytes the server would answer with for the same options."""
        return self.process(image, options).data

    def remove(self, image: ImageInput, *, encoded: bool = False, **options: Any) -> Image.Image | bytes:
        """Cut out ``image`` (bytes, a path, a PIL image or an RGB numpy array) with the server's request
        ``options`` (e.g. ``output="rgb", bg="#f0f0f0", crop=True, size=1200``): a PIL image, or with
        ``encoded=True`` the PNG / WebP bytes. Bad input raises ``InvalidImageError`` (``OptionError`` for
        an option), whose ``status`` and ``to_json()`` are what the server answers with. The PIL image's
        ``info["confidence"]`` is the cutout's confidence (``process`` gives it with the bytes)."""
        cutout = self.process(image, parse_options(option_fields(options)))
        if encoded:
            return cutout.data
        result = Image.open(io.BytesIO(cutout.data))
        result.load()
        result.info["confidence"] = cutout.confidence
        return result


_DEFAULT_REMOVERS: dict[tuple[str, str], Remover] = {}


def remove(
    image: ImageInput,
    *,
    weights: str | os.PathLike | None = None,
    device: str = "auto",
    encoded: bool = False,
    **options: Any,
) -> Image.Image | bytes:
    """``Remover(weights, device).remove(image, encoded=encoded, **options)``, the model loaded once per
    (weights, device) and kept for later calls."""
    key = (str(weights or DEFAULT_WEIGHTS), str(device))
    if key not in _DEFAULT_REMOVERS:
        _DEFAULT_REMOVERS[key] = Remover(weights, device)
    return _DEFAULT_REMOVERS[key].remove(image, encoded=encoded, **options)
