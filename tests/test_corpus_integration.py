"""The whole bad-input corpus through a real TorchServe, over REST and gRPC; the worker must survive it.

REST: every case gets its expected status; refusals carry the handler's JSON error naming the problem
(except a body above TorchServe's max_request_size, which the frontend refuses itself with a bare 413).
gRPC: TorchServe 0.12 answers a refused image with status OK and the handler's JSON error as the
prediction; a message above the frontend's limit fails with CANCELLED (the stream is reset).
"""

from __future__ import annotations

import http.client
import io
import json
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
from PIL import Image

from benchmarks.bad_inputs import Case, corpus
from shoeseg.client.client import grpc_channel, grpc_stubs
from shoeseg.constants import is_png
from shoeseg.serving import server as ts_server
from tests.conftest import FRONTEND_MAX_BYTES, HANDLER_MAX_BYTES

pytestmark = pytest.mark.integration
CASES = corpus(max_bytes=HANDLER_MAX_BYTES, frontend_max_bytes=FRONTEND_MAX_BYTES)


def post(srv: ts_server.Server, case: Case) -> tuple[int, bytes]:
    """POST over a kept-alive connection, as our client does (see shoeseg.client.predict_rest)."""
    body, content_type = case.http_body()
    conn = http.client.HTTPConnection(urllib.parse.urlsplit(srv.inference_url).netloc, timeout=180)
    try:
        conn.request("POST", "/predictions/resunet", body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def check_cutout(case: Case, body: bytes) -> None:
    assert is_png(body), body[:200]
    image = Image.open(io.BytesIO(body))
    assert (image.mode, image.size) == ("RGBA", case.size)
    if case.colour:
        mean = np.asarray(image)[..., :3].reshape(-1, 3).mean(0)
        assert np.abs(mean - case.colour).max() < 40, mean


def check_error(case: Case, status: int, body: bytes, words: str | None = None) -> None:
    if case.frontend:
        return  # TorchServe's own refusal: status only
    error = json.loads(body)
    assert error["code"] == status and error["type"] and (words or case.words) in error["message"], error


def grpc_predict(srv: ts_server.Server, case: Case) -> tuple[str, bytes]:
    """(gRPC status name, prediction bytes) for the case's input map."""
    pb2, pb2_grpc = grpc_stubs()
    request = pb2.PredictionsRequest(model_name="resunet", input=case.grpc_input())
    with grpc_channel(srv.grpc_inference) as channel:
        try:
            reply = pb2_grpc.InferenceAPIsServiceStub(channel).Predictions(request, timeout=180)
        except grpc.RpcError as err:
            return err.code().name, str(err.details()).encode()
    return "OK", reply.prediction


def test_corpus_rest_and_grpc_worker_survives(server: ts_server.Server) -> None:
    before = ts_server.worker_status(server)
    assert len(before) == 1
    # REST: four at a time, so bad and good requests share batches
    with ThreadPoolExecutor(4) as pool:
        answers = dict(zip(CASES, pool.map(lambda case: post(server, case), CASES.values()), strict=True))
    for name, (status, body) in answers.items():
        case = CASES[name]
        assert status == case.status, f"{name}: HTTP {status} {body[:300]!r}"
        check_cutout(case, body) if status == 200 else check_error(case, status, body)
    # gRPC: the same bodies as the input map's "data" (or the form's fields)
    for name, case in CASES.items():
        code, body = grpc_predict(server, case)
        expected = case.grpc_status or case.status
        if case.frontend and expected != 200:
            assert code == "CANCELLED", f"{name}: gRPC {code} {body[:200]!r}"  # the stream is reset
        elif expected == 200:
            assert code == "OK", f"{name}: gRPC {code} {body[:200]!r}"
            check_cutout(case, body)
        else:
            assert code == "OK" and not is_png(body), f"{name}: gRPC {code}"
            check_error(case, expected, body, case.grpc_words)
    after = ts_server.worker_status(server)
    assert [(w["pid"], w["status"]) for w in after] == [(before[0]["pid"], "READY")]
