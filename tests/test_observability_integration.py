"""What a real TorchServe 0.12 exports on /metrics for the handler's alerting metrics (Prometheus mode)."""

from __future__ import annotations

import re

import pytest

from shoeseg.client import ImageRejectedError, predict_rest
from shoeseg.serving import server as ts_server
from tests.serving_helpers import image_bytes
from tests.test_serving_integration import metric, scrape, scrape_until

pytestmark = pytest.mark.integration

STEPS = ("Decode", "Preprocess", "Inference", "Encode", "Handler")


def buckets(text: str, name: str) -> dict[str, float]:
    """``le`` -> cumulative count of the resunet model's ``name`` histogram."""
    found = re.findall(rf'^{name}_bucket{{([^}}]*ModelName="resunet"[^}}]*)}} ([0-9.eE+-]+)$', text, re.M)
    return {re.search(r'le="([^"]+)"', labels).group(1): float(value) for labels, value in found}


def test_step_seconds_are_prometheus_histograms(server: ts_server.Server) -> None:
    before = metric(scrape(server), "HandlerSeconds_count")
    predict_rest(image_bytes(300, 200, "JPEG"), url=server.inference_url)
    text = scrape_until(server, "HandlerSeconds_count", before + 1)
    for step in STEPS:
        name = f"{step}Seconds"
        le = buckets(text, name)
        # the Prometheus client's default buckets, in seconds, cumulative, +Inf equal to the count
        assert {"0.005", "0.1", "1.0", "10.0", "+Inf"} <= set(le), (name, sorted(le))
        counts = [le[k] for k in sorted(le, key=lambda k: float(k.replace("+Inf", "inf")))]
        assert counts == sorted(counts) and le["+Inf"] == metric(text, f"{name}_count") >= 1
        assert 0 < metric(text, f"{name}_sum") < 120 * le["+Inf"]  # seconds, not milliseconds
    assert metric(text, "HandlerSeconds_count") >= before + 1


def test_rejections_by_error_type(server: ts_server.Server) -> None:
    label = 'RejectedRequests{[^}]*ErrorType="UnsupportedMediaType"[^}]*}'
    text = scrape(server)
    before, total = (
        sum(float(v) for v in re.findall(rf"^{label} ([0-9.eE+-]+)$", text, re.M)),
        metric(text, "RejectedRequests"),
    )
    with pytest.raises(ImageRejectedError):
        predict_rest(b"plain text, not an image", url=server.inference_url)
    text = scrape_until(server, "RejectedRequests", total + 1)
    after = sum(float(v) for v in re.findall(rf"^{label} ([0-9.eE+-]+)$", text, re.M))
    assert after == before + 1, re.findall(r"^RejectedRequests.*$", text, re.M)
