"""shoeseg.pipeline.image_io: decoding every accepted format, letterbox geometry, the RGBA PNG, the error paths."""

from __future__ import annotations

import base64
import io

import cv2
import numpy as np
import pytest
from PIL import Image

from shoeseg.model.config import IMAGENET_MEAN, IMAGENET_STD
from shoeseg.pipeline.image_io import (
    DEFAULT_MAX_PIXELS,
    InvalidImageError,
    decode_image,
    encode_rgba_png,
    letterbox,
    request_payload,
    unletterbox_probability,
)
from tests.serving_helpers import png_header_only

W, H = 37, 53  # odd on purpose


def gradient(width: int = W, height: int = H) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) % 256], axis=-1).astype(np.uint8)


def encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF"])
def test_rgb_formats(fmt: str) -> None:
    rgb = gradient()
    out = decode_image(encode(Image.fromarray(rgb), fmt))
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    if fmt in ("PNG", "BMP", "TIFF"):
        np.testing.assert_array_equal(out, rgb)


def test_bytearray_and_memoryview_accepted() -> None:
    data = encode(Image.fromarray(gradient()), "PNG")
    assert decode_image(bytearray(data)).shape == decode_image(memoryview(data)).shape == (H, W, 3)


def test_grey() -> None:
    out = decode_image(encode(Image.fromarray(gradient()[..., 0]), "PNG"))
    assert out.shape == (H, W, 3)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_la_composited_on_white() -> None:
    la = np.zeros((H, W, 2), np.uint8)
    la[..., 0] = 50
    la[:, W // 2 :, 1] = 255  # right half opaque dark grey, left half transparent
    out = decode_image(encode(Image.fromarray(la, "LA"), "PNG"))
    assert (out[:, : W // 2] == 255).all() and (out[:, W // 2 :] == 50).all()


def test_rgba_composited_on_white() -> None:
    rgba = np.dstack([gradient(), np.zeros((H, W), np.uint8)])
    rgba[: H // 2, :, 3] = 255
    out = decode_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    np.testing.assert_array_equal(out[: H // 2], gradient()[: H // 2])
    assert (out[H // 2 :] == 255).all()


def test_palette_with_transparency() -> None:
    image = Image.new("P", (W, H), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.paste(1, (0, 0, W, H // 2))  # top half red (index 1), bottom index 0 = transparent
    out = decode_image(encode(image, "PNG", transparency=0))
    assert (out[: H // 2] == [255, 0, 0]).all() and (out[H // 2 :] == 255).all()
    gif = decode_image(encode(image, "GIF", transparency=0))
    assert gif.shape == (H, W, 3) and (gif[H // 2 :] == 255).all()


def test_gif_first_frame() -> None:
    frames = [Image.new("RGB", (W, H), c) for c in [(255, 0, 0), (0, 0, 255)]]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    out = decode_image(data)
    assert out.shape == (H, W, 3) and out[..., 0].mean() > 200 and out[..., 2].mean() < 50


def test_cmyk_jpeg() -> None:
    cmyk = Image.new("CMYK", (W, H), (0, 255, 255, 0))  # full magenta + yellow = red
    out = decode_image(encode(cmyk, "JPEG", quality=95))
    assert out.shape == (H, W, 3)
    assert out[..., 0].mean() > 200 and out[..., 1].mean() < 60 and out[..., 2].mean() < 60


def test_16bit_png() -> None:
    grey16 = np.full((H, W), 65535, np.uint16)
    grey16[:, : W // 2] = 32896  # 128 * 257
    ok, buf = cv2.imencode(".png", grey16)
    assert ok
    out = decode_image(buf.tobytes())
    assert out.shape == (H, W, 3) and (out[:, W // 2 :] == 255).all() and (out[:, : W // 2] == 128).all()
    rgb16 = (gradient().astype(np.uint16) * 257)[..., ::-1]  # cv2 writes BGR
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb16))
    np.testing.assert_array_equal(decode_image(buf.tobytes()), gradient())


@pytest.mark.parametrize("orientation,swapped", [(1, False), (3, False), (6, True), (8, True)])
def test_exif_orientation(orientation: int, swapped: bool) -> None:
    image = Image.fromarray(gradient(40, 20))  # 40 wide, 20 high
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = decode_image(encode(image, "JPEG", exif=exif.tobytes()))
    assert out.shape[:2] == ((40, 20) if swapped else (20, 40))


def test_corrupt_exif_is_ignored() -> None:
    data = encode(Image.fromarray(gradient()), "JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff garbage")
    assert decode_image(data).shape == (H, W, 3)


@pytest.mark.parametrize(
    "data,status,words",
    [
        (b"", 400, "empty"),
        (b"hello world, this is not an image", 415, "not a recognised image"),
        (b"%PDF-1.7 fake", 415, "PDF"),
        (base64.b64encode(encode(Image.fromarray(gradient()), "PNG")), 400, "base64"),
        (png_header_only(10_000, 10_000), 413, "above the"),  # 100 MP > our 48 MP limit (PIL's error path)
        (png_header_only(8_000, 6_500), 413, "above the"),  # 52 MP: our own check
    ],
    ids=["empty", "text", "pdf", "base64", "bomb-100MP", "52MP"],
)
def test_rejected(data: bytes, status: int, words: str) -> None:
    with pytest.raises(InvalidImageError) as info:
        decode_image(data)
    assert info.value.status == status and words in info.value.message
    assert info.value.to_json()["code"] == status


def test_truncated_jpeg() -> None:
    data = encode(Image.fromarray(gradient(300, 200)), "JPEG")
    with pytest.raises(InvalidImageError, match="truncated or corrupt") as info:
        decode_image(data[: len(data) // 2])
    assert info.value.status == 400


def test_max_pixels_parameter() -> None:
    data = encode(Image.fromarray(gradient(100, 100)), "PNG")
    with pytest.raises(InvalidImageError) as info:
        decode_image(data, max_pixels=9_999)
    assert info.value.status == 413 and "100x100" in info.value.message
    assert decode_image(data, max_pixels=10_000).shape == (100, 100, 3)
    assert DEFAULT_MAX_PIXELS >= 24_000_000 * 2  # a 24 MP photo and then some


def test_unsupported_format() -> None:
    with pytest.raises(InvalidImageError) as info:
        decode_image(encode(Image.fromarray(gradient()), "PCX"))
    assert info.value.status == 415


def test_request_payload() -> None:
    assert request_payload({"data": bytearray(b"ab")}) == b"ab"
    assert request_payload({"body": b"cd"}) == b"cd"
    assert request_payload({"file": bytearray(b"ef")}) == b"ef"  # multipart with another field name
    assert request_payload({"body": "text"}) == b"text"
    with pytest.raises(InvalidImageError) as info:
        request_payload({"body": {"image": "x"}})
    assert info.value.status == 415
    with pytest.raises(InvalidImageError, match="no image"):
        request_payload({})


@pytest.mark.parametrize("size", [(1, 1), (53, 37), (37, 53), (600, 800), (3, 1000), (1000, 3), (2001, 1999)])
def test_letterbox_round_trip(size: tuple[int, int]) -> None:
    h, w = size
    s = 128
    image = np.zeros((h, w, 3), np.uint8)
    image[h // 4 : max(h // 4 + 1, 3 * h // 4), w // 4 : max(w // 4 + 1, 3 * w // 4)] = 255
    x, info = letterbox(image, s, IMAGENET_MEAN, IMAGENET_STD)
    assert x.shape == (3, s, s) and x.dtype == np.float32 and x.flags["C_CONTIGUOUS"]
    assert (info.h, info.w) == (h, w) and max(info.inner) == s
    new_h, new_w = info.inner
    assert info.pad_top == (s - new_h) // 2 and info.pad_left == (s - new_w) // 2
    # padding is black (zero pixels), normalised like the training eval pipeline
    pad_value = -IMAGENET_MEAN[0] / IMAGENET_STD[0]
    if info.pad_top:
        np.testing.assert_allclose(x[0, 0], pad_value, rtol=1e-5)
    # a "probability" read off the letterboxed red channel maps back onto the input's own geometry
    prob = (x[0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]).astype(np.float32)
    alpha = unletterbox_probability(prob, info)
    assert alpha.shape == (h, w) and alpha.dtype == np.float32
    assert alpha.min() >= 0 and alpha.max() <= 1
    if min(h, w) >= 37:
        agreement = ((alpha > 0.5) == (image[..., 0] > 127)).mean()
        assert agreement > 0.97


def test_unletterbox_constant() -> None:
    _, info = letterbox(gradient(), 64, IMAGENET_MEAN, IMAGENET_STD)
    alpha = unletterbox_probability(np.full((64, 64), 0.7, np.float32), info)
    assert alpha.shape == (H, W)
    np.testing.assert_allclose(alpha, 0.7, atol=1e-5)


def test_letterbox_matches_training_eval_pipeline() -> None:
    """Serving must see what validation saw: same resize, centred zero padding, normalisation."""
    augment = pytest.importorskip("shoeseg.training.augment")
    image = gradient(700, 500)
    ours, _ = letterbox(image, 256, IMAGENET_MEAN, IMAGENET_STD)
    theirs = augment.eval_pipeline(256, IMAGENET_MEAN, IMAGENET_STD)(image=image)["image"].numpy()
    assert theirs.shape == ours.shape
    assert np.abs(theirs - ours).max() < 0.05


def test_encode_rgba_png() -> None:
    rgb = gradient()
    alpha = np.linspace(0, 1, H * W, dtype=np.float32).reshape(H, W)
    png = encode_rgba_png(rgb, alpha)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.mode == "RGBA" and image.size == (W, H)
    out = np.asarray(image)
    a8 = np.floor(alpha * 255 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(out[..., 3], a8)
    np.testing.assert_array_equal(out[..., :3][a8 > 0], rgb[a8 > 0])  # visible colour exact
    assert (a8 == 0).any() and not out[..., :3][a8 == 0].any()  # invisible colour zeroed
    with pytest.raises(ValueError):
        encode_rgba_png(rgb, alpha[:-1])
