"""A real TorchServe on free loopback ports with a tiny model: REST, gRPC, batching, metrics, bad input.

One server for the session (tests/conftest.py), started through serving/server.py (the same code as
`make serve`) and always stopped, also when a test or the start fails.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from shoeseg.client import ImageRejectedError, ping_grpc, predict_grpc, predict_rest
from shoeseg.model.inference import best_sides
from shoeseg.model.runtime import onnx_file
from shoeseg.serving import server as ts_server
from tests.serving_helpers import image_bytes, png_header_only

pytestmark = pytest.mark.integration


def scrape(srv: ts_server.Server) -> str:
    with urllib.request.urlopen(f"{srv.metrics_url}/metrics", timeout=10) as response:
        return response.read().decode()


def metric(text: str, name: str) -> float:
    """Sum of a metric's samples in Prometheus text (0 when absent)."""
    return sum(float(v) for v in re.findall(rf"^{name}{{[^}}]*}} ([0-9.eE+-]+)$", text, re.M))


def scrape_until(srv: ts_server.Server, name: str, at_least: float, timeout: float = 15) -> str:
    """Scrape until ``name`` reaches ``at_least``: the frontend reads the worker's metric lines from its
    log stream, a moment after the response may have gone out."""
    deadline = time.monotonic() + timeout
    while True:
        text = scrape(srv)
        if metric(text, name) >= at_least or time.monotonic() > deadline:
            return text
        time.sleep(0.2)


def worker(srv: ts_server.Server) -> dict:
    workers = ts_server.worker_status(srv)
    assert len(workers) == 1
    return workers[0]


def post(srv: ts_server.Server, data: bytes) -> tuple[int, str, bytes]:
    code, body = ts_server.http_request(f"{srv.inference_url}/predictions/resunet", data)
    return code, body[:8].hex(), body


def test_archive_carries_its_code(server: ts_server.Server) -> None:
    mar = next(server.home.parent.glob("store/*.mar"))
    names = set(zipfile.ZipFile(mar).namelist())
    expected = {"resunet_handler.py", "model-config.yaml", "tiny.pth", "resunet.onnx", "MAR-INF/MANIFEST.json"}
    packed = {"shoeseg/__init__.py", "shoeseg/constants.py", "shoeseg/model/__init__.py", "shoeseg/pipeline/remover.py"}
    assert expected | packed | {"shoeseg/handler/resunet_handler.py"} <= names
    other_sides = {onnx_file(side, 128) for side in best_sides(128)} - {"resunet.onnx"}  # the tiny model: 128 px
    assert other_sides == {"resunet_64.onnx", "resunet_160.onnx"} and other_sides <= names  # best's other graphs
    assert not any(name.startswith(("shoeseg/training/", "shoeseg/client/", "shoeseg/weights/")) for name in names)
    # the worker imported the packages unpacked from the .mar (under the server's TMPDIR), not the checkout
    log = server.model_log()
    found = re.search(r"packages from (\S+)", log)
    assert found and found.group(1).startswith(str(server.tmpdir)), found
    assert "running onnxruntime" in log  # the CPU worker runs the graph packed at archive time


def concurrent_round(srv: ts_server.Server, sizes: list[tuple[int, int]]) -> tuple[float, float]:
    """Send one request per size at once; check each cutout; returns (batches, requests) the worker saw."""
    before = scrape(srv)
    barrier = threading.Barrier(len(sizes))

    def call(size: tuple[int, int]) -> tuple[tuple[int, int], str, tuple[int, int]]:
        data = image_bytes(*size, fmt="JPEG")
        barrier.wait()
        image = Image.open(io.BytesIO(predict_rest(data, url=srv.inference_url, timeout=120)))
        return size, image.mode, image.size

    with ThreadPoolExecutor(len(sizes)) as pool:
        for size, mode, got in pool.map(call, sizes):
            assert (mode, got) == ("RGBA", size)
    after = scrape_until(srv, "BatchSize_sum", metric(before, "BatchSize_sum") + len(sizes))
    return (
        metric(after, "BatchSize_count") - metric(before, "BatchSize_count"),
        metric(after, "BatchSize_sum") - metric(before, "BatchSize_sum"),
    )


def test_concurrent_rest_requests_batch(server: ts_server.Server) -> None:
    sizes = [(40 + 7 * i, 90 - 3 * i) for i in range(16)]  # every request has its own size
    for _ in range(3):  # batching depends on arrival; a round where none formed is retried
        batches, requests = concurrent_round(server, sizes)
        assert requests == len(sizes)
        if batches < requests:
            return  # at least one batch held more than one request
    pytest.fail("16 concurrent requests never formed a batch larger than 1")


def test_grpc_ping_and_prediction_match_rest(server: ts_server.Server) -> None:
    target = server.grpc_inference
    assert "Healthy" in ping_grpc(target)
    data = image_bytes(123, 45)
    over_grpc = np.asarray(Image.open(io.BytesIO(predict_grpc(data, target=target))))
    over_rest = np.asarray(Image.open(io.BytesIO(predict_rest(data, url=server.inference_url))))
    assert over_grpc.shape == (45, 123, 4)
    assert np.abs(over_grpc.astype(int) - over_rest.astype(int)).max() <= 1


def test_bad_images_get_4xx_and_worker_survives(server: ts_server.Server) -> None:
    pid = worker(server)["pid"]
    jpeg = image_bytes(300, 200, "JPEG")
    cases = [(b"not an image at all", 415), (jpeg[: len(jpeg) // 2], 400), (b"", 400), (image_bytes(50, 20), 200)]
    with ThreadPoolExecutor(len(cases)) as pool:  # bad and good requests may share a batch
        results = list(pool.map(lambda case: post(server, case[0]), cases))
    for (_, expected), (code, _, body) in zip(cases, results, strict=True):
        assert code == expected, body[:300]
        if code != 200:
            error = json.loads(body)
            assert error["code"] == expected and error["type"] and error["message"]
    assert Image.open(io.BytesIO(results[-1][2])).size == (50, 20)
    code, _, body = post(server, png_header_only(10_000, 10_000))  # claims 100 MP
    assert code == 413 and json.loads(body)["type"] == "ImageTooLarge"
    with pytest.raises(ImageRejectedError) as info:  # gRPC: OK status, the handler's JSON as the prediction
        predict_grpc(b"garbage", target=server.grpc_inference)
    assert info.value.status == 415
    after = worker(server)
    assert after["pid"] == pid and after["status"] == "READY"


def test_metrics_endpoint(server: ts_server.Server) -> None:
    before = metric(scrape(server), "ImagesProcessed")
    predict_rest(image_bytes(64, 48), url=server.inference_url)
    text = scrape_until(server, "ImagesProcessed", before + 1)
    assert metric(text, "ts_inference_requests_total") >= 1
    for name in ("ImagesProcessed", "InferenceTime", "DecodeTime", "PreprocessTime", "EncodeTime", "BatchSize_count"):
        assert re.search(rf'^{name}{{.*ModelName="resunet"', text, re.M), f"{name} missing from /metrics"
    assert metric(text, "ImagesProcessed") >= before + 1
