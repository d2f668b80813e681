"""Median timer, the machine's description and its measured fp32 matmul peak."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch


@dataclass
class Timing:
    """Wall-clock seconds of ``repeats`` timed calls made after ``warmup`` untimed ones."""

    samples: list[float]
    warmup: int

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def minimum(self) -> float:
        return min(self.samples)

    @property
    def maximum(self) -> float:
        return max(self.samples)

    @property
    def repeats(self) -> int:
        return len(self.samples)

    def to_dict(self) -> dict[str, Any]:
        return {
            "median_s": self.median,
            "min_s": self.minimum,
            "max_s": self.maximum,
            "repeats": self.repeats,
            "warmup": self.warmup,
            "samples_s": self.samples,
        }


def measure(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then ``repeats`` times timed (``time.perf_counter``)."""
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return Timing(samples, warmup)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, with its family and model numbers (virtual machines often
    show a bare vendor name); ``platform.processor()`` where there is no /proc/cpuinfo."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if not line.strip():
                    break  # the first processor's block is enough
                key, _, value = line.partition(":")
                fields.setdefault(key.strip().lower(), value.strip())
    except OSError:
        return platform.processor() or "unknown CPU"
    name = fields.get("model name") or platform.processor() or "unknown CPU"
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name


# /proc/cpuinfo flags -> what they mean for the forward pass (most capable first); AMX: Intel's matrix tiles.
SIMD_FLAGS = (
    ("amx_tile", "AMX"),
    ("avx512_bf16", "AVX-512 BF16"),
    ("avx512_vnni", "AVX-512 VNNI"),
    ("avx512f", "AVX-512"),
    ("avx_vnni", "AVX-VNNI"),
    ("avx2", "AVX2"),
)


def simd_level() -> str:
    """The CPU's vector extensions that matter for convolutions, e.g. "AVX-512, AVX-512 VNNI, AVX-512 BF16, AVX2",
    and the kernel level PyTorch picked (``torch.backends.cpu.get_cpu_capability``): a Zen 5 (AVX-512) ran our
    forward ~3.6x faster than a Zen 3 (AVX2 only), so figures from different machines compare only as ratios."""
    flags: set[str] = set()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("flags"):
                flags = set(line.partition(":")[2].split())
                break
    found = [name for flag, name in SIMD_FLAGS if flag in flags] or ["no AVX2"]
    return f"{', '.join(found)}; torch kernels {torch.backends.cpu.get_cpu_capability()}"


def _version(module: str) -> str:
    try:
        return __import__(module).__version__
    except Exception:  # noqa: BLE001 - a missing or broken optional package is reported, not fatal
        return "not installed"


def load_average() -> tuple[float, float, float] | None:
    """1, 5 and 15 minute load averages (None where the OS has none)."""
    try:
        return os.getloadavg()
    except OSError:
        return None


@dataclass
class MachineInfo:
    """What the figures were measured on; a load average well above 0 at the start means a busy machine."""

    cpu: str
    logical_cores: int
    torch_threads: int
    gpu: str
    versions: dict[str, str]
    python: str
    date: str
    load_at_start: tuple[float, float, float] | None
    simd: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def machine_info() -> MachineInfo:
    """Describe this machine and the library versions in use (call after ``torch.set_num_threads``)."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    versions = {name: _version(name) for name in ("torch", "onnxruntime", "timm", "numpy", "cv2", "PIL", "onnx")}
    return MachineInfo(
        cpu=cpu_model(),
        logical_cores=os.cpu_count() or 0,
        torch_threads=torch.get_num_threads(),
        gpu=gpu,
        versions=versions,
        python=platform.python_version(),
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        load_at_start=load_average(),
        simd=simd_level(),
    )


@dataclass
class Peak:
    """Achieved fp32 GFLOP/s of an ``n`` x ``n`` @ ``n`` x ``n`` matmul by one library: a practical peak."""

    library: str
    n: int
    timing: Timing

    @property
    def flops(self) -> float:
        return 2.0 * self.n**3

    @property
    def gflops(self) -> float:
        return self.flops / self.timing.median / 1e9

    def to_dict(self) -> dict[str, Any]:
        return {"library": self.library, "n": self.n, "gflops": self.gflops, "timing": self.timing.to_dict()}


def _operands(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)


def torch_matmul_peak(n: int = 2048, repeats: int = 10, warmup: int = 2) -> Peak:
    """Median time of a dense fp32 ``n``-square ``torch.mm`` (MKL) with the current torch thread count."""
    a, b = _operands(n)
    out = torch.empty(n, n)
    with torch.inference_mode():
        timing = measure(lambda: torch.mm(a, b, out=out), repeats, warmup)
    return Peak("torch.mm (MKL)", n, timing)


def ort_matmul_peak(n: int = 2048, threads: int = 1, repeats: int = 10, warmup: int = 2) -> Peak:
    """The same matmul through onnxruntime's MatMul (MLAS), which may use wider SIMD than MKL on AMD CPUs.

    Needs the ``onnx`` package to build the one-node graph.
    """
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "matmul",
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, [n, n]) for k in ("a", "b")],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = min(model.ir_version, onnx.IR_VERSION, 9)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    a, b = (t.numpy() for t in _operands(n))
    timing = measure(lambda: session.run(None, {"a": a, "b": b}), repeats, warmup)
    return Peak("onnxruntime MatMul (MLAS)", n, timing)
