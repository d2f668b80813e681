"""Load and fault test of a TorchServe on loopback: concurrent clients, mixed good and bad images.

    python -m benchmarks.loadtest --weights shoeseg/weights/resunet.pth             # what `make loadtest` runs
    python -m benchmarks.loadtest --kill-worker-after 20 --duration 60      # fault test (`make faulttest`)
    python -m benchmarks.loadtest --url http://127.0.0.1:8080 --management http://127.0.0.1:8081

Without ``--url`` it starts its own TorchServe (serving/server.py, free loopback ports, a temporary
home) on ``--weights`` and stops it at the end. Every client loops over a seeded mix: good images (must
come back as an RGBA cutout of their own size whose alpha matches a reference cutout within 2/255) and
bad ones from tests/bad_inputs.py (must get their 4xx). A warm-up phase runs the same mix first; the
worker's RSS is read after it and at the end. Bounded by ``--duration`` and ``--max-requests``.

Then, unless ``--overload-clients 0`` or a fault test, an overload phase: ``--overload-clients`` (default
128, twice the job queue of 64; one worker holds a batch of 8 more) send the same mix for
``--overload-duration`` s without retries; every answer must be a correct 200, 503 from the full queue
(answered within ``OVERFLOW_BOUND_S``, not a timeout) or the payload's 4xx, the worker the same; a recovery
phase of ``--clients`` clients follows, whose images/s must be back within 80 % of the measured phase's.

``--kill-worker-after S`` SIGKILLs the worker S seconds into the measured phase (the frontend stays
up) and sends every request through ``shoeseg.client.predict_rest`` with timeout and retries, counting
the retries; it reports when TorchServe had a new worker READY and when the first request sent after
the kill was answered.
"""

from __future__ import annotations

import argparse
import http.client
import io
import ipaddress
import json
import os
import random
import signal
import socket
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from PIL import Image

from benchmarks.bad_inputs import corpus, encode
from benchmarks.prepost import jpeg_bytes, synthetic_photo
from benchmarks.serve_load import percentile
from shoeseg.client import ImageRejectedError, ServiceError, predict_rest
from shoeseg.constants import REPO_ROOT, is_png
from shoeseg.serving import server as ts

# p95 of the 503s while the queue is full: refused at once, not after the 120 s timeout (2 busy cores, the
# client's 128 threads on them too: p50 ~0.1 s, p95 ~2.6 s)
OVERFLOW_BOUND_S = 5.0
RECOVERY_SHARE = 0.8  # images/s after the overload, as a share of the measured phase's
ALPHA_TOLERANCE = 2  # batched vs alone differ by at most 1/255 (tests/test_handler.py); 2 leaves a margin
# Good images of the mix: (width, height, format). A few fixed sizes keep the worker's memory steady.
GOOD_IMAGES = ((1600, 1200, "JPEG"), (1000, 1000, "PNG"), (800, 1200, "WEBP"), (2400, 1600, "JPEG"), (640, 480, "JPEG"))


@dataclass
class Payload:
    """One request body of the mix and what it must get back."""

    name: str
    body: bytes
    content_type: str
    status: int
    size: tuple[int, int] | None = None  # (width, height) of the expected cutout
    reference: np.ndarray | None = field(default=None, repr=False)  # alpha of a cutout made alone

    @property
    def good(self) -> bool:
        return self.status == 200


@dataclass
class Outcome:
    """One request as the client saw it: ``status`` (0: no HTTP answer), ``problem`` when it was wrong."""

    name: str
    good: bool
    status: int
    latency_s: float
    sent_at: float
    problem: str = ""
    retries: int = 0


def build_mix(photos: Path | None = None, max_photos: int = 8) -> list[Payload]:
    """Good synthetic photos (+ up to ``max_photos`` from ``photos``, read, never copied) and the corpus's light
    bad cases whose answer is a 4xx from the handler."""
    mix = []
    for i, (w, h, fmt) in enumerate(GOOD_IMAGES):
        image = synthetic_photo(w, h, seed=i)
        body = jpeg_bytes(image) if fmt == "JPEG" else encode(image, fmt)
        mix.append(Payload(f"good-{w}x{h}-{fmt.lower()}", body, "application/octet-stream", 200, (w, h)))
    if photos:
        for path in sorted(p for p in Path(photos).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[
            :max_photos
        ]:
            # the expected size is the served one (EXIF rotation), set by set_references
            mix.append(Payload(f"photo-{path.name}", path.read_bytes(), "application/octet-stream", 200))
    for case in corpus(max_bytes=1).values():  # the byte-limit case needs the server's limit: left out below
        if case.heavy or case.frontend or case.status == 200 or case.name == "over-byte-limit":
            continue
        body, content_type = case.http_body()
        mix.append(Payload(f"bad-{case.name}", body, content_type, case.status))
    return mix


def _post(url: str, payload: Payload, timeout: float) -> tuple[int, bytes]:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=timeout)
    try:
        conn.request("POST", parts.path, body=payload.body, headers={"Content-Type": payload.content_type})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def check_answer(payload: Payload, status: int, body: bytes, accept: tuple[int, ...] = ()) -> str:
    """'' when the answer is what ``payload`` must get, or one of the ``accept`` statuses for any payload
    (503: TorchServe's full job queue; 429: the handler's Busy), else what is wrong."""
    if status in accept:
        return ""
    if status != payload.status:
        return f"HTTP {status} (expected {payload.status}): {body[:160]!r}"
    if not payload.good:
        try:
            error = json.loads(body)
        except ValueError:
            return f"HTTP {status} without a JSON error: {body[:160]!r}"
        return "" if error.get("code") == status and error.get("message") else f"bad error body {error}"
    if not is_png(body):
        return f"HTTP 200 but not a PNG: {body[:80]!r}"
    image = Image.open(io.BytesIO(body))
    if image.mode != "RGBA" or (payload.size and image.size != payload.size):
        return f"cutout is {image.mode} {image.size}, expected RGBA {payload.size}"
    if payload.reference is not None:
        alpha = np.asarray(image.getchannel("A"), np.int16)
        diff = int(np.abs(alpha - payload.reference).max()) if alpha.shape == payload.reference.shape else 255
        if diff > ALPHA_TOLERANCE:
            return f"alpha differs from the reference cutout by {diff}/255"
    return ""


def set_references(url: str, mix: list[Payload], timeout: float = 300) -> None:
    """One request per good image, alone: its alpha is the reference every later answer must match."""
    for payload in mix:
        if payload.good:
            status, body = _post(url, payload, timeout)
            if status != 200 or not is_png(body):
                raise ServiceError(f"reference request for {payload.name} got HTTP {status}: {body[:200]!r}")
            image = Image.open(io.BytesIO(body))
            payload.size = image.size  # EXIF-rotated photos: the served orientation
            payload.reference = np.asarray(image.getchannel("A"), np.int16)


def _send(url: str, payload: Payload, timeout: float, retries: int | None) -> tuple[int, bytes, int]:
    """(status, body, retries used). ``retries`` None: one raw request; else through our client."""
    if retries is None:
        try:
            status, body = _post(url, payload, timeout)
        except (OSError, http.client.HTTPException) as err:
            return 0, f"{type(err).__name__}: {err}".encode(), 0
        return status, body, 0
    used = []
    base, model = url.rsplit("/predictions/", 1)
    try:
        body = predict_rest(payload.body, url=base, model=model, timeout=timeout, retries=retries,
                            on_retry=lambda attempt, err: used.append(attempt))  # fmt: skip
        return 200, body, len(used)
    except ImageRejectedError as err:
        return err.status, json.dumps({"code": err.status, "message": err.message}).encode(), len(used)
    except ServiceError as err:
        return 0, str(err).encode(), len(used)


def run_clients(
    url: str,
    mix: list[Payload],
    clients: int,
    duration: float,
    max_requests: int,
    timeout: float = 120,
    retries: int | None = None,
    seed: int = 0,
    during: Any = None,
    good_fraction: float = 0.7,
    accept: tuple[int, ...] = (),
) -> tuple[list[Outcome], float]:
    """``clients`` threads loop over ``mix`` (each its own seeded order, a good image with probability
    ``good_fraction``) until ``duration`` s or ``max_requests``
    in all; ``during(t0)`` runs in the calling thread meanwhile. Returns the outcomes and the wall time."""
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    start = time.monotonic()
    deadline = start + duration

    good = [p for p in mix if p.good]
    bad = [p for p in mix if not p.good] or good

    def client(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        while time.monotonic() < deadline:
            with lock:
                if len(outcomes) >= max_requests:
                    return
            payload = rng.choice(good if rng.random() < good_fraction else bad)
            sent = time.monotonic()
            status, body, used = _send(url, payload, timeout, retries)
            took = time.monotonic() - sent
            problem = check_answer(payload, status, body, accept)
            with lock:
                outcomes.append(Outcome(payload.name, payload.good, status, took, sent - start, problem, used))

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    if during is not None:
        during(start)
    for thread in threads:
        thread.join()
    return outcomes, time.monotonic() - start


def worker_pid(management_url: str) -> int:
    srv = ts.Server(Path("."), {"management_address": management_url})
    ready = [w for w in ts.worker_status(srv) if w.get("status") == "READY"]
    if len(ready) != 1:
        raise ServiceError(f"expected one READY worker at {management_url}, got {ts.worker_status(srv)}")
    return int(ready[0]["pid"])


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def summarise(outcomes: list[Outcome], wall_s: float) -> dict[str, Any]:
    """Counts by status, failures, latency percentiles (ms) and throughput of one phase."""
    latencies = [o.latency_s for o in outcomes]
    good = [o for o in outcomes if o.good]
    failures = [o for o in outcomes if o.problem]
    return {
        "requests": len(outcomes),
        "good": len(good),
        "good_correct": sum(not o.problem for o in good),
        "bad": len(outcomes) - len(good),
        "by_status": dict(sorted(Counter(str(o.status) for o in outcomes).items())),
        "status_5xx": sum(o.status >= 500 for o in outcomes),
        "status_503": sum(o.status == 503 for o in outcomes),
        "p95_503_ms": percentile([o.latency_s for o in outcomes if o.status == 503] or [0.0], 95) * 1e3,
        "no_answer": sum(o.status == 0 for o in outcomes),
        "failures": len(failures),
        "failure_examples": sorted({f"{o.name}: {o.problem[:200]}" for o in failures})[:10],
        "p50_ms": percentile(latencies, 50) * 1e3,
        "p95_ms": percentile(latencies, 95) * 1e3,
        "p99_ms": percentile(latencies, 99) * 1e3,
        "wall_s": wall_s,
        "requests_per_s": len(outcomes) / wall_s if wall_s else 0.0,
        "images_per_s": sum(o.good and o.status == 200 and not o.problem for o in outcomes) / wall_s if wall_s else 0.0,
        "retries": sum(o.retries for o in outcomes),
        "requests_retried": sum(o.retries > 0 for o in outcomes),
        "max_retries_one_request": max((o.retries for o in outcomes), default=0),
    }


class Killer:
    """Kills the worker ``after`` s into the phase, then watches for its replacement and the first answer."""

    def __init__(self, management_url: str, after: float) -> None:
        self.management_url, self.after = management_url, after
        self.killed_pid: int | None = None
        self.killed_at: float | None = None  # seconds into the phase
        self.new_pid: int | None = None
        self.ready_after_s: float | None = None

    def __call__(self, t0: float) -> None:
        time.sleep(max(0.0, t0 + self.after - time.monotonic()))
        self.killed_pid = worker_pid(self.management_url)
        os.kill(self.killed_pid, signal.SIGKILL)
        self.killed_at = time.monotonic() - t0
        srv = ts.Server(Path("."), {"management_address": self.management_url})
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            ready = [w for w in ts.worker_status(srv) if w.get("status") == "READY" and w["pid"] != self.killed_pid]
            if ready:
                self.new_pid = int(ready[0]["pid"])
                self.ready_after_s = time.monotonic() - t0 - self.killed_at
                return
            time.sleep(0.2)

    def report(self, outcomes: list[Outcome]) -> dict[str, Any]:
        done = [o.sent_at + o.latency_s for o in outcomes if o.good and not o.problem]
        answered = [t for t in done if self.killed_at is not None and t > self.killed_at]
        return {
            "killed_pid": self.killed_pid,
            "killed_at_s": self.killed_at,
            "new_pid": self.new_pid,
            "worker_ready_after_kill_s": self.ready_after_s,
            # recovery: from the kill to the first cutout delivered after it (retried requests included)
            "first_answer_after_kill_s": (min(answered) - self.killed_at) if answered else None,
            "in_flight_at_kill": sum(
                1 for o in outcomes if self.killed_at and o.sent_at < self.killed_at < o.sent_at + o.latency_s
            ),
        }


def overload_phases(args: argparse.Namespace, url: str, mix: list[Payload], log: Any = print) -> dict[str, Any]:
    """``args.overload_clients`` clients for ``args.overload_duration`` s (a 503 from the full queue is an
    accepted answer), then ``args.clients`` for ``args.recovery_duration`` s: both phases' summaries."""
    log(f"overload: {args.overload_clients} clients for {args.overload_duration:.0f} s, no retries")
    outcomes, wall = run_clients(
        url, mix, args.overload_clients, args.overload_duration, args.max_requests, args.timeout, None, 2,
        accept=(503, 429),
    )  # fmt: skip
    overload = summarise(outcomes, wall)
    log(f"  {overload['requests']} requests, {overload['status_503']} got 503, {overload['failures']} wrong")
    log(f"recovery: {args.clients} clients for {args.recovery_duration:.0f} s")
    outcomes, wall = run_clients(
        url, mix, args.clients, args.recovery_duration, args.max_requests, args.timeout, None, 3
    )
    return {"clients": args.overload_clients, "overload": overload, "recovery": summarise(outcomes, wall)}


def overload_bars(overload: dict[str, Any], measured: dict[str, Any]) -> dict[str, bool]:
    """The overload phase's bars: only 200 / 503 / 4xx, the queue did overflow, 503s at once, then recovery."""
    o, r = overload["overload"], overload["recovery"]
    return {
        "overload: every answer a correct 200, its 4xx or 503 (no other 5xx)": o["failures"] == 0
        and o["no_answer"] == 0
        and o["status_5xx"] == o["status_503"],
        "overload: the queue overflowed (503s seen)": o["status_503"] > 0,
        f"overload: 503s answered within {OVERFLOW_BOUND_S:.0f} s (p95)": o["p95_503_ms"] < OVERFLOW_BOUND_S * 1e3,
        f"after overload: images/s >= {RECOVERY_SHARE:.0%} of the measured phase's": r["failures"] == 0
        and r["images_per_s"] >= RECOVERY_SHARE * measured["images_per_s"],
    }


def check_loopback(url: str) -> None:
    """Refuse to load anything but this machine."""
    host = urllib.parse.urlsplit(url).hostname or ""
    addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    if not addresses or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise SystemExit(f"error: {url} is not a loopback address; the load test only runs against this machine")


def run(args: argparse.Namespace, url: str, management: str, log: Any = print) -> dict[str, Any]:
    """Warm-up, then the measured phase (with the worker kill when asked); the report as a dict."""
    mix = build_mix(args.photos)
    log(f"mix: {sum(p.good for p in mix)} good images, {sum(not p.good for p in mix)} bad kinds")
    set_references(f"{url}/predictions/resunet", mix, timeout=args.timeout)
    pid = worker_pid(management)
    rss = {"before_warmup_mb": rss_mb(pid)}
    predictions = f"{url}/predictions/resunet"
    if args.warmup > 0:
        # every batch size at the largest image first: the worker's caches (oneDNN primitives per shape, the
        # allocator's pools) reach their size here rather than during the measured phase
        largest = max((p for p in mix if p.good), key=lambda p: p.size[0] * p.size[1])
        for n in range(1, 9):
            run_clients(predictions, [largest], n, 600, n, args.timeout, good_fraction=1.0)  # ~n requests
        log(f"warm-up: batches of 1..8 x {largest.name}, then {args.clients} clients for {args.warmup:.0f} s")
        warm, warm_wall = run_clients(predictions, mix, args.clients, args.warmup, args.max_requests, args.timeout)
        log(f"  {len(warm)} requests, {sum(bool(o.problem) for o in warm)} wrong")
    rss["start_mb"] = rss_mb(pid)
    samples: list[tuple[float, float]] = []
    killer = Killer(management, args.kill_worker_after) if args.kill_worker_after is not None else None

    def during(t0: float) -> None:
        if killer is not None:
            killer(t0)
            return
        while time.monotonic() < t0 + args.duration:  # sample the worker's RSS every 5 s
            samples.append((round(time.monotonic() - t0, 1), rss_mb(pid)))
            time.sleep(5)

    retries = args.retries if killer is not None else None
    if retries is not None:  # our client sends raw bytes: forms are left out
        mix = [p for p in mix if not p.content_type.startswith(("multipart/", "application/x-www-form"))]
    log(f"measured: {args.clients} clients for {args.duration:.0f} s (at most {args.max_requests} requests)")
    outcomes, wall = run_clients(
        predictions, mix, args.clients, args.duration, args.max_requests, args.timeout, retries, 1, during
    )
    if killer is None and getattr(args, "overload_clients", 0):
        overload = overload_phases(args, predictions, mix, log)
    end_pid = worker_pid(management)
    rss["end_mb"] = rss_mb(end_pid)
    rss["max_sampled_mb"] = max([s[1] for s in samples] + [rss["end_mb"]])
    rss["growth_pct"] = 100.0 * (rss["end_mb"] - rss["start_mb"]) / rss["start_mb"]
    result = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "url": url,
        "mix": [{"name": p.name, "status": p.status, "bytes": len(p.body), "size": p.size} for p in mix],
        "summary": summarise(outcomes, wall),
        "by_payload": {
            name: dict(Counter(str(o.status) for o in outcomes if o.name == name))
            for name in sorted({o.name for o in outcomes})
        },
        "worker": {"pid_start": pid, "pid_end": end_pid, "rss": rss, "rss_samples": samples},
    }
    s = result["summary"]
    bars = {"zero 5xx": s["status_5xx"] == 0} if killer is None else {}
    bars |= {
        "every good image answered correctly": s["good_correct"] == s["good"] and s["no_answer"] == 0,
        "every bad image got its 4xx": s["failures"] == 0,
    }
    if killer is None:
        bars["worker RSS growth < 10 % after warm-up"] = rss["growth_pct"] < 10.0
        bars["same worker throughout"] = pid == end_pid
        if getattr(args, "overload_clients", 0):
            result["overload"] = overload
            bars |= overload_bars(overload, s)
    else:
        result["fault"] = killer.report(outcomes)
        bars["worker killed and replaced"] = killer.new_pid is not None and killer.new_pid != killer.killed_pid
    result["bars"] = bars
    result["passed"] = all(bars.values())
    return result


def render_markdown(result: dict[str, Any]) -> str:
    s, w, cfg = result["summary"], result["worker"], result["config"]
    title = "Fault test" if "fault" in result else "Load test"
    lines = [
        f"# {title}",
        "",
        f"`python -m benchmarks.loadtest` against {result['url']} (loopback): {cfg['clients']} clients, "
        f"{cfg['warmup']:.0f} s warm-up, {cfg['duration']:.0f} s measured, at most {cfg['max_requests']} requests; "
        f"model `{cfg.get('weights') or 'the running server'}`. Machine: {os.cpu_count()} CPU cores.",
        "",
        "| bar | met |",
        "| --- | --- |",
        *(f"| {name} | {'yes' if ok else '**NO**'} |" for name, ok in result["bars"].items()),
        "",
        "| requests | good (correct) | bad | by status | 5xx | p50 ms | p95 ms | p99 ms | images/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| {s['requests']} | {s['good']} ({s['good_correct']}) | {s['bad']} | "
        + ", ".join(f"{k}: {v}" for k, v in s["by_status"].items())
        + f" | {s['status_5xx']} | {s['p50_ms']:.0f} | {s['p95_ms']:.0f} | {s['p99_ms']:.0f} "
        + f"| {s['images_per_s']:.2f} |",
        "",
        f"Worker pid {w['pid_start']} -> {w['pid_end']}; RSS {w['rss']['before_warmup_mb']:.0f} MB before warm-up, "
        f"{w['rss']['start_mb']:.0f} MB at start, {w['rss']['end_mb']:.0f} MB at end "
        f"({w['rss']['growth_pct']:+.1f} %), {w['rss']['max_sampled_mb']:.0f} MB at most.",
    ]
    if "fault" in result:
        f = result["fault"]
        ready = f"{f['worker_ready_after_kill_s']:.1f} s" if f["worker_ready_after_kill_s"] is not None else "never"
        first = f"{f['first_answer_after_kill_s']:.1f} s" if f["first_answer_after_kill_s"] is not None else "never"
        lines += [
            "",
            f"Worker {f['killed_pid']} SIGKILLed {f['killed_at_s']:.1f} s into the run with "
            f"{f['in_flight_at_kill']} requests in flight; new worker {f['new_pid']} READY {ready} later; first "
            f"cutout delivered after the kill (recovery) {first} after it. Client retries: {s['retries']} in all, "
            f"{s['requests_retried']} requests retried, at most {s['max_retries_one_request']} for one request.",
        ]
    if "overload" in result:
        lines += ["", *render_overload(result["overload"], s)]
    if s["failure_examples"]:
        lines += ["", "Wrong answers (examples):", "", *(f"- {e}" for e in s["failure_examples"])]
    return "\n".join(lines) + "\n"


def render_overload(overload: dict[str, Any], measured: dict[str, Any]) -> list[str]:
    """The overload and recovery phases as a table beside the measured phase."""
    rows = [("measured", measured), (f"overload ({overload['clients']} clients)", overload["overload"]),
            ("recovery", overload["recovery"])]  # fmt: skip
    lines = [
        "| phase | requests | by status | 503 | 503 p95 ms | p50 ms | p99 ms | images/s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, s in rows:
        statuses = ", ".join(f"{k}: {v}" for k, v in s["by_status"].items())
        lines.append(
            f"| {name} | {s['requests']} | {statuses} | {s.get('status_503', 0)} | {s.get('p95_503_ms', 0):.0f} "
            f"| {s['p50_ms']:.0f} | {s['p99_ms']:.0f} | {s['images_per_s']:.2f} |"
        )
    return lines


def write_report(result: dict[str, Any], out: Path, stem: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    path = out / f"{stem}.md"
    path.write_text(render_markdown(result))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadtest", description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, default=ts.DEFAULT_WEIGHTS)
    parser.add_argument("--url", help="a running server's inference address (loopback); default: start one")
    parser.add_argument("--management", default=ts.DEFAULT_MANAGEMENT_URL, help="with --url: its management address")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=180, help="measured seconds (default 180)")
    parser.add_argument("--warmup", type=float, default=30, help="warm-up seconds before RSS is read (default 30)")
    parser.add_argument("--max-requests", type=int, default=20_000, help="cap on the measured requests")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per request (per attempt)")
    parser.add_argument("--kill-worker-after", type=float, help="fault test: SIGKILL the worker after S seconds")
    parser.add_argument("--retries", type=int, default=5, help="fault test: client retries per request")
    parser.add_argument("--photos", type=Path, help="also send up to 8 JPEG/PNG photos from this folder")
    parser.add_argument("--overload-clients", type=int, default=128, help="overload phase's clients (0: none)")
    parser.add_argument("--overload-duration", type=float, default=30, help="overload phase seconds")
    parser.add_argument("--recovery-duration", type=float, default=30, help="recovery phase seconds after it")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "reports")
    args = parser.parse_args(argv)
    stem = "fault" if args.kill_worker_after is not None else "loadtest"
    if args.url:
        check_loopback(args.url)
        check_loopback(args.management)
        result = run(args, args.url.rstrip("/"), args.management.rstrip("/"))
    else:
        with tempfile.TemporaryDirectory(prefix="shoeseg-loadtest-") as tmp:
            mar = ts.build_mar(args.weights, Path(tmp, "store"))
            overrides = ts.free_port_overrides()
            home = Path(tmp, "home")
            try:
                srv = ts.start(home, mar.parent, REPO_ROOT / "config.properties", overrides=overrides)
                print(f"TorchServe on {srv.inference_url} ready in {ts.wait_ready(srv, timeout=300):.1f} s")
                result = run(args, srv.inference_url, srv.management_url)
            finally:
                ts.stop(home)
    path = write_report(result, args.out, stem)
    print(path.read_text())
    print(f"wrote {path} and {path.with_suffix('.json')}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
