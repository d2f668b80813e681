"""Costly legal requests through a real TorchServe (the session's server, shipped model-config.yaml): a burst
of nine of the costliest accepted requests leaves the worker up, answers each 200 or 429 Busy, and a small
request sent meanwhile is answered within 30 s; a request over the cost limit gets 413 CostLimit at once."""

from __future__ import annotations

import io
import json
import threading
import time
import urllib.parse
from http.client import HTTPConnection
from typing import Any

import pytest
import yaml
from PIL import Image

from benchmarks.bad_inputs import BOUNDARY, multipart, png_header_only
from benchmarks.prepost import jpeg_bytes, synthetic_photo
from shoeseg.pipeline import cost
from shoeseg.pipeline.options import parse_options
from shoeseg.serving import server as ts_server
from tests.serving_helpers import REPO

pytestmark = pytest.mark.integration

COSTLY = {"quality": b"best", "tta": b"true", "refine": b"true"}
SMALL_BOUND_S = 30.0  # the bar for the small request sent during the burst


def post_form(srv: ts_server.Server, fields: dict[str, bytes], timeout: float = 600) -> tuple[int, dict, bytes, float]:
    """(status, headers, body, seconds) of one multipart request to /predictions/resunet."""
    parts = urllib.parse.urlsplit(srv.inference_url)
    start = time.monotonic()
    conn = HTTPConnection(parts.netloc, timeout=timeout)
    try:
        body = multipart(fields)
        conn.request("POST", "/predictions/resunet", body=body,
                     headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})  # fmt: skip
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read(), time.monotonic() - start
    finally:
        conn.close()


def costliest_accepted() -> tuple[bytes, tuple[int, int]]:
    """A 4:3 JPEG photo at the largest size the shipped max_request_cost lets quality=best + tta + refine have."""
    limit = float(yaml.safe_load((REPO / "model-config.yaml").read_text())["handler"]["max_request_cost"])
    options = parse_options({k: v.decode() for k, v in COSTLY.items()})
    mp = cost.max_megapixels(limit, options) - 0.05
    width = int((mp * 1e6 * 4 / 3) ** 0.5)
    size = (width, int(width * 3 / 4))
    assert cost.request_cost(size[0] * size[1], options) <= limit
    return jpeg_bytes(synthetic_photo(*size, seed=7), 90), size


def burst(srv: ts_server.Server, clients: int = 9, small_after_s: float = 1.0) -> dict[str, Any]:
    """``clients`` of the costliest accepted requests at once, a small plain one ``small_after_s`` later."""
    body, size = costliest_accepted()
    small_body = jpeg_bytes(synthetic_photo(640, 480, seed=8))
    pid = ts_server.worker_status(srv)[0]["pid"]
    results: list[tuple[int, dict, bytes, float] | None] = [None] * clients
    barrier = threading.Barrier(clients + 1)

    def send(idx: int) -> None:
        barrier.wait()
        results[idx] = post_form(srv, {"data": body, **COSTLY})

    threads = [threading.Thread(target=send, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    time.sleep(small_after_s)
    small = post_form(srv, {"data": small_body})
    for thread in threads:
        thread.join()
    workers = ts_server.worker_status(srv)
    return {"size": size, "bytes": len(body), "results": results, "small": small, "pid": pid, "workers": workers}


def test_a_request_over_the_cost_limit_is_refused_with_what_fits(server: ts_server.Server) -> None:
    status, _, body, took = post_form(server, {"data": png_header_only(8368, 5576), **COSTLY}, timeout=60)
    doc = json.loads(body)
    assert status == 413 and doc["type"] == "CostLimit" and doc["cost"] > doc["limit"] > 0
    assert "handler.max_request_cost" in doc["message"] and f"at most {doc['max_megapixels']:.1f} MP" in doc["message"]
    assert took < 10  # refused from the header: no decoding


def test_nine_costliest_requests_leave_the_worker_up_and_small_ones_prompt(server: ts_server.Server) -> None:
    run = burst(server)
    statuses = [r[0] for r in run["results"]]
    print(f"\nburst of {len(statuses)} x {run['size'][0]}x{run['size'][1]} ({run['bytes'] / 1e6:.1f} MB) with "
          f"{', '.join(COSTLY)}: statuses {statuses}, seconds {[round(r[3], 1) for r in run['results']]}; "
          f"small request {run['small'][0]} in {run['small'][3]:.1f} s; worker {run['pid']} -> "
          f"{[w['pid'] for w in run['workers']]}")  # fmt: skip
    for status, headers, body, _ in run["results"]:
        if status == 200:
            assert Image.open(io.BytesIO(body)).size == run["size"]
        else:
            doc = json.loads(body)
            assert status == 429 and doc["type"] == "Busy" and headers.get("Retry-After") == str(cost.RETRY_AFTER_S)
    assert 200 in statuses  # the burst is served, not only refused
    small_status, _, small_body, small_s = run["small"]
    assert small_status == 200 and Image.open(io.BytesIO(small_body)).size == (640, 480)
    assert small_s < SMALL_BOUND_S
    assert [w["pid"] for w in run["workers"]] == [run["pid"]] and run["workers"][0]["status"] == "READY"
