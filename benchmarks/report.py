"""Everything one benchmark run measured -> bench.md (tables + PASS/FAIL bars), bench.json, bench.png.

The chart is drawn with Pillow (already a dependency), so the report needs no plotting library.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from benchmarks.forward import CHANNELS_LAST, EAGER, ONNX_TOLERANCE, ORT, ORT_INT8, ForwardRow
from benchmarks.prepost import StageRow
from benchmarks.serve_load import ServerRun
from benchmarks.timing import MachineInfo, Peak
from shoeseg.pipeline.image_io import DEFAULT_PNG_LEVEL

SPEEDUP_BAR = 4.0  # our fastest forward vs the seed's eager fp32, batch 1
E2E_BAR = 3.0  # our end-to-end images/s with 4 clients vs the seed's (derived)
E2E_CLIENTS = 4
REQUEST_VS_SEED_BAR = 5.0  # one default request end to end (1 client, p50) vs the seed's bare forward
INT8_BAR = 1.6  # the int8 graph's forward vs the fp32 graph's, batch 1 (the issue asks it of AVX2 CPUs)
BEST_COST_BAR = 2.5  # quality=best's seconds per image end to end vs the default's, same clients


@dataclass
class Results:
    """One run's measurements and what it should say about them."""

    machine: MachineInfo
    mode: str
    model_source: str
    size: int
    params_m: dict[str, float]
    peaks: list[Peak]
    forward: list[ForwardRow]
    prepost: list[StageRow]
    server: list[ServerRun]
    notes: list[str] = field(default_factory=list)
    sections_s: dict[str, float] = field(default_factory=dict)
    total_s: float = 0.0
    load_at_end: tuple[float, float, float] | None = None
    shipped_batch_size: int = 8  # batchSize in model-config.yaml: the server configuration the bar uses

    @property
    def peak(self) -> Peak | None:
        """The fastest matmul measured: the reference for '% of peak'."""
        return max(self.peaks, key=lambda p: p.gflops, default=None)


# ---- derived figures and bars ------------------------------------------------------------------


def find(rows: list[ForwardRow], model: str, path: str, batch: int) -> ForwardRow | None:
    return next(
        (r for r in rows if r.model == model and r.path == path and r.batch == batch and r.timing is not None), None
    )


def fastest_ours(rows: list[ForwardRow], batch: int = 1) -> ForwardRow | None:
    """Our fastest measured path at ``batch`` among those that are not deprecated and match eager fp32."""
    eligible = [
        r
        for r in rows
        if r.model == "ours" and r.batch == batch and r.timing is not None and not r.deprecated
        and (r.max_dp is None or r.max_dp <= ONNX_TOLERANCE)
    ]  # fmt: skip
    return min(eligible, key=lambda r: r.timing.median, default=None)


def served_run(results: Results, batch_size: int) -> ServerRun | None:
    return next((s for s in results.server if s.batch_size == batch_size and s.status == "ok" and s.loads), None)


def seed_e2e_derived(
    results: Results, batch_size: int | None = None, clients: int = E2E_CLIENTS
) -> dict[str, Any] | None:
    """The seed's end-to-end images/s behind the server configuration ``batch_size`` (default: the shipped one),
    derived: our measured seconds per image with our forward swapped for the seed's (batch 1 medians: the seed
    eager fp32, ours as the CPU handler runs it: the int8 graph when it was timed, else the fp32 graph, else
    eager channels_last)."""
    batch_size = results.shipped_batch_size if batch_size is None else batch_size
    run = served_run(results, batch_size)
    load = run.load_for(clients) if run else None
    ours_fwd = next(filter(None, (find(results.forward, "ours", p, 1) for p in (ORT_INT8, ORT, CHANNELS_LAST))), None)
    seed_fwd = find(results.forward, "seed", EAGER, 1)
    if not (load and load.ok and ours_fwd and seed_fwd):
        return None
    ours_s = 1.0 / load.images_per_s
    seed_s = ours_s + seed_fwd.per_image_s - ours_fwd.per_image_s
    return {
        "batch_size": batch_size,
        "clients": clients,
        "ours_images_per_s": load.images_per_s,
        "seed_images_per_s": 1.0 / seed_s,
        "ours_s_per_image": ours_s,
        "seed_s_per_image": seed_s,
        "ours_forward_s": ours_fwd.per_image_s,
        "ours_forward_path": ours_fwd.path,
        "seed_forward_s": seed_fwd.per_image_s,
    }


def all_seed_derived(results: Results) -> list[dict[str, float]]:
    """``seed_e2e_derived`` for every server configuration that ran, the shipped one first."""
    sizes = sorted({s.batch_size for s in results.server}, key=lambda b: (b != results.shipped_batch_size, -b))
    return [d for d in (seed_e2e_derived(results, b) for b in sizes) if d]


def bars(results: Results) -> list[str]:
    """PASS / FAIL / SKIP lines for the issue's bars (all ratios from this one run), plus the cold start."""
    lines = []
    best = fastest_ours(results.forward)
    seed = find(results.forward, "seed", EAGER, 1)
    modnet = next((r for r in results.forward if r.model == "modnet" and r.timing is not None), None)
    if best and seed:
        ratio = seed.per_image_s / best.per_image_s
        verdict = "PASS" if ratio >= SPEEDUP_BAR else "FAIL"
        lines.append(
            f"{verdict} forward batch 1: ours ({best.path}) {best.per_image_s * 1e3:.0f} ms vs seed eager fp32 "
            f"{seed.per_image_s * 1e3:.0f} ms = {ratio:.2f}x faster (bar: >= {SPEEDUP_BAR:g}x)"
        )
    else:
        lines.append("SKIP forward vs seed: a figure is missing (see the forward table)")
    if best and modnet:
        verdict = "PASS" if best.per_image_s <= modnet.per_image_s else "FAIL"
        lines.append(
            f"{verdict} forward batch 1: ours ({best.path}) {best.per_image_s * 1e3:.0f} ms vs MODNet onnxruntime "
            f"{modnet.per_image_s * 1e3:.0f} ms at {modnet.size} = {modnet.per_image_s / best.per_image_s:.2f}x "
            "(bar: no slower)"
        )
    else:
        lines.append("SKIP forward vs MODNet: MODNet or our forward was not measured")
    shipped = results.shipped_batch_size
    others = sorted({s.batch_size for s in results.server} - {shipped}, reverse=True)
    for batch_size in (shipped, *others):
        derived = seed_e2e_derived(results, batch_size)
        config = f"batchSize {batch_size}" + (" (shipped)" if batch_size == shipped else "")
        if not derived:
            if batch_size == shipped:
                lines.append(f"SKIP end-to-end vs seed: no {config} server figure at {E2E_CLIENTS} clients")
            continue
        ratio = derived["ours_images_per_s"] / derived["seed_images_per_s"]
        verdict = ("PASS" if ratio >= E2E_BAR else "FAIL") if batch_size == shipped else "INFO"
        lines.append(
            f"{verdict} end-to-end, {E2E_CLIENTS} clients, {config}: ours {derived['ours_images_per_s']:.2f} "
            f"images/s vs seed (derived) {derived['seed_images_per_s']:.2f} = {ratio:.2f}x (bar: >= {E2E_BAR:g}x)"
        )
    lines += speed_bars(results)
    cold = [s for s in results.server if s.cold_start_s is not None]
    if cold:
        starts = ", ".join(f"{s.cold_start_s:.1f} s (batchSize {s.batch_size})" for s in cold)
        lines.append(f"INFO cold start, torchserve --start to first successful prediction: {starts}")
    else:
        lines.append("SKIP cold start: no server was started")
    return lines


def speed_bars(results: Results) -> list[str]:
    """The CPU default request vs the seed's bare forward, int8 vs fp32 forward, quality=best vs default."""
    lines = []
    seed = find(results.forward, "seed", EAGER, 1)
    run = served_run(results, results.shipped_batch_size)
    one = run.load_for(1) if run else None
    if seed and one and one.ok:
        ratio = seed.per_image_s / one.p50_s
        lines.append(
            f"{'PASS' if ratio >= REQUEST_VS_SEED_BAR else 'FAIL'} one default request end to end (1 client, p50 "
            f"{one.p50_s * 1e3:.0f} ms) vs the seed's bare forward ({seed.per_image_s * 1e3:.0f} ms) = "
            f"{ratio:.2f}x (bar: >= {REQUEST_VS_SEED_BAR:g}x)"
        )
    else:
        lines.append("SKIP default request vs seed forward: no 1-client server figure or no seed forward")
    fp32, int8 = find(results.forward, "ours", ORT, 1), find(results.forward, "ours", ORT_INT8, 1)
    if fp32 and int8 and int8.timing is not None:
        ratio = fp32.per_image_s / int8.per_image_s
        simd = results.machine.simd or "unknown SIMD"
        verdict = ("PASS" if ratio >= INT8_BAR else "FAIL") if "AVX-512" not in simd else "INFO"
        lines.append(
            f"{verdict} int8 forward {int8.per_image_s * 1e3:.0f} ms vs fp32 graph {fp32.per_image_s * 1e3:.0f} ms = "
            f"{ratio:.2f}x on {simd} (bar: >= {INT8_BAR:g}x on an AVX2 CPU; INFO on AVX-512)"
        )
    else:
        lines.append("SKIP int8 vs fp32 forward: the int8 graph was not timed (weights not calibrated?)")
    best = next(iter(run.best_loads), None) if run else None
    plain = run.load_for(best.clients) if run and best else None
    if best and plain and best.ok and plain.ok:
        ratio = plain.images_per_s / best.images_per_s
        lines.append(
            f"{'PASS' if ratio <= BEST_COST_BAR else 'FAIL'} quality=best end to end at {best.clients} clients: "
            f"{best.images_per_s:.2f} vs {plain.images_per_s:.2f} images/s by default = {ratio:.2f}x the cost "
            f"(bar: <= {BEST_COST_BAR:g}x)"
        )
    else:
        lines.append("SKIP quality=best vs default: no quality=best server figure")
    return lines


def findings(results: Results) -> list[str]:
    """Observations the numbers imply that a reader could miss in the tables."""
    out = []
    worse = []
    for r1 in (r for r in results.forward if r.batch == 1 and r.timing is not None and r.model == "ours"):
        r8 = find(results.forward, "ours", r1.path, 8)
        if r8 and r8.per_image_s > 1.1 * r1.per_image_s:
            worse.append(f"{r1.path} {r1.per_image_s * 1e3:.0f} -> {r8.per_image_s * 1e3:.0f} ms")
    if worse:
        out.append("Batch 8 costs more per image than batch 1 for our model on this CPU: " + "; ".join(worse) + ".")
    on = next((s for s in results.server if s.batch_size > 1 and s.loads), None)
    off = next((s for s in results.server if s.batch_size == 1 and s.loads), None)
    if on and off:
        slower = [
            f"{a.clients} clients {a.images_per_s:.2f} vs {b.images_per_s:.2f} images/s"
            for a in on.loads
            if a.clients > 1 and (b := off.load_for(a.clients)) and a.images_per_s < 0.95 * b.images_per_s
        ]
        if slower:
            out.append(f"Dynamic batching (batchSize {on.batch_size}) served fewer images/s than batchSize 1: "
                       + "; ".join(slower) + ".")  # fmt: skip
    bound = e2e_ratio_bound(results)
    if bound:
        out.append(
            f"Pre/post-processing of one {bound['image']} image (decode, letterbox, un-letterbox, PNG level "
            f"{DEFAULT_PNG_LEVEL}) takes {bound['prepost_s'] * 1e3:.0f} ms, and the derived seed pays it too: even "
            f"with no server overhead the end-to-end ratio can be at most {bound['ratio']:.2f}x with our fastest "
            f"forward ({bound['ours_forward_s'] * 1e3:.0f} ms) and {bound['zero_forward_ratio']:.2f}x with a free one."
        )
    return out


def e2e_ratio_bound(results: Results, image: str = "1500x1500") -> dict[str, Any] | None:
    """Best end-to-end ratio vs the derived seed that our fastest forward allows, serving costs aside."""
    stages = {r.stage: r.timing.median for r in results.prepost if r.image == image}
    names = ["decode (JPEG)", f"letterbox to {results.size}", "un-letterbox + upsample"]
    names.append(f"PNG encode level {DEFAULT_PNG_LEVEL}")
    best = fastest_ours(results.forward)
    seed = find(results.forward, "seed", EAGER, 1)
    if not (best and seed and all(n in stages for n in names)):
        return None
    prepost = sum(stages[n] for n in names)
    return {
        "image": image,
        "prepost_s": prepost,
        "ours_forward_s": best.per_image_s,
        "ratio": (prepost + seed.per_image_s) / (prepost + best.per_image_s),
        "zero_forward_ratio": (prepost + seed.per_image_s) / prepost,
    }


# ---- Markdown -----------------------------------------------------------------------------------


def _f(value: float | None, fmt: str = ".1f", scale: float = 1.0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value * scale, fmt)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return out


def forward_table(results: Results) -> list[str]:
    header = [
        "model", "path", "batch", "input", "ms / batch", "ms / image", "images/s", "GFLOP/s", "% of peak",
        "setup s", "max abs dp", "runs", "note",
    ]  # fmt: skip
    rows = []
    for r in results.forward:
        path = r.path + (" (deprecated)" if r.deprecated else "")
        runs = f"{r.timing.repeats} (+{r.timing.warmup} warm-up)" if r.timing else r.status
        rows.append(
            [
                r.model, path, str(r.batch), r.size,
                _f(r.timing.median if r.timing else None, ".0f", 1e3), _f(r.per_image_s, ".0f", 1e3),
                _f(r.images_per_s, ".2f"), _f(r.achieved_gflops, ".1f"), _f(r.peak_fraction, ".0f", 100),
                _f(r.setup_s, ".1f"), "-" if r.max_dp is None else f"{r.max_dp:.1e}", runs,
                (f"**{r.status}**: " if r.status != "ok" else "") + r.note,
            ]
        )  # fmt: skip
    return _table(header, rows)


def prepost_table(results: Results) -> list[str]:
    header = ["image", "stage", "median ms", "output bytes", "runs"]
    rows = [
        [
            r.image, r.stage, _f(r.timing.median, ".1f", 1e3),
            f"{r.output_bytes:,}" if r.output_bytes is not None else "-",
            f"{r.timing.repeats} (+{r.timing.warmup or 1} warm-up)",
        ]
        for r in results.prepost
    ]  # fmt: skip
    return _table(header, rows)


def server_table(results: Results) -> list[str]:
    header = ["batching", "clients", "ok", "errors", "p50 ms", "p95 ms", "images/s"]
    rows = []
    for run in results.server:
        label = f"on (batchSize {run.batch_size})" if run.batch_size > 1 else "off (batchSize 1)"
        loads = [(label, load) for load in run.loads] + [(f"{label}, quality=best", load) for load in run.best_loads]
        for name, load in loads:
            rows.append(
                [name, str(load.clients), str(load.ok), str(load.errors), _f(load.p50_s, ".0f", 1e3),
                 _f(load.p95_s, ".0f", 1e3), _f(load.images_per_s, ".2f")]
            )  # fmt: skip
    for derived in all_seed_derived(results):
        rows.append(
            [f"seed, derived for batchSize {derived['batch_size']}", str(derived["clients"]), "-", "-", "-", "-",
             _f(derived["seed_images_per_s"], ".2f")]
        )  # fmt: skip
    return _table(header, rows)


def render_markdown(results: Results) -> str:
    m = results.machine
    load = "/".join(f"{v:.2f}" for v in m.load_at_start) if m.load_at_start else "n/a"
    end_load = "/".join(f"{v:.2f}" for v in results.load_at_end) if results.load_at_end else "n/a"
    v = m.versions
    lines = [
        "# ShoeSeg benchmark",
        "",
        f"- **Date**: {m.date}; mode: {results.mode}; run time {results.total_s:.0f} s",
        f"- **Machine**: {m.cpu}, {m.logical_cores} logical cores, torch threads {m.torch_threads} "
        f"(onnxruntime intra-op threads {m.torch_threads}), GPU: {m.gpu}",
        f"- **SIMD**: {m.simd or 'not recorded'} (ratios from one run compare across machines; absolute times do not)",
        f"- **Versions**: torch {v.get('torch')}, onnxruntime {v.get('onnxruntime')}, onnx {v.get('onnx')}, "
        f"timm {v.get('timm')}, numpy {v.get('numpy')}, opencv {v.get('cv2')}, pillow {v.get('PIL')}, "
        f"python {m.python}",
        f"- **Load average** (1/5/15 min) at start {load}, at end {end_load}",
        f"- **Our model**: {results.model_source}",
        "- Every figure is the median of the timed runs after warm-up (counts in the tables); all ratios below "
        "come from this one run.",
    ]
    if m.load_at_start and m.load_at_start[0] > 0.5 * max(m.logical_cores, 1):
        lines.append(
            f"- **Warning**: the 1-minute load average was {m.load_at_start[0]:.1f} on {m.logical_cores} cores "
            "when the run started: another process competed for the CPU and the timings are noisy (with another "
            "process on a core, `--threads 1` is steadier: a second OpenMP thread then mostly waits)."
        )
    lines += ["", f"## Model forward at {results.size}x{results.size}", ""]
    lines += forward_table(results)
    lines += [
        "",
        "`max abs dp`: the largest difference of the foreground probability from eager fp32 on the same batch. "
        "`setup s`: compile (cold inductor cache), ONNX export or quantisation, or trace, once. "
        "GFLOP/s = model FLOPs x batch / median time.",
        "",
        "## Compute",
        "",
    ]
    ours_g = next((r.gflops_per_image for r in results.forward if r.model == "ours" and r.gflops_per_image), None)
    seed_g = next((r.gflops_per_image for r in results.forward if r.model == "seed" and r.gflops_per_image), None)
    best = results.peak
    for pk in results.peaks:
        lines.append(
            f"- Peak fp32, {pk.library} {pk.n}x{pk.n} @ {pk.n}x{pk.n} (median of {pk.timing.repeats}): "
            + (f"**{pk.gflops:.1f} GFLOP/s** (the '% of peak' reference)" if pk is best else f"{pk.gflops:.1f} GFLOP/s")
        )
    if best and any((r.peak_fraction or 0) > 1 for r in results.forward):
        lines.append(
            "- Rows above 100 % of peak run convolution kernels (oneDNN / MLAS) that outpace both matmul libraries "
            "on this CPU: the measured matmul peak is a practical floor of the true peak, not its ceiling."
        )
    size = f"{results.size}x{results.size}"
    lines.append(
        f"- FLOPs per {size} image (torch.utils.flop_counter, 2 per multiply-add): ours {_f(ours_g, '.2f')} "
        f"GFLOP, seed {_f(seed_g, '.2f')} GFLOP"
        + (f" (ours = {ours_g / seed_g:.2f} x seed)" if ours_g and seed_g else "")
    )
    lines.append("- Parameters: " + ", ".join(f"{name} {count:.2f} M" for name, count in results.params_m.items()))
    lines += ["", "## Pre- and post-processing (handler/image_io.py, synthetic JPEG photos)", ""]
    lines += prepost_table(results) if results.prepost else ["(not measured)"]
    server_title = f"## End-to-end server (TorchServe, 1 worker, torch threads {m.torch_threads}, 1500x1500 JPEG)"
    lines += ["", server_title, ""]
    for run in results.server:
        label = f"batchSize {run.batch_size}"
        if run.status != "ok":
            lines.append(f"- {label}: **{run.status}**: {run.note}")
        else:
            lines.append(
                f"- {label}: cold start {_f(run.cold_start_s, '.1f')} s (torchserve --start to first prediction)"
                + (f"; errors: {run.note}" if run.note else "")
            )
    if any(run.loads for run in results.server):
        lines += [""] + server_table(results)
    derived_rows = all_seed_derived(results)
    if derived_rows:
        d = derived_rows[0]
        lines += [
            "",
            "The seed's end-to-end figures are **derived, not served**: its checkpoint cannot be loaded by "
            f"`model.load_model`. Seconds per image at {d['clients']} clients = ours measured - our forward "
            f"({d['ours_forward_s']:.3f} s, {d['ours_forward_path']}, batch 1: the CPU handler's path) + the seed's "
            f"forward ({d['seed_forward_s']:.3f} s, eager fp32, batch 1); e.g. batchSize {d['batch_size']}: "
            f"{d['ours_s_per_image']:.3f} - {d['ours_forward_s']:.3f} + {d['seed_forward_s']:.3f} = "
            f"{d['seed_s_per_image']:.3f} s. Decode, letterbox, PNG encoding and server overhead are assumed "
            "equal, and so is the cost of batching.",
        ]
    if not results.server:
        lines.append("- not run (--quick or --no-server)")
    lines += ["", "## Bars", "", "```", *bars(results), "```"]
    notes = findings(results) + results.notes
    if notes:
        lines += ["", "## Notes", "", *[f"- {n}" for n in notes]]
    if results.sections_s:
        lines += ["", "Time per section: " + ", ".join(f"{k} {v:.0f} s" for k, v in results.sections_s.items())]
    return "\n".join(lines) + "\n"


# ---- JSON ----------------------------------------------------------------------------------------


def to_json(results: Results) -> dict[str, Any]:
    return {
        "machine": results.machine.to_dict(),
        "mode": results.mode,
        "model_source": results.model_source,
        "size": results.size,
        "params_m": results.params_m,
        "peaks": [p.to_dict() for p in results.peaks],
        "peak_gflops": results.peak.gflops if results.peak else None,
        "shipped_batch_size": results.shipped_batch_size,
        "forward": [r.to_dict() for r in results.forward],
        "prepost": [r.to_dict() for r in results.prepost],
        "server": [s.to_dict() for s in results.server],
        "seed_e2e_derived": all_seed_derived(results),
        "bars": bars(results),
        "findings": findings(results),
        "e2e_ratio_bound": e2e_ratio_bound(results),
        "notes": results.notes,
        "sections_s": results.sections_s,
        "total_s": results.total_s,
        "load_at_end": results.load_at_end,
    }


# ---- chart ---------------------------------------------------------------------------------------

_COLOURS = {"ours": (31, 119, 180), "seed": (214, 39, 40), "peer": (127, 127, 127)}


def _bar_panel(
    draw: ImageDraw.ImageDraw,
    box: tuple[int, int, int, int],
    title: str,
    items: list[tuple[str, float, str]],
    unit: str,
) -> None:
    """Horizontal bars in ``box`` (left, top, right, bottom): (label, value, colour key) each."""
    left, top, right, bottom = box
    font = ImageFont.load_default(size=15)
    small = ImageFont.load_default(size=13)
    draw.text((left, top), title, fill=(0, 0, 0), font=ImageFont.load_default(size=17))
    if not items:
        draw.text((left, top + 30), "(not measured)", fill=(90, 90, 90), font=font)
        return
    label_w = 300
    bar_left, bar_right = left + label_w, right - 90
    top += 32
    step = max(18, min(30, (bottom - top) // len(items)))
    vmax = max(v for _, v, _ in items) or 1.0
    for i, (label, value, key) in enumerate(items):
        y = top + i * step
        draw.text((left, y + 2), label, fill=(0, 0, 0), font=small)
        width = int((bar_right - bar_left) * value / vmax)
        draw.rectangle((bar_left, y + 2, bar_left + max(width, 1), y + step - 6), fill=_COLOURS.get(key, (44, 160, 44)))
        text = f"{value:.0f} {unit}" if value >= 10 else f"{value:.2f} {unit}"
        draw.text((bar_left + width + 6, y + 2), text, fill=(0, 0, 0), font=small)


def render_chart(results: Results, path: Path) -> None:
    """bench.png: forward ms per image at batch 1 (every model and path) and end-to-end images/s."""
    forward = []
    for r in results.forward:
        if r.batch != 1 or r.timing is None:
            continue
        ours_or_seed = r.model in ("ours", "seed")
        label = f"{r.model}: {r.path}" + (" (depr.)" if r.deprecated else "") + ("" if ours_or_seed else f" @{r.size}")
        forward.append((label, r.per_image_s * 1e3, r.model if ours_or_seed else "peer"))
    e2e = []
    for run in results.server:
        for load in run.loads:
            clients = f"{load.clients} client" + ("s" if load.clients > 1 else "")
            e2e.append((f"ours, batchSize {run.batch_size}, {clients}", load.images_per_s, "ours"))
        for load in run.best_loads:
            e2e.append(
                (f"ours quality=best, batchSize {run.batch_size}, {load.clients} clients", load.images_per_s, "ours")
            )
    for d in all_seed_derived(results):
        label = f"seed (derived), batchSize {d['batch_size']}, {d['clients']} clients"
        e2e.append((label, d["seed_images_per_s"], "seed"))
    width = 1100
    h1 = 60 + 30 * max(len(forward), 1)
    h2 = 60 + 30 * max(len(e2e), 1)
    image = Image.new("RGB", (width, h1 + h2 + 60), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    m = results.machine
    header = f"ShoeSeg benchmark, {m.date}, {m.cpu}, torch threads {m.torch_threads}, mode {results.mode}"
    draw.text((20, 12), header, fill=(60, 60, 60), font=ImageFont.load_default(size=14))
    size = f"{results.size}x{results.size}"
    title = f"Forward, batch 1, ms per image (ours/seed at {size}; lower is better)"
    _bar_panel(draw, (20, 45, width - 20, 45 + h1), title, forward, "ms")
    title = "End-to-end, 1500x1500 JPEG -> PNG cutout, images/s (higher is better)"
    _bar_panel(draw, (20, 55 + h1, width - 20, 55 + h1 + h2), title, e2e, "img/s")
    image.save(path)


def write_report(results: Results, out_dir: Path) -> dict[str, Path]:
    """Write bench.md, bench.json and bench.png into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"md": out_dir / "bench.md", "json": out_dir / "bench.json", "png": out_dir / "bench.png"}
    paths["md"].write_text(render_markdown(results))
    paths["json"].write_text(json.dumps(to_json(results), indent=2, default=str) + "\n")
    render_chart(results, paths["png"])
    return paths
