"""The TorchServe handler class, driven directly with TorchServe's own Context (no server)."""

from __future__ import annotations

import io
import json
import logging

import numpy as np
import pytest
import yaml
from PIL import Image
from ts.context import Context, RequestProcessor
from ts.metrics.metric_cache_yaml_impl import MetricsCacheYamlImpl

import shoeseg.pipeline.remover as remover_module
from shoeseg.handler.resunet_handler import CONFIDENCE_HEADER, ResUNetHandler
from shoeseg.pipeline.cutout import predict_alpha
from shoeseg.pipeline.image_io import decode_image
from shoeseg.pipeline.options import Options
from tests.serving_helpers import REPO, image_bytes, tiny_checkpoint


@pytest.fixture(scope="module")
def handler_and_context(tmp_path_factory: pytest.TempPathFactory) -> tuple[ResUNetHandler, Context]:
    model_dir = tmp_path_factory.mktemp("model_dir")
    tiny_checkpoint(model_dir / "tiny.pth")
    metrics = MetricsCacheYamlImpl(config_file_path=str(REPO / "metrics.yaml"))
    metrics.initialize_cache()
    metrics.model_name = "resunet"
    context = Context(
        model_name="resunet",
        model_dir=str(model_dir),
        manifest={"model": {"modelName": "resunet", "serializedFile": "tiny.pth", "handler": "resunet_handler.py"}},
        batch_size=8,
        gpu=None,
        mms_version="0.12.0",
        metrics=metrics,
        model_yaml_config=yaml.safe_load((REPO / "model-config.yaml").read_text()),
    )
    handler = ResUNetHandler()
    handler.initialize(context)
    return handler, context


def run(handler: ResUNetHandler, context: Context, requests: list[dict]) -> list[bytes]:
    """What TorchServe's Service.predict does around the handler for one batch."""
    context.request_processor = [RequestProcessor({}) for _ in requests]
    context.request_ids = {i: f"req-{i}" for i in range(len(requests))}
    context.metrics.request_ids = context.request_ids
    out = handler.handle(requests, context)
    assert len(out) == len(requests)
    return out


def test_batch_order_and_sizes(handler_and_context: tuple[ResUNetHandler, Context]) -> None:
    handler, context = handler_and_context
    sizes = [(31, 17), (200, 90), (64, 64), (17, 301), (129, 128)]
    requests = [{"body": bytearray(image_bytes(w, h, "PNG" if i % 2 else "JPEG"))} for i, (w, h) in enumerate(sizes)]
    out = run(handler, context, requests)
    for i, ((w, h), png) in enumerate(zip(sizes, out, strict=True)):
        image = Image.open(io.BytesIO(png))
        assert (image.format, image.mode, image.size) == ("PNG", "RGBA", (w, h))
        assert context.get_response_status(i)[0] == 200
        assert context.get_response_content_type(i) == "image/png"


def test_bad_image_fails_only_its_request(
    handler_and_context: tuple[ResUNetHandler, Context], caplog: pytest.LogCaptureFixture
) -> None:
    handler, context = handler_and_context
    good = image_bytes(40, 30)
    requests = [
        {"data": bytearray(good)},
        {"body": bytearray(b"definitely not an image")},
        {"data": bytearray(good[: len(good) // 2])},
        {"body": bytearray()},
        {"file": bytearray(image_bytes(20, 50))},
    ]
    with caplog.at_level(logging.INFO):
        out = run(handler, context, requests)
    assert Image.open(io.BytesIO(out[0])).size == (40, 30)
    assert Image.open(io.BytesIO(out[4])).size == (20, 50)
    for idx, code in [(1, 415), (2, 400), (3, 400)]:
        error = json.loads(out[idx])
        assert error["code"] == code and error["type"] in ("InvalidImage", "UnsupportedMediaType")
        assert error["message"]
        assert context.get_response_status(idx)[0] == code
        assert context.get_response_content_type(idx) == "application/json"
    emitted = " ".join(r.getMessage() for r in caplog.records if "[METRICS]" in r.getMessage())
    for name in ("DecodeTime", "PreprocessTime", "InferenceTime", "EncodeTime", "BatchSize", "ImagesProcessed"):
        assert f"[METRICS]{name}." in emitted
    assert "[METRICS]InvalidImages.Count:1" in emitted


def test_all_bad_batch(handler_and_context: tuple[ResUNetHandler, Context]) -> None:
    handler, context = handler_and_context
    jpeg = image_bytes(300, 200, "JPEG")
    out = run(handler, context, [{"body": bytearray(b"x" * 10)}, {"body": jpeg[: len(jpeg) * 2 // 3]}])
    assert [json.loads(o)["code"] for o in out] == [415, 400]


def test_batched_equals_single(handler_and_context: tuple[ResUNetHandler, Context]) -> None:
    handler, context = handler_and_context
    a, b = image_bytes(90, 60), image_bytes(33, 77)
    alone = np.asarray(Image.open(io.BytesIO(run(handler, context, [{"body": a}])[0])))
    batched = np.asarray(Image.open(io.BytesIO(run(handler, context, [{"body": b}, {"body": a}])[1])))
    assert np.abs(alone.astype(int) - batched.astype(int)).max() <= 1


def test_response_over_limit_is_413(handler_and_context: tuple[ResUNetHandler, Context]) -> None:
    handler, context = handler_and_context
    limit, handler.max_response_bytes = handler.max_response_bytes, 100
    try:
        out = run(handler, context, [{"body": image_bytes(64, 64)}])
    finally:
        handler.max_response_bytes = limit
    assert json.loads(out[0])["code"] == 413 and context.get_response_status(0)[0] == 413


def test_unexpected_failure_fails_only_its_request(
    handler_and_context: tuple[ResUNetHandler, Context], monkeypatch: pytest.MonkeyPatch
) -> None:
    handler, context = handler_and_context
    real = handler.remover.render

    def flaky(image: np.ndarray, alpha: np.ndarray, options: Options) -> bytes:
        if image.shape[1] == 13:
            raise MemoryError("simulated")
        return real(image, alpha, options)

    monkeypatch.setattr(handler.remover, "render", flaky)
    out = run(handler, context, [{"body": image_bytes(13, 20)}, {"body": image_bytes(30, 20)}])
    assert json.loads(out[0])["code"] == 500 and context.get_response_status(0)[0] == 500
    assert Image.open(io.BytesIO(out[1])).size == (30, 20)


@pytest.mark.slow  # quality=best passes in a batch (~25 s)
def test_quality_best_per_request_in_a_batch(
    handler_and_context: tuple[ResUNetHandler, Context], monkeypatch: pytest.MonkeyPatch
) -> None:
    """quality=best answers that request with the in-process best alpha, the rest of the batch as usual; a
    failure in its extra passes fails only that request."""
    handler, context = handler_and_context
    a, b = image_bytes(90, 60), image_bytes(40, 70)
    out = run(handler, context, [{"body": a, "quality": b"best", "matte": b"soft"}, {"body": b}])
    want = np.round(predict_alpha(handler.model, decode_image(a), quality="best") * 255)
    got = np.asarray(Image.open(io.BytesIO(out[0])))[..., 3]
    assert np.abs(got - want).max() <= 1
    alone = run(handler, context, [{"body": b}])[0]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(out[1]))), np.asarray(Image.open(io.BytesIO(alone))))
    default, handler.defaults = handler.defaults, Options(quality="best")  # model-config.yaml handler.quality: best
    try:
        by_default = run(handler, context, [{"body": a, "matte": b"soft"}, {"body": b, "quality": b"fast"}])
    finally:
        handler.defaults = default
    assert by_default[0] == out[0] and by_default[1] == alone

    def broken(*args: object, **kwargs: object) -> np.ndarray:
        raise RuntimeError("simulated")

    monkeypatch.setattr(remover_module, "best_alpha", broken)
    out = run(handler, context, [{"body": a, "quality": b"best", "matte": b"soft"}, {"body": b}])
    assert json.loads(out[0])["code"] == 500 and "quality=best" in json.loads(out[0])["message"]
    assert Image.open(io.BytesIO(out[1])).size == (40, 70)


def test_a_bad_quality_default_stops_the_worker_with_the_setting_named(tmp_path) -> None:
    tiny_checkpoint(tmp_path / "tiny.pth")
    context = Context(
        model_name="resunet",
        model_dir=str(tmp_path),
        manifest={"model": {"modelName": "resunet", "serializedFile": "tiny.pth"}},
        batch_size=1,
        gpu=None,
        mms_version="0.12.0",
        model_yaml_config={"handler": {"quality": "high"}},
    )
    with pytest.raises(ValueError, match=r"handler.quality in model-config.yaml: bad value quality='high'"):
        ResUNetHandler().initialize(context)


def test_each_cutout_carries_its_confidence(
    handler_and_context: tuple[ResUNetHandler, Context], caplog: pytest.LogCaptureFixture
) -> None:
    """X-Cutout-Confidence on every served request (what the library computes), none on a refused one; the
    cutouts under handler.low_confidence are counted in LowConfidenceCutouts."""
    handler, context = handler_and_context
    a, b = image_bytes(90, 60), image_bytes(40, 70)
    out = run(handler, context, [{"body": a}, {"body": b"junk"}, {"body": b}])
    headers = [context.get_response_headers(i) for i in range(3)]
    assert CONFIDENCE_HEADER not in headers[1] and json.loads(out[1])["code"] == 415
    for data, head in ((a, headers[0]), (b, headers[2])):
        value = float(head[CONFIDENCE_HEADER])
        assert 0.0 <= value <= 1.0 and value == handler.remover.process(data).confidence
    low, handler.low_confidence = handler.low_confidence, 1.01  # every cutout counts as unsure
    try:
        with caplog.at_level(logging.INFO):
            run(handler, context, [{"body": a}, {"body": b"junk"}, {"body": b}])
    finally:
        handler.low_confidence = low
    emitted = " ".join(r.getMessage() for r in caplog.records if "[METRICS]" in r.getMessage())
    assert "[METRICS]LowConfidenceCutouts.Count:2" in emitted
