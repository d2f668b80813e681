"""Model forward timings: our ResUNet in each execution path, the seed architecture, the ONNX peers.

Every path is timed on the same random normalised batch; each row also carries the largest difference
of its foreground probability from eager fp32 (``max_dp``), so a fast but wrong path shows up.
"""

from __future__ import annotations

import contextlib
import copy
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.timing import Timing, measure
from shoeseg.model import runtime

ONNX_OPSET = runtime.ONNX_OPSET
ONNX_TOLERANCE = 1e-3  # max |probability difference| from eager fp32 an exported model may show

EAGER = "eager fp32"
CHANNELS_LAST = "eager channels_last"
COMPILE = "torch.compile (inductor)"
ORT = "onnxruntime fp32"
ORT_INT8 = "onnxruntime int8 (static)"
TORCH_INT8 = "torch int8 (dynamic)"
TORCHSCRIPT = "torchscript trace+freeze"

Runner = Callable[[Any], Any]


@dataclass
class ForwardRow:
    """One measured (or skipped) model x path x batch combination."""

    model: str
    path: str
    batch: int
    size: str
    timing: Timing | None = None
    gflops_per_image: float | None = None
    setup_s: float | None = None  # compile / export / trace time, measured once
    max_dp: float | None = None  # max |foreground probability - eager fp32|
    status: str = "ok"  # ok | skipped | failed
    note: str = ""
    deprecated: bool = False
    peak_gflops: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def per_image_s(self) -> float | None:
        return self.timing.median / self.batch if self.timing else None

    @property
    def images_per_s(self) -> float | None:
        return self.batch / self.timing.median if self.timing else None

    @property
    def achieved_gflops(self) -> float | None:
        if self.timing is None or self.gflops_per_image is None:
            return None
        return self.gflops_per_image * self.batch / self.timing.median

    @property
    def peak_fraction(self) -> float | None:
        achieved = self.achieved_gflops
        return achieved / self.peak_gflops if achieved is not None and self.peak_gflops else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "path": self.path,
            "batch": self.batch,
            "size": self.size,
            "status": self.status,
            "note": self.note,
            "deprecated": self.deprecated,
            "timing": self.timing.to_dict() if self.timing else None,
            "per_image_ms": None if self.per_image_s is None else self.per_image_s * 1e3,
            "images_per_s": self.images_per_s,
            "gflops_per_image": self.gflops_per_image,
            "achieved_gflops": self.achieved_gflops,
            "peak_fraction": self.peak_fraction,
            "setup_s": self.setup_s,
            "max_dp": self.max_dp,
            **self.extra,
        }


@dataclass(frozen=True)
class Repeats:
    """Timed repeats and untimed warm-up calls for one batch size."""

    repeats: int
    warmup: int = 1


def count_gflops(model: nn.Module, size: int) -> float:
    """GFLOPs of one ``size`` x ``size`` image through ``model`` (``FlopCounterMode``: 2 per multiply-add)."""
    x = torch.zeros(1, 3, size, size)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(x)
    return counter.get_total_flops() / 1e9


def probability(logits: Any) -> np.ndarray:
    """(B, 2, H, W) logits (tensor or array) -> (B, H, W) foreground probability as float32 numpy; (B, H, W)
    is already one (the served graphs end in it)."""
    t = torch.as_tensor(np.asarray(logits) if not isinstance(logits, torch.Tensor) else logits)
    if t.ndim == 3:
        return t.float().contiguous().numpy()
    return torch.softmax(t.float(), dim=1)[:, 1].contiguous().numpy()


def _first_line(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".strip().splitlines()
    return text[0][:300] if text else type(err).__name__


def time_runner(
    runner: Runner, x: Any, plan: Repeats, reference: np.ndarray | None
) -> tuple[Timing, np.ndarray, float | None]:
    """Warm up (the first warm-up output is kept), time, and compare with ``reference`` probabilities."""
    first = probability(runner(x))
    timing = measure(lambda: runner(x), plan.repeats, max(plan.warmup - 1, 0))
    timing.warmup = max(plan.warmup, 1)
    dp = float(np.abs(first - reference).max()) if reference is not None else None
    return timing, first, dp


# ---- execution paths ----------------------------------------------------------------------------


def eager_runner(model: nn.Module) -> Runner:
    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(x)

    return run


def compile_runner(model: nn.Module) -> Runner:
    """``torch.compile`` (inductor, weights frozen as constants: the recommended CPU inference setting)."""
    import torch._inductor.config as inductor_config

    compiled = torch.compile(model, backend="inductor", dynamic=False)

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), inductor_config.patch(freezing=True):
            return compiled(x)

    return run


def torchscript_runner(model: nn.Module, example: torch.Tensor) -> Runner:
    """``torch.jit.trace`` + ``freeze`` + ``optimize_for_inference`` (deprecated since torch 2.14)."""
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        traced = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(model, example)))

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return traced(x)

    return run


def export_onnx(model: nn.Module, size: int, path: Path) -> str:
    """Export ``model`` (logits out, dynamic batch) with the exporter the server's .mar uses."""
    runtime.export_onnx(model, path, size, probabilities=False)
    return "torch.export (dynamo) exporter, as packed in the .mar"


def ort_session(path: Path, threads: int) -> Any:
    """The ONNX Runtime session the server's CPU workers use (``model.runtime.OnnxPredictor``)."""
    return runtime.OnnxPredictor(path, threads).session


def ort_runner(session: Any) -> Runner:
    name = session.get_inputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        return session.run(None, {name: x})[0]

    return run


def served_int8_graph(model: nn.Module, weights: Path | None, size: int) -> Path:
    """The CPU server's default graph: static int8 from the ranges calibrated beside ``weights`` (``make
    calibrate``), probabilities out; raises with the reason when there is none to time."""
    if weights is None or size != model.config.input_size:
        raise ValueError("the int8 graph needs the checkpoint at its own input size")
    from shoeseg.model.sessions import cached_graph

    return cached_graph(model, weights, size, int8=True)


# ---- the benchmark ----------------------------------------------------------------------------------


@dataclass
class ForwardSuite:
    """Settings of one forward benchmark run."""

    size: int
    threads: int
    plans: dict[int, Repeats]  # batch size -> repeats
    seed_plans: dict[int, Repeats]
    compile: bool = True
    torchscript: bool = True
    int8: bool = True
    log: Callable[[str], None] = print


@contextlib.contextmanager
def _step(rows: list[ForwardRow], row: ForwardRow, log: Callable[[str], None]) -> Iterator[ForwardRow]:
    """Run one row's work; an exception marks the row failed with its message instead of ending the run."""
    start = time.perf_counter()
    log(f"  {row.model:<8} {row.path:<28} batch {row.batch} ...")
    try:
        yield row
    except Exception as err:  # noqa: BLE001 - a failing path is a finding, not a crash
        row.status, row.note, row.timing = "failed", _first_line(err), None
        log(traceback.format_exc(limit=3))
    rows.append(row)
    took = time.perf_counter() - start
    shown = f"{row.per_image_s * 1e3:.1f} ms/image" if row.per_image_s else row.status
    log(f"           -> {shown} ({took:.1f} s){' ' + row.note if row.note else ''}")


def bench_ours(
    model: nn.Module, suite: ForwardSuite, gflops: float | None, workdir: Path, weights: Path | None = None
) -> list[ForwardRow]:
    """Our model in every execution path at ``suite.size``, each batch size in ``suite.plans``; ``weights``:
    its checkpoint, for the calibrated int8 graph (None: random weights, that row is skipped)."""
    model = model.eval()
    size = f"{suite.size}x{suite.size}"
    rows: list[ForwardRow] = []
    gen = torch.Generator().manual_seed(0)
    inputs = {b: torch.randn(b, 3, suite.size, suite.size, generator=gen) for b in suite.plans}
    refs: dict[int, np.ndarray] = {}

    def row(path: str, batch: int, **kw: Any) -> ForwardRow:
        return ForwardRow("ours", path, batch, size, gflops_per_image=gflops, **kw)

    # eager fp32, contiguous: the reference every other path is compared with
    for batch, plan in suite.plans.items():
        with _step(rows, row(EAGER, batch), suite.log) as r:
            r.timing, refs[batch], _ = time_runner(eager_runner(model), inputs[batch], plan, None)
            r.max_dp = 0.0

    cl_model = _channels_last_copy(model)
    for batch, plan in suite.plans.items():
        with _step(rows, row(CHANNELS_LAST, batch), suite.log) as r:
            x = inputs[batch].contiguous(memory_format=torch.channels_last)
            r.timing, _, r.max_dp = time_runner(eager_runner(cl_model), x, plan, refs.get(batch))

    if suite.compile:
        runner = compile_runner(cl_model)
        for batch, plan in suite.plans.items():
            with _step(rows, row(COMPILE, batch), suite.log) as r:
                x = inputs[batch].contiguous(memory_format=torch.channels_last)
                start = time.perf_counter()
                runner(x)  # compiles for this batch size (static shapes)
                r.setup_s = time.perf_counter() - start
                r.note = "channels_last, freezing=True; setup = compile + first call"
                r.timing, _, r.max_dp = time_runner(runner, x, plan, refs.get(batch))
    else:
        for batch in suite.plans:
            rows.append(row(COMPILE, batch, status="skipped", note="skipped (--quick or --no-compile)"))

    onnx_path = workdir / "ours.onnx"
    exported, how = False, ""
    start = time.perf_counter()
    try:
        how = export_onnx(model, suite.size, onnx_path)
        exported = True
    except Exception as err:  # noqa: BLE001
        how = f"ONNX export failed: {_first_line(err)}"
        suite.log(traceback.format_exc(limit=3))
    export_s = time.perf_counter() - start
    if exported:
        session = ort_session(onnx_path, suite.threads)
        for batch, plan in suite.plans.items():
            with _step(rows, row(ORT, batch, setup_s=export_s), suite.log) as r:
                x = inputs[batch].numpy()
                r.timing, _, r.max_dp = time_runner(ort_runner(session), x, plan, refs.get(batch))
                ok = r.max_dp is not None and r.max_dp <= ONNX_TOLERANCE
                r.note = f"opset {ONNX_OPSET}, dynamic batch, {how}; matches eager within {ONNX_TOLERANCE:g}: "
                r.note += "yes" if ok else f"NO (max |dp| {r.max_dp:.2e})"
                r.extra["matches_eager"] = ok
        del session
    else:
        rows.extend(row(ORT, b, status="failed", note=how) for b in suite.plans)

    if suite.int8 and exported:
        start = time.perf_counter()
        try:
            session = ort_session(served_int8_graph(model, weights, suite.size), suite.threads)
            quant_s = time.perf_counter() - start
        except Exception as err:  # noqa: BLE001 - e.g. random weights: nothing calibrated
            rows.extend(row(ORT_INT8, b, status="skipped", note=_first_line(err)) for b in suite.plans)
        else:
            for batch, plan in suite.plans.items():
                with _step(rows, row(ORT_INT8, batch, setup_s=quant_s), suite.log) as r:
                    r.timing, _, r.max_dp = time_runner(
                        ort_runner(session), inputs[batch].numpy(), plan, refs.get(batch)
                    )
                    r.note = "QDQ, per-channel int8 weights, uint8 activations calibrated (make calibrate)"
            del session
    else:
        why = "needs the ONNX export" if suite.int8 else "skipped (--quick)"
        rows.extend(row(ORT_INT8, b, status="skipped", note=why) for b in suite.plans)
    rows.extend(
        row(
            TORCH_INT8,
            b,
            status="skipped",
            note="torch.ao quantize_dynamic only quantises Linear/RNN layers and this model is all Conv2d: "
            "it would run unchanged (static int8 needs calibration data: out of scope)",
        )
        for b in suite.plans
    )

    if suite.torchscript:
        for batch, plan in suite.plans.items():
            with _step(rows, row(TORCHSCRIPT, batch, deprecated=True), suite.log) as r:
                start = time.perf_counter()
                runner = torchscript_runner(cl_model, inputs[batch].contiguous(memory_format=torch.channels_last))
                r.setup_s = time.perf_counter() - start
                x = inputs[batch].contiguous(memory_format=torch.channels_last)
                r.timing, _, r.max_dp = time_runner(runner, x, plan, refs.get(batch))
                r.note = "deprecated since torch 2.14; channels_last, traced per batch size"
    else:
        rows.extend(
            row(TORCHSCRIPT, b, status="skipped", note="skipped (--quick)", deprecated=True) for b in suite.plans
        )
    return rows


def _channels_last_copy(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model).to(memory_format=torch.channels_last).eval()


def bench_seed(suite: ForwardSuite, gflops: float | None, seed_model: nn.Module) -> list[ForwardRow]:
    """The seed architecture, eager fp32 contiguous (as its predict.py ran it): the baseline."""
    rows: list[ForwardRow] = []
    size = f"{suite.size}x{suite.size}"
    gen = torch.Generator().manual_seed(1)
    for batch, plan in suite.seed_plans.items():
        with _step(rows, ForwardRow("seed", EAGER, batch, size, gflops_per_image=gflops), suite.log) as r:
            x = torch.randn(batch, 3, suite.size, suite.size, generator=gen)
            r.timing, _, _ = time_runner(eager_runner(seed_model), x, plan, None)
            r.note = "seed architecture rebuilt from SEED_SPEC.md, random weights"
    return rows


def bench_peers(
    peers_dir: Path, threads: int, image: np.ndarray, plan: Repeats, log: Callable[[str], None]
) -> tuple[list[ForwardRow], str]:
    """``session.run`` of each ONNX peer on its own preprocessing of ``image``; returns rows and a note."""
    try:
        from evaluation.peers import load_peers

        peers = load_peers(peers_dir, threads)
    except Exception as err:  # noqa: BLE001 - peers are optional: the report says why they are missing
        return [], f"peers not measured: {_first_line(err)}"
    rows: list[ForwardRow] = []
    for peer in peers:
        x = peer.preprocess(image)
        size = f"{x.shape[-2]}x{x.shape[-1]}"
        with _step(rows, ForwardRow(peer.name, "onnxruntime fp32", int(x.shape[0]), size), log) as r:
            runner = ort_runner(peer.session)
            r.timing = measure(lambda runner=runner, x=x: runner(x), plan.repeats, plan.warmup)
            r.note = f"{peer.name}.onnx via evaluation.peers, intra-op threads {threads}"
    return rows, ""


def temp_workdir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="shoeseg-bench-")
