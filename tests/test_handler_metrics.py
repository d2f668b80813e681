"""The handler's alerting metrics, emitted through TorchServe's own metrics cache (no server): per-step times
as histograms in seconds beside the millisecond gauges, and refusals counted by error type."""

from __future__ import annotations

import logging
import re

import pytest
import yaml
from ts.context import Context

from shoeseg.handler.resunet_handler import ResUNetHandler
from tests.serving_helpers import REPO, image_bytes
from tests.test_handler import handler_and_context, run  # noqa: F401 - the module's handler fixture

STEPS = ("Decode", "Preprocess", "Inference", "Encode", "Handler")


def emitted(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("[METRICS]")]


def test_step_times_are_histograms_in_seconds(
    handler_and_context: tuple[ResUNetHandler, Context],  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler, context = handler_and_context
    with caplog.at_level(logging.INFO):
        run(handler, context, [{"body": image_bytes(64, 48)}, {"body": image_bytes(30, 90, "JPEG")}])
    lines = emitted(caplog)
    for step in STEPS:
        gauge = [line for line in lines if line.startswith(f"[METRICS]{step}Time.Milliseconds:")]
        hist = [line for line in lines if line.startswith(f"[METRICS]{step}Seconds.")]
        assert len(gauge) == 1 and len(hist) == 1, (step, lines)
        ms = float(re.search(r":([0-9.]+)\|", gauge[0]).group(1))
        seconds = float(re.search(r":([0-9.]+)\|", hist[0]).group(1))
        assert abs(seconds * 1000 - ms) < 0.02, (step, ms, seconds)  # the same time, in seconds
        assert "ModelName:resunet" in hist[0]


def test_refusals_are_counted_by_error_type(
    handler_and_context: tuple[ResUNetHandler, Context],  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler, context = handler_and_context
    requests = [
        {"body": b"not an image"},  # 415 UnsupportedMediaType
        {"body": image_bytes(20, 20), "output": b"sepia"},  # 400 InvalidOption
        {"body": b"\x89PNG\r\n\x1a\n" + b"\0" * 30},  # 400 InvalidImage
        {"body": image_bytes(40, 40)},  # served: not counted
    ]
    with caplog.at_level(logging.INFO):
        run(handler, context, requests)
    rejected = [line for line in emitted(caplog) if line.startswith("[METRICS]RejectedRequests.")]
    kinds = sorted(re.search(r"ErrorType:([A-Za-z]+)", line).group(1) for line in rejected)
    assert kinds == ["InvalidImage", "InvalidOption", "UnsupportedMediaType"]


def test_metrics_yaml_declares_every_emitted_metric() -> None:
    """TorchServe exports only declared metrics in Prometheus mode: each name the handler emits is there."""
    declared = yaml.safe_load((REPO / "metrics.yaml").read_text())["model_metrics"]
    by_kind = {kind: {m["name"]: m for m in items} for kind, items in declared.items()}
    for step in STEPS:
        assert by_kind["histogram"][f"{step}Seconds"]["unit"] == "s"
        assert f"{step}Time" in by_kind["gauge"]
    assert by_kind["counter"]["RejectedRequests"]["dimensions"] == ["ModelName", "Level", "ErrorType"]
    source = (REPO / "shoeseg/handler/resunet_handler.py").read_text()
    names = set(re.findall(r'_metric\(\s*"(\w+)"', source))
    names |= {f"{step}{suffix}" for step in re.findall(r'_time\(\s*"(\w+)"', source) for suffix in ("Time", "Seconds")}
    known = set().union(*(set(items) for items in by_kind.values()))
    assert names and names <= known, names - known
