"""Request options: parsing/validation (handler/options.py) and applying them (handler/compose.py), no server."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from shoeseg.model import build_model
from shoeseg.model.inference import (
    best_sides,
    crop_size,
    cutout_confidence,
    edge_uncertainty,
    foreground_probability,
    most_confident,
    scale_sizes,
)
from shoeseg.pipeline.compose import NoObjectError, crop_box, estimate_foreground, over, render
from shoeseg.pipeline.cutout import CROP_PAD, alpha_at_size, best_alpha, object_box, pasted, predict_alpha
from shoeseg.pipeline.image_io import encode_rgba_png
from shoeseg.pipeline.matte import decisive_matte
from shoeseg.pipeline.options import ALLOWED, OptionError, Options, parse_options, split_request
from tests.serving_helpers import TINY


def test_defaults_and_every_option_parse() -> None:
    assert parse_options({}) == Options()
    got = parse_options(
        {
            "output": b"RGB",
            "bg": bytearray(b"#10A0fF"),
            "crop": "true",
            "margin": "12.5%",
            "format": "webp",
            "size": b"640",
            "threshold": "0.4",
            "refine": "1",
            "tta": "",  # `?tta` without a value means true
            "quality": "Best",
        }
    )
    assert got == Options("rgb", (16, 160, 255, 255), True, (12.5, True), "webp", 640, 0.4, True, True, "best")
    assert parse_options({"bg": "00000080", "crop": "yes", "margin": "20px"}).bg == (0, 0, 0, 128)
    assert parse_options({"crop": "on", "margin": "7"}).margin == (7.0, False)


@pytest.mark.parametrize(
    ("fields", "option"),
    [
        ({"output": "jpeg"}, "output"),
        ({"format": "gif"}, "format"),
        ({"bg": "red"}, "bg"),
        ({"bg": "#12345"}, "bg"),
        ({"crop": "maybe"}, "crop"),
        ({"size": "0"}, "size"),
        ({"size": "1.5"}, "size"),
        ({"size": "99999"}, "size"),
        ({"threshold": "1.5"}, "threshold"),
        ({"threshold": "nan"}, "threshold"),
        ({"crop": "true", "margin": "-3"}, "margin"),
        ({"crop": "true", "margin": "150%"}, "margin"),
        ({"margin": "10"}, "margin"),  # margin without crop
        ({"output": "mask", "bg": "#ffffff"}, "bg"),
        ({"output": "mask", "refine": "true"}, "refine"),
        ({"output": "rgb", "bg": "#ffffff80"}, "bg"),
        ({"outptu": "mask"}, "outptu"),
        ({"tta": b"\xff\xfe"}, "tta"),
        ({"quality": "high"}, "quality"),
    ],
)
def test_bad_options_name_the_option(fields: dict, option: str) -> None:
    with pytest.raises(OptionError) as info:
        parse_options(fields)
    doc = info.value.to_json()
    assert doc["code"] == 400 and doc["type"] == "InvalidOption" and doc["option"] == option
    assert option in doc["message"]
    if option in ALLOWED and "allowed" in doc:
        assert doc["allowed"] == ALLOWED[option]


def test_split_request_finds_the_image_under_any_name() -> None:
    img = bytearray(b"x" * 100)
    assert split_request({"body": img}) == ({"body": img}, Options())
    payload, options = split_request({"file": img, "output": bytearray(b"mask"), "model_name": b"resunet"})
    assert payload == {"file": img} and options.output == "mask"
    with pytest.raises(OptionError) as info:  # a typo'd option next to the image
        split_request({"data": img, "treshold": b"0.5"})
    assert info.value.option == "treshold"
    assert split_request({}) == ({}, Options())  # no image: request_payload says so
    texts = {"name": b"shoe", "colour": b"red", "size": b"64"}  # a form without a file: passed on, no guess
    assert split_request(texts) == ({"name": b"shoe", "colour": b"red"}, Options(size=64))
    form = {"\x89PNG\r\n": b"garbage", "output": b"mask"}  # a url-encoded body, split by TorchServe
    assert split_request(form, "application/x-www-form-urlencoded; charset=x") == (form, Options())


@pytest.fixture()
def scene() -> tuple[np.ndarray, np.ndarray]:
    """A 60x80 photo: red object on a blue background, alpha 1 inside rows 10..29 x cols 20..49, soft edge."""
    image = np.zeros((60, 80, 3), np.uint8)
    image[...] = (0, 0, 255)
    alpha = np.zeros((60, 80), np.float32)
    alpha[10:30, 20:50] = 1.0
    alpha[10:30, 19] = 0.5  # a soft column: the photo there is half red, half blue
    image[10:30, 20:50] = (255, 0, 0)
    image[10:30, 19] = (128, 0, 128)
    alpha[50, 70] = 0.02  # alpha noise, ignored by crop
    return image, alpha


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_default_render_is_the_plain_rgba_png(scene: tuple[np.ndarray, np.ndarray]) -> None:
    image, alpha = scene
    assert render(image, alpha) == encode_rgba_png(image, decisive_matte(image, alpha))
    assert render(image, alpha, Options(matte="soft")) == encode_rgba_png(image, alpha)
    # options that only change how the alpha was made take the shortcut; the general path (a margin without
    # crop changes nothing) writes the same bytes
    assert render(image, alpha, Options(matte="soft", quality="best", tta=True)) == encode_rgba_png(image, alpha)
    assert render(image, alpha, Options(matte="soft", margin=(1.0, False))) == encode_rgba_png(image, alpha)


def test_outputs_and_formats(scene: tuple[np.ndarray, np.ndarray]) -> None:
    image, alpha = scene
    mask = decode(render(image, alpha, Options(matte="soft", output="mask")))
    assert (mask.format, mask.mode, mask.size) == ("PNG", "L", (80, 60))
    assert np.asarray(mask)[15, 30] == 255 and np.asarray(mask)[0, 0] == 0 and np.asarray(mask)[15, 19] == 128
    rgb = np.asarray(decode(render(image, alpha, Options(matte="soft", output="rgb"))))
    assert rgb.shape == (60, 80, 3)
    assert tuple(rgb[0, 0]) == (255, 255, 255) and tuple(rgb[15, 30]) == (255, 0, 0)
    green = np.asarray(decode(render(image, alpha, Options(matte="soft", output="rgb", bg=(0, 255, 0, 255)))))
    assert tuple(green[0, 0]) == (0, 255, 0)
    webp = decode(render(image, alpha, Options(matte="soft", format="webp")))
    assert (webp.format, webp.mode, webp.size) == ("WEBP", "RGBA", (80, 60))
    assert np.asarray(webp)[0, 0, 3] == 0 and np.asarray(webp)[15, 30, 3] == 255
    webp_mask = np.asarray(
        decode(render(image, alpha, Options(matte="soft", output="mask", format="webp"))).convert("L")
    )
    assert np.array_equal(webp_mask, np.asarray(mask))  # masks are lossless in WebP too


def test_rgba_on_translucent_bg(scene: tuple[np.ndarray, np.ndarray]) -> None:
    image, alpha = scene
    out = np.asarray(decode(render(image, alpha, Options(matte="soft", bg=(0, 0, 0, 128)))))
    assert tuple(out[0, 0]) == (0, 0, 0, 128)  # background: the bg colour at its own alpha
    assert tuple(out[15, 30]) == (255, 0, 0, 255)  # object: untouched
    rgb, a = over(np.full((1, 1, 3), 200, np.uint8), np.array([[0.5]], np.float32), (0, 0, 0, 255))
    assert a[0, 0] == 1.0 and rgb[0, 0, 0] == 100


def test_crop_margin_size_threshold(scene: tuple[np.ndarray, np.ndarray]) -> None:
    image, alpha = scene
    assert crop_box(alpha, (0, False)) == (10, 30, 19, 50)  # the soft column counts, the 0.02 noise does not
    assert crop_box(alpha, (5, False)) == (5, 35, 14, 55)
    assert crop_box(alpha, (10, True)) == (7, 33, 16, 53)  # 10% of the 31 px longest side = 3 px
    assert crop_box(alpha, (100, False)) == (0, 60, 0, 80)  # clamped to the photo
    cropped = decode(render(image, alpha, Options(matte="soft", crop=True)))
    assert cropped.size == (31, 20)
    small = decode(render(image, alpha, Options(matte="soft", size=40)))
    assert small.size == (40, 30)
    assert decode(render(image, alpha, Options(matte="soft", size=4000))).size == (80, 60)  # never enlarged
    hard = np.asarray(decode(render(image, alpha, Options(matte="soft", output="mask", threshold=0.6))))
    assert set(np.unique(hard)) == {0, 255} and hard[15, 19] == 0
    both = decode(render(image, alpha, Options(matte="soft", crop=True, margin=(2, False), size=10, threshold=0.5)))
    assert both.size == (10, 7) and set(np.unique(np.asarray(both)[..., 3])) <= {0, 255}
    with pytest.raises(NoObjectError) as info:
        render(image, np.zeros_like(alpha), Options(matte="soft", crop=True))
    assert info.value.to_json()["code"] == 422


def test_webp_side_limit_is_an_option_error() -> None:
    image, alpha = np.zeros((2, 17000, 3), np.uint8), np.ones((2, 17000), np.float32)
    with pytest.raises(OptionError) as info:
        render(image, alpha, Options(matte="soft", format="webp"))
    assert info.value.option == "format"
    assert decode(render(image, alpha, Options(matte="soft", format="webp", size=16383))).size == (16383, 2)


def test_refine_removes_background_bleeding() -> None:
    """A red object over blue with a soft edge: the raw photo's edge is purple, the estimated foreground red."""
    h, w = 40, 40
    alpha = np.clip((np.arange(w, dtype=np.float32) - 15) / 10, 0, 1)[None].repeat(h, 0)
    red, blue = np.array([220, 30, 30], np.float32), np.array([20, 40, 230], np.float32)
    image = (alpha[..., None] * red + (1 - alpha[..., None]) * blue).round().astype(np.uint8)
    fg = estimate_foreground(image, alpha)
    edge = (alpha > 0.2) & (alpha < 0.8)
    raw_err = np.abs(image[edge].astype(np.float32) - red).mean()
    refined_err = np.abs(fg[edge].astype(np.float32) - red).mean()
    assert refined_err < raw_err / 4, (raw_err, refined_err)
    assert np.array_equal(fg[alpha >= 1], image[alpha >= 1])
    out = np.asarray(decode(render(image, alpha, Options(matte="soft", refine=True))))
    plain = np.asarray(decode(render(image, alpha, Options(matte="soft"))))
    visible = plain[..., 3] > 0  # colour under alpha 0 is zeroed in every RGBA output
    assert np.array_equal(out[..., :3][visible], fg[visible]) and np.array_equal(out[..., 3], plain[..., 3])


@pytest.mark.slow  # the shipped model's forward passes (~17 s)
def test_tta_averages_the_flipped_prediction() -> None:
    torch.manual_seed(0)
    model = build_model(TINY).eval()
    x = torch.randn(3, 3, 128, 128)
    plain = foreground_probability(model, x)
    flipped = foreground_probability(model, x.flip(-1)).flip(-1)
    tta = foreground_probability(model, x, tta=True)
    assert torch.allclose(tta, (plain + flipped) / 2, atol=1e-5)
    assert not torch.allclose(plain, tta, atol=1e-3)  # the random model is not flip-symmetric
    mixed = foreground_probability(model, x, tta=[False, True, False])  # per image, as in a server batch
    assert torch.allclose(mixed[0], plain[0]) and torch.allclose(mixed[1], tta[1], atol=1e-5)


def test_edge_uncertainty_prefers_the_decided_mask() -> None:
    crisp = np.zeros((40, 60), np.float32)
    crisp[10:30, 20:40] = 1.0
    assert edge_uncertainty(crisp) == 0.0 and edge_uncertainty(np.zeros((8, 8), np.float32)) == 0.0
    soft_edge = cv2.GaussianBlur(crisp, (9, 9), 0)
    unsure = np.where(crisp > 0, 0.6, 0.4).astype(np.float32)
    assert 0 < edge_uncertainty(soft_edge) < edge_uncertainty(unsure)
    # per foreground pixel: the same soft rim around a bigger object is less uncertain
    big = np.zeros((80, 120), np.float32)
    big[10:70, 20:100] = 1.0
    assert edge_uncertainty(cv2.GaussianBlur(big, (9, 9), 0)) < edge_uncertainty(soft_edge)
    assert most_confident([unsure, soft_edge, crisp]) == 2 and most_confident([unsure, soft_edge]) == 1
    with pytest.raises(ValueError, match="at least one"):
        most_confident([])


def test_object_box_grows_the_foregrounds_box_within_the_image() -> None:
    alpha = np.zeros((100, 200), np.float32)
    alpha[40:60, 50:100] = 0.9
    alpha[0:5, 0:5] = 0.4  # under 0.5: not the object
    box = object_box(alpha, margin=0.1)
    pad = int(0.1 * 50) + CROP_PAD
    assert box == (slice(40 - pad, 60 + pad), slice(50 - pad, 100 + pad))
    corner = np.zeros_like(alpha)
    corner[95:, 190:] = 1.0
    assert object_box(corner) == (slice(95 - CROP_PAD - 1, 100), slice(190 - CROP_PAD - 1, 200))  # clipped
    assert object_box(np.full((8, 8), 0.49, np.float32)) is None
    part = np.full((20 + 2 * pad, 50 + 2 * pad), 0.7, np.float32)
    out = pasted(part, box, alpha.shape)
    assert out.shape == alpha.shape and np.array_equal(out[box], part) and out.sum() == pytest.approx(part.sum())


@pytest.mark.slow  # the model at three views
def test_quality_best_keeps_the_most_confident_view() -> None:
    torch.manual_seed(0)
    model = build_model(TINY).eval()
    with torch.no_grad():  # a random model; this bias makes it see the textured patch (p ~0.43 there) as the object
        model.head.classify.bias[1] += 0.3
    assert best_sides(512) == [320, 512, 640] and best_sides(TINY.input_size) == [64, 128, 160]
    image = np.full((70, 100, 3), 128, np.uint8)
    image[20:50, 30:70] = np.random.default_rng(0).integers(0, 256, (30, 40, 3))
    whole = [alpha_at_size(model, image, size) for size in scale_sizes(TINY.input_size)]
    box = object_box(whole[1])
    assert box is not None and box != (slice(0, 70), slice(0, 100))  # the crop is a view of its own
    crop = pasted(alpha_at_size(model, image[box], crop_size(TINY.input_size)), box, (70, 100))
    views = [*whole, crop]
    assert all(a.shape == (70, 100) for a in views)
    assert not np.allclose(whole[0], whole[1], atol=1e-3)  # the sizes do give different masks
    best = predict_alpha(model, image, quality="best")
    assert np.array_equal(best, views[most_confident(views)])
    assert np.array_equal(predict_alpha(model, image), whole[1])  # fast: the input size only
    assert np.array_equal(best_alpha(model, image, base=whole[1]), best)  # the server passes its batch's 1x


def test_server_defaults_fill_only_what_the_request_leaves_out() -> None:
    best = Options(quality="best")
    assert parse_options({}, best).quality == "best"
    assert parse_options({"quality": "fast"}, best).quality == "fast"
    assert parse_options({"output": "mask"}, best) == Options(output="mask", quality="best")
    assert split_request({"data": b"\x89PNG" * 40, "tta": "1"}, None, best)[1] == Options(tta=True, quality="best")


def test_cutout_confidence_ranks_decided_masks_first() -> None:
    crisp = np.zeros((64, 64), np.float32)
    crisp[16:48, 16:48] = 1.0
    soft = cv2.GaussianBlur(crisp, (15, 15), 0)
    unsure = np.full((64, 64), 0.55, np.float32)
    scores = [cutout_confidence(m) for m in (crisp, soft, unsure)]
    assert scores[0] == 1.0 and 1.0 > scores[1] > scores[2] >= 0.0
    assert cutout_confidence(np.zeros((64, 64), np.float32)) == 0.0  # no object found: a failed cutout
    big = cv2.resize(soft, (4096, 4096), interpolation=cv2.INTER_LINEAR)  # sampled, same answer
    assert abs(cutout_confidence(big) - scores[1]) < 0.05
