"""Property-based fuzzing (hypothesis) of the request parser, the option parser, the image decoder and the
handler: every input ends in a cutout or one of the documented errors, never another exception, and within a
bounded time.

    pytest tests/test_fuzz.py                      # the short run of `make test` (a few dozen examples each)
    python -m tests.test_fuzz --minutes 10         # `make fuzz`: every property round-robin for 10 minutes

Inputs: random bytes; real JPEG / PNG / WebP / TIFF / GIF / BMP files of many modes, mutated (bit flips,
overwritten header fields, cuts, splices); generated valid images of every mode; random request dicts as
TorchServe hands them (multipart fields, raw bodies, JSON, text); random option maps; and, through a real
TorchServe, random multipart bodies (the frontend's own parser too).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from functools import cache

import numpy as np
import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from PIL import Image
from ts.context import Context

from benchmarks import bad_inputs
from shoeseg.constants import is_png
from shoeseg.handler.resunet_handler import ResUNetHandler
from shoeseg.pipeline.image_io import InvalidImageError, decode_image, request_payload
from shoeseg.pipeline.options import (
    FORMATS,
    MAX_SIZE,
    OPTION_KEYS,
    OUTPUTS,
    OptionError,
    Options,
    parse_options,
    split_request,
)
from shoeseg.serving import server as ts_server
from tests.test_handler import handler_and_context, run  # noqa: F401 - the tiny-model handler fixture

# The long run (`make fuzz`) sets this before importing: many examples per call, called until time is up.
LONG = bool(os.environ.get("SHOESEG_FUZZ_LONG"))
FUZZ = settings(
    max_examples=400 if LONG else 25,
    deadline=None,  # timing is asserted with a generous bound instead: the CPU here is shared
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Statuses a refusal may carry (README: errors): 400 InvalidImage / InvalidOption, 413 ImageTooLarge /
# CostLimit, 415 UnsupportedMediaType, 422 NoObject, 429 Busy. 500 InternalError is the unforeseen one.
DOCUMENTED = {400, 413, 415, 422, 429}
ERROR_TYPES = {
    "InvalidImage",
    "InvalidOption",
    "ImageTooLarge",
    "CostLimit",
    "UnsupportedMediaType",
    "NoObject",
    "Busy",
}
MAX_PIXELS = 4_000_000  # the decoder's limit under fuzz: keeps a mutated header's claimed size cheap
DECODE_BOUND_S = 10.0  # generous bounds on a shared 2-core CPU: a hang or a pathological case, not speed
BATCH_BOUND_S = 30.0
EXAMPLES: Counter[str] = Counter()  # examples run per property (the long run reports them)


# ---- seeds and strategies ------------------------------------------------------------------------------


def _save(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


@cache
def seeds() -> dict[str, bytes]:
    """Small real files of each format and several modes, the starting points of the mutations."""
    rgb = Image.fromarray(bad_inputs.photo(48, 32, seed=3))
    rgba = rgb.copy()
    rgba.putalpha(Image.linear_gradient("L").resize(rgb.size))
    exif = Image.Exif()
    exif[0x0112] = 8
    return {
        "jpeg": _save(rgb, "JPEG", quality=80),
        "jpeg-progressive-exif": _save(rgb, "JPEG", progressive=True, exif=exif.tobytes()),
        "jpeg-cmyk": _save(rgb.convert("CMYK"), "JPEG"),
        "jpeg-grey": _save(rgb.convert("L"), "JPEG"),
        "png": _save(rgb, "PNG"),
        "png-rgba": _save(rgba, "PNG"),
        "png-palette": bad_inputs.palette_transparent(),
        "png-16bit": bad_inputs.png16(),
        "png-la": bad_inputs.grey_alpha(),
        "webp": _save(rgb, "WEBP", quality=70),
        "webp-lossless-alpha": _save(rgba, "WEBP", lossless=True),
        "webp-animated": bad_inputs.frames("WEBP", lossless=True),
        "tiff": _save(rgb, "TIFF"),
        "tiff-deflate-rgba": _save(rgba, "TIFF", compression="tiff_deflate"),
        "tiff-float": _save(Image.fromarray(np.linspace(0, 1, 32 * 48, dtype=np.float32).reshape(32, 48)), "TIFF"),
        "tiff-multipage": bad_inputs.frames("TIFF"),
        "gif": _save(rgb.convert("P"), "GIF"),
        "gif-animated": bad_inputs.frames("GIF"),
        "bmp": _save(rgb, "BMP"),
    }


@st.composite
def mutated_files(draw: st.DrawFn) -> bytes:
    """A seed file with 1-6 mutations, biased to its first 64 bytes (magic numbers, sizes, chunk headers)."""
    data = bytearray(seeds()[draw(st.sampled_from(sorted(seeds())))])
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        head = draw(st.booleans())
        pos = draw(st.integers(0, min(len(data), 64) - 1 if head else len(data) - 1))
        op = draw(st.sampled_from(("flip", "byte", "int", "cut", "insert", "delete", "splice")))
        if op == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte":
            data[pos] = draw(st.integers(0, 255))
        elif op == "int":  # a width, height, length or offset field set to an edge value
            value = (
                draw(st.sampled_from((0, 1, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF))) if draw(st.booleans()) else None
            )
            width = draw(st.sampled_from((2, 4)))
            value = draw(st.integers(0, 256**width - 1)) if value is None else value % 256**width
            data[pos : pos + width] = value.to_bytes(width, draw(st.sampled_from(("big", "little"))))
        elif op == "cut":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=32))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 32))]
        else:  # another seed's tail: a frame, chunk or IFD of another file
            other = seeds()[draw(st.sampled_from(sorted(seeds())))]
            data[pos:] = other[draw(st.integers(0, len(other) - 1)) :]
    return bytes(data)


# mode -> formats that can store it
_MODE_FORMATS = {
    "RGB": ("JPEG", "PNG", "WEBP", "TIFF", "GIF", "BMP"),
    "RGBA": ("PNG", "WEBP", "TIFF", "GIF"),
    "L": ("JPEG", "PNG", "TIFF", "GIF", "BMP"),
    "LA": ("PNG", "TIFF"),
    "P": ("PNG", "GIF", "BMP", "TIFF"),
    "1": ("PNG", "TIFF", "BMP", "GIF"),
    "I;16": ("PNG", "TIFF"),
    "I": ("PNG", "TIFF"),
    "F": ("TIFF",),
    "CMYK": ("JPEG", "TIFF"),
}


@st.composite
def valid_images(draw: st.DrawFn) -> bytes:
    """A well-formed image of any size 1..96 px a side, mode and format, noisy or flat (flat: no object)."""
    w, h = draw(st.integers(1, 96)), draw(st.integers(1, 96))
    mode = draw(st.sampled_from(sorted(_MODE_FORMATS)))
    fmt = draw(st.sampled_from(_MODE_FORMATS[mode]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    flat = draw(st.booleans())
    rgb = np.full((h, w, 3), rng.integers(0, 256), np.uint8) if flat else rng.integers(0, 256, (h, w, 3), np.uint8)
    if mode == "I;16":
        image = Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
    elif mode in ("I", "F"):
        image = Image.fromarray(
            rgb[..., 0].astype(np.int32 if mode == "I" else np.float32) * (1 / 255 if mode == "F" else 1)
        )
    else:
        image = Image.fromarray(rgb).convert(mode)
    try:
        return _save(image, fmt)
    except (OSError, ValueError, KeyError):  # a mode / format pair Pillow cannot write: not an input
        reject()


bodies = st.one_of(st.binary(max_size=2048), mutated_files(), valid_images())

OPTION_VALUES = (
    *OUTPUTS, "RGBA", " mask ", "sepia",  # output
    "#ffffff", "00ff0080", "#12345", "red", "#GGGGGG",  # bg
    "true", "false", "1", "0", "yes", "off", "maybe", "",  # flags
    "20", "20px", "10%", "100%", "150%", "-5", "1e9", "nan", "16384", "16385", "1.5",  # margin / size
    *FORMATS, "gif", "PNG",  # format
    "0.5", "1", "1.01", "inf", "-0", "1e-300",  # threshold
    "fast", "best", "high",  # quality
)  # fmt: skip
option_values = st.one_of(
    st.sampled_from(OPTION_VALUES), st.text(max_size=16), st.binary(max_size=16), st.binary(max_size=16).map(bytearray)
)
VALID_VALUES = {
    "output": OUTPUTS, "bg": ("#ffffff", "00ff0080", "#000000"), "crop": ("true", "false"),
    "margin": ("0", "12px", "10%"), "format": FORMATS, "size": ("1", "40", "16384"), "threshold": ("0", "0.5", "1"),
    "refine": ("true", "false"), "tta": ("true", "false"), "quality": ("fast", "best"),
}  # fmt: skip
# half the maps from accepted values only (the combination rules still refuse some), so that the handler's
# crop / size / threshold / refine / best / WebP paths all run
valid_option_maps = st.fixed_dictionaries(
    {}, optional={key: st.sampled_from(values) for key, values in VALID_VALUES.items()}
)
option_maps = st.one_of(
    valid_option_maps, st.dictionaries(st.sampled_from(sorted(OPTION_KEYS)), option_values, max_size=6)
)
field_names = st.one_of(
    st.sampled_from(("data", "body", "file", "image", "model_name", *sorted(OPTION_KEYS))), st.text(max_size=10)
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
# what TorchServe 0.12 hands the handler as a field's value: bytes / bytearray (form fields, raw bodies),
# str (text/*), the decoded JSON document (application/json)
field_values = st.one_of(bodies, bodies.map(bytearray), option_values, st.text(max_size=64), json_values)
requests = st.dictionaries(field_names, field_values, max_size=5)
content_types = st.one_of(
    st.none(),
    st.sampled_from((
        "application/octet-stream", "image/jpeg", "multipart/form-data; boundary=x", "application/json",
        "application/x-www-form-urlencoded", " APPLICATION/X-WWW-FORM-URLENCODED ; charset=utf-8", "text/plain",
    )),
    st.text(max_size=40),
)  # fmt: skip


# ---- properties ----------------------------------------------------------------------------------------


def _documented(err: InvalidImageError) -> None:
    """A refusal as the server would send it: a documented status and type, a message, JSON-serialisable."""
    doc = json.loads(json.dumps(err.to_json()))
    assert err.status in DOCUMENTED and doc["code"] == err.status, doc
    assert doc["type"] in ERROR_TYPES and doc["message"], doc


@FUZZ
@given(data=bodies)
def test_decoder_returns_rgb_or_a_documented_error(data: bytes) -> None:
    EXAMPLES["decoder"] += 1
    start = time.perf_counter()
    try:
        rgb = decode_image(data, MAX_PIXELS)
    except InvalidImageError as err:
        _documented(err)
    else:
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.flags.c_contiguous
        assert 0 < rgb.shape[0] * rgb.shape[1] <= MAX_PIXELS
    assert time.perf_counter() - start < DECODE_BOUND_S


def _check_options(options: Options) -> None:
    assert options.output in OUTPUTS and options.format in FORMATS and options.quality in ("fast", "best")
    assert options.size is None or 1 <= options.size <= MAX_SIZE
    assert options.threshold is None or 0.0 <= options.threshold <= 1.0
    assert options.bg is None or (len(options.bg) == 4 and all(0 <= c <= 255 for c in options.bg))
    value, percent = options.margin
    assert 0 <= value <= (100 if percent else MAX_SIZE)


@FUZZ
@given(fields=st.one_of(option_maps, st.dictionaries(st.text(max_size=12), option_values, max_size=4)))
def test_option_parser_returns_options_or_names_the_option(fields: dict) -> None:
    EXAMPLES["options"] += 1
    try:
        options = parse_options(fields)
    except OptionError as err:
        _documented(err)
        assert err.status == 400 and isinstance(err.option, str) and err.to_json()["option"] == err.option
        assert err.option not in OPTION_KEYS or "allowed" in err.to_json() or "apply" in err.message
    else:
        _check_options(options)
        assert set(fields) <= OPTION_KEYS


@FUZZ
@given(request=requests, content_type=content_types, max_bytes=st.sampled_from((0, 64, 1 << 20)))
def test_request_parser_returns_a_body_or_a_documented_error(
    request: dict, content_type: str | None, max_bytes: int
) -> None:
    EXAMPLES["request"] += 1
    try:
        fields, options = split_request(request, content_type)
        payload = request_payload(fields, content_type, max_bytes)
    except InvalidImageError as err:
        _documented(err)
    else:
        assert isinstance(payload, bytes) and (not max_bytes or len(payload) <= max_bytes)
        _check_options(options)


handler_requests = st.builds(
    lambda body, options, key: {key: body, **options},
    st.one_of(bodies, valid_images()),
    option_maps,
    st.sampled_from(("body", "data", "file")),
)


@settings(FUZZ, max_examples=400 if LONG else 12)  # a batch through the model: the slowest property
@given(batch=st.lists(st.one_of(handler_requests, requests), min_size=1, max_size=4))
def test_handler_answers_each_request_with_a_cutout_or_a_documented_error(
    handler_and_context: tuple[ResUNetHandler, Context],  # noqa: F811
    batch: list[dict],
) -> None:
    """A whole batch through the handler with the tiny model: one answer per request, each a cutout of its
    content type or the JSON of a documented refusal with its status, never a 500."""
    EXAMPLES["handler"] += 1
    handler, context = handler_and_context
    start = time.perf_counter()
    out = run(handler, context, batch)
    assert time.perf_counter() - start < BATCH_BOUND_S
    for idx, answer in enumerate(out):
        status = context.get_response_status(idx)[0]
        kind = context.get_response_content_type(idx)
        if status == 200:
            assert kind in ("image/png", "image/webp") and isinstance(answer, bytes) and answer
            assert is_png(answer) if kind == "image/png" else answer[8:12] == b"WEBP"
        else:
            doc = json.loads(answer)
            assert kind == "application/json" and status in DOCUMENTED and doc["code"] == status, doc
            assert doc["type"] in ERROR_TYPES and doc["message"], doc


def test_found_by_fuzzing_refine_on_a_single_pixel(handler_and_context: tuple[ResUNetHandler, Context]) -> None:  # noqa: F811
    """refine=true on a 1x1 result (a 1 px image, or size=1) was a 500: pymatting divided by zero."""
    handler, context = handler_and_context
    one = _save(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG")
    out = run(
        handler, context, [{"body": one, "refine": b"true"}, {"body": seeds()["png"], "size": b"1", "refine": b"1"}]
    )
    assert [context.get_response_status(i)[0] for i in range(2)] == [200, 200]
    assert all(Image.open(io.BytesIO(o)).size == (1, 1) for o in out)


def test_found_by_fuzzing_a_json_list_beside_the_image() -> None:
    """A field holding a list of ints above 255 (a JSON value) raised ValueError in the image-field guess."""
    with pytest.raises(InvalidImageError) as info:
        fields, _ = split_request({"x": [300]})
        request_payload(fields)
    assert info.value.status == 400 and "no image" in info.value.message


# ---- through a real TorchServe: the frontend's multipart parser too ------------------------------------


PART_TYPES = ("image/jpeg", "text/plain", "application/octet-stream", "x")


@st.composite
def multipart_bodies(draw: st.DrawFn) -> tuple[bytes, str]:
    """(body, Content-Type): a multipart form of 0-4 random parts, sometimes with broken framing."""
    boundary = draw(st.sampled_from(("b0undary", "x", "----WebKitFormBoundary7MA4YWxkTrZu0gW")))
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(
            st.one_of(st.sampled_from(("data", "file", "image", *sorted(OPTION_KEYS))), st.text('abc_"; =', max_size=8))
        )
        value = draw(st.one_of(bodies, st.sampled_from(OPTION_VALUES).map(str.encode), st.binary(max_size=64)))
        disposition = f'form-data; name="{name}"'
        if draw(st.booleans()):
            disposition += f'; filename="{draw(st.sampled_from(("shoe.jpg", "a.png", "", "x")))}"'
        head = f"Content-Disposition: {disposition}\r\n"
        if draw(st.booleans()):
            head += f"Content-Type: {draw(st.sampled_from(PART_TYPES))}\r\n"
        parts.append(f"--{boundary}\r\n{head}\r\n".encode() + value + b"\r\n")
    body = b"".join(parts) + (f"--{boundary}--\r\n".encode() if draw(st.booleans()) or not parts else b"")
    if draw(st.integers(0, 4)) == 0:  # broken framing: LF line ends, or a cut
        body = body.replace(b"\r\n", b"\n") if draw(st.booleans()) else body[: draw(st.integers(0, len(body)))]
    declared = boundary if draw(st.integers(0, 5)) else "other-boundary"
    return body, f"multipart/form-data; boundary={declared}"


def _frontend_refusal(status: int, body: bytes) -> bool:
    """TorchServe's frontend refusing a form it cannot parse itself (its own JSON type, e.g.
    ErrorDataDecoderException: documented in benchmarks/bad_inputs.py), not a handler failure."""
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    return status in (400, 500) and doc.get("type") not in ERROR_TYPES | {"InternalError"} and "Worker" not in str(doc)


@pytest.mark.integration
@settings(FUZZ, max_examples=200 if LONG else 20)
@given(
    request=st.one_of(multipart_bodies(), st.tuples(bodies, st.sampled_from(("application/octet-stream", "image/png"))))
)
def test_server_answers_random_bodies(server: ts_server.Server, request: tuple[bytes, str]) -> None:
    EXAMPLES["server"] += 1
    body, content_type = request
    pid = ts_server.worker_status(server)[0]["pid"]
    start = time.monotonic()
    status, answer = _post(server, body, content_type)
    assert time.monotonic() - start < BATCH_BOUND_S
    if status != 200 and not _frontend_refusal(status, answer):
        doc = json.loads(answer)
        assert status in DOCUMENTED and doc["code"] == status and doc["type"] in ERROR_TYPES, (status, doc)
    workers = ts_server.worker_status(server)
    assert [w["pid"] for w in workers] == [pid] and workers[0]["status"] == "READY"


def _post(server: ts_server.Server, body: bytes, content_type: str) -> tuple[int, bytes]:
    import http.client
    import urllib.parse

    parts = urllib.parse.urlsplit(server.inference_url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=BATCH_BOUND_S)
    try:
        conn.request("POST", "/predictions/resunet", body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# ---- the long run --------------------------------------------------------------------------------------


def long_run(minutes: float, handler_fixture: Callable[[], tuple[ResUNetHandler, Context]]) -> dict:
    """Each in-process property called in turn (``max_examples`` fresh examples per call) until ``minutes``
    are spent; a failure (hypothesis's shrunk example) is recorded and the run goes on."""
    handler = handler_fixture()
    properties = {
        "decoder": test_decoder_returns_rgb_or_a_documented_error,
        "options": test_option_parser_returns_options_or_names_the_option,
        "request": test_request_parser_returns_a_body_or_a_documented_error,
        "handler": lambda: test_handler_answers_each_request_with_a_cutout_or_a_documented_error(
            handler_and_context=handler
        ),
    }
    failures: list[str] = []
    deadline = time.monotonic() + minutes * 60
    while time.monotonic() < deadline:
        for name, prop in properties.items():
            if time.monotonic() >= deadline:
                break
            try:
                prop()
            except Exception as err:  # noqa: BLE001 - counted and reported, the run goes on
                notes = "\n".join(getattr(err, "__notes__", []))  # hypothesis's falsifying example
                failures.append(f"{name}: {type(err).__name__}: {str(err)[:1000]}\n{notes[:3000]}")
                print(failures[-1], flush=True)
        print(f"{dict(EXAMPLES)} failures {len(failures)}", flush=True)
    return {"minutes": minutes, "examples": dict(EXAMPLES), "failures": failures}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.test_fuzz", description="the long fuzz run (make fuzz)")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--out", help="also write the counts as JSON here")
    args = parser.parse_args(argv)
    if not LONG:
        parser.error("set SHOESEG_FUZZ_LONG=1 (make fuzz does) so that each call runs many examples")
    import tempfile
    from pathlib import Path

    from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl

    from tests.serving_helpers import REPO, tiny_checkpoint

    def make_handler() -> tuple[ResUNetHandler, Context]:
        import yaml

        model_dir = Path(tempfile.mkdtemp(prefix="shoeseg-fuzz-"))
        tiny_checkpoint(model_dir / "tiny.pth")
        metrics = MetricsCacheYamlImpl(config_file_path=str(REPO / "metrics.yaml"))
        metrics.initialize_cache()
        metrics.model_name = "resunet"
        manifest = {"model": {"modelName": "resunet", "serializedFile": "tiny.pth", "handler": "resunet_handler.py"}}
        context = Context("resunet", str(model_dir), manifest, 8, None, "0.12.0", metrics=metrics,
                          model_yaml_config=yaml.safe_load((REPO / "model-config.yaml").read_text()))  # fmt: skip
        handler = ResUNetHandler()
        handler.initialize(context)
        return handler, context

    result = long_run(args.minutes, make_handler)
    total = sum(result["examples"].values())
    print(f"fuzz: {total} examples in {args.minutes:g} min ({result['examples']}), {len(result['failures'])} failures")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
