"""Soak test (`make soak`): 16 clients of mixed good and bad images of every size against one TorchServe for
30 minutes, the worker's RSS and the frontend's JVM heap sampled every 10 s -> reports/soak.md, .json, .png.

    python -m benchmarks.soak --weights shoeseg/weights/resunet.pth        # what `make soak` runs (30 min)
    python -m benchmarks.soak --minutes 3                                   # a short run: every bar scaled

Bars (for 30 min; a shorter run scales each time by minutes / 30): zero 5xx; every good image a correct
cutout (or 429 Busy, the cost limit's documented answer when a batch is full of big photos) and every bad one
its 4xx; the same worker throughout; its RSS (each window's median) grows < 5 % from minutes 5-10 to the
last 5; the p99 latency of the last 5 minutes is within 20 % of minutes 5-10's. Without ``--url`` it starts
its own TorchServe on free loopback ports (the shipped config.properties and model-config.yaml) and stops it
at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from benchmarks import loadtest
from benchmarks.prepost import jpeg_bytes, synthetic_photo
from benchmarks.serve_load import percentile
from shoeseg.constants import REPO_ROOT
from shoeseg.serving import server as ts

# Good images beyond the load test's (<= 3.8 MP): a 12 MP and a 24 MP camera photo, so every size runs.
BIG_IMAGES = ((4000, 3000), (6000, 4000))
RSS_GROWTH_PCT = 5.0
P99_DRIFT = 1.2  # the last window's p99 at most 20 % above the baseline window's
FULL_MINUTES = 30.0  # the bars' times are given for this length: minute 5, windows of 5 minutes


def build_mix(photos: Path | None = None) -> list[loadtest.Payload]:
    """The load test's mix (good images <= 3.8 MP, the bad corpus) plus the big photos."""
    mix = loadtest.build_mix(photos)
    for i, (w, h) in enumerate(BIG_IMAGES):
        body = jpeg_bytes(synthetic_photo(w, h, seed=20 + i), 90)
        mix.append(loadtest.Payload(f"good-{w}x{h}-jpeg", body, "application/octet-stream", 200, (w, h)))
    return mix


def jvm_heap_mb(pid: int) -> dict[str, float] | None:
    """The frontend's heap from ``jstat -gc``: used (young + old) and old generation, in MB; None without jstat."""
    try:
        out = subprocess.run(["jstat", "-gc", str(pid)], capture_output=True, text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.split()
    half = len(lines) // 2
    values = dict(zip(lines[:half], lines[half:]))
    try:
        used = sum(float(values[k]) for k in ("S0U", "S1U", "EU", "OU"))
        return {"heap_used_mb": used / 1024, "old_gen_mb": float(values["OU"]) / 1024}
    except (KeyError, ValueError):
        return None


def queue_pending(management: str) -> int | None:
    """The model's pending requests from the management API (jobQueueStatus, TorchServe 0.12), if reported."""
    try:
        status, body = ts.http_request(f"{management}/models/resunet", timeout=10)
        described = json.loads(body)[0] if status == 200 else {}
    except (OSError, ValueError, IndexError):
        return None
    return (described.get("jobQueueStatus") or {}).get("pendingRequests")


class Sampler:
    """Every ``every`` s until ``until``: the worker's RSS, the frontend's RSS and heap, the queue's length."""

    def __init__(self, management: str, frontend_pid: int | None, every: float, duration: float) -> None:
        self.management, self.frontend_pid, self.every, self.duration = management, frontend_pid, every, duration
        self.samples: list[dict[str, Any]] = []

    def __call__(self, t0: float) -> None:
        while (now := time.monotonic()) < t0 + self.duration:
            sample: dict[str, Any] = {"t_s": round(now - t0, 1)}
            try:
                pid = loadtest.worker_pid(self.management)
                sample |= {"worker_pid": pid, "worker_rss_mb": loadtest.rss_mb(pid)}
            except Exception as err:  # noqa: BLE001 - a missing sample is reported, the soak goes on
                sample["error"] = str(err)[:200]
            if self.frontend_pid:
                sample["frontend_rss_mb"] = loadtest.rss_mb(self.frontend_pid)
                sample |= jvm_heap_mb(self.frontend_pid) or {}
            sample["queue_pending"] = queue_pending(self.management)
            self.samples.append(sample)
            time.sleep(max(0.0, self.every - (time.monotonic() - now)))


def windows(outcomes: list[loadtest.Outcome], width_s: float, duration_s: float) -> list[dict[str, float]]:
    """p50 / p99 latency (ms) and requests per window of ``width_s`` by send time."""
    rows = []
    for start in range(0, int(duration_s), max(1, int(width_s))):
        lat = [o.latency_s for o in outcomes if start <= o.sent_at < start + width_s]
        if lat:
            rows.append({"t_s": start + width_s / 2, "requests": len(lat), "p50_ms": percentile(lat, 50) * 1e3,
                         "p99_ms": percentile(lat, 99) * 1e3})  # fmt: skip
    return rows


def rss_level(samples: list[dict[str, Any]], start_s: float, end_s: float) -> float:
    """The worker's RSS level (MB) from ``start_s`` to ``end_s``: the median of its samples there (NaN when none).

    A median over the whole window, not the samples at its edges: RSS swings by +-25 % with the photos in
    flight (a batch of 24 MP images), which would swamp a 5 % bar read at two instants."""
    values = [s["worker_rss_mb"] for s in samples if "worker_rss_mb" in s and start_s <= s["t_s"] < end_s]
    return statistics.median(values) if values else float("nan")


def evaluate(
    outcomes: list[loadtest.Outcome], samples: list[dict[str, Any]], duration_s: float, wall_s: float | None = None
) -> dict[str, Any]:
    """The soak's figures and bars, its times scaled from the 30-minute definition to ``duration_s`` (the
    configured length; ``wall_s``, the clients' actual time, gives the throughput)."""
    scale = duration_s / (FULL_MINUTES * 60)
    settle, width = 5 * 60 * scale, 5 * 60 * scale  # minute 5; windows of 5 minutes
    rss_start = rss_level(samples, settle, settle + width)
    rss_end = rss_level(samples, duration_s - width, duration_s)
    growth = 100.0 * (rss_end - rss_start) / rss_start
    base = [o.latency_s for o in outcomes if settle <= o.sent_at < settle + width]
    last = [o.latency_s for o in outcomes if o.sent_at >= duration_s - width]
    p99_base, p99_last = percentile(base, 99) * 1e3, percentile(last, 99) * 1e3
    summary = loadtest.summarise(outcomes, wall_s or duration_s)
    pids = {s["worker_pid"] for s in samples if "worker_pid" in s}
    figures = {
        "settle_s": settle, "window_s": width, "rss_start_mb": rss_start, "rss_end_mb": rss_end,
        "rss_growth_pct": growth, "p99_base_ms": p99_base, "p99_last_ms": p99_last, "worker_pids": sorted(pids),
        "busy_429": sum(o.status == 429 for o in outcomes),
    }  # fmt: skip
    minute = lambda s: f"{s / 60:.3g}"  # noqa: E731
    window = f"{minute(settle)}-{minute(settle + width)}"
    bars = {
        "zero 5xx": summary["status_5xx"] == 0,
        "every good image correct (or 429 Busy), every bad one its 4xx": summary["failures"] == 0
        and summary["no_answer"] == 0,
        "same worker throughout": len(pids) == 1,
        f"worker RSS growth < {RSS_GROWTH_PCT:g} % from minutes {window} to the last {minute(width)}": (
            growth < RSS_GROWTH_PCT
        ),
        f"p99 of the last {minute(width)} min within 20 % of minutes {window}": (p99_last <= P99_DRIFT * p99_base),
    }
    return {"summary": summary, "figures": figures, "bars": bars, "passed": all(bars.values())}


def soak(args: argparse.Namespace, url: str, management: str, frontend_pid: int | None) -> dict[str, Any]:
    """References, then ``args.clients`` clients for ``args.minutes`` with the sampler alongside."""
    mix = build_mix(args.photos)
    good, bad = sum(p.good for p in mix), sum(not p.good for p in mix)
    print(f"mix: {good} good images (0.3 to 24 MP), {bad} bad kinds")
    predictions = f"{url}/predictions/resunet"
    loadtest.set_references(predictions, mix, timeout=args.timeout)
    duration = args.minutes * 60
    sampler = Sampler(management, frontend_pid, args.sample_every, duration)
    print(f"soak: {args.clients} clients for {args.minutes:g} min, sampling every {args.sample_every:g} s", flush=True)
    load_before = os.getloadavg()[1]  # what else ran on the machine: a shared CPU slows every figure
    outcomes, wall = loadtest.run_clients(
        predictions, mix, args.clients, duration, 10**9, args.timeout, None, 7, sampler, accept=(429,)
    )
    result = evaluate(outcomes, sampler.samples, duration, wall)
    result |= {
        "load_average_5min": [load_before, os.getloadavg()[1]],
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": machine(),
        "url": url,
        "samples": sampler.samples,
        "windows": windows(outcomes, max(10.0, duration / 30), wall),
        "by_payload": {
            n: dict(Counter(str(o.status) for o in outcomes if o.name == n)) for n in sorted({o.name for o in outcomes})
        },  # fmt: skip
    }
    return result


def machine() -> str:
    """The CPU model and core count, as `lscpu` names it."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def render_chart(result: dict[str, Any], path: Path) -> None:
    """soak.png: the worker's RSS (MB) and the p99 latency (ms) over the run, minute 5 and the windows marked."""
    width, height, pad = 900, 560, 60
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    duration = result["config"]["minutes"] * 60
    panels = [
        ("worker RSS MB", [(s["t_s"], s["worker_rss_mb"]) for s in result["samples"] if "worker_rss_mb" in s],
         (40, 90, 200)),
        ("p99 latency ms", [(w["t_s"], w["p99_ms"]) for w in result["windows"]], (200, 60, 40)),
    ]  # fmt: skip
    panel_h = (height - 3 * pad) // 2
    for idx, (label, points, colour) in enumerate(panels):
        top = pad + idx * (panel_h + pad)
        box = (pad, top, width - pad // 2, top + panel_h)
        draw.rectangle(box, outline="black")
        draw.text((pad, top - 18), label, fill="black")
        if not points:
            continue
        low, high = min(v for _, v in points), max(v for _, v in points)
        low, high = (low * 0.95, high * 1.05) if high > low else (low * 0.9, low * 1.1 + 1)

        def xy(t: float, v: float, box: tuple = box, low: float = low, high: float = high) -> tuple[float, float]:
            return (box[0] + (box[2] - box[0]) * t / duration, box[3] - (box[3] - box[1]) * (v - low) / (high - low))

        for mark in (result["figures"]["settle_s"], result["figures"]["settle_s"] + result["figures"]["window_s"],
                     duration - result["figures"]["window_s"]):  # fmt: skip
            x = xy(mark, low)[0]
            draw.line([(x, box[1]), (x, box[3])], fill=(180, 180, 180))
        draw.line([xy(t, v) for t, v in points], fill=colour, width=2)
        draw.text((box[0] + 4, box[1] + 4), f"{high:.0f}", fill="black")
        draw.text((box[0] + 4, box[3] - 16), f"{low:.0f}", fill="black")
    draw.text(
        (pad, height - 24), f"minutes 0 .. {duration / 60:g}; grey: minute 5, 10 and the last 5 (scaled)", fill="black"
    )
    image.save(path)


def render_markdown(result: dict[str, Any]) -> str:
    s, f, cfg = result["summary"], result["figures"], result["config"]
    short = cfg["minutes"] < FULL_MINUTES
    window = f"{f['settle_s'] / 60:.3g}-{(f['settle_s'] + f['window_s']) / 60:.3g}"
    last = f"{f['window_s'] / 60:.3g}"
    lines = [
        "# Soak test",
        "",
        f"`python -m benchmarks.soak` against {result['url']} (loopback): {cfg['clients']} clients for "
        f"{cfg['minutes']:g} min{' (a short run: every time below scaled by minutes / 30)' if short else ''}, "
        f"mixed good images (0.3 to 24 MP) and bad ones; model `{cfg.get('weights') or 'the running server'}`. "
        f"Machine: {result['machine']}"
        + (
            f"; 5-minute load average {la[0]:.1f} before, {la[1]:.1f} after."
            if (la := result.get("load_average_5min"))
            else "."
        ),
        "",
        "| bar | met |",
        "| --- | --- |",
        *(f"| {name} | {'yes' if ok else '**NO**'} |" for name, ok in result["bars"].items()),
        "",
        "| requests | by status | 5xx | 429 Busy | p50 ms | p99 ms | images/s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| {s['requests']} | "
        + ", ".join(f"{k}: {v}" for k, v in s["by_status"].items())
        + f" | {s['status_5xx']} | {f['busy_429']} | {s['p50_ms']:.0f} | {s['p99_ms']:.0f} | {s['images_per_s']:.2f} |",
        "",
        f"Worker RSS (median of each window) {f['rss_start_mb']:.0f} MB in minutes {window}, {f['rss_end_mb']:.0f} MB "
        f"in the last {last} min ({f['rss_growth_pct']:+.1f} %); p99 {f['p99_base_ms']:.0f} ms in minutes {window}, "
        f"{f['p99_last_ms']:.0f} ms in the last {last} min; worker pid(s) {f['worker_pids']}.",
    ]
    heap = [x for x in result["samples"] if "heap_used_mb" in x]
    if heap:
        lines += [
            "",
            f"Frontend (JVM) heap used {heap[0]['heap_used_mb']:.0f} -> {heap[-1]['heap_used_mb']:.0f} MB, old "
            f"generation {heap[0]['old_gen_mb']:.0f} -> {heap[-1]['old_gen_mb']:.0f} MB (first and last sample); "
            f"frontend RSS {heap[0].get('frontend_rss_mb', 0):.0f} -> {heap[-1].get('frontend_rss_mb', 0):.0f} MB.",
        ]
    pending = [x["queue_pending"] for x in result["samples"] if x.get("queue_pending") is not None]
    if pending:
        lines += ["", f"Job queue (management API jobQueueStatus.pendingRequests): at most {max(pending)} pending."]
    lines += ["", "![worker RSS and p99 over time](soak.png)"]
    if s["failure_examples"]:
        lines += ["", "Wrong answers (examples):", "", *(f"- {e}" for e in s["failure_examples"])]
    return "\n".join(lines) + "\n"


def write_report(result: dict[str, Any], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps(result, indent=1, default=float) + "\n")
    render_chart(result, out / "soak.png")
    path = out / "soak.md"
    path.write_text(render_markdown(result))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, default=ts.DEFAULT_WEIGHTS)
    parser.add_argument("--url", help="a running server's inference address (loopback); default: start one")
    parser.add_argument("--management", default=ts.DEFAULT_MANAGEMENT_URL, help="with --url: its management address")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--minutes", type=float, default=FULL_MINUTES)
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds between RSS / heap samples")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per request")
    parser.add_argument("--photos", type=Path, help="also send up to 8 JPEG/PNG photos from this folder")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "reports")
    args = parser.parse_args(argv)
    if args.url:
        loadtest.check_loopback(args.url)
        loadtest.check_loopback(args.management)
        result = soak(args, args.url.rstrip("/"), args.management.rstrip("/"), None)
    else:
        with tempfile.TemporaryDirectory(prefix="shoeseg-soak-") as tmp:
            mar = ts.build_mar(args.weights, Path(tmp, "store"))
            home = Path(tmp, "home")
            try:
                srv = ts.start(home, mar.parent, REPO_ROOT / "config.properties", overrides=ts.free_port_overrides())
                print(f"TorchServe on {srv.inference_url} ready in {ts.wait_ready(srv, timeout=600):.1f} s")
                result = soak(args, srv.inference_url, srv.management_url, srv.pid())
            finally:
                ts.stop(home)
    path = write_report(result, args.out)
    print(path.read_text())
    print(f"wrote {path}, soak.json and soak.png")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
