"""`make bench`'s server section on a real TorchServe: one per batch size from a fresh .mar, its cold start,
plain and quality=best load levels, the server stopped after."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.prepost import jpeg_bytes, synthetic_photo
from benchmarks.serve_load import bench_server
from shoeseg.serving.server import server_at
from tests.serving_helpers import tiny_checkpoint

pytestmark = pytest.mark.integration


def test_bench_server_measures_each_batch_size_and_quality_best(tmp_path: Path) -> None:
    weights = tiny_checkpoint(tmp_path / "tiny.pth")
    payload = jpeg_bytes(synthetic_photo(320, 240))
    [run] = bench_server(
        weights, tmp_path, payload, batch_sizes=(2,), clients=(1,), requests=2, log=lambda _: None, best_clients=(1,)
    )
    assert run.status == "ok", run.note
    assert run.cold_start_s > 0
    assert [(r.ok, r.errors) for r in run.loads + run.best_loads] == [(2, 0), (2, 0)]
    assert server_at(tmp_path / "serve-batch2" / "home").pid() is None  # stopped, not left running
