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
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from shoeseg.pipeline.image_io import InvalidImageError

OUTPUTS = ("rgba", "mask", "rgb")
FORMATS = ("png", "webp")
QUALITIES = ("fast", "best")
MAX_SIZE = 16384
_BOOL = {"true": True, "1": True, "yes": True, "on": True, "": True} | dict.fromkeys(("false", "0", "no", "off"), False)
_HEX = re.compile(r"#?([0-9a-f]{6}|[0-9a-f]{8})")
_MARGIN = re.compile(r"(\d+(?:\.\d+)?)\s*(px|%)?")
# What each option accepts, as quoted in the error messages (and the README).
ALLOWED = {
    "output": "|".join(OUTPUTS),
    "bg": "#rrggbb or #rrggbbaa (hex; '#' optional, write %23 in a URL)",
    "crop": "true|false",
    "margin": "pixels (e.g. 20 or 20px) or a percentage of the object's longest side (e.g. 10%), with crop=true",
    "format": "|".join(FORMATS),
    "size": f"an integer 1..{MAX_SIZE}: the result's longest side (never enlarged)",
    "threshold": "a number in 0..1: alpha >= threshold becomes opaque, the rest transparent",
    "refine": "true|false",
    "tta": "true|false",
    "quality": "fast|best (best: the model at 3 sizes, the most confident kept; ~4x the model time)",
}
OPTION_KEYS = frozenset(ALLOWED)
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


@dataclass(frozen=True)
class Options:
    """What to return for one image. Defaults: a soft-alpha RGBA PNG at the input's size.

    ``bg`` is (r, g, b, a) 0..255 or None; ``margin`` is (value, is_percent).
    """

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
    if not isinstance(value, str):
        value = str(value)
    return value.strip()


def _bad(key: str, value: str) -> OptionError:
    return OptionError(key, f"bad value {key}={value!r}; allowed: {ALLOWED[key]}")


def _flag(key: str, value: str) -> bool:
    if value.lower() not in _BOOL:
        raise _bad(key, value)
    return _BOOL[value.lower()]


def _choice(key: str, value: str, choices: tuple[str, ...]) -> str:
    if value.lower() not in choices:
        raise _bad(key, value)
    return value.lower()


def _number(key: str, value: str, low: float, high: float, integer: bool = False) -> float:
    try:
        number = int(value) if integer else float(value)
    except ValueError:
        raise _bad(key, value) from None
    if not (math.isfinite(number) and low <= number <= high):
        raise _bad(key, value)
    return number


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


def parse_options(fields: Mapping[str, Any], defaults: Options = Options()) -> Options:  # noqa: B008 - frozen
    """Option fields (values str or bytes; keys must be option names) -> ``Options``; ``OptionError`` if bad.

    ``defaults``: what a field left out means (the server's ``handler.quality``, say); else ``Options()``."""
    unknown = sorted(set(fields) - OPTION_KEYS)
    if unknown:
        raise OptionError(unknown[0], f"unknown option {unknown[0]!r}; options are {', '.join(sorted(ALLOWED))}")
    raw = {key: _text(key, value) for key, value in fields.items()}
    kwargs: dict[str, Any] = {}
    for key in ("crop", "refine", "tta"):
        if key in raw:
            kwargs[key] = _flag(key, raw[key])
    if "output" in raw:
        kwargs["output"] = _choice("output", raw["output"], OUTPUTS)
    if "format" in raw:
        kwargs["format"] = _choice("format", raw["format"], FORMATS)
    if "quality" in raw:
        kwargs["quality"] = _choice("quality", raw["quality"], QUALITIES)
    if "bg" in raw:
        kwargs["bg"] = _colour("bg", raw["bg"])
    if "margin" in raw:
        kwargs["margin"] = _margin("margin", raw["margin"])
    if "size" in raw:
        kwargs["size"] = int(_number("size", raw["size"], 1, MAX_SIZE, integer=True))
    if "threshold" in raw:
        kwargs["threshold"] = _number("threshold", raw["threshold"], 0.0, 1.0)
    options = replace(defaults, **kwargs)
    _check_combinations(options, raw)
    return options


def _check_combinations(options: Options, raw: Mapping[str, str]) -> None:
    if "margin" in raw and not options.crop:
        raise OptionError("margin", "margin applies to the crop: add crop=true")
    if options.output == "mask" and "bg" in raw:
        raise OptionError("bg", "bg does not apply to output=mask; use output=rgb or output=rgba")
    if options.output == "mask" and options.refine:
        raise OptionError("refine", "refine corrects the colours of soft edges; output=mask has no colours")
    if options.output == "rgb" and options.bg is not None and options.bg[3] != 255:
        raise OptionError("bg", "output=rgb has no transparency: give an opaque bg (#rrggbb) or use output=rgba")


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
