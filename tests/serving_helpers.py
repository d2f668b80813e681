"""Shared by the serving tests: a tiny random-weight checkpoint and generated images."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from model import ModelConfig, build_model, save_checkpoint

REPO = Path(__file__).resolve().parents[1]
TINY = ModelConfig(
    encoder="tf_efficientnet_lite0",
    decoder_channels=(32, 24, 16, 16),
    skip_channels=8,
    refine_channels=8,
    input_size=128,
)


def tiny_checkpoint(path: Path) -> Path:
    """Save a small random-weight ResUNet as a shipped (fp16) checkpoint; serving doesn't need trained weights."""
    save_checkpoint(path, build_model(TINY), half=True)
    return path


def image_bytes(width: int, height: int, fmt: str = "PNG") -> bytes:
    """A ``width`` x ``height`` test pattern encoded as ``fmt``."""
    yy, xx = np.mgrid[0:height, 0:width]
    rgb = np.stack([xx % 256, yy % 256, np.full_like(xx, 90)], axis=-1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` with one tiny IDAT: a decompression bomb's header."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00")) + chunk(b"IEND", b"")
