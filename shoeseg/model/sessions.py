"""Every forward path the product runs, and the one place that decides which runs.

A forward path (``runtime.Predictor``) turns a (B, 3, S, S) letterbox into (B, S, S) probabilities. On a CPU it
is an ONNX graph in onnxruntime, one graph per input side (the model's own, and quality=best's others), int8
when the weights have calibrated ranges; on CUDA it is eager PyTorch, which takes any side. The graphs come
from two places: the .mar (``pack_graphs`` writes them when the archive is built, the handler reads them) or
the library's cache (exported once per checkpoint on first use).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from shoeseg.constants import RUNTIMES
from shoeseg.model.checkpoint import load_model
from shoeseg.model.inference import best_sides
from shoeseg.model.quantize import CalibrationError, is_calibrated, quantize_graph, weights_digest
from shoeseg.model.runtime import INT8_FILE, ONNX_FILE, OnnxPredictor, Predictor, TorchPredictor, export_onnx, onnx_file


def check_runtime(runtime: str) -> None:
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")


def on_cpu(model: nn.Module) -> bool:
    return next(model.parameters()).device.type == "cpu"


def onnx_runtime(model: nn.Module, runtime: str = "auto") -> bool:
    """Whether ``runtime`` means onnxruntime for ``model``: ``auto`` on a CPU (the CPU server's path), never
    on CUDA (the GPU server runs eager PyTorch); ``torch`` / ``onnx`` / ``onnx-int8`` force one."""
    check_runtime(runtime)
    return runtime.startswith("onnx") or (runtime == "auto" and on_cpu(model))


# ---- the .mar: graphs packed beside the checkpoint, read by the handler ------------------------------------


def pack_graphs(weights: Path, folder: Path) -> list[Path]:
    """The CPU worker's graphs of ``weights`` into ``folder``: one per quality=best side (the model's own
    first), plus their int8 versions when ``weights`` has calibrated ranges (``model.quantize.ranges_file``)."""
    model = load_model(weights, "cpu")
    size = model.config.input_size
    sides = best_sides(size)
    fp32 = [export_onnx(model, folder / onnx_file(side, size), side) for side in sides]
    try:
        int8 = [quantize_graph(g, folder / onnx_file(s, size, int8=True), weights) for s, g in zip(sides, fp32)]
    except CalibrationError as err:  # a .mar without them still serves; only handler.runtime onnx-int8 needs them
        print(f"no int8 graphs in the .mar: {err}")
        int8 = []
    return fp32 + int8


def archive_predictor(
    model: nn.Module, model_dir: Path, runtime: str, memory_arena: bool = True, onnx_chunk: int = 1
) -> TorchPredictor | OnnxPredictor:
    """The handler's main path: ``runtime`` auto on a CPU takes the .mar's int8 graph, else its fp32 graph, else
    eager PyTorch (GPU, or no graph); ``onnx`` (fp32) / ``onnx-int8`` / ``torch`` force one (the ONNX ones need
    their graph in the .mar and a CPU worker). ``memory_arena``, ``onnx_chunk``: see ``OnnxPredictor``."""
    if runtime not in RUNTIMES:
        raise ValueError(f"handler.runtime is {runtime!r} in model-config.yaml; use one of {', '.join(RUNTIMES)}")
    names = {"onnx": [ONNX_FILE], "onnx-int8": [INT8_FILE], "auto": [INT8_FILE, ONNX_FILE] if on_cpu(model) else []}
    graph = next((model_dir / n for n in names.get(runtime, []) if (model_dir / n).is_file()), None)
    if runtime.startswith("onnx") and not (graph and on_cpu(model)):
        hint = " (make calibrate, then make mar)" if runtime == "onnx-int8" else ""
        raise FileNotFoundError(
            f"handler.runtime: {runtime} needs {names[runtime][0]} in the .mar{hint} and a CPU worker"
        )
    if graph is not None:
        return OnnxPredictor(graph, threads=torch.get_num_threads(), memory_arena=memory_arena, chunk=onnx_chunk)
    return TorchPredictor(model)


def archive_best_predictors(
    model: nn.Module, model_dir: Path, main: Predictor, memory_arena: bool
) -> dict[int, Predictor]:
    """quality=best's other sides -> their path: when the worker runs onnxruntime, the .mar's graph for each
    (one image per run; int8 when the main graph is, fp32 where the .mar has no int8 one), else none (eager
    PyTorch handles any side)."""
    if not isinstance(main, OnnxPredictor):
        return {}
    size, threads = model.config.input_size, torch.get_num_threads()
    precisions = (True, False) if main.path.name == INT8_FILE else (False,)
    predictors: dict[int, Predictor] = {}
    for side in (s for s in best_sides(size) if s != size):
        graphs = (model_dir / onnx_file(side, size, int8) for int8 in precisions)
        graph = next((g for g in graphs if g.is_file()), None)
        if graph is not None:
            predictors[side] = OnnxPredictor(graph, threads, memory_arena, chunk=1)
    return predictors


# ---- the library: graphs exported once into a cache ---------------------------------------------------------


def graph_cache_dir() -> Path:
    """Where exported ONNX graphs are kept: ``$SHOESEG_CACHE``, else ``$XDG_CACHE_HOME/shoeseg`` (~/.cache)."""
    if os.environ.get("SHOESEG_CACHE"):
        return Path(os.environ["SHOESEG_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "shoeseg"


def cached_graph(model: nn.Module, weights: Path, size: int | None = None, int8: bool = False) -> Path:
    """The model's ONNX graph at input side ``size`` (default its own), as the .mar packs it, exported once per
    checkpoint, side and torch version (~20 s at 512 px on 2 CPU cores); ``int8``: its int8 QDQ graph, made
    from the ranges calibrated beside ``weights`` (``model.quantize``; ``CalibrationError`` without them)."""
    size = size or model.config.input_size
    name = onnx_file(size, model.config.input_size, int8)
    path = (
        graph_cache_dir() / f"{weights_digest(weights)[:16]}-{model.config.input_size}-torch{torch.__version__}-{name}"
    )
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        if int8:
            quantize_graph(cached_graph(model, weights, size), tmp, weights)
        else:
            export_onnx(model, tmp, size)
        tmp.replace(path)
    return path


def make_predictor(model: nn.Module, weights: Path, runtime: str = "auto", size: int | None = None) -> Predictor:
    """The library's path ``runtime`` asks for (``onnx_runtime``) at input side ``size`` (default the model's):
    the int8 graph for ``onnx-int8``, and for ``auto`` on a CPU when ``weights`` are calibrated (as the CPU
    server; every side uses the same ranges: the graphs differ only in their side)."""
    if not onnx_runtime(model, runtime):
        return TorchPredictor(model)
    int8 = runtime == "onnx-int8" or (runtime == "auto" and is_calibrated(weights))
    return OnnxPredictor(cached_graph(model, weights, size, int8), threads=torch.get_num_threads(), chunk=1)
