"""The int8 path: ranges calibrated once beside the weights, the QDQ graph made from them anywhere, its
probabilities close to the fp32 graph's, and a clear error when the ranges are missing or belong to others."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from shoeseg import cli
from shoeseg.model import load_model
from shoeseg.model.inference import best_sides
from shoeseg.model.quantize import CalibrationError, calibrate, is_calibrated, quantize_graph, ranges_file
from shoeseg.model.runtime import INT8_FILE, ONNX_FILE, OnnxPredictor, onnx_file
from shoeseg.model.sessions import archive_best_predictors, archive_predictor, cached_graph, pack_graphs
from shoeseg.pipeline.remover import Remover
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
    weights = tiny_checkpoint(folder / "tiny.pth", seed=1)  # int8's error varies with the random weights
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
    assert exact.std() > 1e-3  # a constant output would match trivially (random weights: ~0.005)
    assert np.abs(quantized - exact).mean() < 0.1 * exact.std()  # measured ~0.03x
    assert np.abs(quantized - exact).max() < 0.25


def test_int8_needs_ranges_calibrated_for_these_weights(calibrated: tuple[Path, Path, Path], tmp_path: Path) -> None:
    weights, graph, _ = calibrated
    other = tiny_checkpoint(tmp_path / "other.pth", seed=2)  # other weights: another digest
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

    model = remover.model
    size, sides = model.config.input_size, best_sides(model.config.input_size)
    # quality=best's other sides run int8 too (same ranges: the graphs differ only in their side)
    assert all("_int8.onnx" in p.name for p in remover.sized_predictors().values())

    packed = {p.name for p in pack_graphs(weights, tmp_path)}
    assert packed == {onnx_file(side, size, int8) for side in sides for int8 in (False, True)}
    main = archive_predictor(model, tmp_path, "onnx-int8")
    assert INT8_FILE in main.name
    assert all("_int8.onnx" in p.name for p in archive_best_predictors(model, tmp_path, main, True).values())
    assert INT8_FILE in archive_predictor(model, tmp_path, "auto").name  # the CPU server's default
    fp32 = archive_predictor(model, tmp_path, "onnx")
    assert not any("int8" in p.name for p in archive_best_predictors(model, tmp_path, fp32, True).values())
    (tmp_path / INT8_FILE).unlink()
    assert ONNX_FILE in archive_predictor(model, tmp_path, "auto").name  # a .mar without it: fp32
    with pytest.raises(FileNotFoundError, match="make calibrate"):
        archive_predictor(model, tmp_path, "onnx-int8")


def test_shoeseg_calibrate_writes_the_ranges_beside_the_weights(tmp_path: Path) -> None:
    """The command beside ``make calibrate``, on a tiny data root: two cutouts and one background photo."""
    rng = np.random.default_rng(3)
    (tmp_path / "shoes" / "train").mkdir(parents=True)
    (tmp_path / "backgrounds").mkdir()
    for index in range(2):
        rgba = rng.integers(0, 256, (60, 90, 4), np.uint8)
        rgba[..., 3] = 0
        rgba[15:45, 20:70, 3] = 255
        Image.fromarray(rgba, "RGBA").save(tmp_path / "shoes" / "train" / f"{index}.png")
    Image.fromarray(rng.integers(0, 256, (80, 120, 3), np.uint8)).save(tmp_path / "backgrounds" / "room.jpg")
    weights = tiny_checkpoint(tmp_path / "tiny.pth")
    assert not is_calibrated(weights)
    assert cli.main(["calibrate", "--weights", str(weights), "--data", str(tmp_path), "--images", "4"]) == 0
    assert is_calibrated(weights) and json.loads(ranges_file(weights).read_text())["images"] == 4
