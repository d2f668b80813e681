"""Benchmark report: model forward (every execution path, the seed, the peers), FLOPs vs the machine's peak,
pre/post-processing, and the end-to-end server, all in one run so the ratios are meaningful.

    python -m benchmarks.run [--quick] [--tiny] [--out reports/] [--weights shoeseg/weights/resunet.pth]

writes ``bench.md``, ``bench.json`` and ``bench.png`` into ``--out`` and prints the Markdown report.
``--quick``: few repeats, no torch.compile, no server (a smoke run). ``--tiny``: a small ResUNet at 128x128
instead of the shipped model (for tests).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from shoeseg.constants import DEFAULT_WEIGHTS, REPO_ROOT

# Before numpy / torch / cv2 start their thread pools and before albumentations can phone home.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch  # noqa: E402
import yaml  # noqa: E402

from benchmarks import forward as fw  # noqa: E402
from benchmarks.prepost import DEFAULT_IMAGES, bench_prepost, jpeg_bytes, synthetic_photo  # noqa: E402
from benchmarks.report import Results, bars, write_report  # noqa: E402
from benchmarks.seed_resunet import build_seed  # noqa: E402
from benchmarks.serve_load import ServerRun, bench_server  # noqa: E402
from benchmarks.timing import Peak, load_average, machine_info, ort_matmul_peak, torch_matmul_peak  # noqa: E402
from shoeseg.model import ModelConfig, build_model, load_model, save_checkpoint  # noqa: E402

REPO = REPO_ROOT
DEFAULT_WEIGHTS = DEFAULT_WEIGHTS
DEFAULT_PEERS = REPO.parent / "shared" / "peers"
TINY = ModelConfig(
    encoder="tf_efficientnet_lite0", decoder_channels=(32, 24, 16, 16), skip_channels=8, refine_channels=8,
    input_size=128,
)  # fmt: skip


def parse_images(text: str) -> tuple[tuple[int, int], ...]:
    """'1500x1500,4000x3000' -> ((1500, 1500), (4000, 3000)) as (width, height)."""
    sizes = []
    for part in text.split(","):
        w, h = part.lower().strip().split("x")
        sizes.append((int(w), int(h)))
    return tuple(sizes)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, default=REPO / "reports", help="folder for bench.md / .json / .png")
    p.add_argument("--quick", action="store_true", help="few repeats, skip torch.compile and the server")
    p.add_argument("--tiny", action="store_true", help="tiny ResUNet (lite0, 128x128, random weights)")
    p.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="our checkpoint (random weights if absent)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch and onnxruntime threads")
    p.add_argument("--size", type=int, default=None, help="forward input side (default: the model's input_size)")
    p.add_argument("--images", type=parse_images, default=DEFAULT_IMAGES, help="pre/post JPEG sizes, WxH,WxH")
    p.add_argument("--peers", type=Path, default=DEFAULT_PEERS, help="folder with u2netp.onnx / modnet.onnx")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    p.add_argument("--no-server", action="store_true", help="skip the end-to-end server part")
    p.add_argument("--no-seed", action="store_true", help="skip the seed architecture")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16], help="concurrency levels")
    p.add_argument("--requests", type=int, default=64, help="requests per concurrency level (>= 2 per client)")
    return p


@contextlib.contextmanager
def _private_inductor_cache(path: Path) -> Iterator[None]:
    """A fresh inductor cache for the run, so the compile time reported is the cold one a new worker pays."""
    old = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
        else:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = old


def shipped_batch_size() -> int:
    """batchSize of the shipped per-model config (model-config.yaml), 8 if it cannot be read."""
    try:
        return int(yaml.safe_load((REPO / "model-config.yaml").read_text()).get("batchSize", 8))
    except (OSError, ValueError, AttributeError, yaml.YAMLError):
        return 8


def load_ours(args: argparse.Namespace) -> tuple[torch.nn.Module, str, Path | None]:
    """Our model, a description of where it came from, and its checkpoint path (None for random weights)."""
    if args.tiny:
        return build_model(TINY).eval(), "tiny ResUNet (--tiny: tf_efficientnet_lite0, 128x128), random weights", None
    if args.weights.is_file():
        model = load_model(args.weights)
        cfg = model.config
        return model, f"`{args.weights}` ({cfg.encoder}, input {cfg.input_size})", args.weights
    cfg = ModelConfig()
    source = (
        f"**random weights**: `{args.weights}` does not exist yet, so `build_model(ModelConfig())` "
        f"({cfg.encoder}, input {cfg.input_size}) was timed; speed does not depend on the weights"
    )
    return build_model(cfg).eval(), source, None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    t_start = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    machine = machine_info()
    log = print
    log(f"ShoeSeg benchmark ({'quick' if args.quick else 'full'}) on {machine.cpu}, {args.threads} threads")

    model, source, weights = load_ours(args)
    size = args.size or model.config.input_size
    quick = args.quick
    plans = {1: fw.Repeats(2, 1), 8: fw.Repeats(1, 1)} if quick else {1: fw.Repeats(10, 2), 8: fw.Repeats(3, 1)}
    seed_plans = {1: fw.Repeats(2, 1), 8: fw.Repeats(1, 1)} if quick else {1: fw.Repeats(5, 1), 8: fw.Repeats(3, 1)}
    suite = fw.ForwardSuite(
        size, args.threads, plans, seed_plans, compile=not (quick or args.no_compile), torchscript=not quick, log=log
    )
    notes: list[str] = []
    sections: dict[str, float] = {}
    params = {"ours": sum(p.numel() for p in model.parameters()) / 1e6}

    with fw.temp_workdir() as tmp, _private_inductor_cache(Path(tmp) / "inductor-cache"):
        workdir = Path(tmp)

        t = time.perf_counter()
        log("peak fp32 matmul (torch, onnxruntime) ...")
        repeats, warmup = (3, 1) if quick else (10, 2)
        peaks: list[Peak] = [torch_matmul_peak(2048, repeats, warmup)]
        try:
            peaks.append(ort_matmul_peak(2048, args.threads, repeats, warmup))
        except Exception as err:  # noqa: BLE001 - torch's figure alone still gives a peak
            notes.append(f"onnxruntime matmul peak not measured ({type(err).__name__}: {err}); torch.mm only")
        peak = max(peaks, key=lambda pk: pk.gflops)
        log("  -> " + ", ".join(f"{pk.library} {pk.gflops:.1f} GFLOP/s" for pk in peaks))
        sections["peak"] = time.perf_counter() - t

        t = time.perf_counter()
        log(f"forward, ours at {size}x{size} ...")
        ours_gflops = fw.count_gflops(model, size)
        rows = fw.bench_ours(model, suite, ours_gflops, workdir, weights)
        sections["forward ours"] = time.perf_counter() - t

        t = time.perf_counter()
        if args.no_seed:
            notes.append("seed architecture skipped (--no-seed)")
        else:
            log("forward, seed architecture ...")
            seed = build_seed()
            params["seed"] = sum(p.numel() for p in seed.parameters()) / 1e6
            rows += fw.bench_seed(suite, fw.count_gflops(seed, size), seed)
            del seed
        sections["forward seed"] = time.perf_counter() - t

        t = time.perf_counter()
        log("forward, peers (onnxruntime) ...")
        photo = synthetic_photo(1500, 1500)
        peer_rows, why = fw.bench_peers(args.peers, args.threads, photo, plans[1], log)
        rows += peer_rows
        if why:
            notes.append(why)
        sections["forward peers"] = time.perf_counter() - t
        for row in rows:
            row.peak_gflops = peak.gflops

        t = time.perf_counter()
        log("pre/post-processing ...")
        prepost = bench_prepost(args.images, size, repeats=2 if quick else 7, slow_repeats=1 if quick else 3, log=log)
        sections["pre/post"] = time.perf_counter() - t

        server: list[ServerRun] = []
        t = time.perf_counter()
        if quick or args.no_server:
            notes.append("end-to-end server skipped (--quick or --no-server)")
        else:
            log("end-to-end server ...")
            if weights is None:  # serve the timed random-weight model: a .mar needs a checkpoint file
                weights = workdir / "random-weights.pth"
                save_checkpoint(weights, model, {"note": "random weights for benchmarking"}, half=True)
            payload = jpeg_bytes(photo)
            server = bench_server(
                weights, workdir, payload, (8, 1), tuple(args.clients), args.requests, args.threads, log=log
            )
            if any(s.status == "ok" for s in server):
                notes.append(
                    "The seed architecture is not served (its checkpoint cannot be loaded by `model.load_model`); "
                    "its end-to-end figure is derived from the forward times (see the server section)."
                )
        sections["server"] = time.perf_counter() - t

    if any(r.status == "failed" for r in rows):
        notes += [f"{r.model} {r.path} batch {r.batch} failed: {r.note}" for r in rows if r.status == "failed"]
    if "seed" in params:
        notes.append(
            f"Seed architecture: {params['seed']:.2f} M parameters as rebuilt from SEED_SPEC.md (23.9 M with "
            "EfficientNet-B3's unused 1536-ch head and classifier, which the rebuild leaves out); the spec says "
            "~26 M and does not say where the rest sits, so the seed row may slightly underestimate its cost."
        )
    results = Results(
        machine=machine,
        mode="quick" if quick else "full",
        model_source=source,
        size=size,
        params_m=params,
        peaks=peaks,
        shipped_batch_size=shipped_batch_size(),
        forward=rows,
        prepost=prepost,
        server=server,
        notes=notes,
        sections_s=sections,
        total_s=time.perf_counter() - t_start,
        load_at_end=load_average(),
    )
    paths = write_report(results, args.out)
    print()
    print(paths["md"].read_text())
    print(f"wrote {paths['md']}, {paths['json']}, {paths['png']} in {results.total_s:.0f} s")
    for line in bars(results):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
