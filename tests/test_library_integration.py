"""``shoeseg.remove`` answers with the server's very bytes: same pipeline, same runtime (a real TorchServe)."""

from __future__ import annotations

import json
import urllib.request

import pytest

from shoeseg.pipeline import Remover
from shoeseg.serving import server as ts_server
from tests.serving_helpers import image_bytes
from tests.test_options_integration import via_form, via_grpc, via_query

pytestmark = pytest.mark.integration

# The tiny random model's alpha is ~0.45 everywhere: the decisive matte clears it all, so the cases that need
# an object (crop, a canvas) keep the model's own alpha (matte=soft).
CASES = [
    {},
    {"output": "rgb", "bg": "#336699"},
    {"crop": "true", "margin": "10%", "format": "webp", "matte": "soft"},
    {"tta": "true"},
    {"quality": "best"},  # its other sides through the .mar's graphs there, the cached exports here
    {"preset": "amazon", "matte": "soft", "size": "400"},
    {"preset": "transparent-square", "shadow": "drop", "matte": "soft"},
]


@pytest.mark.parametrize("options", CASES, ids=lambda o: "&".join(f"{k}={v}" for k, v in o.items()) or "defaults")
def test_remove_is_byte_identical_to_the_server(server: ts_server.Server, options: dict[str, str]) -> None:
    remover = Remover(next(server.home.parent.glob("tiny.pth")), "cpu")  # the server's checkpoint, CPU path
    photo = image_bytes(150, 110, "JPEG")
    local = remover.remove(photo, encoded=True, **options)
    for status, _, body in (via_query(server, options, photo), via_form(server, options, photo)):
        assert status == 200, body[:300]
        assert body == local
    assert via_grpc(server, options, photo) == local


def test_a_canvas_beyond_the_cost_limit_is_a_413_not_a_dead_worker(server: ts_server.Server) -> None:
    photo = image_bytes(150, 110, "JPEG")
    status, _, body = via_query(server, {"canvas": "16384x16384", "matte": "soft"}, photo)
    assert (
        status == 413
        and json.loads(body)["type"] == "CostLimit"
        and "canvas=16384x16384" in json.loads(body)["message"]
    )
    status, _, body = via_query(server, {"fill": "0.5"}, photo)
    assert status == 400 and json.loads(body)["option"] == "fill" and "canvas" in json.loads(body)["message"]
    status, _, _ = via_query(server, {}, photo)
    assert status == 200  # the same worker answers


def test_rest_answer_carries_the_cutout_confidence(server: ts_server.Server) -> None:
    remover = Remover(next(server.home.parent.glob("tiny.pth")), "cpu")
    photo = image_bytes(150, 110, "JPEG")
    request = urllib.request.Request(f"{server.inference_url}/predictions/resunet", data=photo, method="POST")
    request.add_header("Content-Type", "application/octet-stream")
    with urllib.request.urlopen(request, timeout=120) as response:
        value = response.headers["X-Cutout-Confidence"]
        body = response.read()
    local = remover.process(photo)
    assert body == local.data and value == f"{local.confidence:.3f}"
