"""What one request costs the worker, estimated from its header and options before any work starts, and the
two limits that keep a batch well inside TorchServe's ``responseTimeout`` (model-config.yaml):

- ``handler.max_request_cost``: a request above it is refused with 413 ``CostLimit``, saying how many
  megapixels these options allow and what dropping an option buys;
- ``handler.max_batch_cost``: the requests of one batch are admitted cheapest first while their sum stays
  under it; the rest get 429 ``Busy`` with ``Retry-After`` and no work done. Cheap requests are never held
  behind more costly work than this in their batch, and no batch can grow past it.

One cost unit is the per-pixel work of one megapixel on the plain path (decode, letterbox, un-letterbox,
PNG encode). Measured on 2 CPU cores shared with a training run (load ~7; ~4x slower than idle): a unit took
~0.14 s; plain 0.3 MP 0.8 s, 46.7 MP 7.4 s; quality=best +2.5 s fixed, +0.09 s/MP; tta +1 s fixed; refine
+1.9 s at 3 MP, +5.5 s at 46.7 MP (bounded, see ``compose.REFINE_MAX_PIXELS``). No TorchServe import here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from shoeseg.model.inference import BEST_CROP_SCALE, BEST_SCALES
from shoeseg.pipeline.compose import DEFAULTS, REFINE_MAX_PIXELS
from shoeseg.pipeline.image_io import InvalidImageError
from shoeseg.pipeline.options import OPTIONS, SQUARE, Options, option_text

PASS_UNITS = 5.0  # one forward pass at the model's input side (512 px)
# quality=best's extra views in input-side passes (area): the 0.625x whole photo and the 1.25x object crop
BEST_PASSES = sum(scale**2 for scale in BEST_SCALES if scale != 1.0) + BEST_CROP_SCALE**2
BEST_PIXEL = 0.5  # quality=best per megapixel: letterboxing twice more, choosing, upsampling the chosen side
REFINE_PIXEL = 4.5  # refine per megapixel up to REFINE_MAX_PIXELS (pymatting's solver) ...
REFINE_ABOVE = 1.0  # ... and per megapixel above it (downscale, the correction's upsampling)
REFINE_MP = REFINE_MAX_PIXELS / 1e6
# Defaults of model-config.yaml's handler.max_request_cost / max_batch_cost (0 there: no limit). With them
# every plain, tta or quality=best photo up to the 48 MP pixel limit passes, quality=best with tta up to ~45 MP,
# with tta and refine up to ~22 MP; a batch holds at most ~150 units (~20 s on the busy 2 cores, ~5 s idle).
DEFAULT_MAX_REQUEST_COST = 100.0
DEFAULT_MAX_BATCH_COST = 150.0
# canvas: per megapixel of the canvas (the product resampled with Lanczos, composited, encoded): like the plain
# path's per-pixel work. A square canvas is estimated at the photo's area over fill squared (its size depends
# on the product's box, known only after the model ran).
CANVAS_PIXEL = 1.0
RETRY_AFTER_S = 5  # the Retry-After of a 429 Busy: about one full batch on 2 idle cores


def request_cost(pixels: int, options: Options) -> float:
    """The estimated cost, in units, of one request for an image of ``pixels`` with ``options``."""
    mp = pixels / 1e6
    best, tta = options.quality == "best", options.tta
    passes = (1.0 + (BEST_PASSES if best else 0.0)) * (2.0 if tta else 1.0)
    units = mp * (1.0 + (BEST_PIXEL if best else 0.0)) + PASS_UNITS * passes
    if options.refine:
        units += REFINE_PIXEL * min(mp, REFINE_MP) + REFINE_ABOVE * max(mp - REFINE_MP, 0.0)
    if options.canvas is not None:
        width, height = options.canvas
        units += CANVAS_PIXEL * (mp / options.fill**2 if options.canvas == SQUARE else width * height / 1e6)
    return units


def max_megapixels(limit: float, options: Options) -> float:
    """The largest image, in megapixels (to 0.1), that ``options`` can have at a cost of ``limit``; 0 if none."""
    low, high = 0.0, 1e4  # the cost grows with the pixels: bisect
    if request_cost(0, options) > limit:
        return 0.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if request_cost(int(mid * 1e6), options) <= limit else (low, mid)
    return int(low * 10) / 10


COSTLY_NAMES = ", ".join(spec.name for spec in OPTIONS if spec.costly)


def costly_options(options: Options) -> list[str]:
    """The options of the table marked costly that this request sets, as a request writes them."""
    named = []
    for spec in (s for s in OPTIONS if s.costly):
        value = getattr(options, spec.name)
        if value != getattr(DEFAULTS, spec.name):
            named.append(f"{spec.name}={_as_written(spec.name, value)}")
    return named


def _as_written(name: str, value: Any) -> str:
    if name == "canvas":
        return "square" if value == SQUARE else "x".join(map(str, value))
    return option_text(value)


def _without(options: Options, name: str) -> Options:
    field = name.split("=")[0]
    return replace(options, **{field: getattr(DEFAULTS, field)})


class CostLimitError(InvalidImageError):
    """A request whose estimated cost is above ``handler.max_request_cost``: 413 ``CostLimit``."""

    def __init__(self, width: int, height: int, options: Options, cost: float, limit: float) -> None:
        pixels = width * height
        self.cost, self.limit = cost, limit
        self.max_megapixels = max_megapixels(limit, options)
        named = costly_options(options)
        with_what = f" with {', '.join(named)}" if named else ""
        drops = [f"without {name} up to {max_megapixels(limit, _without(options, name)):.1f} MP" for name in named]
        scale = min(1.0, (self.max_megapixels * 1e6 / pixels) ** 0.5)
        message = (
            f"this {width}x{height} ({pixels / 1e6:.1f} MP) image{with_what} would cost {cost:.0f} units, above the "
            f"server's per-request cost limit of {limit:.0f} (handler.max_request_cost); with these options send at "
            f"most {self.max_megapixels:.1f} MP (downscale it to {int(width * scale)}x{int(height * scale)})"
            + (f", or drop an option: {'; '.join(drops)}" if drops else "")
        )
        super().__init__(message, 413)

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.status,
            "type": "CostLimit",
            "message": self.message,
            "cost": round(self.cost, 1),
            "limit": self.limit,
            "max_megapixels": self.max_megapixels,
        }


class BusyError(InvalidImageError):
    """A request left out of a batch whose cost budget (``handler.max_batch_cost``) is spent: 429 ``Busy``,
    nothing done; retrying after ``retry_after`` seconds is safe."""

    def __init__(self, cost: float, admitted: float, budget: float, retry_after: int = RETRY_AFTER_S) -> None:
        self.retry_after = retry_after
        message = (
            f"the server is busy: this batch already holds {admitted:.0f} of its {budget:.0f} cost units "
            f"(handler.max_batch_cost) and this request needs {cost:.0f}; it was not started. Retry in "
            f"{retry_after} s (Retry-After), or send a smaller image or fewer of {COSTLY_NAMES}"
        )
        super().__init__(message, 429)

    def to_json(self) -> dict[str, Any]:
        return {"code": self.status, "type": "Busy", "message": self.message, "retry_after": self.retry_after}


@dataclass(frozen=True)
class Admission:
    """Which requests of a batch run: ``admitted[i]`` for request i (None: it had no cost, e.g. refused)."""

    admitted: list[bool | None]
    total: float


def admit(costs: list[float | None], budget: float) -> Admission:
    """Admit a batch's requests cheapest first while their sum stays within ``budget`` (0: all); the cheapest
    always runs, so a request under the per-request limit is never refused on its own. ``None``: no cost."""
    admitted: list[bool | None] = [None if c is None else False for c in costs]
    total = 0.0
    for idx in sorted((i for i, c in enumerate(costs) if c is not None), key=lambda i: (costs[i], i)):
        cost = costs[idx]
        if budget and total > 0 and total + cost > budget:
            continue
        admitted[idx], total = True, total + cost
    return Admission(admitted, total)
