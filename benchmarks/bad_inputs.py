"""The bad-input corpus: every kind of body a marketplace may send us, generated (nothing downloaded).

``corpus()`` maps a name to a ``Case``: the HTTP body and Content-Type to send, the gRPC input map, and
the expected outcome (200 with a cutout of ``size``, or a 4xx JSON error whose message contains
``words``). The same cases drive the unit tests of the pure functions (``handler_request`` gives what
TorchServe hands the handler) and the integration test through a real server (REST and gRPC).
"""

from __future__ import annotations

import base64
import io
import json
import struct
import urllib.parse
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

OCTET = "application/octet-stream"
BOUNDARY = "shoeseg-corpus-boundary"


@dataclass(frozen=True)
class Case:
    """One request and what the service must answer.

    ``status`` 200: a cutout (RGBA PNG) of ``size`` = (width, height); ``colour``, when set, is the RGB the
    cutout's pixels must be close to (first frame / page checks). Otherwise a JSON error with this status
    whose message contains ``words``. ``frontend``: answered by TorchServe's frontend itself (bare status,
    no JSON). ``heavy``: a big image, left out of load tests.
    """

    name: str
    make: Callable[[], bytes]
    status: int = 200
    words: str = ""
    size: tuple[int, int] | None = None
    colour: tuple[int, int, int] | None = None
    content_type: str = OCTET
    fields: dict[str, bytes] | None = None  # a multipart form instead of a raw body
    heavy: bool = False
    frontend: bool = False
    grpc_status: int | None = None  # when gRPC answers differently (None: same as REST)
    grpc_words: str | None = None
    _cache: dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)

    def data(self) -> bytes:
        """The image (or non-image) bytes, generated once."""
        if "data" not in self._cache:
            self._cache["data"] = self.make()
        return self._cache["data"]

    def http_body(self) -> tuple[bytes, str]:
        """(body, Content-Type) of the REST request."""
        if self.fields is None:
            return self.data(), self.content_type
        return multipart(self.fields), f"multipart/form-data; boundary={BOUNDARY}"

    def grpc_input(self) -> dict[str, bytes]:
        """The ``input`` map of a gRPC PredictionsRequest."""
        return dict(self.fields) if self.fields is not None else {"data": self.data()}

    def handler_request(self) -> dict[str, Any]:
        """What TorchServe hands the handler for this request (json -> dict, text/* -> str, forms -> fields)."""
        if self.fields is not None:
            return dict(self.fields)
        data = self.data()
        if self.content_type == "application/x-www-form-urlencoded":
            return dict(urllib.parse.parse_qsl(data.decode("latin-1")))
        if self.content_type == "application/json":
            return {"body": json.loads(data)}
        if self.content_type.startswith("text"):
            return {"body": data.decode("utf-8")}
        return {"body": data}


def multipart(fields: dict[str, bytes]) -> bytes:
    """A multipart/form-data body; a field whose name contains '.' is sent as a file of that name."""
    parts = []
    for name, value in fields.items():
        if "." in name:
            head = f'Content-Disposition: form-data; name="{name.split(".")[0]}"; filename="{name}"\r\n'
            head += "Content-Type: image/jpeg\r\n"  # what a browser says for a .jpg, whatever the bytes are
        else:
            head = f'Content-Disposition: form-data; name="{name}"\r\n'
        parts.append(f"--{BOUNDARY}\r\n{head}\r\n".encode() + value + b"\r\n")
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


# ---- generators --------------------------------------------------------------------------------------


def photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A product-photo-like RGB image: light backdrop, dark ellipse 'shoe', mild noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.ogrid[0:height, 0:width]
    inside = ((yy - height / 2) / (height / 3)) ** 2 + ((xx - width / 2) / (width / 2.6)) ** 2 < 1
    base = np.where(inside[..., None], np.array([60, 40, 30], np.uint8), np.array([235, 235, 230], np.uint8))
    noise = rng.integers(0, 8, size=(min(height, 64), min(width, 64), 1), dtype=np.uint8)
    tiled = np.tile(noise, (-(-height // noise.shape[0]), -(-width // noise.shape[1]), 3))[:height, :width]
    return (base + tiled).astype(np.uint8)


def encode(image: Image.Image | np.ndarray, fmt: str, **kwargs: Any) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` with one tiny IDAT: a decompression bomb's header."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\x00")) + _chunk(b"IEND", b"")


def gif_bomb() -> bytes:
    """A 66-byte GIF whose screen and frame claim 65535 x 65535 pixels (4.3 GP)."""
    screen = b"GIF89a" + struct.pack("<HHBBB", 65535, 65535, 0, 0, 0)
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 65535, 65535, 0) + b"\x02\x02\x44\x01\x00"
    return screen + frame + b"\x3b"


def frames(fmt: str, **kwargs: Any) -> bytes:
    """Two frames/pages: red 60x40 first, blue second (another size for TIFF)."""
    first = Image.new("RGB", (60, 40), (255, 0, 0))
    second = Image.new("RGB", (30, 90) if fmt == "TIFF" else (60, 40), (0, 0, 255))
    return encode(first, fmt, save_all=True, append_images=[second], **kwargs)


def png16() -> bytes:
    import cv2

    grey = np.full((40, 50), 65535, np.uint16)
    grey[:, :25] = 32896
    return cv2.imencode(".png", grey)[1].tobytes()


def palette_transparent() -> bytes:
    image = Image.new("P", (48, 32), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.paste(1, (0, 0, 48, 16))
    return encode(image, "PNG", transparency=0)


def grey_alpha() -> bytes:
    la = np.zeros((30, 44, 2), np.uint8)
    la[..., 0], la[:, 22:, 1] = 50, 255
    return encode(Image.fromarray(la, "LA"), "PNG")


def exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    return encode(photo(80, 40), "JPEG", exif=exif.tobytes())


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def zip_file() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("shoe.jpg", encode(photo(32, 32), "JPEG"))
    return buf.getvalue()


SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><circle r="9"/></svg>'
HTML = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>not here</body></html>"
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def corpus(max_bytes: int = 100 * 1024 * 1024, frontend_max_bytes: int | None = None) -> dict[str, Case]:
    """Every case by name. ``max_bytes``: the handler's byte limit under test; ``frontend_max_bytes``:
    TorchServe's max_request_size (adds a case above it, REST only, when given)."""
    small = lambda: encode(photo(64, 48), "PNG")  # noqa: E731
    cases = [
        Case("empty-body", lambda: b"", 400, "empty"),
        Case("text", lambda: b"hello, this is a shoe", 415, "not a recognised image", content_type="text/plain"),
        Case("html", lambda: HTML, 415, "HTML", content_type="text/html"),
        Case("json", lambda: b'{"image": "shoe.jpg"}', 415, "JSON", content_type="application/json"),
        Case("truncated-jpeg", lambda: truncated(encode(photo(300, 200), "JPEG")), 400, "truncated"),
        Case("truncated-png", lambda: truncated(encode(photo(300, 200), "PNG")), 400, "truncated"),
        Case("png-header-cut", lambda: encode(photo(30, 20), "PNG")[:20], 400, "PNG header is corrupt or cut short"),
        Case("wrong-extension", small, 200, size=(64, 48), fields={"data.jpg": small()}),  # a PNG named .jpg
        Case("one-pixel", lambda: encode(photo(1, 1), "PNG"), 200, size=(1, 1)),
        Case("one-column", lambda: encode(photo(1, 500), "PNG"), 200, size=(1, 500)),
        Case("one-row", lambda: encode(photo(700, 1), "JPEG"), 200, size=(700, 1)),
        Case("zero-width", lambda: png_header_only(0, 100), 400, "zero width"),
        Case("bomb-png-header", lambda: png_header_only(100_000, 100_000), 413, "pixel limit"),
        Case("bomb-gif", gif_bomb, 413, "pixel limit"),
        Case("photo-40mp", lambda: encode(photo(8000, 5000), "JPEG", quality=85), 200, size=(8000, 5000), heavy=True),
        Case("photo-52mp", lambda: encode(photo(8320, 6250), "JPEG", quality=70), 413, "pixel limit", heavy=True),
        Case("animated-gif", lambda: frames("GIF"), 200, size=(60, 40), colour=(255, 0, 0)),
        Case("animated-webp", lambda: frames("WEBP", lossless=True), 200, size=(60, 40), colour=(255, 0, 0)),
        Case("multipage-tiff", lambda: frames("TIFF"), 200, size=(60, 40), colour=(255, 0, 0)),
        Case("png-16bit", png16, 200, size=(50, 40)),
        Case("cmyk-jpeg", lambda: encode(Image.new("CMYK", (40, 30), (0, 255, 255, 0)), "JPEG"), 200, size=(40, 30)),
        Case("palette-transparent", palette_transparent, 200, size=(48, 32)),
        Case("grey-alpha", grey_alpha, 200, size=(44, 30)),
        Case("exif-rotated", exif_rotated, 200, size=(40, 80)),
        Case(
            "corrupt-exif",
            lambda: encode(photo(50, 30), "JPEG", exif=b"Exif\x00\x00MM\x00*\xff\xff junk"),
            200,
            size=(50, 30),
        ),  # fmt: skip
        Case("svg", lambda: SVG, 415, "SVG", content_type="image/svg+xml"),
        Case("pdf", lambda: PDF, 415, "PDF", content_type="application/pdf"),
        Case("zip", zip_file, 415, "ZIP", content_type="application/zip"),
        Case("heic", lambda: b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64), 415, "HEIC"),
        Case("random-bytes", lambda: np.random.default_rng(5).bytes(4096), 415, "not a recognised image"),
        Case("multipart-without-file", lambda: b"", 400, "no image", fields={"name": b"shoe", "colour": b"red"}),
        Case("multipart-file-named-image", small, 200, size=(64, 48), fields={"image": small()}),
        Case("base64-body", lambda: base64.b64encode(small()), 400, "base64", content_type="text/plain"),
        Case("data-uri", lambda: b"data:image/png;base64," + base64.b64encode(small()), 400, "base64"),
        Case(
            "form-urlencoded",  # what `curl -d 'shoe=red'` sends: fields, no file
            lambda: b"shoe=red&size=42",
            415,
            "url-encoded form",
            content_type="application/x-www-form-urlencoded",
            grpc_status=415,  # gRPC has no Content-Type: plain bytes, not an image
            grpc_words="not a recognised image",
        ),
        Case(
            "form-urlencoded-binary",  # `curl --data-binary @shoe.jpg` without a Content-Type
            lambda: encode(photo(64, 48), "JPEG"),
            500,  # TorchServe's frontend fails to parse it as a form: ErrorDataDecoderException (documented)
            size=(64, 48),
            content_type="application/x-www-form-urlencoded",
            frontend=True,
            grpc_status=200,  # gRPC has no Content-Type: the bytes arrive intact and are served
        ),
        Case("over-byte-limit", lambda: encode(photo(8, 8), "JPEG") + bytes(max_bytes), 413, "byte request limit"),
    ]
    if frontend_max_bytes:
        cases.append(
            Case("over-frontend-limit", lambda: bytes(frontend_max_bytes + 1), 413, frontend=True, grpc_status=413)
        )
    named = {case.name: case for case in cases}
    assert len(named) == len(cases), "duplicate case names"
    return named
