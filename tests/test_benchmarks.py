"""The benchmark harness: report files and rows, the seed rebuild, the load generator, the bars' arithmetic.

Behaviour only: no assertion here depends on how fast anything ran.
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from benchmarks import forward as fw
from benchmarks.prepost import StageRow
from benchmarks.report import Results, bars, e2e_ratio_bound, findings, seed_e2e_derived, server_table
from benchmarks.run import DEFAULT_PEERS
from benchmarks.run import main as bench_main
from benchmarks.seed_resunet import SeedResUNet
from benchmarks.serve_load import (
    LoadResult,
    ServerRun,
    load_levels,
    model_config_with_batch,
    percentile,
    run_load,
)
from benchmarks.timing import Peak, Timing, machine_info
from shoeseg.pipeline.image_io import DEFAULT_PNG_LEVEL

OURS_PATHS = [fw.EAGER, fw.CHANNELS_LAST, fw.COMPILE, fw.ORT, fw.ORT_INT8, fw.TORCH_INT8, fw.TORCHSCRIPT]


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One quick run on the tiny model. One thread: a second OpenMP thread only adds waiting when another
    process (a test runner, a training run) keeps the other core busy."""
    out = tmp_path_factory.mktemp("bench")
    printed = io.StringIO()
    threads = torch.get_num_threads()
    argv = ["--quick", "--tiny", "--threads", "1", "--out", str(out), "--images", "320x240,200x300"]
    try:
        with contextlib.redirect_stdout(printed):
            assert bench_main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    return out, printed.getvalue()


@pytest.mark.slow  # the quick-bench fixture (~70 s once)
def test_quick_run_writes_the_three_files(quick_report: tuple[Path, str]) -> None:
    out, printed = quick_report
    md = (out / "bench.md").read_text()
    assert "| model | path | batch |" in md and "| model | path | batch |" in printed
    assert "## Bars" in md and "**Machine**" in md and "## Pre- and post-processing" in md
    with Image.open(out / "bench.png") as chart:
        assert chart.format == "PNG" and chart.width > 400 and chart.height > 200
    data = json.loads((out / "bench.json").read_text())
    assert data["mode"] == "quick" and data["size"] == 128
    assert data["machine"]["torch_threads"] == 1
    assert "torch kernels" in data["machine"]["simd"] and "**SIMD**" in md  # the figures' machine, explained
    assert data["peak_gflops"] > 0 and {p["library"] for p in data["peaks"]} >= {"torch.mm (MKL)"}


@pytest.mark.slow  # the quick-bench fixture
def test_quick_run_has_every_forward_row(quick_report: tuple[Path, str]) -> None:
    data = json.loads((quick_report[0] / "bench.json").read_text())
    rows = {(r["model"], r["path"], r["batch"]): r for r in data["forward"]}
    for path in OURS_PATHS:
        for batch in (1, 8):
            assert ("ours", path, batch) in rows, (path, batch)
    for batch in (1, 8):
        assert rows[("ours", fw.EAGER, batch)]["status"] == "ok"
        assert rows[("ours", fw.CHANNELS_LAST, batch)]["max_dp"] < 1e-4
        assert rows[("seed", fw.EAGER, batch)]["status"] == "ok"
        assert rows[("ours", fw.COMPILE, batch)]["status"] == "skipped"  # --quick
        onnx = rows[("ours", fw.ORT, batch)]
        assert onnx["status"] == "ok" and onnx["matches_eager"] is True, onnx["note"]
    assert rows[("ours", fw.TORCHSCRIPT, 1)]["deprecated"] is True
    ours = rows[("ours", fw.EAGER, 1)]
    assert ours["gflops_per_image"] > 0 and ours["timing"]["repeats"] >= 1 and ours["timing"]["warmup"] >= 1
    seed = rows[("seed", fw.EAGER, 1)]
    assert seed["gflops_per_image"] > ours["gflops_per_image"]
    if (DEFAULT_PEERS / "modnet.onnx").exists():
        assert rows[("modnet", "onnxruntime fp32", 1)]["size"] == "512x512"
    if (DEFAULT_PEERS / "u2netp.onnx").exists():
        assert rows[("u2netp", "onnxruntime fp32", 1)]["size"] == "320x320"


@pytest.mark.slow  # the quick-bench fixture
def test_quick_run_has_pre_and_post_processing_rows(quick_report: tuple[Path, str]) -> None:
    data = json.loads((quick_report[0] / "bench.json").read_text())
    for image in ("320x240", "200x300"):
        stages = {r["stage"]: r for r in data["prepost"] if r["image"] == image}
        assert {"decode (JPEG)", "letterbox to 128", "un-letterbox + upsample"} <= set(stages)
        sizes = [stages[f"PNG encode level {level}"]["output_bytes"] for level in (0, 1, 3, 6)]
        assert all(s > 0 for s in sizes) and sizes[0] > sizes[3]  # level 0 is stored, 6 compressed


@pytest.mark.slow  # the quick-bench fixture
def test_quick_run_skips_the_server_and_says_so(quick_report: tuple[Path, str]) -> None:
    out, printed = quick_report
    data = json.loads((out / "bench.json").read_text())
    assert data["server"] == []
    assert any("server skipped" in note for note in data["notes"])
    assert any(line.startswith("SKIP end-to-end") for line in data["bars"])
    assert any(line.split()[0] in ("PASS", "FAIL") for line in data["bars"])
    assert "SKIP cold start" in printed


def test_seed_architecture_matches_the_spec() -> None:
    torch.manual_seed(0)
    model = SeedResUNet().eval()
    assert list(model.encoder.feature_info.channels()) == [24, 32, 48, 136, 384]
    assert 20e6 < sum(p.numel() for p in model.parameters()) < 27e6
    with torch.inference_mode():
        out = model(torch.randn(1, 3, 64, 96))  # not square, 1/32 map is 2x3: any size divisible by 32
    assert out.shape == (1, 2, 64, 96)
    with pytest.raises(ValueError, match="divisible by 32"):
        model(torch.randn(1, 3, 64, 80))


class _FakeServer(BaseHTTPRequestHandler):
    """Answers POST with a PNG, except every third request, which gets 503."""

    count = 0
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            type(self).count += 1
            fail = type(self).count % 3 == 0
        body = b"busy" if fail else b"\x89PNG\r\n\x1a\n" + b"0" * 32
        self.send_response(503 if fail else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def fake_server() -> Iterator[str]:
    _FakeServer.count = 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _FakeServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/predictions/resunet"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_run_load_counts_successes_and_errors(fake_server: str) -> None:
    result = run_load(fake_server, b"jpeg bytes", clients=3, requests_per_client=4, timeout=10)
    assert result.ok + result.errors == 12
    assert result.errors == 4 and "HTTP 503" in result.first_error
    assert result.p50_s <= result.p95_s and result.images_per_s > 0
    assert result.to_dict()["ok"] == 8


def test_load_levels_sends_at_least_two_requests_per_client(fake_server: str) -> None:
    results = load_levels(fake_server, b"jpeg", clients=(1, 3), requests=2, warmup=1, log=lambda _: None)
    assert [r.clients for r in results] == [1, 3]
    assert [r.ok + r.errors for r in results] == [2, 6]


def test_load_levels_refuses_an_unreachable_server() -> None:
    from shoeseg.serving.server import free_ports

    with pytest.raises(ConnectionError, match="warm-up request"):
        load_levels(f"http://127.0.0.1:{free_ports(1)[0]}/predictions/resunet", b"jpeg", (1,), 1, log=print)


def test_percentile() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 95) == pytest.approx(4.8)
    assert percentile([7.0], 95) == 7.0


def test_model_config_with_batch(tmp_path: Path) -> None:
    base = tmp_path / "model-config.yaml"
    base.write_text("minWorkers: 1\nbatchSize: 8  # comment\nhandler:\n  png_compress_level: 1\n")
    written = yaml.safe_load(model_config_with_batch(base, 1, tmp_path / "out" / "cfg.yaml").read_text())
    assert written == {"minWorkers": 1, "batchSize": 1, "handler": {"png_compress_level": 1}}


def _row(model: str, path: str, seconds: float, batch: int = 1, **kw: object) -> fw.ForwardRow:
    return fw.ForwardRow(model, path, batch, "512x512", Timing([seconds], 1), **kw)


def _results(forward: list[fw.ForwardRow], server: list[ServerRun]) -> Results:
    peaks = [Peak("torch.mm", 8, Timing([1.0], 1))]
    return Results(machine_info(), "full", "test", 512, {}, peaks, forward, [], server)


def test_bars_pick_the_fastest_exact_path_and_derive_the_seed() -> None:
    forward = [
        _row("ours", fw.EAGER, 0.5, max_dp=0.0),
        _row("ours", fw.CHANNELS_LAST, 0.4, max_dp=0.0),
        _row("ours", fw.ORT, 0.3, max_dp=1e-6),
        _row("ours", fw.ORT_INT8, 0.1, max_dp=0.2),  # not exact: not eligible
        _row("ours", fw.TORCHSCRIPT, 0.05, max_dp=0.0, deprecated=True),  # deprecated: not eligible
        _row("seed", fw.EAGER, 1.5),
        _row("modnet", "onnxruntime fp32", 0.25),
    ]
    server = [
        ServerRun(8, cold_start_s=12.0, loads=[LoadResult(4, [1.0] * 10, 0, 5.0)]),  # 2 images/s
        ServerRun(1, cold_start_s=11.0, loads=[LoadResult(4, [1.0] * 10, 0, 2.5)]),  # 4 images/s
    ]
    results = _results(forward, server)
    lines = bars(results)
    assert lines[0].startswith("PASS") and "onnxruntime fp32" in lines[0] and "5.00x" in lines[0]
    assert lines[1].startswith("FAIL")  # 0.3 s is slower than MODNet's 0.25 s
    derived = seed_e2e_derived(results)  # the shipped configuration, batchSize 8
    assert derived is not None and derived["batch_size"] == 8
    # 0.5 s per image measured, minus our forward as the CPU handler runs it (the int8 graph, 0.1 s),
    # plus the seed's 1.5 s -> 1.9 s per image
    assert derived["seed_s_per_image"] == pytest.approx(1.9) and derived["ours_forward_path"] == fw.ORT_INT8
    assert lines[2].startswith("PASS") and "batchSize 8 (shipped)" in lines[2] and "3.80x" in lines[2]
    # batchSize 1: 0.25 - 0.1 + 1.5 = 1.65 s per image -> 4 / (1 / 1.65) = 6.6x, reported, not judged
    assert lines[3].startswith("INFO end-to-end") and "batchSize 1:" in lines[3] and "6.60x" in lines[3]
    # weights without int8 ranges: the handler serves the fp32 graph, so that is the forward swapped out
    fp32_only = _results([r for r in forward if r.path != fw.ORT_INT8], server)
    assert seed_e2e_derived(fp32_only)["seed_s_per_image"] == pytest.approx(1.7)
    assert lines[4].startswith("SKIP default request vs seed")  # no 1-client level in this run
    assert "int8 forward 100 ms vs fp32 graph 300 ms = 3.00x" in lines[5]
    assert lines[6].startswith("SKIP quality=best")
    assert lines[7].startswith("INFO cold start") and "12.0 s (batchSize 8)" in lines[7]
    assert any("Dynamic batching (batchSize 8) served fewer images/s" in f for f in findings(results))


def test_quality_best_loads_get_their_own_rows_and_leave_the_bars_alone() -> None:
    forward = [_row("ours", fw.ORT, 0.3, max_dp=0.0), _row("seed", fw.EAGER, 1.5)]
    plain = ServerRun(8, cold_start_s=5.0, loads=[LoadResult(4, [1.0] * 10, 0, 5.0)])
    best = ServerRun(8, cold_start_s=5.0, loads=[LoadResult(4, [1.0] * 10, 0, 5.0)])
    best.best_loads = [LoadResult(4, [3.0] * 8, 0, 16.0)]  # 0.5 images/s
    rows = server_table(_results(forward, [best]))
    assert any("batchSize 8), quality=best | 4 | 8 | 0 | 3000 | 3000 | 0.50 |" in row for row in rows)
    assert len(rows) == len(server_table(_results(forward, [plain]))) + 1
    with_best, without = bars(_results(forward, [best])), bars(_results(forward, [plain]))
    judged = [line for line in with_best if "quality=best" in line]  # the one bar about it: 2 vs 0.5 images/s
    assert len(judged) == 1 and judged[0].startswith("FAIL") and "= 4.00x the cost" in judged[0]
    assert [line for line in with_best if "quality=best" not in line] == [
        line for line in without if "quality=best" not in line
    ]
    assert best.to_dict()["best_loads"][0]["clients"] == 4


def test_e2e_bound_from_pre_and_post_processing() -> None:
    forward = [_row("ours", fw.ORT, 0.2, max_dp=0.0), _row("seed", fw.EAGER, 0.8)]
    results = _results(forward, [])
    stages = ["decode (JPEG)", "letterbox to 512", "un-letterbox + upsample", f"PNG encode level {DEFAULT_PNG_LEVEL}"]
    results.prepost = [StageRow(stage, "1500x1500", Timing([0.05], 1)) for stage in stages]  # 0.2 s in all
    bound = e2e_ratio_bound(results)
    assert bound is not None and bound["prepost_s"] == pytest.approx(0.2)
    assert bound["ratio"] == pytest.approx(2.5)  # (0.2 + 0.8) / (0.2 + 0.2)
    assert bound["zero_forward_ratio"] == pytest.approx(5.0)
    assert any("at most 2.50x" in f for f in findings(results))


@pytest.mark.slow  # ~20 s of forward passes on the CPU
def test_gpu_report_paths_agree_with_fp32_and_render(tmp_path: Path) -> None:
    """The GPU report's execution paths, run on the CPU with a tiny model: same probabilities as fp32
    (channels_last exactly, autocast within its precision), and a Markdown table with a failed row."""
    from benchmarks import gpu
    from shoeseg.model import build_model
    from tests.serving_helpers import TINY

    model = build_model(TINY).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        runs = gpu.paths(model, ["eager fp32", "eager fp32 channels_last", "bf16 autocast"], compile_model=False)
        probs = {name: run(x) for name, run in runs.items()}
    assert set(probs) == {"eager fp32", "eager fp32 channels_last", "bf16 autocast", gpu.HANDLER}
    assert all(p.shape == (2, 64, 64) for p in probs.values())
    assert torch.allclose(probs["eager fp32 channels_last"], probs["eager fp32"], atol=1e-5)
    assert torch.allclose(probs[gpu.HANDLER], probs["eager fp32"], atol=1e-5)  # CPU: fp32
    assert (probs["bf16 autocast"] - probs["eager fp32"]).abs().max() < 0.1
    result = {
        "gpu": "cpu", "torch": torch.__version__, "date": "today", "size": 64, "repeats": 1, "bf16_peak_tflops": 1.0,
        "rows": [
            {"model": "ours", "path": "eager fp32", "batch": 1, "ms_per_batch": 2.0, "images_per_s": 500.0,
             "tflops": 0.1, "first_call_s": 0.1, "max_dp": 0.0},
            {"model": "seed", "path": "bf16 autocast", "batch": 1, "error": "NotImplementedError: no bf16"},
        ],
        "notes": ["a note"],
    }  # fmt: skip
    gpu.write_markdown(result, tmp_path / "bench_gpu.md")
    text = (tmp_path / "bench_gpu.md").read_text()
    assert "| ours | eager fp32 | 1 | 2.00 | 500 |" in text
    assert "failed: NotImplementedError: no bf16" in text and "- a note" in text
