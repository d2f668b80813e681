"""Every request option through a real TorchServe (tiny model): query string, form fields, gRPC input map.

The server's result must equal the in-process path (``predict_alpha`` + ``compose.render``, what
predict.py runs) on the same checkpoint, up to batching noise; bad options get a 400 naming the option.
Uses the session's shared TorchServe (tests/conftest.py).
"""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from shoeseg.client.client import grpc_channel, grpc_stubs
from shoeseg.constants import is_webp
from shoeseg.model import load_model
from shoeseg.pipeline.cutout import predict_alpha
from shoeseg.pipeline.image_io import decode_image
from shoeseg.pipeline.options import parse_options
from shoeseg.pipeline.remover import Remover
from shoeseg.serving import server as ts_server
from shoeseg.serving.readiness import ready_workers
from tests.serving_helpers import image_bytes

pytestmark = pytest.mark.integration
PHOTO = image_bytes(120, 90, "JPEG")

CASES = [
    {},
    {"output": "mask"},
    {"output": "rgb", "bg": "#2040ff"},
    {"bg": "#00000080"},
    {"crop": "true", "margin": "10%", "threshold": "auto"},
    {"crop": "true", "margin": "3px", "matte": "soft"},  # the tiny model's ~0.5 alpha: the matte may clear it all
    {"matte": "soft", "output": "mask"},
    {"format": "webp"},
    {"output": "mask", "format": "webp"},
    {"size": "50"},
    {"threshold": "auto"},
    {"refine": "true"},
    {"tta": "true"},
    {"quality": "best"},
]


def call(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), err.read()


def via_query(srv: ts_server.Server, options: dict[str, str], data: bytes = PHOTO) -> tuple[int, str, bytes]:
    """Raw body, options in the query string of `/resunet/predict` (TorchServe passes them there)."""
    url = f"{srv.inference_url}/resunet/predict?{urllib.parse.urlencode(options)}"
    return call(url, data, {"Content-Type": "application/octet-stream"})


def via_form(srv: ts_server.Server, options: dict[str, str], data: bytes = PHOTO) -> tuple[int, str, bytes]:
    """Multipart upload to `/predictions/resunet`: the image as a file, each option a form field."""
    boundary = uuid.uuid4().hex
    field = '--{}\r\nContent-Disposition: form-data; name="{}"\r\n\r\n{}\r\n'
    parts = [field.format(boundary, k, v).encode() for k, v in options.items()]
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="shoe.jpg"\r\n'
    parts.append(head.encode() + b"Content-Type: image/jpeg\r\n\r\n" + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    content_type = f"multipart/form-data; boundary={boundary}"
    return call(f"{srv.inference_url}/predictions/resunet", body, {"Content-Type": content_type})


def via_grpc(srv: ts_server.Server, options: dict[str, str], data: bytes = PHOTO) -> bytes:
    pb2, pb2_grpc = grpc_stubs()
    inputs = {"data": data, **{k: v.encode() for k, v in options.items()}}
    with grpc_channel(srv.grpc_inference) as channel:
        stub = pb2_grpc.InferenceAPIsServiceStub(channel)
        return stub.Predictions(pb2.PredictionsRequest(model_name="resunet", input=inputs), timeout=120).prediction


@pytest.fixture(scope="module")
def local_model(server: ts_server.Server):
    """The server's own checkpoint, loaded in-process: the CLI's code path."""
    return load_model(next(server.home.parent.glob("tiny.pth")), "cpu")


@pytest.fixture(scope="module")
def local_remover(server: ts_server.Server) -> Remover:
    """The server's checkpoint in the library's pipeline (onnxruntime on CPU, as the server runs it)."""
    return Remover(next(server.home.parent.glob("tiny.pth")), "cpu")


def expected(remover: Remover, options: dict[str, str], data: bytes = PHOTO) -> np.ndarray:
    return pixels(remover.cutout(data, parse_options(options)))


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def assert_close(got: np.ndarray, want: np.ndarray, options: dict) -> None:
    assert got.shape == want.shape, options
    diff = np.abs(got.astype(int) - want.astype(int))
    if "threshold" in options:  # a pixel right at the threshold may flip between batch sizes
        assert (diff > 2).mean() < 0.01, options
    else:
        assert diff.max() <= 3 and diff.mean() < 0.5, (options, diff.max(), diff.mean())


@pytest.mark.parametrize("options", CASES, ids=lambda o: "&".join(f"{k}={v}" for k, v in o.items()) or "defaults")
def test_option_over_rest_query_form_and_grpc_matches_cli_path(
    server: ts_server.Server,
    local_model,
    local_remover: Remover,
    options: dict[str, str],
) -> None:
    if options.get("threshold") == "auto":  # the random model's alpha is ~0.45 everywhere: cut at its 70th percentile
        alpha = predict_alpha(local_model, decode_image(PHOTO))
        options = {**options, "threshold": f"{np.percentile(alpha, 70):.4f}"}
    want = expected(local_remover, options)
    fmt = options.get("format", "png")
    for status, content_type, body in (via_query(server, options), via_form(server, options)):
        assert status == 200, body[:300]
        assert content_type == f"image/{fmt}"
        assert Image.open(io.BytesIO(body)).format == fmt.upper()
        assert_close(pixels(body), want, options)
    assert_close(pixels(via_grpc(server, options)), want, options)


def test_options_do_what_they_say(server: ts_server.Server, local_model) -> None:
    """Properties that hold whatever the model predicts."""
    _, _, body = via_query(server, {"output": "mask"})
    assert Image.open(io.BytesIO(body)).mode == "L" and Image.open(io.BytesIO(body)).size == (120, 90)
    _, _, body = via_query(server, {"output": "rgb"})
    assert Image.open(io.BytesIO(body)).mode == "RGB"
    _, _, body = via_query(server, {"bg": "#ff000080"})
    assert pixels(body)[..., 3].min() >= 128
    _, _, body = via_query(server, {"size": "40"})
    assert Image.open(io.BytesIO(body)).size == (40, 30)
    _, _, body = via_query(server, {"threshold": "0.5"})
    assert set(np.unique(pixels(body)[..., 3])) <= {0, 255}
    soft = {"matte": "soft"}  # the model's own alpha: the tiny model's ~0.45 would be cleared by the matte
    plain, tta = pixels(via_query(server, soft)[2]), pixels(via_query(server, {**soft, "tta": "true"})[2])
    # the random model is nearly flip-symmetric (alpha ~0.45 everywhere): TTA shows as +-1 steps, so check that
    # the server's TTA alpha is nearer the in-process TTA alpha than the plain one
    image = decode_image(PHOTO)
    local_plain, local_tta = (np.round(predict_alpha(local_model, image, t) * 255) for t in (False, True))
    assert np.abs(tta[..., 3] - local_tta).sum() < np.abs(tta[..., 3] - local_plain).sum() / 2
    assert np.abs(plain[..., 3] - local_plain).sum() < np.abs(plain[..., 3] - local_tta).sum() / 2
    refined = pixels(via_query(server, {**soft, "refine": "true"})[2])
    assert np.abs(refined[..., 3].astype(int) - plain[..., 3].astype(int)).max() <= 1
    assert not np.array_equal(refined[..., :3], plain[..., :3])


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"output": "jpeg"}, "output"),
        ({"size": "big"}, "size"),
        ({"outptu": "mask"}, "outptu"),
        ({"margin": "5"}, "margin"),
        ({"output": "mask", "bg": "#ffffff"}, "bg"),
    ],
)
def test_bad_options_are_400_naming_the_option(
    server: ts_server.Server,
    options: dict[str, str],
    option: str,
) -> None:
    for status, content_type, body in (via_query(server, options), via_form(server, options)):
        assert status == 400 and content_type == "application/json", body[:300]
        error = json.loads(body)
        assert error["type"] == "InvalidOption" and error["option"] == option and option in error["message"]
    error = json.loads(via_grpc(server, options))  # gRPC: status OK, the JSON error as the prediction
    assert error["code"] == 400 and error["option"] == option


def test_mixed_options_in_one_batch(server: ts_server.Server) -> None:
    cases = [{"tta": "1"}, {}, {"output": "mask"}, {"size": "30"}, {"format": "gif"}, {"tta": "1", "output": "rgb"}]
    with ThreadPoolExecutor(len(cases)) as pool:
        results = list(pool.map(lambda o: via_query(server, o), cases))
    assert [r[0] for r in results] == [200, 200, 200, 200, 400, 200]
    modes = [Image.open(io.BytesIO(r[2])).mode for i, r in enumerate(results) if i != 4]
    assert modes == ["RGBA", "RGBA", "L", "RGBA", "RGB"]
    assert Image.open(io.BytesIO(results[3][2])).size == (30, 22)


def test_query_on_predictions_path_is_dropped_by_torchserve(server: ts_server.Server) -> None:
    """TorchServe 0.12 passes no query string on /predictions/{model} (README says: use form fields there)."""
    status, _, body = call(
        f"{server.inference_url}/predictions/resunet?output=mask", PHOTO, {"Content-Type": "application/octet-stream"}
    )
    assert status == 200 and Image.open(io.BytesIO(body)).mode == "RGBA"
    status, _, body = call(
        f"{server.inference_url}/invocations?model_name=resunet&output=mask",
        PHOTO,
        {"Content-Type": "application/octet-stream"},
    )
    assert status == 200 and Image.open(io.BytesIO(body)).mode == "L"


def test_readiness_probe_sees_the_ready_worker(server: ts_server.Server) -> None:
    """deploy/k8s's readiness probe (python -m shoeseg.serving.readiness) against a real server."""
    assert ready_workers(server.management_url) == 1
    assert ready_workers(server.management_url, model="nonexistent") == 0


def test_client_sends_options_over_rest_and_grpc(server: ts_server.Server, local_remover: Remover) -> None:
    """shoeseg.client's ``options=``: the same result as the in-process path, WebP accepted, a bad option
    raised as ImageRejectedError naming it (REST 400 and gRPC's JSON prediction alike)."""
    from shoeseg.client import ImageRejectedError, predict_grpc, predict_rest

    options = {"output": "rgb", "bg": "f5f5f5", "size": 60, "format": "webp"}
    want = expected(local_remover, {k: str(v) for k, v in options.items()})
    rest = predict_rest(PHOTO, url=server.inference_url, options=options)
    grpc = predict_grpc(PHOTO, target=server.grpc_inference, options=options)
    for got in (rest, grpc):
        assert is_webp(got)
        assert np.abs(pixels(got).astype(int) - want.astype(int)).mean() < 2  # lossy WebP colour
    for send in (
        lambda: predict_rest(PHOTO, url=server.inference_url, options={"output": "jpeg"}, retries=0),
        lambda: predict_grpc(PHOTO, target=server.grpc_inference, options={"crop": True, "margin": "x"}, retries=0),
    ):
        with pytest.raises(ImageRejectedError) as info:
            send()
        assert info.value.status == 400 and info.value.kind == "InvalidOption"
