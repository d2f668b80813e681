"""shoeseg.client without TorchServe: how answers are classified and how the command line reads options."""

from __future__ import annotations

import http.server
import io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from PIL import Image

from shoeseg.client import ImageRejectedError, ServiceError
from shoeseg.client.__main__ import main
from shoeseg.client.client import _result, grpc_stubs, predict_grpc, predict_rest


def encoded(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (4, 3), (1, 2, 3, 4)).save(buf, fmt)
    return buf.getvalue()


def test_images_pass_json_errors_are_rejections_the_rest_fails() -> None:
    for fmt in ("PNG", "WEBP"):
        assert _result(encoded(fmt), "here") == encoded(fmt)
    error = json.dumps({"code": 400, "type": "InvalidOption", "option": "output", "message": "bad value"})
    with pytest.raises(ImageRejectedError) as info:
        _result(error.encode(), "here")
    assert (info.value.status, info.value.kind) == (400, "InvalidOption")
    with pytest.raises(ServiceError, match="expected a PNG or WebP"):
        _result(b"GIF89a...", "here")


def test_cli_refuses_an_option_without_a_value(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    photo = tmp_path / "shoe.png"
    photo.write_bytes(encoded("PNG"))
    with pytest.raises(SystemExit) as info:
        main([str(photo), "--option", "output"])
    assert info.value.code == 2 and "KEY=VALUE" in capsys.readouterr().err


def test_cli_reports_an_unreachable_server(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    photo = tmp_path / "shoe.png"
    photo.write_bytes(encoded("PNG"))
    code = main([str(photo), "-O", "format=webp", "--url", "http://127.0.0.1:9", "--retries", "0", "--timeout", "5"])
    assert code == 1 and "cannot reach http://127.0.0.1:9/resunet/predict?format=webp" in capsys.readouterr().err
    assert not (tmp_path / "shoe_cutout.webp").exists()


class BusyOnce(http.server.BaseHTTPRequestHandler):
    """Answers its first POST as the handler does when a batch's cost budget is spent (429 Busy with
    Retry-After), the next ones with a PNG; records when each came."""

    times: list[float] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers["Content-Length"]))
        BusyOnce.times.append(time.monotonic())
        if len(BusyOnce.times) == 1:
            body = json.dumps({"code": 429, "type": "Busy", "message": "come back", "retry_after": 1}).encode()
            self.send_response(429)
            self.send_header("Retry-After", "1")
        else:
            body = encoded("PNG")
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_rest_client_retries_429_busy_after_its_retry_after() -> None:
    BusyOnce.times = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), BusyOnce)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    retried: list[Exception] = []
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = predict_rest(encoded("PNG"), url=url, retries=1, backoff=0.01, on_retry=lambda n, e: retried.append(e))
    finally:
        server.shutdown()
        server.server_close()
    assert result == encoded("PNG")
    assert len(BusyOnce.times) == 2 and "HTTP 429" in str(retried[0])
    assert BusyOnce.times[1] - BusyOnce.times[0] >= 1.0  # waited for Retry-After, not the 0.01 s backoff


def test_grpc_client_retries_a_busy_prediction_after_its_retry_after() -> None:
    # TorchServe 0.12 sends a handler's 429 over gRPC as status OK with the JSON error as the prediction
    pb2, pb2_grpc = grpc_stubs()
    times: list[float] = []

    class BusyOnceService(pb2_grpc.InferenceAPIsServiceServicer):
        def Predictions(self, request, context):  # noqa: N802 - the proto's name
            times.append(time.monotonic())
            busy = json.dumps({"code": 429, "type": "Busy", "message": "come back", "retry_after": 1}).encode()
            return pb2.PredictionResponse(prediction=busy if len(times) == 1 else encoded("PNG"))

    server = grpc.server(ThreadPoolExecutor(2))
    pb2_grpc.add_InferenceAPIsServiceServicer_to_server(BusyOnceService(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    retried: list[Exception] = []
    try:
        target = f"127.0.0.1:{port}"
        result = predict_grpc(encoded("PNG"), target, retries=1, backoff=0.01, on_retry=lambda n, e: retried.append(e))
        waited = times[1] - times[0]
        times.clear()
        with pytest.raises(ServiceError, match="429 Busy") as info:
            predict_grpc(encoded("PNG"), target, retries=0)
    finally:
        server.stop(0)
    assert result == encoded("PNG") and "429 Busy" in str(retried[0])
    assert waited >= 1.0  # the Busy answer's retry_after, not the 0.01 s backoff
    assert not isinstance(info.value, ImageRejectedError)  # busy is not the image's fault: callers may retry
