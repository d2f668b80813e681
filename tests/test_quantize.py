"""The int8 path: ranges calibrated once beside the weights, the QDQ graph made from them anywhere, its
probabilities close to the fp32 graph's, and a clear error when the ranges are missing or belong to others."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from shoeseg.handler.resunet_handler import choose_predictor
from shoeseg.handler.server import pack_graphs
from shoeseg.model import load_model
from shoeseg.model.quantize import CalibrationError, calibrate, quantize_graph, ranges_file
from shoeseg.model.runtime import INT8_FILE, ONNX_FILE, OnnxPredictor
from shoeseg.pipeline.remover import Remover, cached_graph
from tests.serving_helpers import TINY, tiny_checkpoint

pytestmark = pytest.mark.slow  # exports and quantizes the tiny model (~30 s once)


def inputs(count: int, seed: int) -> list[np.ndarray]:
    """``count`` normalised (1, 3, S, S) images: smooth blobs, so activations look like a photo's, not noise."""
    rng = np.random.default_rng(seed)
    size = TINY.input_size
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for _ in range(count):
        cy, cx, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.35)
        blob = (((yy - cy) ** 2 + (xx - cx) ** 2) < r * r).astype(np.float32)
        colour = rng.normal(size=(3, 1, 1)).astype(np.float32)
        out.append((blob[None] * colour + rng.normal(0, 0.1, (3, size, size)))[None].astype(np.float32))
    return out


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A tiny checkpoint with its ranges file beside it -> (weights, fp32 graph, int8 graph)."""
    folder = tmp_path_factory.mktemp("int8")
    weights = tiny_checkpoint(folder / "tiny.pth")
    graph = cached_graph(load_model(weights, "cpu"), weights)
    ranges = calibrate(graph, inputs(8, seed=0), weights, note="test")
    ranges_file(weights).write_text(json.dumps(ranges))
    return weights, graph, quantize_graph(graph, folder / INT8_FILE, weights)


def test_calibration_records_the_weights_and_the_images(calibrated: tuple[Path, Path, Path]) -> None:
    weights, _, _ = calibrated
    saved = json.loads(ranges_file(weights).read_text())
    assert saved["images"] == 8 and saved["note"] == "test"
    assert len(saved["weights_sha256"]) == 64
    assert len(saved["ranges"]["data"]) > 50  # one range per activation of the graph


def test_int8_graph_is_quantized_but_keeps_the_fp32_tail(calibrated: tuple[Path, Path, Path]) -> None:
    nodes = onnx.load(str(calibrated[2])).graph.node
    ops = [n.op_type for n in nodes]
    assert ops.count("QuantizeLinear") > 20 and ops.count("DequantizeLinear") > 20
    classify = next(n for n in nodes if any("head.classify" in name for name in n.input))
    assert classify.op_type == "Conv"  # reads its fp32 weight directly: no DequantizeLinear in front of it
    assert all("head.classify" not in name for n in nodes if n.op_type == "DequantizeLinear" for name in n.input)


def test_int8_probabilities_follow_the_fp32_graph(calibrated: tuple[Path, Path, Path]) -> None:
    _, graph, int8_graph = calibrated
    int8, fp32 = OnnxPredictor(int8_graph, threads=1), OnnxPredictor(graph, threads=1)
    batch = np.concatenate(inputs(4, seed=1))  # images the calibration never saw
    exact, quantized = fp32(batch), int8(batch)
    assert exact.std() > 1e-3  # a constant output would match trivially
    assert np.abs(quantized - exact).mean() < 0.02
    assert np.abs(quantized - exact).max() < 0.25


def test_int8_needs_ranges_calibrated_for_these_weights(calibrated: tuple[Path, Path, Path], tmp_path: Path) -> None:
    weights, graph, _ = calibrated
    other = tiny_checkpoint(tmp_path / "other.pth")  # new random weights: another digest
    with pytest.raises(CalibrationError, match="make calibrate WEIGHTS="):
        quantize_graph(graph, tmp_path / INT8_FILE, other)
    ranges_file(other).write_text(ranges_file(weights).read_text())
    with pytest.raises(CalibrationError, match="calibrated for other weights"):
        quantize_graph(graph, tmp_path / INT8_FILE, other)


def test_library_and_handler_run_the_int8_graph(calibrated: tuple[Path, Path, Path], tmp_path: Path) -> None:
    weights = calibrated[0]
    remover = Remover(weights, device="cpu", runtime="onnx-int8")
    assert INT8_FILE in remover.predictor.name
    assert INT8_FILE in Remover(weights, device="cpu").predictor.name  # auto on a CPU: calibrated -> int8
    assert ONNX_FILE in Remover(weights, device="cpu", runtime="onnx").predictor.name
    rgb = np.zeros((90, 120, 3), np.uint8)
    rgb[20:70, 30:90] = (200, 40, 40)
    assert remover.predict_alpha(rgb).shape == (90, 120)

    packed = {p.name for p in pack_graphs(weights, tmp_path)}
    assert {ONNX_FILE, INT8_FILE} <= packed
    model = remover.model
    assert INT8_FILE in choose_predictor(model, tmp_path, "onnx-int8").name
    assert INT8_FILE in choose_predictor(model, tmp_path, "auto").name  # the CPU server's default
    (tmp_path / INT8_FILE).unlink()
    assert ONNX_FILE in choose_predictor(model, tmp_path, "auto").name  # a .mar without it: fp32
    with pytest.raises(FileNotFoundError, match="make calibrate"):
        choose_predictor(model, tmp_path, "onnx-int8")
