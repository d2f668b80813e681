"""End-to-end load on a TorchServe: N concurrent clients posting a JPEG, p50/p95 latency and images/s.

Against a server that is already running::

    python -m benchmarks.serve_load --url http://127.0.0.1:8080 --clients 1 4 16 --requests 16

``bench_server`` (used by ``benchmarks.run``) starts its own servers through ``serving/server.py`` on
free loopback ports in a temporary home, once with dynamic batching (batchSize 8) and once without
(batchSize 1), and measures the worker's cold start.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shoeseg.constants import MODEL_NAME, REPO_ROOT, is_png


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between order statistics."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass
class LoadResult:
    """Outcome of one concurrency level: latencies of the successful requests and the wall time."""

    clients: int
    latencies_s: list[float]
    errors: int
    wall_s: float
    first_error: str = ""

    @property
    def ok(self) -> int:
        return len(self.latencies_s)

    @property
    def p50_s(self) -> float:
        return statistics.median(self.latencies_s) if self.latencies_s else math.nan

    @property
    def p95_s(self) -> float:
        return percentile(self.latencies_s, 95)

    @property
    def images_per_s(self) -> float:
        return self.ok / self.wall_s if self.wall_s > 0 else math.nan

    def to_dict(self) -> dict[str, Any]:
        return {
            "clients": self.clients,
            "ok": self.ok,
            "errors": self.errors,
            "wall_s": self.wall_s,
            "p50_ms": self.p50_s * 1e3,
            "p95_ms": self.p95_s * 1e3,
            "images_per_s": self.images_per_s,
            "first_error": self.first_error,
            "latencies_s": self.latencies_s,
        }


def post_image(url: str, payload: bytes, timeout: float) -> tuple[int, bytes]:
    """POST raw image bytes; returns (HTTP status, body)."""
    request = urllib.request.Request(
        url, data=payload, headers={"Content-Type": "application/octet-stream"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def run_load(url: str, payload: bytes, clients: int, requests_per_client: int, timeout: float = 300) -> LoadResult:
    """``clients`` threads start together and each posts ``payload`` ``requests_per_client`` times in turn.

    A request counts as successful when it returns 200 with a PNG body. images/s = successes / wall time
    from the common start to the last response.
    """
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def client() -> None:
        barrier.wait()
        for _ in range(requests_per_client):
            start = time.perf_counter()
            try:
                status, body = post_image(url, payload, timeout)
                problem = "" if status == 200 and is_png(body) else f"HTTP {status}: {body[:200]!r}"
            except OSError as err:
                problem = f"{type(err).__name__}: {err}"
            took = time.perf_counter() - start
            with lock:
                (errors.append(problem) if problem else latencies.append(took))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    return LoadResult(clients, latencies, len(errors), wall, errors[0] if errors else "")


def load_levels(
    url: str,
    payload: bytes,
    clients: tuple[int, ...],
    requests: int,
    warmup: int = 2,
    log: Callable[[str], None] = print,
) -> list[LoadResult]:
    """``warmup`` sequential requests, then per concurrency level one untimed round (each client one request:
    the worker meets that level's batch shapes once, and onnxruntime's arena grows for them, before the clock
    starts) and ``max(requests, 2 * clients)`` timed requests."""
    for _ in range(warmup):
        try:
            status, body = post_image(url, payload, 300)
        except OSError as err:
            raise ConnectionError(f"warm-up request to {url} failed: {err}") from err
        if status != 200 or not is_png(body):
            raise ConnectionError(f"warm-up request to {url} got HTTP {status}: {body[:300]!r}")
    results = []
    for n in clients:
        per_client = max(1, math.ceil(max(requests, 2 * n) / n))
        run_load(url, payload, n, 1)
        result = run_load(url, payload, n, per_client)
        log(
            f"    {n:>2} clients: {result.ok} ok, {result.errors} errors, p50 {result.p50_s * 1e3:.0f} ms, "
            f"p95 {result.p95_s * 1e3:.0f} ms, {result.images_per_s:.2f} images/s"
        )
        results.append(result)
    return results


@dataclass
class ServerRun:
    """One TorchServe configuration: its cold start and a load result per concurrency level."""

    batch_size: int
    status: str = "ok"  # ok | failed | skipped
    note: str = ""
    cold_start_s: float | None = None
    loads: list[LoadResult] = field(default_factory=list)
    best_loads: list[LoadResult] = field(default_factory=list)  # requests with quality=best

    def load_for(self, clients: int) -> LoadResult | None:
        return next((r for r in self.loads if r.clients == clients), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "status": self.status,
            "note": self.note,
            "cold_start_s": self.cold_start_s,
            "loads": [r.to_dict() for r in self.loads],
            "best_loads": [r.to_dict() for r in self.best_loads],
        }


def model_config_with_batch(base: Path, batch_size: int, dest: Path) -> Path:
    """A copy of the per-model config ``base`` (model-config.yaml) with ``batchSize`` replaced."""
    config = yaml.safe_load(Path(base).read_text()) or {}
    config["batchSize"] = int(batch_size)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(yaml.safe_dump(config, sort_keys=False))
    return dest


@contextlib.contextmanager
def _env(name: str, value: str | None) -> Iterator[None]:
    """Set (or, with None, leave alone) one environment variable for the block."""
    old = os.environ.get(name)
    if value is not None:
        os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def server_unavailable() -> str:
    """Why a TorchServe cannot be started here ('' when it can)."""
    if not shutil.which("java"):
        return "no `java` on PATH (TorchServe's frontend needs Java 11+)"
    try:
        import shoeseg.serving.server  # noqa: F401
    except Exception as err:  # noqa: BLE001
        return f"serving.server not importable: {type(err).__name__}: {err}"
    return ""


def bench_server(
    weights: Path,
    workdir: Path,
    payload: bytes,
    batch_sizes: tuple[int, ...] = (8, 1),
    clients: tuple[int, ...] = (1, 4, 16),
    requests: int = 16,
    threads: int | None = None,
    log: Callable[[str], None] = print,
    best_clients: tuple[int, ...] = (4,),
) -> list[ServerRun]:
    """Start one TorchServe per batch size from a .mar of ``weights``, measure cold start and load, stop it.

    ``threads`` sets OMP_NUM_THREADS for the server (its worker inherits it), so the worker's torch uses the
    same thread count as the rest of the run. On the first batch size, also ``best_clients`` levels of
    ``quality=best`` requests (half as many: each costs ~4x).
    """
    why = server_unavailable()
    if why:
        return [ServerRun(b, "skipped", why) for b in batch_sizes]
    from shoeseg.serving import server as ts

    runs = []
    for batch_size in batch_sizes:
        run = ServerRun(batch_size)
        root = workdir / f"serve-batch{batch_size}"
        home = root / "home"
        try:
            config = model_config_with_batch(REPO_ROOT / "model-config.yaml", batch_size, root / "model-config.yaml")
            mar = ts.build_mar(weights, root / "store", config_file=config)
            overrides = {**ts.free_port_overrides(), "disable_system_metrics": "true"}
            log(f"  TorchServe batchSize {batch_size}: starting ...")
            start = time.perf_counter()
            with _env("OMP_NUM_THREADS", str(threads) if threads else None):
                srv = ts.start(home, mar.parent, REPO_ROOT / "config.properties", overrides=overrides)
            ts.wait_ready(srv, timeout=300)
            run.cold_start_s = time.perf_counter() - start
            log(f"    cold start (torchserve --start to first prediction): {run.cold_start_s:.1f} s")
            url = f"{srv.inference_url}/predictions/{MODEL_NAME}"
            run.loads = load_levels(url, payload, clients, requests, log=log)
            if batch_size == batch_sizes[0] and best_clients:
                log("    quality=best:")
                best_url = f"{srv.inference_url}/{MODEL_NAME}/predict?quality=best"
                run.best_loads = load_levels(best_url, payload, best_clients, max(2, requests // 2), 1, log)
            if any(r.errors for r in run.loads + run.best_loads):
                run.note = next(r.first_error for r in run.loads + run.best_loads if r.errors)
        except Exception as err:  # noqa: BLE001 - the rest of the report still gets written
            run.status, run.note = "failed", f"{type(err).__name__}: {str(err)[:600]}"
            log(f"    failed: {run.note}")
        finally:
            try:
                ts.stop(home)
            except Exception as err:  # noqa: BLE001
                log(f"    stopping the server in {home} failed: {err}")
        runs.append(run)
    return runs


def main(argv: list[str] | None = None) -> int:
    from benchmarks.prepost import jpeg_bytes, synthetic_photo

    parser = argparse.ArgumentParser(prog="python -m benchmarks.serve_load", description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="inference address, e.g. http://127.0.0.1:8080")
    parser.add_argument("--model", default=MODEL_NAME)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests", type=int, default=16, help="requests per level (at least 2 per client)")
    parser.add_argument("--image", default="1500x1500", help="WIDTHxHEIGHT of the synthetic JPEG")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.image.lower().split("x"))
    payload = jpeg_bytes(synthetic_photo(width, height))
    url = f"{args.url.rstrip('/')}/predictions/{args.model}"
    print(f"{url}: {width}x{height} JPEG ({len(payload) / 1e6:.2f} MB)")
    try:
        results = load_levels(url, payload, tuple(args.clients), args.requests)
    except ConnectionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 1 if any(r.ok == 0 for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
