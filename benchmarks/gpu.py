"""GPU forward report: our model and the seed architecture on CUDA, each execution path, and the masks check.

    python -m benchmarks.gpu [--weights shoeseg/weights/resunet.pth] [--data ../shared/data/bench] [--out reports/]

writes ``bench_gpu.md`` / ``bench_gpu.json``. Per execution path (fp32 / bf16 / fp16 autocast, NCHW or
channels_last, the handler's own ``foreground_probability``) and batch: median ms/batch, images/s and the
largest foreground-probability difference from eager fp32. With ``--data`` it also scores every path's masks
on the bench images, so "same masks" is measured, not assumed.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from benchmarks.forward import count_gflops
from benchmarks.seed_resunet import build_seed
from benchmarks.timing import measure
from evaluation.evaluate import subsets
from shoeseg.constants import DEFAULT_WEIGHTS, REPO_ROOT
from shoeseg.model import load_model
from shoeseg.model.inference import foreground_probability
from shoeseg.pipeline.cutout import predict_alpha
from shoeseg.training.data import pair_files, read_mask, read_rgb
from shoeseg.training.metrics import MetricAccumulator, per_image_metrics

REPO = REPO_ROOT
Runner = Callable[[torch.Tensor], torch.Tensor]


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def cuda_timer(fn: Callable[[], object], repeats: int, warmup: int) -> float:
    """Median seconds of ``fn`` with the GPU synchronised after each call."""

    def call() -> None:
        fn()
        synchronize()

    return measure(call, repeats, warmup).median


# path name -> (autocast dtype, channels_last); None: plain fp32 (cuDNN may use TF32 for convolutions)
VARIANTS: dict[str, tuple[torch.dtype | None, bool]] = {
    "eager fp32": (None, False),
    "eager fp32 channels_last": (None, True),
    "bf16 autocast": (torch.bfloat16, False),
    "bf16 autocast channels_last": (torch.bfloat16, True),
    "fp16 autocast channels_last": (torch.float16, True),
}
HANDLER = "handler path (TorchPredictor)"
COMPILED = "torch.compile bf16 channels_last"  # timed at batch <= 8 only (a compile per batch shape)


def runner(model: torch.nn.Module, dtype: torch.dtype | None, channels_last: bool, compiled: bool = False) -> Runner:
    """(B, 3, S, S) normalised batch -> (B, S, S) foreground probability, in one execution variant."""
    net = copy.deepcopy(model).to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    net = torch.compile(net, dynamic=False) if compiled else net

    def run(x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
        with torch.autocast(x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            return torch.softmax(net(x).float(), 1)[:, 1]

    return run


def paths(model: torch.nn.Module, variants: list[str], compile_model: bool) -> dict[str, Runner]:
    """Execution path name -> runner: the ``variants``, the handler's own path, optionally compiled."""
    out = {name: runner(model, *VARIANTS[name]) for name in variants}
    out[HANDLER] = lambda x: foreground_probability(model, x)
    if compile_model:
        out[COMPILED] = runner(model, torch.bfloat16, True, compiled=True)
    return out


@torch.inference_mode()
def time_model(
    name: str,
    model: torch.nn.Module,
    size: int,
    batches: list[int],
    variants: list[str],
    compile_model: bool,
    repeats: int,
    device: str,
) -> list[dict]:
    """Rows of {model, path, batch, ms_per_batch, images_per_s, tflops, first_call_s, max_dp}."""
    rows = []
    gflops = count_gflops(model, size)
    model = model.to(device).eval()
    runs = paths(model, variants, compile_model)  # one copy of the weights per path, shared by every batch
    for batch in batches:
        x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
        reference = None
        for path, run in runs.items():
            if path == COMPILED and batch > 8:
                continue
            row = {"model": name, "path": path, "batch": batch}
            try:
                t0 = time.perf_counter()
                first = run(x)
                synchronize()
                setup = time.perf_counter() - t0
                seconds = cuda_timer(lambda run=run, x=x: run(x), repeats, 3)
            except Exception as err:  # noqa: BLE001 - one path failing must not lose the others' figures
                rows.append(row | {"error": f"{type(err).__name__}: {err}".splitlines()[0][:200]})
                print(f"{name:6s} {path:34s} b{batch:<3d} FAILED {rows[-1]['error']}")
                continue
            reference = first if reference is None else reference
            rows.append(
                row
                | {
                    "ms_per_batch": seconds * 1e3,
                    "images_per_s": batch / seconds,
                    "tflops": gflops * batch / seconds / 1e3,
                    "first_call_s": setup,
                    "max_dp": float((first - reference).abs().max()),
                }
            )
            print(f"{name:6s} {path:34s} b{batch:<3d} {seconds * 1e3:8.2f} ms  {batch / seconds:8.1f} img/s")
    return rows


def bf16_peak(device: str, n: int = 8192) -> float:
    """TFLOP/s of a dense bf16 ``n``-square matmul: the device's practical peak."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    return 2 * n**3 / cuda_timer(lambda: a @ b, 10, 3) / 1e12


@torch.inference_mode()
def mask_check(model: torch.nn.Module, data: Path, device: str) -> dict[str, dict]:
    """Per subset and path: IoU/MAE at each image's own size, the share of mask pixels (alpha >= 0.5) on
    which the path and eager fp32 disagree, and the largest alpha difference."""
    model = model.to(device).eval()
    runners = paths(model, list(VARIANTS), compile_model=False)
    predictors = {
        name: lambda x, tta=False, run=run: run(torch.from_numpy(x).to(device)).float().cpu().numpy()
        for name, run in runners.items()
    }
    out = {}
    for subset, folder in subsets(data).items():
        acc = {name: MetricAccumulator() for name in predictors}
        differing, max_dp, pixels = dict.fromkeys(predictors, 0), dict.fromkeys(predictors, 0.0), 0
        for image_path, mask_path in pair_files(folder):
            image, truth = read_rgb(image_path), torch.from_numpy(read_mask(mask_path))[None]
            alphas = {}
            for name, run in list(predictors.items()):
                try:
                    alphas[name] = predict_alpha(model, image, predictor=run)
                except Exception as err:  # noqa: BLE001 - a path the device cannot run drops out, the rest go on
                    print(f"masks: {name} failed ({type(err).__name__}: {err}); dropped")
                    del predictors[name], acc[name]
            ref = alphas["eager fp32"]
            pixels += ref.size
            for name, alpha in alphas.items():
                acc[name].update(per_image_metrics(torch.from_numpy(alpha)[None], truth))
                differing[name] += int(((ref >= 0.5) != (alpha >= 0.5)).sum())
                max_dp[name] = max(max_dp[name], float(np.abs(ref - alpha).max()))
        out[subset] = {
            name: acc[name].means() | {"mask_pixels_differing": differing[name] / pixels, "max_dp": max_dp[name]}
            for name in acc
        }
        print(subset, json.dumps(out[subset]))
    return out


def write_markdown(result: dict, path: Path) -> None:
    lines = [
        "# ShoeSeg GPU forward benchmark",
        "",
        f"{result['gpu']}, torch {result['torch']}, {result['date']}; input {result['size']}x{result['size']}, "
        f"batch already on the GPU (no host copies), median of {result['repeats']} after 3 warm-ups. "
        f"Dense bf16 matmul peak: {result['bf16_peak_tflops']:.0f} TFLOP/s.",
        "",
        "| model | path | batch | ms/batch | images/s | TFLOP/s | max dp vs fp32 |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['model']} | {r['path']} | {r['batch']} | {r['ms_per_batch']:.2f} | {r['images_per_s']:.0f} | "
        f"{r['tflops']:.1f} | {r['max_dp']:.4f} |"
        if "error" not in r
        else f"| {r['model']} | {r['path']} | {r['batch']} | failed: {r['error']} | | | |"
        for r in result["rows"]
    ]
    if result.get("masks"):
        lines += ["", "Masks on the bench images (each image at its own size, alpha >= 0.5):", ""]
        lines += ["| subset | path | IoU | MAE | mask pixels differing from fp32 | max alpha diff |"]
        lines += ["|---|---|---|---|---|---|"]
        for subset, by_path in result["masks"].items():
            lines += [
                f"| {subset} | {name} | {m['iou']:.4f} | {m['mae']:.4f} | {m['mask_pixels_differing']:.2e} | "
                f"{m['max_dp']:.3f} |"
                for name, m in by_path.items()
            ]
    if result.get("notes"):
        lines += ["", "Notes:", ""] + [f"- {note}" for note in result["notes"]]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--data", type=Path, default=None, help="bench folder for the masks check")
    parser.add_argument("--out", type=Path, default=REPO / "reports")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--device", default="cuda", help="cpu only to smoke-test this script")
    parser.add_argument("--peak-n", type=int, default=8192, help="side of the bf16 peak matmul")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: the GPU benchmark needs one (the CPU report is `make bench`)", file=sys.stderr)
        return 2
    torch.backends.cudnn.benchmark = True
    model = load_model(args.weights)
    size = model.config.input_size
    result = {
        "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else args.device,
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "size": size,
        "repeats": args.repeats,
        "bf16_peak_tflops": bf16_peak(args.device, args.peak_n),
        "rows": time_model(
            "ours", model, size, args.batches, list(VARIANTS), not args.no_compile, args.repeats, args.device
        ),
    }
    args.out.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after each part, so a time limit keeps what was measured
        (args.out / "bench_gpu.json").write_text(json.dumps(result, indent=1))
        write_markdown(result, args.out / "bench_gpu.md")

    save()
    if args.data:
        result["masks"] = mask_check(model, args.data, args.device)
        save()
    seed = build_seed()
    result["rows"] += time_model("seed", seed, size, args.batches, ["eager fp32"], False, args.repeats, args.device)
    save()
    print((args.out / "bench_gpu.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
