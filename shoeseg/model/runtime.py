"""Execution paths for inference: eager PyTorch or an ONNX Runtime session, behind one call.

The server picks the fastest non-deprecated path per device: on CPU an ONNX graph exported at
archive time (no compile wait at worker start, faster than eager), on CUDA eager PyTorch with
channels_last and fp16 autocast. Both map normalised images (B, 3, S, S) to the foreground
probability (B, S, S) float32 numpy.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from shoeseg.model.inference import foreground_probability, mirror_average

ONNX_OPSET = 18
ONNX_INPUT, ONNX_OUTPUT = "image", "foreground"
ONNX_FILE = "resunet.onnx"  # the graph's name inside the .mar (the model's input size)
INT8_FILE = "resunet_int8.onnx"  # its int8 QDQ version (shoeseg.model.quantize), packed when calibrated


def onnx_file(size: int, input_size: int, int8: bool = False) -> str:
    """The .mar's graph for input side ``size``: ``ONNX_FILE`` at the model's own, ``resunet_<size>.onnx`` for
    quality=best's other sides (a graph has one side: dynamic sides made the 512 pass 10 % slower); ``int8``:
    its int8 version (``INT8_FILE``, ``resunet_<size>_int8.onnx``)."""
    if size == input_size:
        return INT8_FILE if int8 else ONNX_FILE
    return f"resunet_{size}_int8.onnx" if int8 else f"resunet_{size}.onnx"


class Predictor(Protocol):
    """Normalised images (B, 3, S, S) float32 -> foreground probability (B, S, S) float32 numpy; ``tta`` (for
    the batch or per image) averages with the prediction on the mirrored image."""

    name: str

    def __call__(self, batch: np.ndarray | torch.Tensor, tta: bool | Sequence[bool] = False) -> np.ndarray: ...


class TorchPredictor:
    """Eager PyTorch: channels_last, fp16 autocast on CUDA (see ``foreground_probability``)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model.eval().to(memory_format=torch.channels_last)
        self.name = f"torch eager channels_last on {next(model.parameters()).device}"

    def __call__(self, batch: np.ndarray | torch.Tensor, tta: bool | Sequence[bool] = False) -> np.ndarray:
        return foreground_probability(self.model, batch, tta=tta).cpu().numpy()


class OnnxPredictor:
    """An ONNX Runtime CPU session over a graph written by ``export_onnx``."""

    def __init__(self, path: str | Path, threads: int = 0, memory_arena: bool = True, chunk: int = 0) -> None:
        """``memory_arena``: onnxruntime's CPU arena keeps activation buffers between runs. Off, a worker
        that served batches of 8 photos in whole-batch runs holds ~0.3 GB instead of ~3.5 GB, and the
        forward pass is ~35 % slower (2-core AMD EPYC, 512x512). ``chunk``: at most this many images per
        session run (0: the whole batch); on a CPU one image per run is the fastest per image (2-core AMD
        EPYC, 512x512: 113 ms per image in runs of 1, 116 in runs of 2, 123 in one run of 4)."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.enable_cpu_mem_arena = memory_arena
        options.intra_op_num_threads = threads  # 0: one per physical core
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = Path(path)
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.chunk = max(0, int(chunk))
        self.name = f"onnxruntime {ort.__version__} CPU ({self.path.name}, {self.chunk or 'whole'}-image runs)"

    def __call__(self, batch: np.ndarray | torch.Tensor, tta: bool | Sequence[bool] = False) -> np.ndarray:
        x = batch.numpy() if isinstance(batch, torch.Tensor) else batch
        return mirror_average(self._run, np.ascontiguousarray(x, np.float32), tta)

    def _run(self, x: np.ndarray) -> np.ndarray:
        step = self.chunk or len(x)
        runs = [self.session.run([ONNX_OUTPUT], {ONNX_INPUT: x[i : i + step]})[0] for i in range(0, len(x), step)]
        return runs[0] if len(runs) == 1 else np.concatenate(runs)


class _ForegroundProbability(nn.Module):
    """Wraps the segmentation model so the exported graph ends in the probability: (B, S, S)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), dim=1)[:, 1]


def export_onnx(model: nn.Module, path: str | Path, size: int, probabilities: bool = True) -> Path:
    """Write ``model`` as fp32 ONNX (dynamic batch, ``size`` x ``size``) with torch's exporter.

    probabilities: the graph outputs ``foreground`` (B, S, S) in [0, 1]; else raw ``logits`` (B, 2, S, S).
    """
    path = Path(path)
    module = _ForegroundProbability(model) if probabilities else model
    module = module.float().eval()
    example = (torch.zeros(2, 3, size, size),)
    batch = torch.export.Dim("batch", min=1, max=64)
    output = ONNX_OUTPUT if probabilities else "logits"
    with warnings.catch_warnings(), contextlib.redirect_stdout(None):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            example,
            str(path),
            dynamo=True,
            dynamic_shapes=({0: batch},),
            input_names=[ONNX_INPUT],
            output_names=[output],
            opset_version=ONNX_OPSET,
            external_data=False,
        )
    return path
