"""Request options (``output``, ``bg``, ``crop``, ...): one parser for REST, gRPC and the command line.

TorchServe 0.12 hands every extra request field to the handler as a key of the request dict, the value
as ``bytes``/``bytearray`` (checked against a real server): multipart form fields, gRPC ``input`` map
entries, and query parameters on ``/{model}/predict?...`` and ``/invocations?model_name=...&...``. It
drops the query string of ``/predictions/{model}?...`` (its frontend passes no query decoder there), so
on that path options go as form fields. The CLI passes its flags as strings to the same parser.

No TorchServe import here: pure functions, tested without a server.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from shoeseg.pipeline.image_io import InvalidImageError

OUTPUTS = ("rgba", "mask", "rgb")
FORMATS = ("png", "webp")
QUALITIES = ("fast", "best")
MATTES = ("decisive", "soft")
ALIGNS = ("center", "bottom")
SHADOWS = ("none", "contact", "drop")
MAX_SIZE = 16384
SQUARE = (0, 0)  # canvas=square: a square at the result's longest side (see compose.place_on_canvas)
_BOOL = {"true": True, "1": True, "yes": True, "on": True, "": True} | dict.fromkeys(("false", "0", "no", "off"), False)
_HEX = re.compile(r"#?([0-9a-f]{6}|[0-9a-f]{8})")
_MARGIN = re.compile(r"(\d+(?:\.\d+)?)\s*(px|%)?")
_CANVAS = re.compile(r"(\d{1,5})x(\d{1,5})")
# Named sets of options (as a request writes them): ``preset=NAME`` expands to these, explicit options win.
PRESETS: dict[str, dict[str, str]] = {
    "amazon": {"output": "rgb", "bg": "ffffff", "canvas": "2000x2000", "fill": "0.85", "align": "center"},
    "shopify": {"output": "rgb", "bg": "ffffff", "canvas": "2048x2048", "fill": "0.8", "align": "center"},
    "transparent-square": {"output": "rgba", "canvas": "square", "fill": "0.9", "align": "bottom"},
}
# Request fields that are neither options nor the image: `/invocations?model_name=...` adds this one.
IGNORED_KEYS = frozenset({"model_name"})
PAYLOAD_KEYS = ("data", "body")


class OptionError(InvalidImageError):
    """An unknown option or a bad value: answered 400 with ``option`` and ``allowed`` in the JSON body."""

    def __init__(self, option: str, message: str, status: int = 400) -> None:
        super().__init__(message, status)
        self.option = option

    def to_json(self) -> dict[str, Any]:
        doc = {"code": self.status, "type": "InvalidOption", "option": self.option, "message": self.message}
        if self.option in ALLOWED:
            doc["allowed"] = ALLOWED[self.option]
        return doc


def conflict(first: str, second: str, why: str) -> OptionError:
    """A 400 for two options that make no sense together, naming both."""
    return OptionError(first, f"{first} conflicts with {second}: {why}")


@dataclass(frozen=True)
class Options:
    """What to return for one image: the typed record every door (library, command, REST, gRPC) parses to.
    Defaults: a soft-edged RGBA PNG at the input's size. The fields and their defaults are the option table's
    (``OPTIONS``); ``bg`` is (r, g, b, a) 0..255 or None; ``margin`` is (value, is_percent); ``canvas`` is
    (width, height), ``SQUARE`` or None."""

    output: str = "rgba"
    bg: tuple[int, int, int, int] | None = None
    crop: bool = False
    margin: tuple[float, bool] = (0.0, False)
    format: str = "png"
    size: int | None = None
    threshold: float | None = None
    refine: bool = False
    tta: bool = False
    quality: str = "fast"
    matte: str = "decisive"
    canvas: tuple[int, int] | None = None
    fill: float = 0.9
    align: str = "center"
    floor: float = 0.9
    shadow: str = "none"
    shadow_opacity: float = 0.5
    shadow_blur: float = 0.04

    @property
    def content_type(self) -> str:
        return f"image/{self.format}"

    @property
    def suffix(self) -> str:
        return f".{self.format}"


def _text(key: str, value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as err:
            raise OptionError(key, f"option {key} is not UTF-8 text; allowed: {ALLOWED[key]}") from err
    return option_text(value).strip()


def option_text(value: Any) -> str:
    """A typed option value as a request writes it: True -> "true", 0.85 -> "0.85"."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def option_fields(options: Mapping[str, Any]) -> dict[str, str]:
    """Python keyword options (typed or text; None left out) -> the request's option fields."""
    return {key: option_text(value) for key, value in options.items() if value is not None}


def _bad(key: str, value: str) -> OptionError:
    return OptionError(key, f"bad value {key}={value!r}; allowed: {ALLOWED[key]}")


def _flag(key: str, value: str) -> bool:
    if value.lower() not in _BOOL:
        raise _bad(key, value)
    return _BOOL[value.lower()]


def _choice(choices: tuple[str, ...]) -> Callable[[str, str], str]:
    def parse(key: str, value: str) -> str:
        if value.lower() not in choices:
            raise _bad(key, value)
        return value.lower()

    return parse


def _number(low: float, high: float, integer: bool = False) -> Callable[[str, str], float]:
    def parse(key: str, value: str) -> float:
        try:
            number = int(value) if integer else float(value)
        except ValueError:
            raise _bad(key, value) from None
        if not (math.isfinite(number) and low <= number <= high):
            raise _bad(key, value)
        return number

    return parse


def _colour(key: str, value: str) -> tuple[int, int, int, int]:
    found = _HEX.fullmatch(value.lower())
    if not found:
        raise _bad(key, value)
    digits = found.group(1) + ("ff" if len(found.group(1)) == 6 else "")
    r, g, b, a = (int(digits[i : i + 2], 16) for i in range(0, 8, 2))
    return r, g, b, a


def _margin(key: str, value: str) -> tuple[float, bool]:
    found = _MARGIN.fullmatch(value.lower())
    if not found:
        raise _bad(key, value)
    number, percent = float(found.group(1)), found.group(2) == "%"
    if number > (100 if percent else MAX_SIZE):
        raise _bad(key, value)
    return number, percent


def _canvas(key: str, value: str) -> tuple[int, int]:
    if value.lower() == "square":
        return SQUARE
    found = _CANVAS.fullmatch(value.lower())
    if not found or not all(1 <= int(side) <= MAX_SIZE for side in found.groups()):
        raise _bad(key, value)
    return int(found.group(1)), int(found.group(2))


def _preset(key: str, value: str) -> str:
    return _choice(tuple(PRESETS))(key, value)


@dataclass(frozen=True)
class OptionSpec:
    """One request option: its name (the ``Options`` field, the form / query / gRPC key, the ``--flag``), how
    its text is parsed, what it accepts (quoted in errors, ``--help`` and the README), whether it is a switch
    (true when given bare on the command line) and whether it adds cost (named in a 413 ``CostLimit``)."""

    name: str
    parse: Callable[[str, str], Any]
    allowed: str
    switch: bool = False
    costly: bool = False


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("preset", _preset, f"{'|'.join(PRESETS)}: a named set of the options below; explicit ones win"),
    OptionSpec("output", _choice(OUTPUTS), "|".join(OUTPUTS)),
    OptionSpec("bg", _colour, "#rrggbb or #rrggbbaa (hex; '#' optional, write %23 in a URL)"),
    OptionSpec("crop", _flag, "true|false", switch=True),
    OptionSpec(
        "margin", _margin, "pixels (e.g. 20 or 20px) or a percentage of the object's longest side (e.g. 10%), with crop"
    ),
    OptionSpec("format", _choice(FORMATS), "|".join(FORMATS)),
    OptionSpec(
        "size",
        _number(1, MAX_SIZE, integer=True),
        f"an integer 1..{MAX_SIZE}: the result's longest side (never enlarged)",
    ),
    OptionSpec(
        "threshold", _number(0.0, 1.0), "a number in 0..1: alpha >= threshold becomes opaque, the rest transparent"
    ),
    OptionSpec(
        "matte",
        _choice(MATTES),
        "decisive|soft (decisive: opaque or clear but for a soft edge; soft: the model's alpha)",
    ),
    OptionSpec(
        "quality", _choice(QUALITIES), "fast|best (best: the model at 3 views, the most confident kept)", costly=True
    ),
    OptionSpec("tta", _flag, "true|false", switch=True, costly=True),
    OptionSpec("refine", _flag, "true|false", switch=True, costly=True),
    OptionSpec(
        "canvas",
        _canvas,
        f"WxH (each 1..{MAX_SIZE}) or square: the product placed on a canvas of that size",
        costly=True,
    ),
    OptionSpec(
        "fill",
        _number(0.1, 1.0),
        "a number in 0.1..1: the share of the canvas's width or height the product's box takes, whichever binds",
    ),
    OptionSpec("align", _choice(ALIGNS), "center|bottom (bottom: the product's lowest opaque row at floor)"),
    OptionSpec(
        "floor",
        _number(0.0, 1.0),
        "a number in 0..1: with align=bottom, where the product stands, as a share of the canvas height",
    ),
    OptionSpec(
        "shadow",
        _choice(SHADOWS),
        "none|contact|drop (contact: the soft dark under the sole; drop: the silhouette cast behind)",
    ),
    OptionSpec("shadow_opacity", _number(0.0, 1.0), "a number in 0..1: the shadow's darkest opacity"),
    OptionSpec(
        "shadow_blur", _number(0.0, 0.5), "a number in 0..0.5: the shadow's blur, as a share of the product's width"
    ),
)
SPECS = {spec.name: spec for spec in OPTIONS}
ALLOWED = {spec.name: spec.allowed for spec in OPTIONS}  # what each option accepts, as errors quote it
OPTION_KEYS = frozenset(SPECS)


def parse_options(fields: Mapping[str, Any], defaults: Options = Options()) -> Options:  # noqa: B008 - frozen
    """Option fields (values str or bytes; keys must be option names) -> ``Options``; ``OptionError`` if bad.

    ``defaults``: what a field left out means (the server's ``handler.quality``, say); else ``Options()``.
    A ``preset`` expands first (``PRESETS``); the fields given beside it override its values."""
    unknown = sorted(set(fields) - OPTION_KEYS)
    if unknown:
        raise OptionError(unknown[0], f"unknown option {unknown[0]!r}; options are {', '.join(sorted(ALLOWED))}")
    raw = {key: _text(key, value) for key, value in fields.items()}
    if "preset" in raw:
        raw = PRESETS[_preset("preset", raw.pop("preset"))] | raw
    options = replace(defaults, **{key: SPECS[key].parse(key, text) for key, text in raw.items()})
    _check_combinations(options, raw)
    return options


def _check_combinations(options: Options, raw: Mapping[str, str]) -> None:
    if "margin" in raw and not options.crop:
        raise OptionError("margin", "margin applies to the crop: add crop=true")
    if options.output == "mask" and "bg" in raw:
        raise conflict("bg", "output=mask", "a mask has no backdrop; use output=rgb or output=rgba")
    if options.output == "mask" and options.refine:
        raise conflict("refine", "output=mask", "refine corrects the colours of soft edges; a mask has no colours")
    if options.output == "rgb" and options.bg is not None and options.bg[3] != 255:
        raise OptionError("bg", "output=rgb has no transparency: give an opaque bg (#rrggbb) or use output=rgba")
    if "matte" in raw and options.threshold is not None:
        raise conflict("matte", "threshold", "threshold makes the alpha hard (0 or 1), so no matte applies")
    _check_canvas(options, raw)


def _check_canvas(options: Options, raw: Mapping[str, str]) -> None:
    """The catalogue options: placement needs a canvas, shadows need colours."""
    for key in ("fill", "align", "floor"):
        if key in raw and options.canvas is None:
            raise OptionError(key, f"{key} places the product on a canvas: add canvas=WxH or canvas=square")
    if options.canvas is not None and options.crop:
        raise conflict("crop", "canvas", "a canvas already takes the product's box; fill sets the space around it")
    if "floor" in raw and options.align != "bottom":
        raise conflict("floor", f"align={options.align}", "floor is where the product stands with align=bottom")
    if options.shadow != "none" and options.output == "mask":
        raise conflict("shadow", "output=mask", "a shadow is painted on the backdrop or into the alpha of a cutout")
    if options.shadow != "none" and options.threshold is not None:
        raise conflict("shadow", "threshold", "a shadow is semi-transparent; threshold leaves no partial alpha")
    for key in ("shadow_opacity", "shadow_blur"):
        if key in raw and options.shadow == "none":
            raise OptionError(key, f"{key} shapes the shadow: add shadow=contact or shadow=drop")


def _short_text(value: Any) -> bool:
    """A value that reads as an option value rather than an image: UTF-8 text of at most 64 bytes."""
    if isinstance(value, str):
        return len(value) <= 64
    try:
        return len(value) <= 64 and bytes(value).decode("utf-8") is not None
    except (TypeError, ValueError):  # not bytes-like, not UTF-8, or a JSON list of ints above 255 (fuzzing)
        return False


def split_request(
    request: Mapping[str, Any],
    content_type: str | None = None,
    defaults: Options = Options(),  # noqa: B008 - frozen
) -> tuple[dict[str, Any], Options]:
    """One TorchServe request dict -> (the image field(s), its ``Options``; ``defaults`` see ``parse_options``).

    The image is the ``data``/``body`` field, else the one field that is not short text (a multipart file
    under any name); then every other field must be an option. Without a clear image field the fields go
    on whole, for ``request_payload`` to say what is missing. A url-encoded body (``content_type``) goes on
    whole too: TorchServe split the mangled image into fields, and ``request_payload`` refuses it (415).
    """
    if (content_type or "").split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        return dict(request), defaults
    fields = {k: v for k, v in request.items() if k in OPTION_KEYS}
    rest = {k: v for k, v in request.items() if k not in OPTION_KEYS and k not in IGNORED_KEYS}
    image_key = next((k for k in PAYLOAD_KEYS if k in rest), None)
    if image_key is None:
        candidates = [k for k, v in rest.items() if not _short_text(v)]
        if len(candidates) != 1:
            return rest, parse_options(fields, defaults)
        image_key = candidates[0]
    extra = sorted(k for k in rest if k != image_key and k not in PAYLOAD_KEYS)
    if extra:
        raise OptionError(extra[0], f"unknown option {extra[0]!r}; options are {', '.join(sorted(ALLOWED))}")
    return {image_key: rest[image_key]}, parse_options(fields, defaults)
